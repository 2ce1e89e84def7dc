"""Build and install mmyolo-dcnv3.

Two libraries of kernels, both loaded with ``torch.ops.load_library``:

* ``mmyolo_dcnv3/_C``: the operator schemas, the CPU kernels and the autocast
  rules; always built.
* ``mmyolo_dcnv3/_C_cuda``: the CUDA kernels; built when torch is a CUDA build
  and ``nvcc`` is found, or when ``FORCE_CUDA=1``; never when ``FORCE_CUDA=0``.
  ``TORCH_CUDA_ARCH_LIST`` selects the GPU architectures as usual; when it
  is not set and no GPU is visible, the common release architectures that
  the installed ``nvcc`` supports are chosen (and the build log says so).
  The toolkit is the one ``nvcc`` belongs to (CUDA_HOME if set, else found
  through the first ``nvcc`` on PATH, which may be a wrapper script or a
  distribution's ``/usr/bin/nvcc``): no variable needs exporting.

The C++ standard follows the installed torch: C++20 from torch 2.14, C++17
before.

The package also carries, in OpenMMLab's layout, ``configs/`` and the Python
``tools/`` under ``mmyolo_dcnv3/.mim/``, and ``mmyolo_dcnv3_config_scope.pth``
(see ``mmyolo_dcnv3_config_scope.py``), so that ``_base_ =
'mmyolo_dcnv3::yolov8_s_dcnv3_coco.py'`` works in configs anywhere.

Build against the torch you run with: ``pip install --no-build-isolation .``
(pip's default build isolation would compile against whatever torch it
downloads into the build environment).
"""
import glob
import os
import re
import shlex
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass

import torch
from setuptools import find_packages, setup
from setuptools.command.build_py import build_py
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))
CONFIG_SCOPE_PTH = 'mmyolo_dcnv3_config_scope.pth'
# GPU architectures built when no GPU is visible to choose from (Turing to
# Blackwell), as far as the installed nvcc supports them; the newest also as
# PTX, so later GPUs can JIT-compile it.
RELEASE_CUDA_ARCHS = ('7.5', '8.0', '8.6', '8.9', '9.0', '10.0', '12.0')


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
    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None and (
        shutil.which('nvcc') is not None
        or os.path.exists(os.path.join(cpp_extension.CUDA_HOME, 'bin', 'nvcc')))


def nvcc_architectures(nvcc: str) -> list:
    """The compute capabilities ``nvcc --list-gpu-arch`` names, as 'X.Y' strings."""
    listing = subprocess.run([nvcc, '--list-gpu-arch'], capture_output=True, text=True, check=True).stdout
    return [f'{m.group(1)}.{m.group(2)}' for m in re.finditer(r'^compute_(\d+)(\d)$', listing, re.MULTILINE)]


def default_cuda_arch_list(supported: list) -> str:
    """TORCH_CUDA_ARCH_LIST for a build without a GPU: the release architectures nvcc supports."""
    chosen = [arch for arch in RELEASE_CUDA_ARCHS if arch in supported]
    if not chosen:
        raise SystemExit(f'setup.py: nvcc supports none of {", ".join(RELEASE_CUDA_ARCHS)} '
                         f'(it lists {", ".join(supported) or "nothing"}); set TORCH_CUDA_ARCH_LIST')
    return ';'.join(chosen) + '+PTX'


def choose_cuda_arch_list(torch) -> None:
    """Sets TORCH_CUDA_ARCH_LIST when it is unset and no GPU is visible.

    Without it torch's extension builder asks the (absent) GPU for its
    architecture and fails with an IndexError.
    """
    if os.environ.get('TORCH_CUDA_ARCH_LIST') or torch.cuda.is_available():
        return
    nvcc = (os.path.join(cpp_extension.CUDA_HOME, 'bin', 'nvcc') if cpp_extension.CUDA_HOME
            else shutil.which('nvcc'))
    arch_list = default_cuda_arch_list(nvcc_architectures(nvcc))
    os.environ['TORCH_CUDA_ARCH_LIST'] = arch_list
    print(f'setup.py: no GPU visible and TORCH_CUDA_ARCH_LIST not set: building the CUDA kernels for '
          f'{arch_list} (set TORCH_CUDA_ARCH_LIST, e.g. to 9.0, to build for fewer GPUs, faster)',
          file=sys.stderr)


