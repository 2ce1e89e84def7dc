"""DCNv3 modules (torch, mmcv.cnn, mmengine's registry); registered in mmengine's root MODELS."""
from .csp_layer import CSPLayerWithTwoConvDCNv3, DarknetBottleneckDCNv3
from .dcnv3 import DCNv3, DCNv3Conv2d
from .dcnv3_conv_module import DCNv3ConvModule

__all__ = ['DCNv3', 'DCNv3Conv2d', 'DCNv3ConvModule', 'DarknetBottleneckDCNv3', 'CSPLayerWithTwoConvDCNv3']
