"""``python -m tests.ops.cuda_on_cpu.probe LIBRARY``: a short run of a CUDA-on-CPU library against the reference.

The three situations that test_cuda_on_cpu_sanitized.py's planted bugs break: a backward whose one warp has
lanes past the last thread that reduce by warp shuffles; samples around the image's edges; an input one
element into its storage. Exits 0 when every result matches the reference; a bug stops it with the runtime's
or a sanitizer's diagnosis (or an assertion naming the wrong result).
"""
import sys

import torch

from mmyolo_dcnv3.ops import dcnv3_reference
from tests.ops import dcnv3_testing as testing
from tests.ops.cuda_on_cpu.build import NAMESPACE

CASES = {
    # float32, 8 channels: 2 lanes a group; 3x3 pixels give 18 threads, so lanes 18-31 are past the end.
    'shuffles past the end': testing.Case(batch=1, height=3, width=3, group=1, group_channels=8, offset_std=0.5),
    # Large offsets on 2x3 pixels of one channel: many samples have neighbours outside the image, a few
    # elements before its first element or after its last (within AddressSanitizer's red zones).
    'edges': testing.Case(batch=1, height=2, width=3, group=1, group_channels=1, offset_std=4.0),
}


def check(function, case, tensors, label):
    expected = testing.forward_and_grads(dcnv3_reference, case, [t.double() for t in tensors])
    actual = testing.forward_and_grads(function, case, tensors)
    for name, a, e in zip(('output', 'grad_input', 'grad_offset', 'grad_mask'), actual, expected):
        torch.testing.assert_close(a.double(), e, rtol=1e-4, atol=1e-5, msg=lambda m: f'{label}, {name}: {m}')


def main(library):
    torch.ops.load_library(library)
    ops = getattr(torch.ops, NAMESPACE)
    function = testing.differentiable(ops.dcnv3_forward, ops.dcnv3_backward)
    for label, case in CASES.items():
        check(function, case, case.tensors(dtype=torch.float32), label)
    # Called directly: forward_and_grads would clone the input into an aligned tensor.
    case = testing.Case(group=2, group_channels=8)
    input, offset, mask = case.tensors(dtype=torch.float32)
    shifted = testing.at_storage_offset_1(input)
    expected = dcnv3_reference(input.double(), offset.double(), mask.double(), *case.op_args())
    torch.testing.assert_close(ops.dcnv3_forward(shifted, offset, mask, *case.op_args()).double(), expected,
                               rtol=1e-4, atol=1e-5, msg=lambda m: f'misaligned input, output: {m}')
    ones = torch.ones(expected.shape)
    torch.testing.assert_close(ops.dcnv3_backward(shifted, offset, mask, ones, *case.op_args()),
                               ops.dcnv3_backward(input, offset, mask, ones, *case.op_args()),
                               rtol=1e-4, atol=1e-5, msg=lambda m: f'misaligned input, gradients: {m}')
    print('probe: every result matches the reference')


if __name__ == '__main__':
    main(sys.argv[1])