@dataclass(frozen=True)
class CudaToolkit:
    """The CUDA toolkit as its nvcc describes itself (``nvcc --dryrun``)."""

    nvcc: str  # the nvcc asked
    root: str  # the folder above the real nvcc's bin/: what torch's builder means by CUDA_HOME
    include_dirs: list  # the folders nvcc compiles with: its -I ...
    system_include_dirs: list  # ... and its -isystem ones (CCCL)
    library_dirs: list  # the folders it links from (-L)


def find_cuda_toolkit() -> CudaToolkit:
    """The toolkit of the nvcc torch's builder runs (``$PYTORCH_NVCC``, else ``$CUDA_HOME/bin/nvcc``).

    Unless CUDA_HOME (or CUDA_PATH) is set, torch guesses CUDA_HOME as the folder above the bin/ of the
    first nvcc on PATH. For a wrapper script (``/usr/local/bin/nvcc`` running
    ``/usr/local/cuda-X/bin/nvcc``) or a distribution's ``/usr/bin/nvcc`` that guess (``/usr/local``,
    ``/usr``) holds no libcudart, and the link fails with ``cannot find -lcudart``. nvcc itself knows
    better: ``--dryrun`` prints the folder of the real binary (``_HERE_``) and the folders it compiles
    with and links from. So the toolkit root is taken from there, except that an explicitly set
    CUDA_HOME stays the root; the include and library folders always come from nvcc.
    """
    nvcc = os.environ.get('PYTORCH_NVCC') or os.path.join(cpp_extension.CUDA_HOME or '', 'bin', 'nvcc')
    how_to_fix = ('set CUDA_HOME to the CUDA toolkit (the folder whose bin/nvcc is the compiler itself, '
                  'not a wrapper script)')
    try:
        dryrun = subprocess.run([nvcc, '--dryrun', '-E', '-x', 'cu', os.devnull, '-o', os.devnull],
                                capture_output=True, text=True, check=True).stderr
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(f'cannot ask {nvcc} where the CUDA toolkit is ({error}); {how_to_fix}')
    here, flags = None, {'INCLUDES': [], 'SYSTEM_INCLUDES': [], 'LIBRARIES': []}
    for variable, value in re.findall(r'^#\$ (\w+)=(.*)$', dryrun, re.M):
        if variable == '_HERE_':
            here = value
        elif variable in flags:
            flags[variable] += shlex.split(value)
    if os.environ.get('CUDA_HOME') or os.environ.get('CUDA_PATH'):
        root = cpp_extension.CUDA_HOME
    elif here:
        root = os.path.realpath(os.path.join(here, '..'))
    else:
        raise SystemExit(f'{nvcc} --dryrun does not say where the real nvcc is (no "#$ _HERE_=" line); '
                         f'{how_to_fix}')
    includes, system_includes, libraries = flags.values()
    toolkit = CudaToolkit(
        nvcc=nvcc,
        root=root,
        include_dirs=[os.path.realpath(flag[2:]) for flag in includes if flag.startswith('-I')],
        system_include_dirs=[os.path.realpath(path) for flag, path in zip(system_includes, system_includes[1:])
                             if flag == '-isystem'],
        library_dirs=[os.path.realpath(flag[2:]) for flag in libraries if flag.startswith('-L')],
    )
    # A distribution's nvcc that names no library folder links from the system's ones, as this build then does.
    if toolkit.library_dirs and not any(os.path.isfile(os.path.join(d, 'libcudart.so'))
                                        for d in toolkit.library_dirs):
        raise SystemExit(f'{nvcc} --dryrun names no library folder with libcudart.so '
                         f'({", ".join(toolkit.library_dirs)}); {how_to_fix}')
    if not any(os.path.isfile(os.path.join(d, 'cuda_runtime_api.h')) for d in toolkit.include_dirs):
        raise SystemExit(f'{nvcc} --dryrun names no include folder with cuda_runtime_api.h '
                         f'({", ".join(toolkit.include_dirs)}); {how_to_fix}')
    return toolkit


