"""Modules and models, registered in the OpenMMLab registries on import."""
from .backbones import CSPNeXtDCNv3, CSPNeXtLayerDCNv3, YOLOv8CSPDarknetDCNv3
from .layers import CSPLayerWithTwoConvDCNv3, DarknetBottleneckDCNv3, DCNv3, DCNv3Conv2d, DCNv3ConvModule

__all__ = ['DCNv3', 'DCNv3Conv2d', 'DCNv3ConvModule', 'DarknetBottleneckDCNv3', 'CSPLayerWithTwoConvDCNv3',
           'YOLOv8CSPDarknetDCNv3', 'CSPNeXtDCNv3', 'CSPNeXtLayerDCNv3']
