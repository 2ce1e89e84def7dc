"""What the CUDA kernels compile to: nvcc's PTX for sm_90, no GPU needed.

Compiles csrc/cuda/dcnv3_cuda_kernels.cuh (the library's __global__ kernels)
with the library's device flags and reads the instructions of each kernel.
"""
import os
import re
import shutil
import subprocess

import pytest
import torch
from torch.utils import cpp_extension

REPOSITORY_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (scalar type, channels per thread, the one store each forward thread makes):
# 16, 8, 4 and 2 bytes.
FORWARD_STORES = [
    ('float', 4, 'st.global.wb.v4.u32'), ('float', 2, 'st.global.wb.v2.u32'), ('float', 1, 'st.global.wb.u32'),
    ('double', 2, 'st.global.wb.v4.u32'), ('double', 1, 'st.global.wb.v2.u32'),
    ('c10::Half', 8, 'st.global.wb.v4.u32'), ('c10::Half', 4, 'st.global.wb.v2.u32'),
    ('c10::Half', 2, 'st.global.wb.u32'), ('c10::Half', 1, 'st.global.wb.u16'),
    ('c10::BFloat16', 8, 'st.global.wb.v4.u32'),
]
# (scalar type, channels per thread, the input's vector load).
BACKWARD_LOADS = [('float', 4, 'ld.global.nc.v4.u32'), ('c10::Half', 8, 'ld.global.nc.v4.u32'),
                  ('double', 2, 'ld.global.nc.v4.u32')]


def find_nvcc():
    home = cpp_extension.CUDA_HOME
    candidates = [shutil.which('nvcc'), home and os.path.join(home, 'bin', 'nvcc')]
    return next((c for c in candidates if c and os.path.exists(c)), None)


def kernel_bodies(ptx: str) -> dict:
    """Kernel name (demangled enough to find a variant) -> its PTX body."""
    bodies = {}
    for chunk in re.split(r'\.entry\s+', ptx)[1:]:
        bodies[chunk.split('(', 1)[0]] = chunk
    return bodies


def variant_body(bodies: dict, kernel: str, scalar: str, width: int) -> str:
    mangled_scalar = {'float': 'ff', 'double': 'dd', 'c10::Half': 'N3c104HalfEf',
                      'c10::BFloat16': 'N3c108BFloat16Ef'}[scalar]
    matches = [body for name, body in bodies.items() if f'{kernel}I{mangled_scalar}Li{width}E' in name]
    assert len(matches) == 1, f'{kernel}<{scalar}, {width}>: {len(matches)} kernels in the PTX'
    return matches[0]


@pytest.fixture(scope='module')
def kernels_ptx(tmp_path_factory):
    nvcc = find_nvcc()
    if nvcc is None or torch.version.cuda is None:
        pytest.skip('needs nvcc and a CUDA build of torch')
    folder = tmp_path_factory.mktemp('ptx')
    lines = ['#include "cuda/dcnv3_cuda_kernels.cuh"', 'namespace mmyolo_dcnv3 {']
    for scalar, width, _ in FORWARD_STORES:
        acc = 'double' if scalar == 'double' else 'float'
        lines.append(f'template __global__ void forward_kernel<{scalar}, {acc}, {width}>(Dcnv3Shape, int64_t, '
                     f'const {scalar}*, const {scalar}*, const {scalar}*, {scalar}*);')
    for scalar, width, _ in BACKWARD_LOADS:
        acc = 'double' if scalar == 'double' else 'float'
        lines.append(f'template __global__ void backward_kernel<{scalar}, {acc}, {width}>(Dcnv3Shape, int64_t, '
                     f'const {scalar}*, const {scalar}*, const {scalar}*, const {scalar}*, {acc}*, {acc}*, '
                     f'{acc}*);')
    lines.append('}  // namespace mmyolo_dcnv3')
    source = folder / 'kernels.cu'
    source.write_text('\n'.join(lines) + '\n')
    ptx = folder / 'kernels.ptx'
    major, minor = (int(x) for x in torch.__version__.split('+')[0].split('.')[:2])
    std = 'c++20' if (major, minor) >= (2, 14) else 'c++17'  # as setup.py
    command = [nvcc, '-ptx', '-arch=sm_90', f'-std={std}', '-O3', '--use_fast_math', *cpp_extension.COMMON_NVCC_FLAGS,
               '-I', os.path.join(REPOSITORY_DIR, 'csrc'), *[f'-I{d}' for d in cpp_extension.include_paths()],
               str(source), '-o', str(ptx)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return kernel_bodies(ptx.read_text())


@pytest.mark.slow
@pytest.mark.parametrize('scalar,width,store', FORWARD_STORES)
def test_forward_writes_a_threads_output_with_one_vector_store(kernels_ptx, scalar, width, store):
    body = variant_body(kernels_ptx, 'forward_kernel', scalar, width)
    assert re.findall(r'\bst\.global[.\w]*', body) == [store]


@pytest.mark.slow
@pytest.mark.parametrize('scalar,width,load', BACKWARD_LOADS)
def test_backward_reads_input_and_grad_output_with_vector_loads(kernels_ptx, scalar, width, load):
    body = variant_body(kernels_ptx, 'backward_kernel', scalar, width)
    # Four corners of the input and one grad_output pack per point.
    assert len(re.findall(rf'\b{re.escape(load)}\b', body)) == 5
