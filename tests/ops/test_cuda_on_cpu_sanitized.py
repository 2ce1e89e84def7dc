"""The CUDA-on-CPU tier built with AddressSanitizer and UBSan, and planted bugs that it must catch.

The sanitizer build runs test_cuda_on_cpu.py in a subprocess (the ASan runtime must be loaded before Python's
own libraries). Each planted bug is a one-place change in a copy of csrc/ of a kind that would give wrong
results or memory errors on a GPU; the tier built from that copy must stop the probe
(cuda_on_cpu/probe.py, which the real source passes) with the expected diagnosis.
"""
import os
import shutil
import sys
import time

import pytest

from tests.conftest import ROOT, run_command
from tests.ops.conftest import LIBRARY_VARIABLE, skip_without_compiler
from tests.ops.cuda_on_cpu import build

# name: (file under csrc/, text that must occur exactly once, its replacement, the expected diagnosis)
PLANTED_BUGS = {
    # Lanes past the last thread leave the grid-stride loop, and so miss their warp's shuffles.
    'loop bound per thread before the shuffle': (
        'cuda/dcnv3_cuda_kernels.cuh', 'base < threads;', 'base + threadIdx.x < threads;',
        'has exited'),
    # Vector loads of a misaligned input.
    'pack width ignores alignment': (
        'common/dcnv3_thread_bodies.h', '    if (aligned) return v;', '    return v;',
        'misaligned address'),
    # Neighbours outside the image are read (with weight zero): outside the tensor at the image's corners.
    'bounds check dropped': (
        'common/dcnv3_thread_bodies.h', '      if (!b.inside[k]) continue;\n      const Pack<scalar_t, V> v =',
        '      const Pack<scalar_t, V> v =', 'heap-buffer-overflow'),
}


@pytest.fixture(scope='module')
def sanitizer_environment():
    skip_without_compiler()
    return build.sanitizer_environment()


def probe(library, environment):
    return run_command([sys.executable, '-m', 'tests.ops.cuda_on_cpu.probe', str(library)], env=environment,
                       check=False, timeout=600, cwd=ROOT)


@pytest.mark.slow
def test_tier_passes_under_address_and_undefined_behaviour_sanitizers(sanitizer_environment, capsys):
    started = time.monotonic()
    library = build.build(sanitize=True)
    built = time.monotonic()
    result = run_command([sys.executable, '-m', 'pytest', 'tests/ops/test_cuda_on_cpu.py', '-q', '-p',
                          'no:cacheprovider'], env={**sanitizer_environment, LIBRARY_VARIABLE: str(library)},
                         check=False, timeout=1800, cwd=ROOT)
    finished = time.monotonic()
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ''
    with capsys.disabled():
        print(f'\nCUDA-on-CPU tier under ASan+UBSan: build {built - started:.0f} s (0 when cached), '
              f'tests {finished - built:.0f} s: {summary}')
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-5000:]
    assert 'passed' in summary and 'skipped' not in summary and 'failed' not in summary


@pytest.mark.slow
def test_probe_passes_on_the_real_source(sanitizer_environment):
    result = probe(build.build(sanitize=True), sanitizer_environment)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert 'every result matches the reference' in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize('name', PLANTED_BUGS)
def test_planted_bug_is_caught(sanitizer_environment, tmp_path, name):
    relative, original, replacement, diagnosis = PLANTED_BUGS[name]
    csrc = tmp_path / 'csrc'
    shutil.copytree(os.path.join(ROOT, 'csrc'), csrc)
    source = (csrc / relative).read_text()
    assert source.count(original) == 1, f'the text to replace occurs {source.count(original)} times in {relative}'
    (csrc / relative).write_text(source.replace(original, replacement))
    result = probe(build.build(csrc, sanitize=True), sanitizer_environment)
    assert result.returncode != 0 and diagnosis in result.stderr, result.stdout[-3000:] + result.stderr[-5000:]
