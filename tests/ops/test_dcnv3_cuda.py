"""The CUDA kernels (skipped without a GPU; tools/gpu_check.sh runs them and
counts a skip as a failure)."""
import os
import subprocess
import sys

import pytest
import torch

from mmyolo_dcnv3.ops import dcnv3
from mmyolo_dcnv3.ops._library import compiled_kernels
from tests.ops import dcnv3_testing as testing
from tests.ops.test_dcnv3_cpu import assert_matches_reference, compiled

REPOSITORY_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA GPU'),
    pytest.mark.skipif(not compiled_kernels().available('cuda'),
                       reason=f'CUDA kernels not usable: {compiled_kernels().why_missing("cuda")}'),
]


@pytest.mark.parametrize('case', testing.sweep_cases(), ids=str)
def test_cuda_kernel_matches_reference_in_float64(case):
    assert_matches_reference(case, device='cuda')


EXTRA_SHAPES = [
    testing.Case(group=1, group_channels=512, height=6, width=5),
    testing.Case(group=2, group_channels=257, height=5, width=6),
    testing.Case(group=3, group_channels=7, kernel=(7, 7), pad=(3, 3)),
    testing.Case(group=2, group_channels=6, kernel=(4, 6), pad=(1, 2), stride=(2, 3)),
    testing.Case(group=2, group_channels=12, kernel=(7, 1), pad=(3, 0), dilation=(2, 1)),
    testing.Case(batch=7, group=4, group_channels=16, im2col_step=3),
]


@pytest.mark.parametrize('case', EXTRA_SHAPES, ids=str)
def test_cuda_kernel_wide_groups_and_unusual_kernels(case):
    assert_matches_reference(case, device='cuda')


@pytest.mark.parametrize('dtype,rtol,atol', testing.REDUCED_PRECISION_TOLERANCES)
@pytest.mark.parametrize('group_channels', [1, 2, 4, 8, 16, 24, 300])
def test_cuda_kernel_reduced_precision(dtype, rtol, atol, group_channels):
    case = testing.Case(group=2, group_channels=group_channels, stride=(2, 1), pad=(1, 2))
    assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol, device='cuda')


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_cpu_and_cuda_agree(dtype):
    case = testing.Case(batch=3, height=20, width=17, group=4, group_channels=16, offset_std=2.0)
    tensors = case.tensors(dtype=dtype)
    on_cpu = testing.forward_and_grads(compiled, case, tensors)
    on_cuda = testing.forward_and_grads(compiled, case, [t.cuda() for t in tensors])
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    for a, b in zip(on_cpu, on_cuda):
        torch.testing.assert_close(b.cpu(), a, rtol=tol, atol=tol)


def test_cuda_gradcheck_and_opcheck():
    case = testing.Case(batch=2, height=5, width=6, group=2, group_channels=4, offset_std=1.5)
    tensors = case.tensors(device='cuda', requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: dcnv3(*t, *case.op_args()), tensors)
    torch.library.opcheck(torch.ops.mmyolo_dcnv3.dcnv3_forward.default, (*tensors, *case.op_args()))
    grad_output = torch.randn(case.batch, *case.out_size, case.group * case.group_channels,
                              dtype=torch.float64, device='cuda')
    torch.library.opcheck(torch.ops.mmyolo_dcnv3.dcnv3_backward.default,
                          (*[t.detach() for t in tensors], grad_output, *case.op_args()))


@pytest.mark.parametrize('dtype,group_channels,rtol,atol', testing.WARP_SHUFFLE_LIMITS)
def test_cuda_kernel_at_the_warp_shuffle_limits(dtype, group_channels, rtol, atol):
    case = testing.Case(batch=2, height=6, width=7, group=2, group_channels=group_channels, offset_std=1.5)
    assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol, device='cuda')


# (dtype, group_channels) whose lanes reduce grad_offset/grad_mask by warp
# shuffles: 4, 32, 32 and 32 lanes.
SHUFFLED = [(torch.float32, 16), (torch.float32, 128), (torch.float64, 64), (torch.float16, 256)]


@pytest.mark.parametrize('dtype,group_channels', SHUFFLED)
def test_cuda_backward_twice_gives_bitwise_equal_offset_and_mask_gradients(dtype, group_channels):
    case = testing.Case(batch=2, height=24, width=24, group=2, group_channels=group_channels, offset_std=1.0)
    input, offset, mask = case.tensors(dtype=dtype, device='cuda')
    grad_output = torch.randn(case.batch, *case.out_size, 2 * group_channels, device='cuda').to(dtype)
    backward = torch.ops.mmyolo_dcnv3.dcnv3_backward
    first = backward(input, offset, mask, grad_output, *case.op_args())
    for _ in range(3):
        again = backward(input, offset, mask, grad_output, *case.op_args())
        assert torch.equal(again[1], first[1]) and torch.equal(again[2], first[2])
        # grad_input is accumulated with atomics: equal up to rounding only.
        torch.testing.assert_close(again[0], first[0])


