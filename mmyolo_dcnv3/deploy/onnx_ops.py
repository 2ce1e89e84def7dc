"""ONNX translations of the DCNv3 op for torch's torch.export-based exporter.

``torch.onnx.export(model, args, dynamo=True, opset_version=...,
custom_translation_table=dcnv3_translation_table(...))`` replaces every
``torch.ops.mmyolo_dcnv3.dcnv3_forward`` node by standard ONNX operators
(domain ``''`` only), so the file runs in stock ONNX Runtime, OpenVINO and
TensorRT without plugins. Two translations:

* ``'gridsample'`` (default, opset 16 to 19; 18 recommended): the input is
  regrouped to (N*group, group_channels, H, W), every point's location is
  normalised for ``GridSample`` (bilinear, zero padding, align_corners=0, which
  is DCNv3's "bilinear, zero outside"), and the samples are weighted by the
  mask and summed. Every runtime runs it. Opset 20 renamed GridSample's mode
  ``bilinear`` to ``linear``: TensorRT's parser turns ``linear`` into nearest
  sampling and older OpenVINO releases reject it, hence opset 18.
* ``'deformconv'`` (opset >= 19): one ``DeformConv`` with a depthwise all-ones
  weight (``group=C``, ``offset_group=group``), the offsets and mask reordered
  to its row-major point order and (dy, dx) pairs; ``offset_scale`` is folded
  into the offsets and ``remove_center`` becomes a centre point of zero weight.
  ONNX Runtime (tested: 1.32) and TensorRT (>= 10.1) run it, OpenVINO does not.

Every argument of the op is honoured, and batch, height and width are read
from the graph, so a model exported with dynamic shapes stays dynamic.

This module needs torch, onnx and onnxscript, nothing of OpenMMLab.
"""
from typing import Callable, Dict

import numpy as np

from ..ops.point_order import kernel_points, point_taps
from .runtime import INSTALL_HINT

TRANSLATIONS = ('gridsample', 'deformconv')
MIN_OPSET = {'gridsample': 16, 'deformconv': 19}
DEFAULT_OPSET = {'gridsample': 18, 'deformconv': 19}
# torch's exporter builds its graph at opset 18 at least and converts down.
_EXPORTER_MIN_OPSET = 18


def check_translation(translation: str, opset: int) -> None:
    """Raises ValueError unless ``translation`` exists and runs at ``opset``."""
    if translation not in TRANSLATIONS:
        raise ValueError(f'translation must be one of {", ".join(TRANSLATIONS)}, got {translation!r}')
    if isinstance(opset, bool) or not isinstance(opset, int):
        raise TypeError(f'opset must be an int, got {type(opset).__name__}')
    if opset < MIN_OPSET[translation]:
        what = ('ONNX GridSample exists from opset 16' if translation == 'gridsample'
                else 'ONNX DeformConv exists from opset 19')
        raise ValueError(f'opset {opset} is too old for the {translation!r} translation of DCNv3: {what}; '
                         f'use --opset {DEFAULT_OPSET[translation]}')


def import_onnxscript():
    """onnxscript, or an ImportError saying how to install it."""
    try:
        import onnx  # noqa: F401  (the exporter needs it too)
        import onnxscript
    except ImportError as error:
        raise ImportError(f'ONNX export needs onnx and onnxscript ({error}); {INSTALL_HINT}') from error
    return onnxscript


def deformconv_point_order(kernel_h: int, kernel_w: int, remove_center: bool) -> np.ndarray:
    """(kernel_h * kernel_w,) int64: for each DeformConv point (row-major), the index
    of the DCNv3 point it is; the removed centre maps to index P (a zero slot)."""
    index = {point: p for p, point in enumerate(kernel_points(kernel_h, kernel_w, remove_center))}
    return np.asarray([index.get((i, j), len(index)) for j in range(kernel_h) for i in range(kernel_w)],
                      dtype=np.int64)


