"""The CUDA kernels' per-thread bodies, run on the host (no GPU needed).

mmyolo_dcnv3::emulate_cuda_forward/backward execute the same thread bodies and
launcher logic as the CUDA library (csrc/common/dcnv3_thread_*.h), with
sequential additions in place of atomics and warp shuffles.
"""
import pytest
import torch

from mmyolo_dcnv3.ops._library import compiled_kernels
from tests.ops import dcnv3_testing as testing
from tests.ops.test_dcnv3_cpu import assert_matches_reference

pytestmark = pytest.mark.skipif(not compiled_kernels().available('cpu'),
                                reason='kernels not built')


def emulated(*args):
    ops = torch.ops.mmyolo_dcnv3
    return testing.differentiable(ops.emulate_cuda_forward, ops.emulate_cuda_backward)(*args)


@pytest.mark.parametrize('case', testing.sweep_cases()[::2], ids=str)
def test_cuda_thread_bodies_match_reference_in_float64(case):
    assert_matches_reference(case, fn=emulated)


# group_channels chosen so that every vector width is used: 8 and 4 channels
# per thread for half types, 4/2/1 for float, 2/1 for double.
@pytest.mark.parametrize('dtype,rtol,atol', testing.REDUCED_PRECISION_TOLERANCES)
@pytest.mark.parametrize('group_channels', [1, 2, 4, 6, 8, 24, 300])
def test_cuda_thread_bodies_in_every_dtype_and_vector_width(dtype, rtol, atol, group_channels):
    case = testing.Case(group=2, group_channels=group_channels, stride=(2, 1), pad=(1, 2))
    assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol, fn=emulated)


@pytest.mark.parametrize('dtype,group_channels,rtol,atol', testing.WARP_SHUFFLE_LIMITS)
def test_cuda_thread_bodies_at_the_warp_shuffle_limits(dtype, group_channels, rtol, atol):
    case = testing.Case(batch=1, height=4, width=5, group=1, group_channels=group_channels, offset_std=1.5)
    assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol, fn=emulated)


def test_misaligned_input_and_grad_output_fall_back_to_narrower_loads():
    ops = torch.ops.mmyolo_dcnv3
    testing.assert_misaligned_input_and_grad_output_give_the_aligned_result(ops.emulate_cuda_forward,
                                                                            ops.emulate_cuda_backward)


def test_output_size_is_floored_like_python():
    ops = torch.ops.mmyolo_dcnv3
    testing.assert_refuses_an_empty_output(ops.emulate_cuda_forward, ops.emulate_cuda_backward)


def test_exact_sampling_of_the_right_neighbour_in_float16():
    """The check that the slow CUDA case runs past 2**31 elements, at a small size."""
    ops = torch.ops.mmyolo_dcnv3
    testing.assert_samples_the_right_neighbour(ops.emulate_cuda_forward, ops.emulate_cuda_backward, size=37,
                                               device='cpu', rows=8)
