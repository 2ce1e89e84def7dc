"""Build and install mmyolo-dcnv3.

Two libraries of kernels, both loaded with ``torch.ops.load_library``:

* ``mmyolo_dcnv3/_C``: the operator schemas, the CPU kernels and the autocast
  rules; always built.
* ``mmyolo_dcnv3/_C_cuda``: the CUDA kernels; built when torch is a CUDA build
  and ``nvcc`` is found, or when ``FORCE_CUDA=1``; never when ``FORCE_CUDA=0``.
  ``TORCH_CUDA_ARCH_LIST`` selects the GPU architectures as usual.

The C++ standard follows the installed torch: C++20 from torch 2.14, C++17
before.
"""
import glob
import os
import shutil

from setuptools import find_packages, setup
from torch.utils.cpp_extension import BuildExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def read_version():
    namespace = {}
    with open(os.path.join(ROOT, 'mmyolo_dcnv3', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def cxx_standard(torch_version):
    major, minor = (int(x) for x in torch_version.split('+')[0].split('.')[:2])
    return 'c++20' if (major, minor) >= (2, 14) else 'c++17'


def cuda_requested(torch):
    force = os.environ.get('FORCE_CUDA')
    if force is not None:
        if force not in ('0', '1'):
            raise SystemExit(f'FORCE_CUDA must be 0 or 1, got {force!r}')
        return force == '1'
    from torch.utils.cpp_extension import CUDA_HOME
    return torch.version.cuda is not None and CUDA_HOME is not None and (
        shutil.which('nvcc') is not None
        or os.path.exists(os.path.join(CUDA_HOME, 'bin', 'nvcc')))


def cuda_include_dirs():
    """Include folders for the CUDA library: the toolkit's own headers first,
    then those of the pip ``nvidia`` wheels for what the toolkit lacks.

    The toolkit's folders are the ones its nvcc (the one torch builds with,
    ``$CUDA_HOME/bin/nvcc`` or ``$PYTORCH_NVCC``) searches, as ``nvcc --dryrun``
    reports them; listing them first keeps other CUDA headers found through
    ``CUDA_HOME`` or torch's include path behind them. A toolkit without
    cuBLAS/cuSPARSE headers (as on build machines without a GPU) still compiles
    torch's CUDA headers with the wheels' copies. The wheels' include folders
    also hold the CUDA runtime headers, possibly of a newer CUDA than nvcc, and
    a header found in one includes its siblings from there; so they are not
    put on the path. ``build/cuda_wheel_headers`` gets links to just the
    entries (files or folders) missing from the toolkit, taken from the first
    wheel (``nvidia/cu*`` before the others) that has them.
    """
    import re
    import shlex
    import site
    import subprocess

    from torch.utils.cpp_extension import CUDA_HOME
    nvcc = os.environ.get('PYTORCH_NVCC') or os.path.join(CUDA_HOME or '', 'bin', 'nvcc')
    try:
        dryrun = subprocess.run([nvcc, '--dryrun', '-E', '-x', 'cu', os.devnull, '-o', os.devnull],
                                capture_output=True, text=True, check=True).stderr
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f'cannot ask {nvcc} for its include folders ({error}); set CUDA_HOME to the folder '
                         "above nvcc's bin/")
    toolkit, toolkit_system = [], []  # nvcc's -I folders, and its -isystem ones (CCCL)
    for variable, value in re.findall(r'^#\$ (INCLUDES|SYSTEM_INCLUDES)=(.*)$', dryrun, re.M):
        words = shlex.split(value)
        for flag, path in zip(words, words[1:] + ['']):
            if variable == 'INCLUDES' and flag.startswith('-I'):
                toolkit.append(os.path.realpath(flag[2:]))
            elif flag == '-isystem':
                toolkit_system.append(os.path.realpath(path))
    if not any(os.path.isfile(os.path.join(d, 'cuda_runtime_api.h')) for d in toolkit):
        raise SystemExit(f'{nvcc} --dryrun names no include folder with cuda_runtime_api.h: {toolkit}')
    in_toolkit = {name for d in toolkit + toolkit_system if os.path.isdir(d) for name in os.listdir(d)}

    wheel_dirs = []
    for base in site.getsitepackages():
        wheel_dirs += sorted(glob.glob(os.path.join(base, 'nvidia', 'cu*', 'include')))
        wheel_dirs += sorted(glob.glob(os.path.join(base, 'nvidia', '*', 'include')))
    links = os.path.join(ROOT, 'build', 'cuda_wheel_headers')
    shutil.rmtree(links, ignore_errors=True)
    os.makedirs(links)
    for wheel_dir in wheel_dirs:
        for name in sorted(os.listdir(wheel_dir)):
            link = os.path.join(links, name)
            if name not in in_toolkit and not os.path.lexists(link):
                os.symlink(os.path.join(wheel_dir, name), link)
    return [*toolkit, links]


def extensions():
    import torch
    from torch.utils.cpp_extension import CppExtension, CUDAExtension

    std = cxx_standard(torch.__version__)
    common_include = [os.path.join(ROOT, 'csrc')]
    cxx_flags = [f'-std={std}', '-O3', '-fno-math-errno']
    link_flags = []
    if torch.backends.openmp.is_available():
        # at::parallel_for is an inline OpenMP region: without -fopenmp it
        # silently runs on one thread.
        cxx_flags.append('-fopenmp')
        link_flags.append('-fopenmp')
    exts = [
        CppExtension(
            'mmyolo_dcnv3._C',
            sources=sorted(glob.glob('csrc/*.cpp') + glob.glob('csrc/cpu/*.cpp')),
            include_dirs=common_include,
            extra_compile_args={'cxx': cxx_flags},
            extra_link_args=link_flags,
            depends=sorted(glob.glob('csrc/**/*.h', recursive=True)),
        )
    ]
    if cuda_requested(torch):
        exts.append(
            CUDAExtension(
                'mmyolo_dcnv3._C_cuda',
                sources=sorted(glob.glob('csrc/cuda/*.cu')),
                include_dirs=common_include + cuda_include_dirs(),
                extra_compile_args={
                    'cxx': cxx_flags,
                    'nvcc': [f'-std={std}', '-O3', '--use_fast_math',
                             '--expt-relaxed-constexpr'],
                },
                depends=sorted(glob.glob('csrc/**/*.h', recursive=True)
                               + glob.glob('csrc/**/*.cuh', recursive=True)),
            ))
    return exts


setup(
    name='mmyolo-dcnv3',
    version=read_version(),
    description='DCNv3 (InternImage) for MMYOLO/YOLOv8: CPU and CUDA kernels, '
    'modules, configs and tools',
    long_description=open(os.path.join(ROOT, 'README.md')).read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10,<3.12',
    packages=find_packages(include=['mmyolo_dcnv3', 'mmyolo_dcnv3.*']),
    ext_modules=extensions(),
    # Plain shared libraries loaded by torch.ops.load_library: no ABI suffix.
    cmdclass={'build_ext': BuildExtension.with_options(no_python_abi_suffix=True)},
    install_requires=['torch>=2.4'],
    zip_safe=False,
)