def dcnv3_translation_table(translation: str = 'gridsample', opset: int = 18) -> Dict[Callable, Callable]:
    """The ``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``.

    Args:
        translation: ``'gridsample'`` or ``'deformconv'`` (see the module docstring).
        opset: the ``opset_version`` the model is exported at.

    Raises:
        ValueError: unknown translation, or an opset it cannot be expressed in.
        ImportError: onnx/onnxscript missing (says how to install them).
    """
    check_translation(translation, opset)
    onnxscript = import_onnxscript()
    import torch

    from ..ops._library import compiled_kernels
    if not compiled_kernels().devices:
        raise RuntimeError('the DCNv3 op torch.ops.mmyolo_dcnv3.dcnv3_forward is not registered: '
                           f'{compiled_kernels().why_missing("cpu")}')
    op = onnxscript.values.Opset('', max(opset, _EXPORTER_MIN_OPSET))
    build = _gridsample_graph if translation == 'gridsample' else _deformconv_graph
    grid_mode = 'linear' if opset >= 20 else 'bilinear'
    FLOAT = onnxscript.FLOAT

    # Parameter names match the op's schema: the exporter binds them by name.
    def dcnv3_forward(input: FLOAT, offset: FLOAT, mask: FLOAT, kernel_h: int, kernel_w: int,
                      stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int,
                      dilation_w: int, group: int, group_channels: int, offset_scale: float,
                      im2col_step: int, remove_center: bool) -> FLOAT:
        return build(op, input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                     dilation_h, dilation_w, group, group_channels, float(offset_scale), bool(remove_center),
                     grid_mode=grid_mode)

    return {torch.ops.mmyolo_dcnv3.dcnv3_forward.default: dcnv3_forward}


def _const(op, value) -> object:
    """A Constant node holding the numpy array or scalar ``value``."""
    import onnx
    return op.Constant(value=onnx.numpy_helper.from_array(np.asarray(value)))


def _ints(op, *values):
    return _const(op, np.asarray(values, dtype=np.int64))


def _like(op, value, reference):
    """A float32 constant cast to ``reference``'s dtype."""
    return op.CastLike(_const(op, np.asarray(value, dtype=np.float32)), reference)


def _gridsample_graph(op, input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                      dilation_h, dilation_w, group, group_channels, offset_scale, remove_center, grid_mode):
    """DCNv3 as GridSample over (N*group, group_channels, H, W); see docs/operator.md."""
    taps = np.asarray(point_taps(kernel_h, kernel_w, dilation_h, dilation_w, remove_center), dtype=np.float64)
    points = len(taps)
    channels = group * group_channels
    centre_x, centre_y = (dilation_w * (kernel_w - 1)) // 2, (dilation_h * (kernel_h - 1)) // 2

    height_width_in = op.Shape(input, start=1, end=3)                  # [H, W]
    height_out, width_out = op.Shape(offset, start=1, end=2), op.Shape(offset, start=2, end=3)
    width_out_points = op.Mul(width_out, _ints(op, points))
    grid_rows = op.Concat(_ints(op, -1), height_out, op.Mul(width_out_points, _ints(op, 2)), axis=0)

    def origins(size_out, stride, start):  # start + stride * (0 .. size_out - 1), in offset's dtype
        steps = op.Range(_const(op, np.int64(0)), op.Squeeze(size_out), _const(op, np.int64(1)))
        return op.Add(op.Mul(op.CastLike(steps, offset), _like(op, stride, offset)), _like(op, start, offset))

    # A point's location (x, y) is origin + (tap + offset) * offset_scale, and GridSample
    # (align_corners=0) reads pixel x at (2 x + 1) / W - 1, so its grid coordinate is
    # offset * scale + base with scale = 2 offset_scale / W and base = (2 (origin + tap offset_scale)
    # + 1) / W - 1. Both depend on shapes only (runtimes fold them when the shapes are static) and
    # are laid out like the grid rows, so the per-run work is one full-size Mul and Add.
    origin_shape = op.Concat(height_out, width_out, _ints(op, 1, 1), axis=0)
    origin_x = op.Reshape(origins(width_out, stride_w, centre_x - pad_w), _ints(op, 1, -1, 1, 1))
    origin_y = op.Reshape(origins(height_out, stride_h, centre_y - pad_h), _ints(op, -1, 1, 1, 1))
    origin = op.Concat(op.Expand(origin_x, origin_shape), op.Expand(origin_y, origin_shape), axis=-1)
    size_xy = op.CastLike(op.Gather(height_width_in, _ints(op, 1, 0), axis=0), offset)
    location = op.Add(origin, _like(op, taps * offset_scale, offset))  # (Ho, Wo, P, 2), offsets zero
    base = op.Sub(op.Div(op.Add(op.Mul(location, _like(op, 2, offset)), _like(op, 1, offset)), size_xy),
                  _like(op, 1, offset))
    scale = op.Expand(op.Div(_like(op, 2 * offset_scale, offset), size_xy), op.Shape(base))
    base, scale = op.Reshape(base, grid_rows), op.Reshape(scale, grid_rows)  # (1, Ho, Wo*P*2)

    grid = op.Reshape(offset, _ints(op, 0, 0, 0, group, points * 2))
    grid = op.Transpose(grid, perm=[0, 3, 1, 2, 4])                    # (N, group, Ho, Wo, P*2)
    grid = op.Add(op.Mul(op.Reshape(grid, grid_rows), scale), base)   # (N*group, Ho, Wo*P*2)
    grid = op.Reshape(grid, op.Concat(_ints(op, -1), height_out, width_out_points, _ints(op, 2), axis=0))

    value = op.Reshape(input, _ints(op, 0, 0, 0, group, group_channels))
    value = op.Transpose(value, perm=[0, 3, 4, 1, 2])                  # (N, group, gc, H, W)
    value = op.Reshape(value, op.Concat(_ints(op, -1, group_channels), height_width_in, axis=0))
    sampled = op.GridSample(value, grid, mode=grid_mode, padding_mode='zeros', align_corners=0)

    weight = op.Reshape(mask, _ints(op, 0, 0, 0, group, points))
    weight = op.Transpose(weight, perm=[0, 3, 1, 2, 4])                # (N, group, Ho, Wo, P)
    weight = op.Reshape(weight, op.Concat(_ints(op, -1, 1), height_out, width_out_points, axis=0))
    weighted = op.Mul(sampled, weight)                                # (N*group, gc, Ho, Wo*P)
    weighted = op.Reshape(weighted, op.Concat(_ints(op, -1, channels), height_out, width_out, _ints(op, points),
                                              axis=0))
    output = op.ReduceSum(weighted, _ints(op, 4), keepdims=0)        # (N, C, Ho, Wo)
    return op.Transpose(output, perm=[0, 2, 3, 1])


