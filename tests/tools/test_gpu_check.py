"""tools/gpu_check.sh: its rehearsal passes without a GPU, and its statuses and verdict tell the truth.

The rehearsal runs with ``$GPU_CHECK_PYTHON`` if set (e.g. a clean venv with the GPU machines' torch
2.11, docs/cuda.md), else with this interpreter. Its first run for a Python and torch builds the
kernels in build/gpu_check/ (minutes on 2 cores); later runs rebuild only what changed. That cold build
keeps the rehearsal in make test-slow (run it before a GPU session); the verdict, budget and sanitizer
tests run in make test.
"""
import json
import os
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ROOT, load_tool

GPU_CHECK = os.path.join(ROOT, 'tools', 'gpu_check.sh')
REHEARSAL_PYTHON = os.environ.get('GPU_CHECK_PYTHON') or sys.executable
GPU_PHASES = ('cuda_tests', 'memcheck', 'benchmark')
gpu_check = load_tool('gpu_check.py')


def run_gpu_check(args, python=REHEARSAL_PYTHON, timeout=3600):
    env = {key: value for key, value in os.environ.items() if key != 'OUT'}
    return subprocess.run(['bash', GPU_CHECK, *args], capture_output=True, text=True, timeout=timeout,
                          env=dict(env, GPU_CHECK_PYTHON=python))


def interpreter_facts(python):
    """What ``python`` has, asked without the check's own probe."""
    code = ('import importlib.util, json, platform, shutil, torch; print(json.dumps(dict('
            'python=platform.python_version(), torch=torch.__version__, cuda=torch.version.cuda, '
            'stack=all(importlib.util.find_spec(n) for n in ("mmengine", "mmcv", "mmdet", "mmyolo")))))')
    result = subprocess.run([python, '-c', code], capture_output=True, text=True, timeout=300, check=True)
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope='module')
def rehearsal(tmp_path_factory):
    out = tmp_path_factory.mktemp('rehearsal')
    # A few op tests and the CUDA test file, whose tests (all marked cuda) must stay out of op_tests.
    result = run_gpu_check(['--rehearse', '--out', str(out), '--budget', '3000',
                            '--op-tests', 'tests/ops/test_point_order.py', 'tests/ops/test_dcnv3_cuda.py',
                            '--model-tests', 'tests/models/test_registry.py'])
    summary_file = out / 'summary.json'
    assert summary_file.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    return result, json.loads(summary_file.read_text()), out


@pytest.mark.slow
def test_rehearsal_passes_with_every_gpu_phase_skipped(rehearsal):
    result, summary, _ = rehearsal
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert summary['verdict'] == 'pass' and summary['mode'] == 'rehearsal'
    phases = {phase['name']: phase for phase in summary['phases']}
    assert list(phases) == ['environment', 'build', 'kernels', *GPU_PHASES, 'op_tests', 'model_tests']
    for name in GPU_PHASES:
        assert phases[name]['status'] == 'skipped' and 'rehearsal' in phases[name]['detail'], phases[name]
    for name in ('environment', 'build', 'kernels', 'op_tests'):
        assert phases[name]['status'] == 'ok', phases[name]
    assert all(phase['seconds'] >= 0 for phase in summary['phases'])
    assert 'gpu_check: PASS' in result.stdout


@pytest.mark.slow
def test_rehearsal_runs_the_op_tests_but_not_the_cuda_ones(rehearsal):
    _, summary, out = rehearsal
    op_tests = next(phase for phase in summary['phases'] if phase['name'] == 'op_tests')
    counts = op_tests['tests']
    assert counts['passed'] > 0 and counts['failed'] == counts['errors'] == 0
    # test_dcnv3_cuda.py's tests are deselected by their marker, not skipped.
    assert counts['skipped'] == 0
    log = (out / 'gpu_check.log').read_text()
    assert 'test_point_order.py' in log and f'{counts["passed"]} passed' in log


@pytest.mark.slow
def test_rehearsal_builds_and_loads_the_kernels_for_the_interpreters_torch(rehearsal):
    _, summary, _ = rehearsal
    facts = interpreter_facts(REHEARSAL_PYTHON)
    assert summary['versions']['python'] == facts['python'] and summary['versions']['torch'] == facts['torch']
    phases = {phase['name']: phase for phase in summary['phases']}
    assert 'cpu: loaded' in phases['kernels']['detail']
    cuda_buildable = facts['cuda'] is not None and gpu_check.find_tool('nvcc', dict(os.environ)) is not None
    assert ('cuda: loaded' in phases['kernels']['detail']) == cuda_buildable
    assert ('CUDA library not built' in phases['build']['detail']) == (not cuda_buildable)
    model_tests = phases['model_tests']
    assert model_tests['status'] == ('ok' if facts['stack'] else 'unavailable'), model_tests


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the verdict on a machine without a GPU')
def test_without_a_gpu_the_check_fails_at_the_environment_and_runs_nothing_else(tmp_path):
    result = run_gpu_check(['--out', str(tmp_path)], python=sys.executable, timeout=600)
    assert result.returncode == 1
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['verdict'] == 'fail' and summary['mode'] == 'gpu'
    environment, *later = summary['phases']
    assert environment['status'] == 'failed'
    assert 'sees no CUDA GPU' in environment['detail'] or 'not a CUDA build' in environment['detail']
    assert all(phase['status'] == 'skipped' and 'environment failed' in phase['detail'] for phase in later)


