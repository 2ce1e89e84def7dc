"""Backbones (need mmyolo); registered in mmyolo's MODELS."""
from .cspnext_dcnv3 import CSPNeXtDCNv3, CSPNeXtLayerDCNv3
from .dcnv3_stages import DCNv3StagesMixin
from .yolov8_csp_darknet_dcnv3 import YOLOv8CSPDarknetDCNv3

__all__ = ['YOLOv8CSPDarknetDCNv3', 'CSPNeXtDCNv3', 'CSPNeXtLayerDCNv3', 'DCNv3StagesMixin']
