"""The CUDA kernels' per-thread bodies, run on the host (no GPU needed).

mmyolo_dcnv3::emulate_cuda_forward/backward execute the same thread bodies and
launcher logic as the CUDA library (csrc/common/dcnv3_thread_*.h), with
sequential additions in place of atomics and warp shuffles.
"""
import pytest
import torch

from mmyolo_dcnv3.ops._library import compiled_kernels
from tests.ops.dcnv3_testing import (
    WARP_SHUFFLE_LIMITS,
    Case,
    assert_samples_the_right_neighbour,
    at_storage_offset_1,
    differentiable,
    sweep_cases,
    too_small_for_its_kernel,
)
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


@pytest.mark.parametrize('dtype,group_channels,rtol,atol', WARP_SHUFFLE_LIMITS)
def test_cuda_thread_bodies_at_the_warp_shuffle_limits(dtype, group_channels, rtol, atol):
    case = Case(batch=1, height=4, width=5, group=1, group_channels=group_channels, offset_std=1.5)
    assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol, fn=emulated)


def test_misaligned_input_and_grad_output_fall_back_to_narrower_loads():
    case = Case(group=2, group_channels=8)
    input, offset, mask = case.tensors(dtype=torch.float32)
    grad_output = torch.randn(case.batch, *case.out_size, 16)
    shifted_input, shifted_grad_output = at_storage_offset_1(input), at_storage_offset_1(grad_output)
    assert shifted_input.data_ptr() % 8 != 0 and shifted_grad_output.data_ptr() % 8 != 0
    ops = torch.ops.mmyolo_dcnv3
    torch.testing.assert_close(ops.emulate_cuda_forward(shifted_input, offset, mask, *case.op_args()),
                               ops.dcnv3_forward(input, offset, mask, *case.op_args()))
    expected = ops.dcnv3_backward(input, offset, mask, grad_output, *case.op_args())
    for inputs in ((shifted_input, offset, mask, grad_output), (input, offset, mask, shifted_grad_output)):
        for actual, wanted in zip(ops.emulate_cuda_backward(*inputs, *case.op_args()), expected):
            torch.testing.assert_close(actual, wanted, rtol=1e-4, atol=1e-5)


def test_output_size_is_floored_like_python():
    input, offset, mask, *args = too_small_for_its_kernel()
    ops = torch.ops.mmyolo_dcnv3
    with pytest.raises(RuntimeError, match='too small .* the output would be 0x2'):
        ops.emulate_cuda_forward(input, offset, mask, *args)
    with pytest.raises(RuntimeError, match='too small .* the output would be 0x2'):
        ops.emulate_cuda_backward(input, offset, mask, torch.zeros(1, 1, 2, 4, dtype=torch.float64), *args)


def test_exact_sampling_of_the_right_neighbour_in_float16():
    """The check that the slow CUDA case runs past 2**31 elements, at a small size."""
    ops = torch.ops.mmyolo_dcnv3
    assert_samples_the_right_neighbour(ops.emulate_cuda_forward, ops.emulate_cuda_backward, size=37, device='cpu',
                                       rows=8)
