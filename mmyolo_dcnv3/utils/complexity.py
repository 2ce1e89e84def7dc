"""Parameters and FLOPs of models that contain DCNv3.

mmengine's FlopAnalyzer traces the model and counts known ops; the DCNv3 op
is taught to it here, so it is counted instead of skipped. FLOPs follow
mmengine's (fvcore's) convention of one per multiply-add: the DCNv3 op does 5
per output channel per sampling point (4 bilinear neighbours, 1 mask weight).
"""
from collections import Counter
from typing import Sequence, Tuple

import torch
import torch.nn as nn

DCNV3_OP = 'mmyolo_dcnv3::dcnv3_forward'
MULTIPLY_ADDS_PER_CHANNEL_POINT = 5


def dcnv3_flop_jit(inputs, outputs) -> Counter:
    """FlopAnalyzer handle: multiply-adds of one dcnv3_forward call."""
    from mmengine.analysis.jit_handles import get_shape
    mask_shape = get_shape(inputs[2])  # (N, H_out, W_out, group * P)
    group = inputs[11].toIValue()
    n, h_out, w_out, channels = get_shape(outputs[0])
    points = mask_shape[3] // group
    return Counter({'dcnv3': n * h_out * w_out * channels * points * MULTIPLY_ADDS_PER_CHANNEL_POINT})


class _TensorMode(nn.Module):
    """Runs a detector in 'tensor' mode (backbone, neck, head) for tracing."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, inputs):
        return self.detector(inputs, mode='tensor')


def model_complexity(detector: nn.Module, input_shape: Sequence[int]) -> Tuple[int, int, dict]:
    """(parameters, FLOPs, FLOPs by op type) of a detector for one (C, H, W) image."""
    from mmengine.analysis import FlopAnalyzer
    device = next(detector.parameters()).device
    inputs = torch.zeros(1, *input_shape, device=device)
    was_training = detector.training
    detector.eval()
    try:
        analyzer = FlopAnalyzer(_TensorMode(detector), (inputs, ))
        analyzer.set_op_handle(**{DCNV3_OP: dcnv3_flop_jit})
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        with torch.no_grad():
            total = analyzer.total()
            by_operator = dict(analyzer.by_operator())
    finally:
        detector.train(was_training)
    parameters = sum(p.numel() for p in detector.parameters())
    return parameters, total, by_operator


def detector_complexity(cfg, image_size: int) -> Tuple[int, int]:
    """(parameters, FLOPs as multiply-adds) of a config's detector on one square image of ``image_size`` pixels."""
    from .config import build_detector
    params, flops, _ = model_complexity(build_detector(cfg), (3, image_size, image_size))
    return params, flops