def build_with_cuda_toolkit(toolkit: CudaToolkit) -> None:
    """Makes torch's builder run ``toolkit.root``'s nvcc and add its include/ and lib64/, not its guess's.

    Setting the CUDA_HOME variable would be too late: torch reads it when cpp_extension is imported.
    """
    if os.path.realpath(cpp_extension.CUDA_HOME or '') != os.path.realpath(toolkit.root):
        print(f'setup.py: the CUDA toolkit is {toolkit.root} (as {toolkit.nvcc} says), not the '
              f'CUDA_HOME torch guessed, {cpp_extension.CUDA_HOME}', file=sys.stderr)
        cpp_extension.CUDA_HOME = toolkit.root


def cuda_include_dirs(toolkit: CudaToolkit) -> list:
    """Include folders for the CUDA library: the toolkit's own headers first,
    then those of the pip ``nvidia`` wheels for what the toolkit lacks.

    The toolkit's folders are the ones its nvcc searches (see
    find_cuda_toolkit); listing them first keeps other CUDA headers found
    through ``CUDA_HOME`` or torch's include path behind them. A toolkit without
    cuBLAS/cuSPARSE headers (as on build machines without a GPU) still compiles
    torch's CUDA headers with the wheels' copies. The wheels' include folders
    also hold the CUDA runtime headers, possibly of a newer CUDA than nvcc, and
    a header found in one includes its siblings from there; so they are not
    put on the path. ``build/cuda_wheel_headers`` gets links to just the
    entries (files or folders) missing from the toolkit, taken from the first
    wheel (``nvidia/cu*`` before the others) that has them.
    """
    in_toolkit = {name for d in toolkit.include_dirs + toolkit.system_include_dirs if os.path.isdir(d)
                  for name in os.listdir(d)}
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
    return [*toolkit.include_dirs, links]


def warn_if_isolated_torch(torch) -> None:
    """The kernels only load into the torch they were compiled against."""
    if 'pip-build-env' in torch.__file__:
        print(f'setup.py: compiling against torch {torch.__version__} from pip\'s isolated build '
              'environment; if the torch you run is another version the kernels will not load. '
              'Install with `pip install --no-build-isolation .` to build against yours.', file=sys.stderr)


def extensions():
    warn_if_isolated_torch(torch)

    std = cxx_standard(torch.__version__)
    common_include = [os.path.join(ROOT, 'csrc')]
    # -g0: Python's own CFLAGS carry -g; debug information makes every file that includes torch's headers
    # compile markedly slower and the library many times larger (figures: docs/get_started.md).
    cxx_flags = [f'-std={std}', '-O3', '-g0', '-fno-math-errno']
    link_flags = []
    if torch.backends.openmp.is_available():
        # at::parallel_for is an inline OpenMP region: without -fopenmp it
        # silently runs on one thread.
        cxx_flags.append('-fopenmp')
        link_flags.append('-fopenmp')
    exts = [
        cpp_extension.CppExtension(
            'mmyolo_dcnv3._C',
            sources=sorted(glob.glob('csrc/*.cpp') + glob.glob('csrc/cpu/*.cpp')),
            include_dirs=list(common_include),  # the builder appends torch's folders to it
            extra_compile_args={'cxx': cxx_flags},
            extra_link_args=link_flags,
            depends=sorted(glob.glob('csrc/**/*.h', recursive=True)),
        )
    ]
    if cuda_requested(torch):
        toolkit = find_cuda_toolkit()
        build_with_cuda_toolkit(toolkit)
        choose_cuda_arch_list(torch)
        exts.append(
            cpp_extension.CUDAExtension(
                'mmyolo_dcnv3._C_cuda',
                sources=sorted(glob.glob('csrc/cuda/*.cu')),
                include_dirs=common_include + cuda_include_dirs(toolkit),
                library_dirs=toolkit.library_dirs,
                extra_compile_args={
                    'cxx': cxx_flags,
                    'nvcc': [f'-std={std}', '-O3', '--use_fast_math',
                             '--expt-relaxed-constexpr'],
                },
                depends=sorted(glob.glob('csrc/**/*.h', recursive=True)
                               + glob.glob('csrc/**/*.cuh', recursive=True)),
            ))
    return exts