@pytest.fixture
def new_check(tmp_path):
    """Makes a gpu_check.Check writing into tmp_path/out (closed after the test)."""
    checks = []

    def make(**settings):
        checks.append(gpu_check.Check(out_dir=str(tmp_path / 'out'), **settings))
        return checks[-1]

    yield make
    for check in checks:
        check.close()


def fake_sanitizer(tmp_path, output, exit_status):
    """A compute-sanitizer that prints ``output`` and exits, whatever it is asked."""
    path = tmp_path / 'compute-sanitizer'
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {exit_status}\n")
    path.chmod(0o755)
    return str(path)


SANITIZER_ANSWERS = {
    # As on a gVisor machine: the sanitizer refuses the GPU, the program then fails at its first allocation.
    'refuses the device': ('========= COMPUTE-SANITIZER\n========= Error: Device not supported\n'
                           'RuntimeError: CUDA error: unknown error', 1, 'unavailable'),
    'finds no supported device': ('========= COMPUTE-SANITIZER\n========= Error: No supported devices found',
                                  1, 'unavailable'),
    'finds errors': ('========= COMPUTE-SANITIZER\n========= Invalid __global__ read of size 16 bytes\n'
                     'memcheck calls done\n========= ERROR SUMMARY: 2 errors', 3, 'failed'),
    'finds errors and mentions an unsupported device': (
        '========= Warning: Device not supported for racecheck\n========= Invalid __global__ write of size 4 '
        'bytes\n========= ERROR SUMMARY: 1 error', 3, 'failed'),
    'sees the program crash': ('========= COMPUTE-SANITIZER\nRuntimeError: CUDA error: an illegal memory access\n'
                               '========= ERROR SUMMARY: 0 errors', 1, 'failed'),
    'finds nothing wrong': ('========= COMPUTE-SANITIZER\nmemcheck calls done\n========= ERROR SUMMARY: 0 errors',
                            0, 'ok'),
}


@pytest.mark.parametrize('answer', SANITIZER_ANSWERS)
def test_memcheck_reports_a_sanitizer_that_cannot_run_as_unavailable_and_errors_as_failed(
        tmp_path, new_check, answer):
    output, exit_status, expected = SANITIZER_ANSWERS[answer]
    check = new_check()
    check.info = dict(compute_sanitizer=fake_sanitizer(tmp_path, output, exit_status))
    result = gpu_check.memcheck(check, cap_s=60)
    assert result.status == expected, result


def test_memcheck_is_unavailable_without_a_sanitizer(new_check):
    check = new_check()
    check.info = dict(compute_sanitizer=None)  # what the environment phase records when find_tool finds none
    result = gpu_check.memcheck(check, cap_s=60)
    assert result.status == 'unavailable' and 'not found' in result.detail


def test_a_phase_gets_at_most_what_is_left_of_the_budget_and_its_children_are_stopped(new_check):
    check = new_check(budget_s=2)
    # The child starts a grandchild that would outlive it, then waits.
    code = ('import subprocess, sys, time; child = subprocess.Popen(["sleep", "600"]); '
            'print(child.pid, flush=True); time.sleep(600)')
    finished = check.run([sys.executable, '-c', code], cap_s=600)
    assert finished.timed_out and finished.limit_s <= 2
    grandchild = int(finished.output.split()[0])
    # The kill is sent to the whole process group; a loaded machine may take a moment to act on it.
    state = None
    for _ in range(100):
        try:
            with open(f'/proc/{grandchild}/stat') as stat:
                state = stat.read().split(') ')[1][0]
        except FileNotFoundError:
            state = 'reaped'
        if state in ('Z', 'reaped'):  # stopped: only its exit status is left, or not even that
            break
        time.sleep(0.05)
    assert state in ('Z', 'reaped'), state


def test_a_phase_not_started_for_lack_of_budget_is_a_timeout_and_fails_the_verdict(tmp_path, new_check):
    check = new_check(rehearse=True, budget_s=0)
    assert gpu_check.run_check(check) == 'fail'
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    environment, *later = summary['phases']
    assert environment['status'] == 'timeout' and 'not started' in environment['detail']
    assert all(phase['status'] == 'skipped' for phase in later)
    assert summary['verdict'] == 'fail' and 'environment timeout' in summary['reason']


@pytest.mark.parametrize('rehearse,statuses,expected', [
    (False, dict(memcheck='unavailable', model_tests='unavailable'), 'pass'),
    (False, dict(cuda_tests='unavailable'), 'fail'),  # e.g. no pytest: the kernels went untested
    (False, dict(benchmark='timeout'), 'fail'),
    (False, dict(op_tests='failed'), 'fail'),
    (True, dict(cuda_tests='skipped', memcheck='skipped', benchmark='skipped'), 'pass'),
    (True, dict(cuda_tests='skipped', memcheck='skipped', benchmark='skipped', op_tests='unavailable'), 'fail'),
])
def test_verdict_needs_the_phases_the_check_is_for_and_no_failure(new_check, rehearse, statuses, expected):
    results = {phase.name: gpu_check.Result(statuses.get(phase.name, 'ok'), '') for phase in gpu_check.PHASES}
    assert gpu_check.verdict(new_check(rehearse=rehearse), results)[0] == expected