def _deformconv_graph(op, input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                      dilation_h, dilation_w, group, group_channels, offset_scale, remove_center, grid_mode):
    """DCNv3 as one depthwise DeformConv with an all-ones kernel."""
    taps = np.asarray(point_taps(kernel_h, kernel_w, dilation_h, dilation_w, remove_center), dtype=np.float64)
    points = len(taps)
    channels = group * group_channels

    # DCNv3 scales grid and offset: tap + d' = (tap + d) * s, so d' = d s + tap (s - 1).
    shift = op.Reshape(offset, _ints(op, 0, 0, 0, group, points, 2))
    if offset_scale != 1.0:
        shift = op.Add(op.Mul(shift, _like(op, offset_scale, offset)),
                       _like(op, taps * (offset_scale - 1.0), offset))
    weight = op.Reshape(mask, _ints(op, 0, 0, 0, group, points))
    if remove_center:  # a zero slot at index P stands in for the centre point
        shift = op.Pad(shift, _ints(op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0))
        weight = op.Pad(weight, _ints(op, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1))
    order = _const(op, deformconv_point_order(kernel_h, kernel_w, remove_center))
    shift = op.Gather(op.Gather(shift, order, axis=4), _ints(op, 1, 0), axis=5)  # row-major, (dy, dx)
    shift = op.Transpose(op.Reshape(shift, _ints(op, 0, 0, 0, -1)), perm=[0, 3, 1, 2])
    weight = op.Reshape(op.Gather(weight, order, axis=4), _ints(op, 0, 0, 0, -1))
    weight = op.Transpose(weight, perm=[0, 3, 1, 2])

    ones = _like(op, np.ones((channels, 1, kernel_h, kernel_w)), input)
    output = op.DeformConv(op.Transpose(input, perm=[0, 3, 1, 2]), ones, shift, None, weight,
                           dilations=[dilation_h, dilation_w], group=channels, kernel_shape=[kernel_h, kernel_w],
                           offset_group=group, pads=[pad_h, pad_w, pad_h, pad_w], strides=[stride_h, stride_w])
    return op.Transpose(output, perm=[0, 2, 3, 1])
