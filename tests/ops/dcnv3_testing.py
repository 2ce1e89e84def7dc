"""Shared inputs and comparisons for the DCNv3 operator tests (torch only)."""
import dataclasses
from typing import Tuple

import torch

from mmyolo_dcnv3.ops.validation import output_size


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
    has no autograd registration (e.g. the host emulation of the CUDA bodies)."""

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
