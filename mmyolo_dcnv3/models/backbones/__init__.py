"""Backbones (need mmyolo); registered in mmyolo's MODELS."""
from .yolov8_csp_darknet_dcnv3 import YOLOv8CSPDarknetDCNv3

__all__ = ['YOLOv8CSPDarknetDCNv3']
