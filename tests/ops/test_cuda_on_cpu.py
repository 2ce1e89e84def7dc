"""The CUDA kernels' own source, run on the CPU: the CUDA-on-CPU tier (no GPU, no nvcc).

``csrc/cuda/dcnv3_cuda.cu`` and the headers it includes, device branches and all, compiled by g++ against
tests/ops/cuda_on_cpu/cuda_on_cpu.h: every block, warp and lane of each launch runs, warps meet at their
shuffles as on the device, and atomics and vector stores check their alignment (docs/cuda.md says what this
covers and what only a GPU can show). The ``cuda_on_cpu`` fixture (conftest.py) builds the library once.
"""
import contextlib
import math

import pytest
import torch

from mmyolo_dcnv3.ops._library import compiled_kernels
from tests.ops import dcnv3_testing as testing
from tests.ops.test_dcnv3_cpu import assert_matches_reference

THREADS_PER_BLOCK = 256  # kThreadsPerBlock of csrc/cuda/dcnv3_cuda_kernels.cuh
ALL_DTYPES = testing.REDUCED_PRECISION_TOLERANCES + [(torch.float64, 1e-10, 1e-10)]


def differentiable(ops):
    """The tier's dcnv3 as a function of (input, offset, mask, *op_args) with its backward as the gradient."""
    return testing.differentiable(ops.dcnv3_forward, ops.dcnv3_backward)


@contextlib.contextmanager
def launches(ops, max_blocks=0, reversed=False):
    """Inside, launches run at most ``max_blocks`` blocks (0: the grid asked for) and, if ``reversed``, their
    blocks, warps and lanes last to first."""
    ops.set_options(max_blocks, reversed)
    try:
        yield
    finally:
        ops.set_options(0, False)


def pack_width(dtype, group_channels):
    """Channels per thread on aligned tensors, by docs/cuda.md's rule: the widest of 8, 4, 2, 1 that divides
    group_channels and is at most 16 bytes."""
    size = torch.empty((), dtype=dtype).element_size()
    return next(v for v in (8, 4, 2, 1) if v * size <= 16 and group_channels % v == 0)


def forward_threads(case, channels_per_thread):
    h_out, w_out = case.out_size
    return case.batch * h_out * w_out * case.group * case.group_channels // channels_per_thread


def forward_and_backward(ops, case, tensors, grad_output):
    return (ops.dcnv3_forward(*tensors, *case.op_args()),
            *ops.dcnv3_backward(*tensors, grad_output, *case.op_args()))


@pytest.mark.parametrize('case', testing.sweep_cases(), ids=str)
def test_cuda_source_matches_reference_in_float64(cuda_on_cpu, case):
    assert_matches_reference(case, fn=differentiable(cuda_on_cpu))


@pytest.mark.parametrize('dtype,rtol,atol', ALL_DTYPES)
@pytest.mark.parametrize('group_channels', [1, 2, 4, 6, 8, 24, 300])
def test_every_dtype_and_pack_width_matches_reference(cuda_on_cpu, dtype, rtol, atol, group_channels):
    """8 and 4 channels a thread for half types, 4, 2 and 1 for float32, 2 and 1 for float64: the forward
    launches blocks_for(threads) blocks of 256 threads, and each thread stores its channels with one __stwb."""
    case = testing.Case(group=2, group_channels=group_channels, stride=(2, 1), pad=(1, 2))
    cuda_on_cpu.take_stats()
    cuda_on_cpu.dcnv3_forward(*case.tensors(dtype=dtype), *case.op_args())
    stats = cuda_on_cpu.take_stats()
    threads = forward_threads(case, pack_width(dtype, group_channels))
    assert stats['launches'] == 1 and stats['vector_stores'] == threads
    assert stats['requested_blocks'] == math.ceil(threads / THREADS_PER_BLOCK)
    assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol, fn=differentiable(cuda_on_cpu))


@pytest.mark.parametrize('dtype,group_channels,rtol,atol', testing.WARP_SHUFFLE_LIMITS)
def test_warp_shuffle_limits_match_reference(cuda_on_cpu, dtype, group_channels, rtol, atol):
    """32 lanes a group reduce by warp shuffles; 64 (float32, 256 channels) fall back to atomics."""
    case = testing.Case(batch=2, height=6, width=7, group=2, group_channels=group_channels, offset_std=1.5)
    cuda_on_cpu.take_stats()
    assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol, fn=differentiable(cuda_on_cpu))
    lanes = group_channels // pack_width(dtype, group_channels)
    assert (cuda_on_cpu.take_stats()['shuffles'] > 0) == (lanes <= 32)


@pytest.mark.parametrize('max_blocks', [1, 2, 3])
@pytest.mark.parametrize('dtype,group_channels,rtol,atol', [
    (torch.float32, 16, 1e-4, 1e-5), (torch.float32, 24, 1e-4, 1e-5), (torch.float16, 256, 5e-3, 5e-3),
    (torch.float64, 5, 1e-10, 1e-10)])
def test_grid_stride_loops_of_a_capped_grid_match_reference(cuda_on_cpu, max_blocks, dtype, group_channels, rtol,
                                                            atol):
    """With fewer blocks than the grid asks for, each thread loops over several indices (on a device only past
    2^38 threads)."""
    case = testing.Case(batch=2, height=8, width=9, group=3 if group_channels < 256 else 1,
                        group_channels=group_channels, remove_center=True)
    cuda_on_cpu.take_stats()
    with launches(cuda_on_cpu, max_blocks=max_blocks):
        assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol, fn=differentiable(cuda_on_cpu))
    stats = cuda_on_cpu.take_stats()
    assert stats['blocks'] == stats['launches'] * max_blocks
    assert stats['requested_blocks'] > 2 * max_blocks


