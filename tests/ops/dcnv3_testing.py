"""Shared inputs and comparisons for the DCNv3 operator tests (torch only)."""
import contextlib
import dataclasses
import re
from typing import Tuple

import pytest
import torch

from mmyolo_dcnv3.ops.validation import output_size

# (dtype, rtol, atol) of the kernels against the float64 reference.
REDUCED_PRECISION_TOLERANCES = [(torch.float32, 1e-4, 1e-5), (torch.float16, 5e-3, 5e-3),
                                (torch.bfloat16, 3e-2, 3e-2)]


@dataclasses.dataclass(frozen=True)
class Case:
    """One DCNv3 call: shapes and the op's scalar arguments."""

    batch: int = 2
    height: int = 7
    width: int = 9
    group: int = 2
    group_channels: int = 5
    kernel: Tuple[int, int] = (3, 3)  # (kernel_h, kernel_w)
    stride: Tuple[int, int] = (1, 1)
    pad: Tuple[int, int] = (1, 1)
    dilation: Tuple[int, int] = (1, 1)
    offset_scale: float = 1.0
    remove_center: bool = False
    im2col_step: int = 256
    offset_std: float = 3.0  # large enough to sample outside the image

    @property
    def points(self) -> int:
        return self.kernel[0] * self.kernel[1] - int(self.remove_center)

    @property
    def out_size(self) -> Tuple[int, int]:
        return (output_size(self.height, self.kernel[0], self.stride[0], self.pad[0], self.dilation[0]),
                output_size(self.width, self.kernel[1], self.stride[1], self.pad[1], self.dilation[1]))

    def op_args(self) -> tuple:
        """The op's arguments after (input, offset, mask), in contract order."""
        return (self.kernel[0], self.kernel[1], self.stride[0], self.stride[1], self.pad[0], self.pad[1],
                self.dilation[0], self.dilation[1], self.group, self.group_channels, self.offset_scale,
                self.im2col_step, self.remove_center)

    def tensors(self, dtype=torch.float64, device='cpu', seed=0, requires_grad=False):
        """Random (input, offset, mask) for this case."""
        generator = torch.Generator().manual_seed(seed)
        h_out, w_out = self.out_size
        channels = self.group * self.group_channels
        input = torch.randn(self.batch, self.height, self.width, channels, generator=generator,
                            dtype=torch.float64)
        offset = self.offset_std * torch.randn(self.batch, h_out, w_out, self.group * self.points * 2,
                                               generator=generator, dtype=torch.float64)
        mask = torch.rand(self.batch, h_out, w_out, self.group * self.points, generator=generator,
                          dtype=torch.float64)
        return tuple(t.to(device=device, dtype=dtype).requires_grad_(requires_grad)
                     for t in (input, offset, mask))

    def __str__(self):
        fields = (f'{f.name}={getattr(self, f.name)}' for f in dataclasses.fields(self)
                  if getattr(self, f.name) != f.default)
        return 'Case(' + ','.join(fields) + ')'


# Lanes (threads per group) = group_channels / channels per thread: 32 is the
# widest group whose grad_offset/grad_mask the device reduces by warp shuffles
# (float32: 4 channels a thread, float64: 2, float16: 8); float32 with 256
# channels (64 lanes) is the first width that falls back to atomics.
WARP_SHUFFLE_LIMITS = [(torch.float32, 128, 1e-4, 1e-5), (torch.float64, 64, 1e-10, 1e-10),
                       (torch.float16, 256, 5e-3, 5e-3), (torch.float32, 256, 1e-4, 1e-5)]


