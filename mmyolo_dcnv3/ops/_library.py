"""Loads the compiled kernel libraries (``_C`` and ``_C_cuda``) once.

``_C`` holds the operator schemas, the CPU kernels and the autocast rules;
``_C_cuda`` the CUDA kernels. Either may be missing (not built, or built for
another torch); :func:`compiled_kernels` then says why, and the public op falls
back to the pure-PyTorch reference.
"""
import functools
import os
from dataclasses import dataclass, field
from typing import Dict

import torch

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPOSITORY_DIR = os.path.dirname(PACKAGE_DIR)
BUILD_HINT = (f'build them with `python setup.py build_ext --inplace` in {REPOSITORY_DIR} '
              '(or run tools/setup_env.sh)')


@dataclass(frozen=True)
class CompiledKernels:
    """Which compiled kernels are usable, by device type."""

    devices: frozenset
    # Device type -> sentence saying why its kernels are not usable.
    missing: Dict[str, str] = field(default_factory=dict)

    def available(self, device_type: str) -> bool:
        return device_type in self.devices

    def why_missing(self, device_type: str) -> str:
        return self.missing.get(device_type, f'no compiled DCNv3 kernel exists for device type {device_type!r}')


def _load(name: str) -> str:
    """Loads library ``name``; returns '' on success, else why it failed."""
    path = os.path.join(PACKAGE_DIR, f'{name}.so')
    if not os.path.exists(path):
        return f'{path} is not built; {BUILD_HINT}'
    try:
        torch.ops.load_library(path)
    except (OSError, RuntimeError) as error:
        return (f'{path} does not load with torch {torch.__version__} ({error}); '
                f'rebuild it: {BUILD_HINT}')
    return ''


@functools.lru_cache(maxsize=None)
def compiled_kernels() -> CompiledKernels:
    """Loads the libraries on first call and reports what is usable."""
    cpu_error = _load('_C')
    if cpu_error:
        return CompiledKernels(frozenset(), {'cpu': cpu_error, 'cuda': cpu_error})
    devices = {'cpu'}
    missing = {}
    if torch.version.cuda is None:
        missing['cuda'] = f'torch {torch.__version__} is not a CUDA build'
    else:
        cuda_error = _load('_C_cuda')
        if cuda_error:
            missing['cuda'] = cuda_error
        else:
            devices.add('cuda')
    return CompiledKernels(frozenset(devices), missing)
