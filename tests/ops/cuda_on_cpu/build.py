"""Builds the CUDA-on-CPU test library: ``csrc/cuda/dcnv3_cuda.cu`` compiled by g++ for the host.

The library (``dcnv3_cuda_on_cpu.cpp`` here, which includes the .cu) is for the tests only: it is not in the
wheel and registers its ops in the namespace ``mmyolo_dcnv3_cuda_on_cpu``. It is compiled against the torch
that runs the tests, with the C++ standard that setup.py uses for it, and cached under ``build/cuda_on_cpu/``,
named by a hash of its sources and flags, so that building it again is free. Needs no GPU and no nvcc.
"""
import functools
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch
from torch.utils import cpp_extension

HERE = Path(__file__).resolve().parent
REPOSITORY_DIR = HERE.parents[2]
CACHE_DIR = REPOSITORY_DIR / 'build' / 'cuda_on_cpu'
NAMESPACE = 'mmyolo_dcnv3_cuda_on_cpu'
# -g for the file and line in a sanitizer's report; the plain build goes without, which compiles faster.
SANITIZER_FLAGS = ('-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-omit-frame-pointer')


def compiler():
    """The path of g++, or None."""
    return shutil.which('g++')


@functools.lru_cache(maxsize=None)
def cxx_standard() -> str:
    """setup.py's choice for the installed torch (C++20 from torch 2.14, C++17 before)."""
    spec = importlib.util.spec_from_file_location('mmyolo_dcnv3_setup', REPOSITORY_DIR / 'setup.py')
    setup_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup_module)  # not __main__: runs no setup()
    return setup_module.cxx_standard(torch.__version__)


def library_command(csrc: Path, sanitize: bool, output: Path) -> list:
    torch_lib = Path(torch.__file__).parent / 'lib'
    return [
        compiler(), f'-std={cxx_standard()}', '-shared', '-fPIC', '-O1', '-fno-math-errno', '-Wall',
        f'-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}',
        *(SANITIZER_FLAGS if sanitize else ()),
        # The stand-ins for ATen's and c10's CUDA headers come before torch's own.
        f'-I{HERE / "include"}', f'-I{HERE}', f'-I{csrc}', *(f'-I{d}' for d in cpp_extension.include_paths()),
        str(HERE / 'dcnv3_cuda_on_cpu.cpp'), '-o', str(output),
        f'-L{torch_lib}', '-lc10', '-ltorch_cpu', '-ltorch', f'-Wl,-rpath,{torch_lib}',
    ]


def cached_build(name: str, suffix: str, command, folders) -> Path:
    """``command(output)`` run unless the cache holds its result: named by a hash of the command and of the
    C++ files under ``folders`` (by their paths relative to their folder, so a copy of csrc/ is cached too)."""
    if compiler() is None:
        raise FileNotFoundError('g++ is not installed')
    digest = hashlib.sha256(torch.__version__.encode() + b'\0')
    for part in command(Path('OUTPUT')):
        for index, folder in enumerate(folders):
            part = part.replace(str(folder), f'FOLDER{index}')
        digest.update(part.encode() + b'\0')
    for index, folder in enumerate(folders):
        for path in sorted(p for p in folder.rglob('*') if p.suffix in ('.h', '.cpp', '.cu', '.cuh')):
            digest.update(f'{index}/{path.relative_to(folder)}'.encode() + b'\0' + path.read_bytes())
    target = CACHE_DIR / f'{name}-{digest.hexdigest()[:16]}{suffix}'
    if target.exists():
        return target
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Built under another name and renamed: a concurrent run never loads half a file.
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch:
        partial = Path(scratch) / target.name
        result = subprocess.run(command(partial), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f'building {target.name} failed:\n{result.stderr[-6000:]}')
        os.replace(partial, target)
    return target


def build(csrc: Path = REPOSITORY_DIR / 'csrc', sanitize: bool = False) -> Path:
    """The library compiled from ``csrc`` (a copy may carry a planted bug), with ASan and UBSan if
    ``sanitize``. Raises RuntimeError with the compiler's output if the build fails."""
    csrc = Path(csrc).resolve()
    name = f'{NAMESPACE}{"-asan" if sanitize else ""}'
    return cached_build(name, '.so', lambda output: library_command(csrc, sanitize, output), [csrc, HERE])


def build_runtime_checks() -> Path:
    """The program of runtime_checks.cpp: the runtime's own checks, without torch."""
    return cached_build('runtime_checks', '', lambda output: [
        compiler(), '-std=c++17', '-O1', '-g', '-Wall', f'-I{HERE}', str(HERE / 'runtime_checks.cpp'), '-o',
        str(output)], [HERE])


def sanitizer_environment() -> dict:
    """Environment variables for a Python process that loads a sanitizer build: the ASan runtime must be
    loaded first (Python itself is not instrumented), with the C++ library right after it (else ASan finds
    no __cxa_throw to intercept and aborts at torch's first exception); leaks of the interpreter are not
    reported, and UBSan stops at the first finding."""
    preload = [subprocess.run([compiler(), f'-print-file-name={name}'], capture_output=True, text=True,
                              check=True).stdout.strip() for name in ('libasan.so', 'libstdc++.so')]
    return dict(LD_PRELOAD=' '.join(preload), ASAN_OPTIONS='detect_leaks=0:abort_on_error=1',
                UBSAN_OPTIONS='print_stacktrace=1:halt_on_error=1')
