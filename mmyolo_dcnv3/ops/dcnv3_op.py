"""The DCNv3 op: dispatch to the compiled kernels, autograd and fake kernels.

The compiled op is ``torch.ops.mmyolo_dcnv3.dcnv3_forward``. Its autograd
formula and fake kernels are registered here, so ``torch.compile`` and
``torch.export`` see a single op. Its backward runs the compiled
``dcnv3_backward``, or, when autograd is asked for a graph of the gradients
(``create_graph=True``), autograd through the reference
(:func:`_differentiable_gradients`).

Which implementation runs is decided per call by the environment variable
``MMYOLO_DCNV3_IMPL``:

* ``auto`` (default): the compiled kernel for the tensors' device where one is
  built, else the reference, with one warning saying why;
* ``compiled``: the compiled kernel, or an error saying why there is none;
* ``reference``: always the pure-PyTorch reference.

:func:`dcnv3_implementation` reports the choice for a device.
"""
import os
import warnings

import torch

from ._library import compiled_kernels
from .reference import dcnv3_reference
from .validation import check_dcnv3_args

IMPL_ENV = 'MMYOLO_DCNV3_IMPL'
_IMPLS = ('auto', 'compiled', 'reference')
_warned_fallback = set()


# torch.compile evaluates the choice once, while tracing, instead of tracing
# the environment lookup and the library loader.
@torch.compiler.assume_constant_result
def dcnv3_implementation(device) -> str:
    """Returns ``'compiled'`` or ``'reference'``: what :func:`dcnv3` runs on ``device``.

    Raises:
        ValueError: ``MMYOLO_DCNV3_IMPL`` holds an unknown value.
        RuntimeError: ``MMYOLO_DCNV3_IMPL=compiled`` but no compiled kernel is
            usable on that device.
    """
    device_type = torch.device(device).type
    wanted = os.environ.get(IMPL_ENV, 'auto') or 'auto'
    if wanted not in _IMPLS:
        raise ValueError(f'{IMPL_ENV} must be one of {", ".join(_IMPLS)}, got {wanted!r}')
    if wanted == 'reference':
        return 'reference'
    kernels = compiled_kernels()
    if kernels.available(device_type):
        return 'compiled'
    if wanted == 'compiled':
        raise RuntimeError(f'{IMPL_ENV}=compiled but the DCNv3 kernels for {device_type} are not '
                           f'usable: {kernels.why_missing(device_type)}')
    if device_type not in _warned_fallback:
        _warned_fallback.add(device_type)
        warnings.warn(f'mmyolo_dcnv3: using the slow pure-PyTorch DCNv3 on {device_type} because '
                      f'{kernels.why_missing(device_type)}', RuntimeWarning, stacklevel=3)
    return 'reference'


