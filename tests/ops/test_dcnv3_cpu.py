"""The compiled CPU kernels against the reference, and the op's integration
with autograd, torch.library, torch.compile and autocast."""

import pytest
import torch

from mmyolo_dcnv3.ops import dcnv3, dcnv3_reference
from mmyolo_dcnv3.ops._library import compiled_kernels
from tests.ops import dcnv3_testing as testing

pytestmark = pytest.mark.skipif(not compiled_kernels().available('cpu'),
                                reason='CPU kernels not built')
forward_op = torch.ops.mmyolo_dcnv3.dcnv3_forward if compiled_kernels().available('cpu') else None

CPU_ISAS = ('baseline', 'avx2', 'avx512')


def compiled(*args):
    return torch.ops.mmyolo_dcnv3.dcnv3_forward(*args)


def assert_matches_reference(case, dtype=torch.float64, rtol=1e-10, atol=1e-10, device='cpu',
                             fn=compiled):
    """fn in `dtype` against the float64 reference on the same (rounded) inputs."""
    tensors = case.tensors(dtype=dtype, device=device)
    expected = testing.forward_and_grads(dcnv3_reference, case, [t.double() for t in tensors])
    actual = testing.forward_and_grads(fn, case, tensors)
    for name, a, e in zip(('output', 'grad_input', 'grad_offset', 'grad_mask'), actual, expected):
        scale = e.abs().max().item() if e.numel() else 1.0
        torch.testing.assert_close(a.double(), e, rtol=rtol, atol=atol * max(scale, 1.0),
                                   msg=lambda m: f'{name} of {case} in {dtype}: {m}')


@pytest.mark.parametrize('case', testing.sweep_cases(), ids=str)
def test_cpu_kernel_matches_reference_in_float64(case):
    assert_matches_reference(case)


@pytest.mark.parametrize('isa', CPU_ISAS)
def test_every_cpu_instruction_set_variant_matches_reference(isa, monkeypatch):
    monkeypatch.setenv('MMYOLO_DCNV3_CPU_ISA', isa)
    try:
        compiled(*testing.Case().tensors(), *testing.Case().op_args())
    except ValueError as error:
        pytest.skip(str(error))
    # 29 channels a group: blocks of 16, 8, 4 and 1 (float32), of 8, 4 and 1 (float64).
    for case in (testing.Case(group=2, group_channels=29), testing.Case(group=4, group_channels=16, kernel=(3, 5)),
                 testing.Case(group=1, group_channels=130, stride=(2, 2))):
        assert_matches_reference(case)
        assert_matches_reference(case, dtype=torch.float32, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('isa', CPU_ISAS)
@pytest.mark.parametrize('height, width', [(1, 1), (1, 6), (5, 1), (2, 2)])
def test_images_of_one_or_two_pixels_along_an_axis_match_reference(isa, height, width, monkeypatch):
    # The kernels read a 2x2 block moved inside the image; along an axis of
    # one pixel its second tap has no pixel of its own.
    monkeypatch.setenv('MMYOLO_DCNV3_CPU_ISA', isa)
    case = testing.Case(height=height, width=width, group=2, group_channels=20, offset_std=0.7)
    try:
        compiled(*case.tensors(), *case.op_args())
    except ValueError as error:
        pytest.skip(str(error))
    assert_matches_reference(case)
    assert_matches_reference(case, dtype=torch.float32, rtol=1e-4, atol=1e-5)


def test_unknown_cpu_instruction_set_is_refused(monkeypatch):
    monkeypatch.setenv('MMYOLO_DCNV3_CPU_ISA', 'sse9')
    with pytest.raises(ValueError, match='MMYOLO_DCNV3_CPU_ISA must be baseline, avx2 or avx512'):
        compiled(*testing.Case().tensors(), *testing.Case().op_args())


@pytest.mark.parametrize('dtype,rtol,atol', [(torch.float32, 1e-4, 1e-5),
                                             (torch.bfloat16, 3e-2, 3e-2),
                                             (torch.float16, 5e-3, 5e-3)])
@pytest.mark.parametrize('case', [testing.Case(), testing.Case(group=4, group_channels=16, stride=(2, 2)),
                                  testing.Case(group=1, group_channels=64, kernel=(5, 5), pad=(2, 2))],
                         ids=str)
def test_reduced_precision_matches_float64(case, dtype, rtol, atol):
    assert_matches_reference(case, dtype=dtype, rtol=rtol, atol=atol)


def test_gradcheck_in_float64():
    case = testing.Case(batch=2, height=5, width=6, group=2, group_channels=3, kernel=(3, 3), stride=(2, 1),
                        offset_scale=1.5, offset_std=1.5)
    tensors = case.tensors(requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: dcnv3(*t, *case.op_args()), tensors)


@pytest.mark.parametrize('case', [testing.Case(), testing.Case(remove_center=True, stride=(2, 2)),
                                  testing.Case(batch=0)], ids=str)
def test_opcheck_of_registered_ops(case):
    tensors = case.tensors(requires_grad=True)
    torch.library.opcheck(torch.ops.mmyolo_dcnv3.dcnv3_forward.default, (*tensors, *case.op_args()))
    grad_output = torch.randn(case.batch, *case.out_size, case.group * case.group_channels,
                              dtype=torch.float64)
    torch.library.opcheck(torch.ops.mmyolo_dcnv3.dcnv3_backward.default,
                          (*[t.detach() for t in tensors], grad_output, *case.op_args()))


def test_torch_compile_fullgraph_matches_eager():
    case = testing.Case(group=4, group_channels=8)
    tensors = case.tensors(dtype=torch.float32)

    def f(input, offset, mask):
        return dcnv3(input * 2, offset, mask.softmax(-1), *case.op_args()).relu()

    compiled_f = torch.compile(f, fullgraph=True, backend='aot_eager')
    torch.testing.assert_close(compiled_f(*tensors), f(*tensors))
    expected = testing.forward_and_grads(lambda *t: f(*t[:3]), case, tensors)
    actual = testing.forward_and_grads(lambda *t: compiled_f(*t[:3]), case, tensors)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e)


