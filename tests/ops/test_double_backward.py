"""Gradients of gradients of the compiled op: those of the reference, never a silent zero."""
import pytest
import torch

from mmyolo_dcnv3.ops import dcnv3, dcnv3_reference
from mmyolo_dcnv3.ops._library import compiled_kernels
from tests.ops import dcnv3_testing as testing

pytestmark = pytest.mark.skipif(not compiled_kernels().available('cpu'), reason='CPU kernels not built')

# Small enough for gradgradcheck's numerical Jacobians (a few hundred elements in all).
SMALL_CASES = [testing.Case(batch=1, height=4, width=5, group=2, group_channels=2, stride=(2, 1),
                            offset_scale=1.5, offset_std=1.5),
               testing.Case(batch=2, height=3, width=4, group=1, group_channels=3, pad=(0, 1), remove_center=True,
                            offset_std=1.0)]


def compiled(*args):
    return torch.ops.mmyolo_dcnv3.dcnv3_forward(*args)


@pytest.mark.parametrize('case', SMALL_CASES, ids=str)
def test_gradgradcheck_in_float64(case):
    tensors = case.tensors(requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda *t: compiled(*t, *case.op_args()), tensors)


def gradient_of_the_input_gradient(fn, case, wrt):
    """The issue's case: g = d/dinput sum(out^2) with a graph, then d(sum g)/d(each of ``wrt``)."""
    input, offset, mask = case.tensors(requires_grad=True)
    tensors = dict(input=input, offset=offset, mask=mask)
    output = fn(input, offset, mask, *case.op_args())
    (grad_input,) = torch.autograd.grad(output.pow(2).sum(), input, create_graph=True)
    return torch.autograd.grad(grad_input.sum(), [tensors[name] for name in wrt])


def test_gradient_of_a_gradient_is_not_zero_and_equals_the_references():
    case = testing.Case()
    wrt = ('input', 'offset', 'mask')
    actual = gradient_of_the_input_gradient(dcnv3, case, wrt)
    expected = gradient_of_the_input_gradient(dcnv3_reference, case, wrt)
    for name, a, e in zip(wrt, actual, expected):
        assert e.abs().max() > 0.1, name  # the reference's is far from zero: the case tests something
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10, msg=lambda m, name=name: f'{name}: {m}')


def test_third_order_gradients_equal_the_references():
    case = SMALL_CASES[0]

    def third_order(fn):
        input, offset, mask = case.tensors(requires_grad=True)
        output = fn(input, offset, mask, *case.op_args())
        (grad_mask,) = torch.autograd.grad(output.pow(2).sum(), mask, create_graph=True)
        (second,) = torch.autograd.grad(grad_mask.pow(2).sum(), offset, create_graph=True)
        return torch.autograd.grad(second.sum(), (input, offset, mask))

    for a, e in zip(third_order(compiled), third_order(dcnv3_reference)):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('dtype, rtol, atol', [(torch.float64, 1e-10, 1e-10), (torch.float32, 1e-4, 1e-5)])
def test_gradients_taken_with_a_graph_equal_the_kernels(dtype, rtol, atol):
    case = testing.Case(group=4, group_channels=8)
    tensors = case.tensors(dtype=dtype, requires_grad=True)
    output = compiled(*tensors, *case.op_args())
    weight = torch.randn(output.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
    with_graph = torch.autograd.grad(output, tensors, weight, create_graph=True)
    without_graph = torch.autograd.grad(output, tensors, weight)
    for a, e in zip(with_graph, without_graph):
        assert a.requires_grad and a.dtype == dtype
        torch.testing.assert_close(a, e, rtol=rtol, atol=atol)


def test_second_order_gradients_when_only_the_mask_requires_grad():
    case = testing.Case()
    input, offset, mask = case.tensors()
    mask.requires_grad_(True)
    output = compiled(input, offset, mask, *case.op_args())
    (grad_mask,) = torch.autograd.grad(output.pow(2).sum(), mask, create_graph=True)
    (second,) = torch.autograd.grad(grad_mask.sum(), mask)
    (expected,) = torch.autograd.grad(
        torch.autograd.grad(dcnv3_reference(input, offset, mask, *case.op_args()).pow(2).sum(), mask,
                            create_graph=True)[0].sum(), mask)
    torch.testing.assert_close(second, expected, rtol=1e-10, atol=1e-10)


def test_torch_compile_backward_graph_calls_the_compiled_backward_kernel():
    from torch._dynamo.backends.common import aot_autograd
    graphs = []

    def keep(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module

    case = testing.Case(group=4, group_channels=8)
    tensors = case.tensors(dtype=torch.float32, requires_grad=True)
    f = torch.compile(lambda *t: compiled(*t, *case.op_args()), fullgraph=True,
                      backend=aot_autograd(fw_compiler=keep, bw_compiler=keep))
    f(*tensors).sum().backward()
    forward_graph, backward_graph = graphs
    targets = {node.target for node in backward_graph.graph.nodes if node.op == 'call_function'}
    assert torch.ops.mmyolo_dcnv3.dcnv3_backward.default in targets
    assert torch.ops.aten.gather.default not in targets