def sweep_cases():
    """The sweep of the operator issue: every listed value of every parameter
    appears, and parameters with coprime list lengths meet in every pairing."""
    kernels = [(1, 1), (3, 3), (5, 5), (3, 5), (2, 2)]
    strides = [1, 2]
    dilations = [1, 2]
    pads = [(0, 0), (1, 1), (1, 2), (2, 1)]
    groups = [1, 3, 4, 8]
    group_channels = [1, 5, 16, 32, 300]
    scales = [0.5, 1.0, 2.0]
    batches = [1, 3, 5]
    cases = []
    for i in range(30):
        kernel = kernels[i % 5]
        gc = group_channels[(i // 2) % 5]
        group = groups[i % 4] if gc < 300 else 1
        cases.append(Case(
            batch=batches[i % 3], height=9 + i % 3, width=10 - i % 2, group=group, group_channels=gc,
            kernel=kernel, stride=(strides[i % 2],) * 2, pad=pads[(i // 3) % 4],
            dilation=(dilations[(i // 2) % 2],) * 2, offset_scale=scales[i % 3],
            remove_center=bool(i % 3 == 0 and kernel[0] == kernel[1] and kernel[0] % 2 == 1 and kernel[0] > 1),
            im2col_step=2))
    return cases


def forward_and_grads(fn, case: Case, tensors, grad_seed=1):
    """fn(input, offset, mask, *args) and the gradients of <output, random>."""
    inputs = [t.detach().clone().requires_grad_(True) for t in tensors]
    output = fn(*inputs, *case.op_args())
    generator = torch.Generator().manual_seed(grad_seed)
    weight = torch.randn(output.shape, generator=generator, dtype=torch.float64).to(output)
    grads = torch.autograd.grad(output, inputs, weight)
    return (output.detach(), *grads)


def differentiable(forward_op, backward_op):
    """A function of (input, offset, mask, *args) running forward_op, with
    backward_op as its gradient: for testing a forward/backward op pair that
    has no autograd registration (e.g. the CUDA-on-CPU test library)."""

    class Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input, offset, mask, *args):
            ctx.save_for_backward(input, offset, mask)
            ctx.args = args
            return forward_op(input, offset, mask, *args)

        @staticmethod
        def backward(ctx, grad_output):
            grads = backward_op(*ctx.saved_tensors, grad_output.contiguous(), *ctx.args)
            return (*grads, *([None] * len(ctx.args)))

    return Function.apply


def at_storage_offset_1(tensor):
    """The values of `tensor`, contiguous, starting one element into their
    storage: too misaligned for any vector load wider than one element."""
    storage = tensor.new_zeros(tensor.numel() + 1)
    shifted = storage[1:].view(tensor.shape)
    shifted.copy_(tensor)
    assert shifted.is_contiguous() and shifted.storage_offset() == 1
    return shifted


def assert_misaligned_input_and_grad_output_give_the_aligned_result(forward_op, backward_op, device='cpu'):
    """``forward_op``/``backward_op`` on an input and an output gradient one element into their storage (so the
    kernels must fall back to narrower loads) give what the op gives on aligned tensors of the same values."""
    case = Case(group=2, group_channels=8)
    input, offset, mask = case.tensors(dtype=torch.float32, device=device)
    grad_output = torch.randn(case.batch, *case.out_size, 16, device=device)
    shifted_input, shifted_grad_output = at_storage_offset_1(input), at_storage_offset_1(grad_output)
    ops = torch.ops.mmyolo_dcnv3
    torch.testing.assert_close(forward_op(shifted_input, offset, mask, *case.op_args()),
                               ops.dcnv3_forward(input, offset, mask, *case.op_args()))
    expected = ops.dcnv3_backward(input, offset, mask, grad_output, *case.op_args())
    for inputs in ((shifted_input, offset, mask, grad_output), (input, offset, mask, shifted_grad_output)):
        for actual, wanted in zip(backward_op(*inputs, *case.op_args()), expected):
            torch.testing.assert_close(actual, wanted, rtol=1e-4, atol=1e-5)


def assert_refuses_an_empty_output(forward_op, backward_op, device='cpu'):
    """The kernels floor the output size like Python and refuse an input too small for its kernel, naming
    the output size, rather than writing nothing."""
    input, offset, mask, *args = (t.to(device) if isinstance(t, torch.Tensor) else t
                                  for t in too_small_for_its_kernel())
    with pytest.raises(RuntimeError, match='too small .* the output would be 0x2'):
        forward_op(input, offset, mask, *args)
    grad_output = torch.zeros(1, 1, 2, 4, dtype=torch.float64, device=device)
    with pytest.raises(RuntimeError, match='too small .* the output would be 0x2'):
        backward_op(input, offset, mask, grad_output, *args)


def too_small_for_its_kernel():
    """Arguments (input, offset, mask, *op_args) of a call whose output is
    empty by the floor rule: input 1x2x5, kernel 3, stride 2, pad 0 gives
    H_out = (2 - 3) // 2 + 1 = 0. Offset and mask are shaped as a truncating
    division would have it (H_out = 1, W_out = 2), so only the output-size
    check can refuse the call."""
    input = torch.randn(1, 2, 5, 4, dtype=torch.float64)
    offset = torch.zeros(1, 1, 2, 2 * 9 * 2, dtype=torch.float64)
    mask = torch.ones(1, 1, 2, 2 * 9, dtype=torch.float64)
    return (input, offset, mask, 3, 3, 2, 2, 0, 0, 1, 1, 2, 2, 1.0, 256, False)


@contextlib.contextmanager
def deterministic_algorithms(warn_only=False):
    """torch.use_deterministic_algorithms(True) inside, the previous setting after."""
    enabled = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=warn_only)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=was_warn_only)


# group_channels, and what the CUDA backward's determinism alert names as accumulated with atomicAdd: in
# float32, the 4 lanes of 16 channels reduce grad_offset/grad_mask by warp shuffles, the 6 of 24 cannot.
CUDA_ATOMIC_GRADIENTS = [(16, 'grad_input is accumulated with atomicAdd'),
                         (24, 'grad_input, grad_offset and grad_mask are accumulated with atomicAdd')]


def assert_deterministic_mode_refuses_the_backward(dcnv3_fn, group_channels, atomic_gradients, device):
    """``dcnv3_fn`` (the op's signature, differentiable; CUDA kernels) runs its forward under
    torch.use_deterministic_algorithms(True) but refuses its backward there, and warns with warn_only=True,
    naming the gradients it accumulates with atomicAdd."""
    case = Case(group=2, group_channels=group_channels)
    tensors = case.tensors(dtype=torch.float32, device=device, requires_grad=True)
    expected = re.escape(f'mmyolo_dcnv3::dcnv3_backward on CUDA ({atomic_gradients})')
    with deterministic_algorithms():
        output = dcnv3_fn(*tensors, *case.op_args())  # the forward uses no atomics
        with pytest.raises(RuntimeError, match=expected):
            output.sum().backward()
    with deterministic_algorithms(warn_only=True):
        with pytest.warns(UserWarning, match=expected):
            dcnv3_fn(*tensors, *case.op_args()).sum().backward()


def assert_samples_the_right_neighbour(forward_op, backward_op, size, device, rows=512):
    """Runs forward_op/backward_op (the registered ops' signatures) on float16
    tensors of 1 x size x size x 64 (4 groups of 16 channels) where every
    point samples its pixel's right neighbour exactly (1x1 kernel, dx = 1,
    dy = 0), and checks the results in blocks of `rows` rows: the output and
    grad_input are exact products, compared bitwise; grad_offset and grad_mask
    are sums over 16 channels, compared within float16 rounding."""
    group, group_channels = 4, 16
    generator = torch.Generator(device=device).manual_seed(0)
    input = torch.randn(1, size, size, group * group_channels, device=device, dtype=torch.float16,
                        generator=generator)
    offset = torch.zeros(1, size, size, group * 2, device=device, dtype=torch.float16)
    offset[..., 0::2] = 1.0
    mask = torch.rand(1, size, size, group, device=device, dtype=torch.float16, generator=generator)
    args = (1, 1, 1, 1, 0, 0, 1, 1, group, group_channels, 1.0, 256, False)
    output = forward_op(input, offset, mask, *args)
    grad_output = torch.randn(output.shape, device=device, dtype=torch.float16, generator=generator)
    grad_input, grad_offset, grad_mask = backward_op(input, offset, mask, grad_output, *args)
    for top in range(0, size, rows):
        bottom = min(top + rows, size)

        def neighbour(t, dy, dx, top=top, bottom=bottom):
            """t[ho + dy, wo + dx] for rows top:bottom, grouped, in float32; zero outside the image."""
            block = t[:, top:min(bottom + dy, size)].float().view(1, -1, size, group, group_channels)[:, dy:, dx:]
            out = torch.zeros(1, bottom - top, size, group, group_channels, device=device)
            out[:, :block.shape[1], :block.shape[2]] = block
            return out

        m = mask[:, top:bottom].float().unsqueeze(-1)
        go = neighbour(grad_output, 0, 0)
        right = neighbour(input, 0, 1)  # the sampled pixel (weight 1); zero for the last column
        assert torch.equal(output[:, top:bottom], (m * right).half().flatten(3)), f'output, rows {top}:{bottom}'
        expected_grad_input = torch.zeros_like(go)
        expected_grad_input[:, :, 1:] = (m * go)[:, :, :-1]
        assert torch.equal(grad_input[:, top:bottom], expected_grad_input.half().flatten(3)), \
            f'grad_input, rows {top}:{bottom}'
        # At an integer location, d/dx (d/dy) of the bilinear weights gives
        # the neighbour right of (below) the sampled pixel minus that pixel.
        dot_right = (go * right).sum(-1)
        dot_x = (go * neighbour(input, 0, 2)).sum(-1)
        dot_y = (go * neighbour(input, 1, 1)).sum(-1)
        expected = {'grad_mask': (grad_mask, dot_right),
                    'grad_offset x': (grad_offset[..., 0::2], m[..., 0] * (dot_x - dot_right)),
                    'grad_offset y': (grad_offset[..., 1::2], m[..., 0] * (dot_y - dot_right))}
        for name, (actual, wanted) in expected.items():
            torch.testing.assert_close(actual[:, top:bottom].float(), wanted, rtol=2e-3, atol=2e-3,
                                       msg=lambda msg, name=name: f'{name}, rows {top}:{bottom}: {msg}')
