"""Choosing between the compiled kernels and the reference: the libraries found, the environment variable, and
the route of the backward."""
import os
import warnings

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mmyolo_dcnv3
from mmyolo_dcnv3.ops import IMPL_ENV, _library, dcnv3, dcnv3_implementation
from mmyolo_dcnv3.ops import dcnv3_op as dcnv3_module
from mmyolo_dcnv3.ops._library import CompiledKernels
from tests.ops.dcnv3_testing import Case

NOT_BUILT = CompiledKernels(frozenset(), {'cpu': '_C.so is not built; build it', 'cuda': 'x'})
# Where the build puts the CPU library (setup.py build_ext --inplace, or the wheel).
CPU_LIBRARY = os.path.join(os.path.dirname(mmyolo_dcnv3.__file__), '_C.so')
requires_cpu_library = pytest.mark.skipif(not os.path.isfile(CPU_LIBRARY), reason=f'{CPU_LIBRARY} is not built')


class RecordedOps(TorchDispatchMode):
    """Records the name of every operator that runs inside it (the backward's too)."""

    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.name().split('.')[0])  # without the overload
        return func(*args, **(kwargs or {}))


@pytest.fixture
def no_kernels(monkeypatch):
    monkeypatch.setattr(dcnv3_module, 'compiled_kernels', lambda: NOT_BUILT)
    monkeypatch.setattr(dcnv3_module, '_warned_fallback', set())


@pytest.fixture
def package_dir(tmp_path, monkeypatch):
    """The loader looks for the libraries in ``tmp_path``, and loads a file there unless it is named in the
    returned dict (file name -> the error its loading raises)."""
    failures = {}
    monkeypatch.setattr(_library, 'PACKAGE_DIR', str(tmp_path))

    def load_library(path):
        error = failures.get(os.path.basename(path))
        if error is not None:
            raise error

    monkeypatch.setattr(torch.ops, 'load_library', load_library)
    return tmp_path, failures


def load_kernels():
    """What the loader reports, found afresh (bypassing the process's cached answer)."""
    return _library.compiled_kernels.__wrapped__()


def test_missing_cpu_library_disables_both_devices(package_dir):
    folder, _ = package_dir
    kernels = load_kernels()
    assert kernels.devices == frozenset()
    for device in ('cpu', 'cuda'):
        assert kernels.why_missing(device).startswith(f'{folder / "_C.so"} is not built; build them with')


def test_cpu_build_of_torch_loads_no_cuda_library(package_dir, monkeypatch):
    folder, _ = package_dir
    (folder / '_C.so').touch()
    (folder / '_C_cuda.so').touch()
    monkeypatch.setattr(torch.version, 'cuda', None)
    kernels = load_kernels()
    assert kernels.devices == {'cpu'}
    assert kernels.why_missing('cuda') == f'torch {torch.__version__} is not a CUDA build'


def test_cuda_build_of_torch_loads_both_libraries(package_dir, monkeypatch):
    folder, _ = package_dir
    (folder / '_C.so').touch()
    (folder / '_C_cuda.so').touch()
    monkeypatch.setattr(torch.version, 'cuda', '13.0')
    assert load_kernels().devices == {'cpu', 'cuda'}


def test_library_that_does_not_load_is_reported_with_the_error(package_dir, monkeypatch):
    folder, failures = package_dir
    (folder / '_C.so').touch()
    (folder / '_C_cuda.so').touch()
    monkeypatch.setattr(torch.version, 'cuda', '13.0')
    failures['_C_cuda.so'] = OSError('undefined symbol: cudaLaunchKernel')
    kernels = load_kernels()
    assert kernels.devices == {'cpu'}
    assert kernels.why_missing('cuda').startswith(f'{folder / "_C_cuda.so"} does not load with torch '
                                                  f'{torch.__version__} (undefined symbol: cudaLaunchKernel); rebuild')


def test_default_uses_the_built_cpu_library(monkeypatch):
    monkeypatch.delenv(IMPL_ENV, raising=False)
    expected = 'compiled' if os.path.isfile(CPU_LIBRARY) else 'reference'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)  # the fallback's warning, where not built
        assert dcnv3_implementation('cpu') == expected


@requires_cpu_library
def test_env_forces_the_reference(monkeypatch):
    case = Case()
    tensors = case.tensors()
    monkeypatch.setenv(IMPL_ENV, 'reference')
    assert dcnv3_implementation('cpu') == 'reference'
    with RecordedOps() as recorded:
        dcnv3(*tensors, *case.op_args())
    assert 'aten::gather' in recorded.names and 'mmyolo_dcnv3::dcnv3_forward' not in recorded.names
    monkeypatch.setenv(IMPL_ENV, 'compiled')
    with RecordedOps() as recorded:
        dcnv3(*tensors, *case.op_args())
    assert recorded.names == {'mmyolo_dcnv3::dcnv3_forward'}


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


@requires_cpu_library
@pytest.mark.parametrize('create_graph', [False, True])
def test_backward_runs_the_compiled_kernel_unless_a_graph_of_the_gradients_is_asked_for(create_graph):
    case = Case()
    tensors = case.tensors(requires_grad=True)
    output = torch.ops.mmyolo_dcnv3.dcnv3_forward(*tensors, *case.op_args())
    with RecordedOps() as recorded:
        torch.autograd.grad(output.sum(), tensors, create_graph=create_graph)
    # With a graph, the reference's operators (gathers) compute the gradients, differentiably.
    assert ('mmyolo_dcnv3::dcnv3_backward' in recorded.names) is not create_graph
    assert ('aten::gather' in recorded.names) is create_graph
