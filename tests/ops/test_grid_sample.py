"""dcnv3_grid_sample (the grid_sample approach users run without our kernels) computes the op's contract."""
import pytest
import torch

from mmyolo_dcnv3.ops import dcnv3_reference
from mmyolo_dcnv3.ops.grid_sample import dcnv3_grid_sample
from tests.ops.dcnv3_testing import Case, forward_and_grads, sweep_cases


@pytest.mark.parametrize('case', sweep_cases(), ids=str)
def test_grid_sample_path_matches_the_reference_in_float64(case):
    tensors = case.tensors()
    expected = forward_and_grads(dcnv3_reference, case, tensors)
    actual = forward_and_grads(dcnv3_grid_sample, case, tensors)
    for name, a, e in zip(('output', 'grad_input', 'grad_offset', 'grad_mask'), actual, expected):
        scale = max(e.abs().max().item(), 1.0) if e.numel() else 1.0
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-9 * scale, msg=lambda m: f'{name} of {case}: {m}')


def test_grid_sample_path_runs_in_float32_close_to_the_reference():
    case = Case(group=4, group_channels=16, height=12, width=10, stride=(2, 2))
    tensors = case.tensors(dtype=torch.float32)
    expected = dcnv3_reference(*[t.double() for t in tensors], *case.op_args())
    actual = dcnv3_grid_sample(*tensors, *case.op_args())
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual.double(), expected, rtol=1e-4, atol=1e-4)


def test_grid_sample_path_validates_its_arguments():
    case = Case()
    input, offset, mask = case.tensors()
    with pytest.raises(ValueError, match='mask'):
        dcnv3_grid_sample(input, offset, mask[..., :-1], *case.op_args())
