"""Deployment: ONNX export of DCNv3 models that runs in stock ONNX Runtime and OpenVINO.

* :mod:`.onnx_ops`: the op's ONNX translations (GridSample at opset 18, the
  default; DeformConv at opset 19), for torch's exporter;
* :mod:`.export`: ``torch.onnx.export`` of any module with them;
* :mod:`.runtime`: run an ONNX file in ONNX Runtime or OpenVINO;
* :mod:`.detector`: the exportable YOLOv8 detector (needs mmdet and mmyolo;
  import it explicitly).

This package and the three modules above need only torch, numpy, onnx and
onnxscript (and a runtime to run the file), nothing of OpenMMLab.
"""
from .export import export_onnx
from .onnx_ops import DEFAULT_OPSET, MIN_OPSET, TRANSLATIONS, check_translation, dcnv3_translation_table
from .runtime import RUNTIMES, OnnxModel, onnx_domains

__all__ = ['export_onnx', 'dcnv3_translation_table', 'check_translation', 'TRANSLATIONS', 'DEFAULT_OPSET',
           'MIN_OPSET', 'OnnxModel', 'RUNTIMES', 'onnx_domains']