@pytest.mark.parametrize('dtype,group_channels', [(torch.float32, 16), (torch.float32, 128), (torch.float64, 64),
                                                  (torch.float16, 256), (torch.bfloat16, 8)])
def test_output_and_shuffle_reduced_gradients_are_bitwise_the_same_for_any_grid_and_order(
        cuda_on_cpu, dtype, group_channels):
    """Where the lanes of a group reduce by warp shuffles, the kernel claims bitwise reproducible grad_offset
    and grad_mask: a capped grid or blocks, warps and lanes run in reverse must not change them (nor the
    output); grad_input, accumulated with atomics, is the same up to the order of its additions."""
    case = testing.Case(batch=2, height=6, width=6, group=2, group_channels=group_channels, offset_std=1.0)
    tensors = case.tensors(dtype=dtype)
    grad_output = torch.randn(case.batch, *case.out_size, case.group * group_channels,
                              generator=torch.Generator().manual_seed(1)).to(dtype)
    in_order = forward_and_backward(cuda_on_cpu, case, tensors, grad_output)
    for max_blocks, reversed in ((2, False), (0, True), (1, True)):
        with launches(cuda_on_cpu, max_blocks=max_blocks, reversed=reversed):
            other = forward_and_backward(cuda_on_cpu, case, tensors, grad_output)
        label = f'max_blocks={max_blocks}, reversed={reversed}'
        for name, index in (('output', 0), ('grad_offset', 2), ('grad_mask', 3)):
            assert torch.equal(other[index], in_order[index]), f'{name} changed with {label}'
        torch.testing.assert_close(other[1], in_order[1], msg=lambda m: f'grad_input with {label}: {m}')


def test_reversed_order_changes_the_order_of_atomic_additions(cuda_on_cpu):
    """The order control works: run in reverse, grad_input's float32 atomic sums round differently."""
    case = testing.Case(batch=1, height=6, width=6, group=1, group_channels=4, kernel=(5, 5), pad=(2, 2))
    tensors = case.tensors(dtype=torch.float32)
    grad_output = torch.randn(case.batch, *case.out_size, 4, generator=torch.Generator().manual_seed(1))
    in_order = cuda_on_cpu.dcnv3_backward(*tensors, grad_output, *case.op_args())[0]
    with launches(cuda_on_cpu, reversed=True):
        reversed_order = cuda_on_cpu.dcnv3_backward(*tensors, grad_output, *case.op_args())[0]
    assert not torch.equal(reversed_order, in_order)
    torch.testing.assert_close(reversed_order, in_order)


@pytest.mark.parametrize('group_channels,atomic_gradients', testing.CUDA_ATOMIC_GRADIENTS)
def test_backward_is_refused_in_deterministic_mode_naming_its_atomic_gradients(cuda_on_cpu, group_channels,
                                                                               atomic_gradients):
    testing.assert_deterministic_mode_refuses_the_backward(differentiable(cuda_on_cpu), group_channels,
                                                           atomic_gradients, device='cpu')


@pytest.mark.parametrize('case', [
    testing.Case(batch=1, height=1, width=1, group=3, group_channels=7, kernel=(1, 1), pad=(0, 0)),
    testing.Case(batch=3, height=2, width=11, group=5, group_channels=3, kernel=(3, 5), stride=(2, 3), pad=(2, 0)),
    testing.Case(batch=1, height=5, width=3, group=1, group_channels=33, kernel=(5, 3), pad=(2, 2), dilation=(1, 2)),
], ids=str)
def test_odd_shapes_match_reference(cuda_on_cpu, case):
    """Thread counts that fill no warp or block, groups of one pixel, odd channel counts."""
    assert_matches_reference(case, fn=differentiable(cuda_on_cpu))
    assert_matches_reference(case, dtype=torch.float16, rtol=5e-3, atol=5e-3, fn=differentiable(cuda_on_cpu))


def test_empty_batch_launches_nothing(cuda_on_cpu):
    """A grid of no blocks is a launch error on the device, so an empty batch must not launch."""
    case = testing.Case(batch=0)
    cuda_on_cpu.take_stats()
    assert_matches_reference(case, fn=differentiable(cuda_on_cpu))
    assert cuda_on_cpu.take_stats()['launches'] == 0


@pytest.mark.skipif(not compiled_kernels().available('cpu'), reason='needs the CPU kernels as the aligned result')
def test_misaligned_input_and_grad_output_fall_back_to_narrower_loads(cuda_on_cpu):
    testing.assert_misaligned_input_and_grad_output_give_the_aligned_result(cuda_on_cpu.dcnv3_forward,
                                                                            cuda_on_cpu.dcnv3_backward)
    # One element into its storage, the input allows no vector wider than one channel.
    case = testing.Case(group=2, group_channels=8)
    input, offset, mask = case.tensors(dtype=torch.float32)
    cuda_on_cpu.take_stats()
    cuda_on_cpu.dcnv3_forward(testing.at_storage_offset_1(input), offset, mask, *case.op_args())
    assert cuda_on_cpu.take_stats()['vector_stores'] == forward_threads(case, 1)


def test_output_size_is_floored_like_python(cuda_on_cpu):
    testing.assert_refuses_an_empty_output(cuda_on_cpu.dcnv3_forward, cuda_on_cpu.dcnv3_backward)


def test_exact_sampling_of_the_right_neighbour_in_float16(cuda_on_cpu):
    """The check that the GPU runs past 2**31 elements (test_dcnv3_cuda.py), at a small size."""
    testing.assert_samples_the_right_neighbour(cuda_on_cpu.dcnv3_forward, cuda_on_cpu.dcnv3_backward, size=37,
                                               device='cpu', rows=8)
