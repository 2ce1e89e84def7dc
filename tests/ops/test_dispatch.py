"""Choosing between the compiled kernels and the reference."""
import warnings

import pytest
import torch

from mmyolo_dcnv3.ops import IMPL_ENV, dcnv3, dcnv3_implementation, dcnv3_reference
from mmyolo_dcnv3.ops import dcnv3_op as dcnv3_module
from mmyolo_dcnv3.ops._library import CompiledKernels, compiled_kernels
from tests.ops.dcnv3_testing import Case

NOT_BUILT = CompiledKernels(frozenset(), {'cpu': '_C.so is not built; build it', 'cuda': 'x'})


@pytest.fixture
def no_kernels(monkeypatch):
    monkeypatch.setattr(dcnv3_module, 'compiled_kernels', lambda: NOT_BUILT)
    monkeypatch.setattr(dcnv3_module, '_warned_fallback', set())


def test_default_uses_the_compiled_kernel_where_built(monkeypatch):
    monkeypatch.delenv(IMPL_ENV, raising=False)
    expected = 'compiled' if compiled_kernels().available('cpu') else 'reference'
    assert dcnv3_implementation('cpu') == expected


def test_env_forces_the_reference(monkeypatch):
    monkeypatch.setenv(IMPL_ENV, 'reference')
    assert dcnv3_implementation('cpu') == 'reference'
    case = Case()
    tensors = case.tensors()
    torch.testing.assert_close(dcnv3(*tensors, *case.op_args()),
                               dcnv3_reference(*tensors, *case.op_args()), rtol=0, atol=0)


def test_env_with_unknown_value_is_refused(monkeypatch):
    monkeypatch.setenv(IMPL_ENV, 'fast')
    with pytest.raises(ValueError, match=rf'{IMPL_ENV} must be one of auto, compiled, reference, got'):
        dcnv3_implementation('cpu')


def test_fallback_warns_once_with_the_reason(no_kernels, monkeypatch):
    monkeypatch.delenv(IMPL_ENV, raising=False)
    case = Case()
    with pytest.warns(RuntimeWarning, match=r'slow pure-PyTorch DCNv3 on cpu because _C.so is not built'):
        dcnv3(*case.tensors(), *case.op_args())
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        dcnv3(*case.tensors(), *case.op_args())


def test_compiled_requested_but_missing_is_an_error(no_kernels, monkeypatch):
    monkeypatch.setenv(IMPL_ENV, 'compiled')
    with pytest.raises(RuntimeError, match=r'MMYOLO_DCNV3_IMPL=compiled but the DCNv3 kernels for cpu '
                                           r'are not usable: _C.so is not built'):
        dcnv3_implementation('cpu')