@pytest.mark.parametrize('group_channels,atomic_gradients', testing.CUDA_ATOMIC_GRADIENTS)
def test_cuda_backward_is_refused_in_deterministic_mode(group_channels, atomic_gradients):
    testing.assert_deterministic_mode_refuses_the_backward(dcnv3, group_channels, atomic_gradients, device='cuda')


def test_cuda_misaligned_input_and_grad_output_fall_back_to_narrower_loads():
    ops = torch.ops.mmyolo_dcnv3
    testing.assert_misaligned_input_and_grad_output_give_the_aligned_result(ops.dcnv3_forward, ops.dcnv3_backward,
                                                                            device='cuda')


def test_cuda_output_size_is_floored_like_python():
    ops = torch.ops.mmyolo_dcnv3
    testing.assert_refuses_an_empty_output(ops.dcnv3_forward, ops.dcnv3_backward, device='cuda')


def check_kernels_run_on_the_current_stream():
    """Forward and backward on a side stream whose inputs are written only
    after a long sleep on that stream: a kernel launched on any other stream
    would read the NaNs written before the sleep. Only device-to-device work
    is queued, so the host never waits for the sleep."""
    case = testing.Case(batch=2, height=16, width=16, group=4, group_channels=16)
    ops = torch.ops.mmyolo_dcnv3
    tensors = case.tensors(dtype=torch.float32, device='cuda')
    grad_output = torch.randn(case.batch, *case.out_size, 64, device='cuda')
    expected = (ops.dcnv3_forward(*tensors, *case.op_args()),
                *ops.dcnv3_backward(*tensors, grad_output, *case.op_args()))
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        sources = [*tensors, grad_output]
        targets = [torch.full_like(t, float('nan')) for t in sources]
        torch.cuda._sleep(100_000_000)  # clock cycles: some 50 ms
        for target, source in zip(targets, sources):
            target.copy_(source)
        actual = (ops.dcnv3_forward(*targets[:3], *case.op_args()),
                  *ops.dcnv3_backward(*targets, *case.op_args()))
    torch.cuda.current_stream().wait_stream(side)
    for name, a, e in zip(('output', 'grad_input', 'grad_offset', 'grad_mask'), actual, expected):
        torch.testing.assert_close(a, e, msg=lambda msg, name=name: f'{name}: {msg}')


def test_cuda_kernels_run_on_the_callers_stream():
    if os.environ.get('CUDA_LAUNCH_BLOCKING') != '1':
        check_kernels_run_on_the_current_stream()
        return
    # Launches that wait for their kernel would hide a kernel on the wrong
    # stream: check in a process without CUDA_LAUNCH_BLOCKING.
    env = {k: v for k, v in os.environ.items() if k != 'CUDA_LAUNCH_BLOCKING'}
    code = 'from tests.ops.test_dcnv3_cuda import check_kernels_run_on_the_current_stream as check; check()'
    child = subprocess.run([sys.executable, '-c', code], cwd=REPOSITORY_DIR, env=env, capture_output=True,
                           text=True, timeout=120)
    assert child.returncode == 0, child.stdout + child.stderr


def test_cuda_on_a_second_gpu():
    if torch.cuda.device_count() < 2:
        pytest.skip('needs two GPUs (tools/gpu_check.sh deselects this test on one)')
    case = testing.Case(group=4, group_channels=16)
    tensors = case.tensors(device='cuda:1')
    with torch.cuda.device(0):  # the current device is not the tensors'
        actual = testing.forward_and_grads(compiled, case, tensors)
    assert all(t.device == torch.device('cuda:1') for t in actual)
    expected = testing.forward_and_grads(compiled, case, [t.cpu() for t in tensors])
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a.cpu(), e, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_cuda_tensors_of_more_than_2_31_elements():
    """Index arithmetic past 2**31 elements: float16 tensors of 5800 x 5800 x
    64 = 2.15e9 elements."""
    if torch.cuda.mem_get_info()[0] < 40e9:
        pytest.skip('needs about 40 GB of free GPU memory')
    assert 5800 * 5800 * 64 > 2**31
    ops = torch.ops.mmyolo_dcnv3
    testing.assert_samples_the_right_neighbour(ops.dcnv3_forward, ops.dcnv3_backward, size=5800, device='cuda')