def test_empty_batch_returns_empty_output_and_gradients():
    case = testing.Case(batch=0)
    output, *grads = testing.forward_and_grads(dcnv3, case, case.tensors())
    assert output.shape == (0, *case.out_size, case.group * case.group_channels)
    assert [g.shape[0] for g in grads] == [0, 0, 0]


def test_non_contiguous_inputs_give_the_same_result():
    case = testing.Case(group=2, group_channels=6)
    input, offset, mask = case.tensors()
    expected = dcnv3(input, offset, mask, *case.op_args())
    # Same values, transposed storage.
    strided = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in (input, offset, mask)]
    assert not strided[0].is_contiguous()
    torch.testing.assert_close(dcnv3(*strided, *case.op_args()), expected, rtol=0, atol=0)


def test_batch_size_need_not_divide_im2col_step():
    case = testing.Case(batch=5, im2col_step=2)
    tensors = case.tensors()
    per_image = torch.cat([dcnv3(*(t[i:i + 1] for t in tensors), *case.op_args()) for i in range(5)])
    torch.testing.assert_close(dcnv3(*tensors, *case.op_args()), per_image, rtol=0, atol=0)


def test_backward_is_deterministic_and_independent_of_thread_count():
    case = testing.Case(batch=2, height=12, width=12, group=2, group_channels=96, offset_std=1.0)
    tensors = case.tensors(dtype=torch.float32)
    first = testing.forward_and_grads(compiled, case, tensors)
    second = testing.forward_and_grads(compiled, case, tensors)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = testing.forward_and_grads(compiled, case, tensors)
    finally:
        torch.set_num_threads(threads)
    for a, b, c in zip(first, second, single):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_cpu_backward_runs_in_deterministic_mode():
    case = testing.Case(group=2, group_channels=8)
    tensors = case.tensors(dtype=torch.float32)
    with testing.deterministic_algorithms():
        first = testing.forward_and_grads(compiled, case, tensors)
    for a, b in zip(first, testing.forward_and_grads(compiled, case, tensors)):
        assert torch.equal(a, b)


def test_exact_sampling_of_the_right_neighbour_in_float16():
    ops = torch.ops.mmyolo_dcnv3
    testing.assert_samples_the_right_neighbour(ops.dcnv3_forward, ops.dcnv3_backward, size=37, device='cpu', rows=8)


def test_registered_ops_floor_the_output_size_like_python():
    ops = torch.ops.mmyolo_dcnv3
    testing.assert_refuses_an_empty_output(ops.dcnv3_forward, ops.dcnv3_backward)
    with pytest.raises(ValueError, match='the output would be 0x2'):
        dcnv3(*testing.too_small_for_its_kernel())


def test_cpu_autocast_runs_in_the_dtype_of_input():
    case = testing.Case(group=2, group_channels=8)
    input, offset, mask = case.tensors(dtype=torch.float32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        output = dcnv3(input.bfloat16(), offset, mask, *case.op_args())
        assert output.dtype == torch.bfloat16
        output32 = dcnv3(input, offset.bfloat16(), mask.bfloat16(), *case.op_args())
        assert output32.dtype == torch.float32
        # The registered op follows the same rule (its Autocast kernel).
        direct = compiled(input.bfloat16(), offset, mask, *case.op_args())
        assert direct.dtype == torch.bfloat16
    torch.testing.assert_close(direct, output, rtol=0, atol=0)
    expected = dcnv3_reference(input.bfloat16().float(), offset.bfloat16().float(),
                               mask.bfloat16().float(), *case.op_args())
    torch.testing.assert_close(output.float(), expected, rtol=2e-2, atol=2e-2)


def test_export_sees_one_op():
    case = testing.Case()
    tensors = case.tensors(dtype=torch.float32)

    class Block(torch.nn.Module):
        def forward(self, input, offset, mask):
            return dcnv3(input, offset, mask, *case.op_args())

    program = torch.export.export(Block(), tuple(tensors))
    targets = [node.target for node in program.graph.nodes if node.op == 'call_function']
    assert targets == [torch.ops.mmyolo_dcnv3.dcnv3_forward.default]