def dcnv3(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, kernel_h: int, kernel_w: int,
          stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int, dilation_w: int,
          group: int, group_channels: int, offset_scale: float, im2col_step: int = 256,
          remove_center: bool = False) -> torch.Tensor:
    """Deformable convolution v3 (InternImage), channels-last, without the projections.

    Each output pixel samples, for each of ``group`` channel groups, ``P =
    kernel_h * kernel_w - remove_center`` points at learned offsets from its
    dilated kernel grid, bilinearly (zero outside the image), and sums them
    weighted by ``mask``. The contract, InternImage's, is spelled out in
    docs/operator.md.

    Args:
        input: (N, H_in, W_in, C) features, C = group * group_channels.
        offset: (N, H_out, W_out, group * P * 2); per group and point the pair
            (dx, dy), in input pixels before ``offset_scale``.
        mask: (N, H_out, W_out, group * P) weights of the points (the module
            applies softmax per group before calling; this op does not).
        kernel_h, kernel_w: kernel size (>= 1).
        stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w: as for a
            convolution; padding is implicit zeros.
        group, group_channels: channel groups and channels per group.
        offset_scale: scales the kernel grid and the offsets.
        im2col_step: accepted for compatibility; a performance hint only, any
            batch size works.
        remove_center: drop the kernel's centre point (odd square kernels).

    Returns:
        (N, H_out, W_out, C), H_out = (H_in + 2 pad_h - (dilation_h (kernel_h -
        1) + 1)) // stride_h + 1, likewise W_out.

    Differentiable with respect to input, offset and mask, to any order
    (gradients taken with ``create_graph=True`` come from the reference:
    slower, equal to the kernels' to rounding, and differentiable). On the
    CPU every gradient is deterministic (bitwise, whatever the thread count).
    On CUDA:

    * the gradient of ``input`` is always accumulated with ``atomicAdd``: its
      last bits may vary between runs;
    * the gradients of ``offset`` and ``mask`` are bitwise reproducible when
      ``group_channels / V`` is 1, 2, 4, 8, 16 or 32 (the threads of a group
      then sum by warp shuffles), and accumulated with ``atomicAdd`` otherwise.
      ``V``, the channels a thread loads at once, is the largest of 8, 4, 2, 1
      that divides ``group_channels``, spans at most 16 bytes and to whose
      span the data of ``input`` and of the output's gradient are aligned:
      4 for float32, 2 for float64, 8 for float16/bfloat16 on freshly
      allocated tensors (a view into a larger buffer may lower it). So in
      float32, ``group_channels`` 8, 16, 32, 64 and 128 are reproducible,
      5, 12, 24 and 256 are not;
    * the forward is deterministic. The backward calls
      ``alertNotDeterministic``: under
      ``torch.use_deterministic_algorithms(True)`` it raises a RuntimeError
      (with ``warn_only=True`` it warns).

    Under autocast (CUDA or CPU) the op runs in the dtype of ``input``:
    offset and mask are cast to it. A float16/bfloat16 feature map thus runs
    the kernel in that dtype (accumulating in float32), a float32 one in
    float32. The registered op applies the same rule (csrc/dcnv3_library.cpp).
    """
    if isinstance(input, torch.Tensor) and torch.is_autocast_enabled(input.device.type):
        offset, mask = offset.to(input.dtype), mask.to(input.dtype)
    check_dcnv3_args(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                     dilation_h, dilation_w, group, group_channels, offset_scale, im2col_step,
                     remove_center)
    if dcnv3_implementation(input.device) == 'reference':
        return dcnv3_reference(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                               pad_w, dilation_h, dilation_w, group, group_channels, offset_scale,
                               im2col_step, remove_center)
    return torch.ops.mmyolo_dcnv3.dcnv3_forward(
        input.contiguous(), offset.contiguous(), mask.contiguous(), kernel_h, kernel_w, stride_h,
        stride_w, pad_h, pad_w, dilation_h, dilation_w, group, group_channels, float(offset_scale),
        im2col_step, remove_center)


def _differentiable_gradients(input, offset, mask, grad_output, params, needs_input_grad):
    """The op's gradients as a differentiable function of its inputs and ``grad_output``.

    The compiled backward kernel computes first-order gradients only, and
    autograd would treat its results as constants. When a graph of the
    gradients is asked for, they are computed instead by autograd through the
    pure-PyTorch reference, so gradients of gradients (of any order) are
    exact. They equal the kernel's to rounding; the price is the reference's
    speed and memory, paid only with ``create_graph=True``.

    Returns:
        (grad_input, grad_offset, grad_mask), ``None`` where
        ``needs_input_grad`` is false.
    """
    wanted = [t for t, needed in zip((input, offset, mask), needs_input_grad) if needed]
    with torch.enable_grad():
        output = dcnv3_reference(input, offset, mask, *params)
        grads = iter(torch.autograd.grad(output, wanted, grad_output, create_graph=True))
    return tuple(next(grads) if needed else None for needed in needs_input_grad)


def _register_autograd_and_fake() -> None:
    """Registers the Python parts of the compiled op (once the library is loaded)."""

    @torch.library.register_fake('mmyolo_dcnv3::dcnv3_forward')
    def _forward_fake(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                      dilation_h, dilation_w, group, group_channels, offset_scale, im2col_step,
                      remove_center):
        return input.new_empty((offset.shape[0], offset.shape[1], offset.shape[2], input.shape[3]))

    @torch.library.register_fake('mmyolo_dcnv3::dcnv3_backward')
    def _backward_fake(input, offset, mask, grad_output, *params):
        return torch.empty_like(input), torch.empty_like(offset), torch.empty_like(mask)

    def setup_context(ctx, inputs, output):
        input, offset, mask, *params = inputs
        ctx.save_for_backward(input, offset, mask)
        ctx.params = params

    def backward(ctx, grad_output):
        input, offset, mask = ctx.saved_tensors
        # Autograd enables grad mode here only when asked for a graph of the
        # gradients (create_graph=True): then they must be differentiable.
        if torch.is_grad_enabled():
            grads = _differentiable_gradients(input, offset, mask, grad_output, ctx.params,
                                              ctx.needs_input_grad[:3])
        else:
            grads = torch.ops.mmyolo_dcnv3.dcnv3_backward(input, offset, mask, grad_output.contiguous(),
                                                          *ctx.params)
        return (*grads, *([None] * len(ctx.params)))

    torch.library.register_autograd('mmyolo_dcnv3::dcnv3_forward', backward,
                                    setup_context=setup_context)


if compiled_kernels().devices:
    _register_autograd_and_fake()
