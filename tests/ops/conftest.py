"""Fixtures of the operator tests: the CUDA-on-CPU library (tests/ops/cuda_on_cpu/)."""
import os

import pytest
import torch

from tests.ops.cuda_on_cpu import build

# A prebuilt CUDA-on-CPU library to test instead of building one (test_cuda_on_cpu_sanitized.py runs the tier
# on the sanitizer build this way).
LIBRARY_VARIABLE = 'MMYOLO_DCNV3_CUDA_ON_CPU_LIBRARY'


def skip_without_compiler():
    """The CUDA-on-CPU tier is skipped only where g++ is missing and ``CI`` is not set (in CI the missing
    compiler fails the build); a failing build is an error everywhere."""
    if build.compiler() is None and not os.environ.get('CI'):
        pytest.skip('the CUDA-on-CPU tier needs g++')


@pytest.fixture(scope='session')
def cuda_on_cpu():
    """``torch.ops.mmyolo_dcnv3_cuda_on_cpu``: the CUDA kernels' source compiled for the host, on CPU tensors."""
    library = os.environ.get(LIBRARY_VARIABLE)
    if not library:
        skip_without_compiler()
        library = build.build()
    torch.ops.load_library(str(library))
    ops = getattr(torch.ops, build.NAMESPACE)
    ops.set_options(0, False)
    return ops
