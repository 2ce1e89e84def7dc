"""Deployment: ONNX export of DCNv3 models that runs in stock ONNX Runtime and OpenVINO.

Need only torch, numpy, onnx and onnxscript (and a runtime to run the file), nothing of OpenMMLab:

* :mod:`.onnx_ops`: the op's ONNX translations (GridSample at opset 18, the
  default; DeformConv at opset 19), for torch's exporter;
* :mod:`.export`: ``torch.onnx.export`` of any module with them;
* :mod:`.runtime`: run an ONNX file in ONNX Runtime or OpenVINO.

Need mmdet and mmyolo (import them explicitly):

* :mod:`.nms`: multi-class NMS as an op, with its NonMaxSuppression translation;
* :mod:`.yolov8`: the exportable YOLOv8 detector, its metadata and its export;
* :mod:`.onnx_detector`: an exported file run like the PyTorch detector;
* :mod:`.quantize`: INT8 for ONNX Runtime and OpenVINO, DCNv3 sampling and box decoding kept float.
"""
from .export import export_onnx
from .onnx_ops import DEFAULT_OPSET, MIN_OPSET, TRANSLATIONS, check_translation, dcnv3_translation_table
from .runtime import RUNTIMES, OnnxModel, onnx_domains

__all__ = ['export_onnx', 'dcnv3_translation_table', 'check_translation', 'TRANSLATIONS', 'DEFAULT_OPSET',
           'MIN_OPSET', 'OnnxModel', 'RUNTIMES', 'onnx_domains']