class BuildPyWithMimFolder(build_py):
    """build_py that also lays out ``mmyolo_dcnv3/.mim/{configs,tools}`` and the config-scope .pth."""

    def run(self):
        super().run()
        mim_dir = os.path.join(self.build_lib, 'mmyolo_dcnv3', '.mim')
        for folder in ('configs', 'tools'):
            target = os.path.join(mim_dir, folder)
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(os.path.join(ROOT, folder), target,
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc', '*.sh'))
        self.copy_file(os.path.join(ROOT, CONFIG_SCOPE_PTH), self.build_lib)


def read_requirements(name: str) -> list:
    """The requirements of ``requirements/<name>.txt``, comments and blank lines left out."""
    with open(os.path.join(ROOT, 'requirements', f'{name}.txt')) as f:
        lines = (line.split('#', 1)[0].strip() for line in f)
        return [line for line in lines if line]


OPENMMLAB_REQUIRES = [
    # The versions this package is built and tested with (requirements/constraints.txt):
    # mmyolo 0.6.0 needs mmcv < 2.1.0; mmcv has to be built with its ops for current torch.
    'mmcv>=2.0.0,<2.1.0',
    'mmengine>=0.10.7,<1.0.0',
    'mmdet>=3.3.0,<3.4.0',
    'mmyolo==0.6.0',
]

if __name__ == '__main__':
    setup(
        name='mmyolo-dcnv3',
        version=read_version(),
        description='DCNv3 (InternImage) for MMYOLO/YOLOv8: CPU and CUDA kernels, '
        'modules, configs and tools',
        long_description=open(os.path.join(ROOT, 'README.md'), encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        license_files=['LICENSE'],
        keywords='DCNv3, InternImage, deformable convolution, YOLOv8, MMYOLO, OpenMMLab',
        classifiers=[
            'Programming Language :: Python :: 3.10',
            'Programming Language :: Python :: 3.11',
            'Operating System :: POSIX :: Linux',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        python_requires='>=3.10,<3.12',
        packages=find_packages(include=['mmyolo_dcnv3', 'mmyolo_dcnv3.*']),
        py_modules=['mmyolo_dcnv3_config_scope'],
        ext_modules=extensions(),
        cmdclass={
            'build_py': BuildPyWithMimFolder,
            # Plain shared libraries loaded by torch.ops.load_library: no ABI suffix.
            'build_ext': cpp_extension.BuildExtension.with_options(no_python_abi_suffix=True),
        },
        # The op (mmyolo_dcnv3.ops) needs torch alone; the models, configs and tools need OpenMMLab.
        install_requires=['torch>=2.4'],
        # [deploy]: ONNX export, the runtimes and INT8 (mmyolo_dcnv3.deploy, tools/deployment/); the versions
        # tested are in requirements/constraints.txt.
        extras_require={'openmmlab': OPENMMLAB_REQUIRES, 'deploy': read_requirements('deploy')},
        zip_safe=False,
    )
