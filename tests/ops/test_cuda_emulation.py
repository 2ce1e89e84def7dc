"""The CUDA kernels' per-thread bodies, run on the host (no GPU needed).

mmyolo_dcnv3::emulate_cuda_forward/backward execute the same thread bodies and
launcher logic as the CUDA library (csrc/common/dcnv3_thread_*.h), with
sequential additions in place of atomics and warp shuffles.
"""
import pytest
import torch

from mmyolo_dcnv3.ops._library import compiled_kernels
from tests.ops.dcnv3_testing import Case, differentiable, sweep_cases
from tests.ops.test_dcnv3_cpu import assert_matches_reference

pytestmark = pytest.mark.skipif(not compiled_kernels().available('cpu'),
                                reason='kernels not built')


def emulated(*args):
    ops = torch.ops.mmyolo_dcnv3
    return differentiable(ops.emulate_cuda_forward, ops.emulate_cuda_backward)(*args)


@pytest.mark.parametrize('case', sweep_cases()[::2], ids=str)
def test_cuda_thread_bodies_match_reference_in_float64(case):
    assert_matches_reference(case, fn=emulated)


# group_channels chosen so that every vector width is used: 8 and 4 channels
# per thread for half types, 4/2/1 for float, 2/1 for double.
@pytest.mark.parametrize('dtype,rtol,atol', [(torch.float32, 1e-4, 1e-5),
                                             (torch.float16, 5e-3, 5e-3),
                                             (torch.bfloat16, 3e-2, 3e-2)])
@pytest.mark.parametrize('group_channels', [1, 2, 4, 6, 8, 24, 300])
def test_cuda_thread_bodies_in_every_dtype_and_vector_width(dtype, rtol, atol, group_channels):
    case = Case(group=2, group_channels=group_channels, stride=(2, 1), pad=(1, 2))
    assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol, fn=emulated)


def test_misaligned_storage_falls_back_to_narrower_loads():
    case = Case(group=2, group_channels=8)
    input, offset, mask = case.tensors(dtype=torch.float32)
    # A view one element into a buffer: not 16-byte aligned, still contiguous.
    storage = torch.zeros(input.numel() + 1)
    shifted = storage[1:].view(input.shape)
    shifted.copy_(input)
    assert shifted.data_ptr() % 16 != 0 and shifted.is_contiguous()
    ops = torch.ops.mmyolo_dcnv3
    torch.testing.assert_close(ops.emulate_cuda_forward(shifted, offset, mask, *case.op_args()),
                               ops.dcnv3_forward(input, offset, mask, *case.op_args()))
