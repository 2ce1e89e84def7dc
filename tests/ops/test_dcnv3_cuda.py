"""The CUDA kernels (skipped without a GPU; tools/gpu_check.sh runs them)."""
import pytest
import torch

from mmyolo_dcnv3.ops import dcnv3, dcnv3_reference
from mmyolo_dcnv3.ops._library import compiled_kernels
from tests.ops.dcnv3_testing import Case, forward_and_grads, sweep_cases
from tests.ops.test_dcnv3_cpu import assert_matches_reference, compiled

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason='no CUDA GPU'),
    pytest.mark.skipif(not compiled_kernels().available('cuda'),
                       reason=f'CUDA kernels not usable: {compiled_kernels().why_missing("cuda")}'),
]


@pytest.mark.parametrize('case', sweep_cases(), ids=str)
def test_cuda_kernel_matches_reference_in_float64(case):
    assert_matches_reference(case, device='cuda')


EXTRA_SHAPES = [
    Case(group=1, group_channels=512, height=6, width=5),
    Case(group=2, group_channels=257, height=5, width=6),
    Case(group=3, group_channels=7, kernel=(7, 7), pad=(3, 3)),
    Case(group=2, group_channels=6, kernel=(4, 6), pad=(1, 2), stride=(2, 3)),
    Case(group=2, group_channels=12, kernel=(7, 1), pad=(3, 0), dilation=(2, 1)),
    Case(batch=7, group=4, group_channels=16, im2col_step=3),
]


@pytest.mark.parametrize('case', EXTRA_SHAPES, ids=str)
def test_cuda_kernel_wide_groups_and_unusual_kernels(case):
    assert_matches_reference(case, device='cuda')


@pytest.mark.parametrize('dtype,rtol,atol', [(torch.float32, 1e-4, 1e-5),
                                             (torch.float16, 5e-3, 5e-3),
                                             (torch.bfloat16, 3e-2, 3e-2)])
@pytest.mark.parametrize('group_channels', [1, 2, 4, 8, 16, 24, 300])
def test_cuda_kernel_reduced_precision(dtype, rtol, atol, group_channels):
    case = Case(group=2, group_channels=group_channels, stride=(2, 1), pad=(1, 2))
    assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol, device='cuda')


@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_cpu_and_cuda_agree(dtype):
    case = Case(batch=3, height=20, width=17, group=4, group_channels=16, offset_std=2.0)
    tensors = case.tensors(dtype=dtype)
    on_cpu = forward_and_grads(compiled, case, tensors)
    on_cuda = forward_and_grads(compiled, case, [t.cuda() for t in tensors])
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    for a, b in zip(on_cpu, on_cuda):
        torch.testing.assert_close(b.cpu(), a, rtol=tol, atol=tol)


def test_cuda_gradcheck_and_opcheck():
    case = Case(batch=2, height=5, width=6, group=2, group_channels=4, offset_std=1.5)
    tensors = case.tensors(device='cuda', requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: dcnv3(*t, *case.op_args()), tensors)
    torch.library.opcheck(torch.ops.mmyolo_dcnv3.dcnv3_forward.default, (*tensors, *case.op_args()))


def test_cuda_autocast_runs_in_the_dtype_of_input():
    case = Case(group=4, group_channels=16)
    input, offset, mask = case.tensors(dtype=torch.float32, device='cuda')
    with torch.autocast('cuda', dtype=torch.float16):
        output = dcnv3(input.half(), offset, mask, *case.op_args())
        direct = compiled(input.half(), offset, mask, *case.op_args())
    assert output.dtype == direct.dtype == torch.float16
    expected = dcnv3_reference(input.half().double(), offset.half().double(), mask.half().double(),
                               *case.op_args())
    torch.testing.assert_close(output.double(), expected, rtol=5e-3, atol=5e-3)


def test_cuda_empty_batch():
    case = Case(batch=0)
    output, *grads = forward_and_grads(dcnv3, case, case.tensors(device='cuda'))
    assert output.shape[0] == 0 and all(g.shape[0] == 0 for g in grads)
