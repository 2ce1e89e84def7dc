"""GPU check of the CUDA kernels: one true verdict within one device call.

Run it through ``tools/gpu_check.sh``, which picks the interpreter (``$GPU_CHECK_PYTHON``, else the
``python3`` or ``python`` that has torch). This driver itself uses the standard library alone and runs
every phase as a child process under a time limit, so a crash or a hang in a phase is reported, not
suffered. It needs torch, pytest and, for the CUDA build, nvcc; nothing of OpenMMLab.

    bash tools/gpu_check.sh               # on a machine with a CUDA GPU
    bash tools/gpu_check.sh --rehearse    # anywhere: everything but the CUDA execution

Phases, in order of value, so that a slow build squeezes the least valuable ones; each gets at most
its cap and what is left of the budget (``--budget``, default 540 s, inside the device call's 600 s;
the caps are for that default and scale with ``--budget``, for a rehearsal on a slow machine):

=============  =====  ====================================================================
phase          cap s  what
=============  =====  ====================================================================
environment       60  Python, torch, CUDA, GPUs, nvcc, pytest, compute-sanitizer, the stack
build            300  ``setup.py build_ext --inplace`` in a work copy of the sources, CUDA
                      library included (for the visible GPU's architecture)
kernels           60  the CPU and CUDA libraries load into this torch, or why not
cuda_tests       150  the tests marked ``cuda`` under ``--op-tests``, slow ones included,
                      ``CUDA_LAUNCH_BLOCKING=1``; a skipped test counts as a failure
memcheck         120  ``compute-sanitizer --tool memcheck`` on small forward and backward calls
benchmark         90  ``tools/analysis_tools/benchmark_op.py --device cuda`` (float32, and
                      the kernel in bfloat16 beside it)
op_tests         150  the other tests under ``--op-tests`` (CPU kernels, the rest); skips allowed
model_tests      150  ``--model-tests`` when the OpenMMLab stack imports (its wheels carried)
=============  =====  ====================================================================

Each phase ends ``ok``, ``failed``, ``timeout`` (over its cap or cut by the budget, or not started
because the budget was spent), ``unavailable`` (a tool it needs is missing or refuses the machine:
compute-sanitizer absent or answering "Device not supported", the OpenMMLab stack not importable) or
``skipped`` (a GPU phase in a rehearsal; every phase after a failed environment, build or kernels
phase). The verdict is ``pass`` when no phase failed or timed out and the phases the check exists for
are ``ok``: environment, build, kernels and cuda_tests on a GPU; environment, build, kernels and
op_tests in a rehearsal. The exit status is 0 for ``pass`` only.

``--rehearse`` needs no GPU: it builds the CPU library and, where nvcc and a CUDA build of torch are
found, compiles and links the CUDA library too, loads them and runs the op tests; the GPU phases are
``skipped``, never ``ok``.

The build runs in ``build/gpu_check/py<X.Y>-torch<version>/``, a copy of the sources the build and the
tests read (``WORK_COPY``), so the checkout's own libraries are never rebuilt for another torch, and
a later run with the same Python and torch recompiles only what changed.

Results, in ``--out`` (default ``$OUT``, else ``gpu_check_out``): ``gpu_check.log`` (every phase's
full output), ``summary.json`` (rewritten after each phase: per phase its name, status, seconds,
detail and test counts; the verdict; the versions) and ``benchmark.json``.
"""
import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BUDGET_S = 540
# A phase is not started with less than this left of the budget: it could not finish.
MIN_PHASE_S = 5
# What the build and the tests read, copied into the work copy.
WORK_COPY = ('setup.py', 'pyproject.toml', 'README.md', 'LICENSE', 'mmyolo_dcnv3_config_scope.py',
             'mmyolo_dcnv3_config_scope.pth', 'csrc', 'mmyolo_dcnv3', 'configs', 'requirements', 'tests', 'tools')
# Build outputs and caches: never copied, never deleted from the work copy.
NOT_COPIED = re.compile(r'^(__pycache__|\.pytest_cache|\.hypothesis|.*\.so|.*\.pyc|.*\.egg-info)$')
# The lent GPUs (H100, H200): what a rehearsal compiles the CUDA library for unless told otherwise.
REHEARSAL_CUDA_ARCH = '9.0'
STACK = ('mmengine', 'mmcv', 'mmdet', 'mmyolo')
# What compute-sanitizer prints when it cannot work on this machine's GPU (seen on a gVisor machine:
# "Device not supported", then CUDA error 999 at the first allocation).
SANITIZER_REFUSALS = re.compile(r'device not supported|no supported devices|not supported on this (device|platform)',
                                re.IGNORECASE)
STATUSES = ('ok', 'failed', 'timeout', 'unavailable', 'skipped')
RESULT_TAG = 'GPU_CHECK_RESULT '

ENVIRONMENT_PROBE = f'''
import importlib.util, json, platform, sys
info = dict(python=platform.python_version(), executable=sys.executable)
try:
    import torch
except Exception as error:
    info["torch_error"] = f"{{type(error).__name__}}: {{error}}"
else:
    count = torch.cuda.device_count() if torch.version.cuda else 0
    info.update(torch=torch.__version__, cuda=torch.version.cuda,
                gpus=[torch.cuda.get_device_name(i) for i in range(count)],
                capability=".".join(map(str, torch.cuda.get_device_capability(0))) if count else None)
try:
    import pytest
    info["pytest"] = pytest.__version__
except ImportError:
    info["pytest"] = None
info["stack_missing"] = [name for name in {STACK!r} if importlib.util.find_spec(name) is None]
print({RESULT_TAG!r} + json.dumps(info))
'''

KERNELS_PROBE = f'''
import json
from mmyolo_dcnv3.ops._library import compiled_kernels
kernels = compiled_kernels()
why_not = {{device: "" if kernels.available(device) else kernels.why_missing(device) for device in ("cpu", "cuda")}}
print({RESULT_TAG!r} + json.dumps(why_not))
'''

# Small calls over the kernel variants: vector widths 1/2/4/8, warp-shuffle and atomic reductions, a
# misaligned input, remove_center, float16/bfloat16/float64.
MEMCHECK_CALLS = '''
import torch
from tests.ops.dcnv3_testing import Case, at_storage_offset_1
ops = torch.ops.mmyolo_dcnv3
for dtype, group_channels, misaligned in [(torch.float32, 16, False), (torch.float32, 24, False),
                                          (torch.float32, 5, False), (torch.float64, 64, False),
                                          (torch.float16, 256, False), (torch.bfloat16, 8, False),
                                          (torch.float32, 16, True)]:
    for remove_center in (False, True):
        case = Case(group=2, group_channels=group_channels, stride=(2, 1), remove_center=remove_center)
        input, offset, mask = case.tensors(dtype=dtype, device="cuda")
        if misaligned:
            input = at_storage_offset_1(input)
        output = ops.dcnv3_forward(input, offset, mask, *case.op_args())
        ops.dcnv3_backward(input, offset, mask, torch.randn_like(output), *case.op_args())
torch.cuda.synchronize()
print("memcheck calls done")
'''


@dataclass
class Result:
    """How a phase ended. ``tests``: pytest's counts, for the test phases."""

    status: str
    detail: str
    tests: Optional[Dict[str, int]] = None

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f'status must be one of {STATUSES}, got {self.status!r}')


@dataclass
class Finished:
    """A child process's end: its exit status (None when it was stopped at its time limit) and output."""

    returncode: Optional[int]
    output: str
    limit_s: int

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


@dataclass
class Check:
    """One run of the check: its settings, what the environment phase found, the log, the budget."""

    out_dir: str
    rehearse: bool = False
    budget_s: int = DEFAULT_BUDGET_S
    op_tests: List[str] = field(default_factory=lambda: ['tests/ops'])
    model_tests: List[str] = field(default_factory=lambda: ['tests/models'])
    python: str = sys.executable
    env: Dict[str, str] = field(default_factory=lambda: dict(os.environ))
    started: float = field(default_factory=time.monotonic)
    # Filled in by the phases.
    info: dict = field(default_factory=dict)
    work_dir: str = ''
    cuda_built: bool = False
    # The output of the last child, for a failed phase's printout.
    last_output: str = ''
    log_path: str = field(init=False)

    def __post_init__(self):
        os.makedirs(self.out_dir, exist_ok=True)
        self.log_path = os.path.join(self.out_dir, 'gpu_check.log')
        open(self.log_path, 'wb').close()
        # Unbuffered and appending: the children write into the same file, each output after the last.
        self.log_file = open(self.log_path, 'ab', buffering=0)

    def close(self) -> None:
        self.log_file.close()

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def left_s(self) -> float:
        return self.budget_s - self.elapsed_s()

    def log(self, text: str) -> None:
        self.log_file.write(text.encode())

    def run(self, args: List[str], cap_s: int, env: Optional[Dict[str, str]] = None,
            cwd: Optional[str] = None) -> Finished:
        """Runs ``args`` with its output into the log, for at most ``cap_s`` (a cap for the default budget,
        scaled with ``budget_s``) and what is left of the budget.

        The child gets a process group of its own, so that at the limit its children (compilers, pytest's
        subprocesses) are stopped with it.
        """
        limit_s = max(1, int(min(cap_s * self.budget_s / DEFAULT_BUDGET_S, self.left_s())))
        self.log(f'$ {shlex.join(args)}\n')
        start = os.path.getsize(self.log_path)
        process = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=cwd or self.work_dir or REPOSITORY, env=env or self.env,
                                   start_new_session=True)
        try:
            returncode = process.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            stop_process_group(process)
            returncode = None
        with open(self.log_path, 'rb') as log:
            log.seek(start)
            self.last_output = log.read().decode(errors='replace')
        if returncode is None:
            self.log(f'\n[gpu_check] stopped after {limit_s} s\n')
        return Finished(returncode, self.last_output, limit_s)

    def work_env(self, **extra: str) -> Dict[str, str]:
        """The environment of a child that imports the work copy's package and tests."""
        python_path = os.pathsep.join(p for p in (self.work_dir, self.env.get('PYTHONPATH', '')) if p)
        return {**self.env, 'PYTHONPATH': python_path, **extra}

    def out_of_time(self, finished: Finished) -> str:
        """Why a child was stopped: its phase's cap or the budget."""
        spent = f'{self.elapsed_s():.0f} s of the {self.budget_s} s budget used'
        return f'stopped at its limit of {finished.limit_s} s ({spent})'


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the child's process group, SIGKILL to what is left of it 10 s later."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group is gone
        pass
    process.wait()


def tagged_result(output: str) -> Optional[dict]:
    """The JSON a probe printed after ``RESULT_TAG`` (its last such line), or None."""
    lines = [line for line in output.splitlines() if line.startswith(RESULT_TAG)]
    return json.loads(lines[-1][len(RESULT_TAG):]) if lines else None


def output_end(output: str, lines: int = 3) -> str:
    """The last non-empty lines of an output, on one line, for a detail."""
    return ' | '.join([line.strip() for line in output.splitlines() if line.strip()][-lines:])


def find_tool(name: str, env: Dict[str, str]) -> Optional[str]:
    """``name`` on PATH, else in ``$CUDA_HOME/bin``, else in ``/usr/local/cuda/bin``."""
    found = shutil.which(name, path=env.get('PATH', ''))
    if found:
        return found
    for folder in (env.get('CUDA_HOME'), '/usr/local/cuda'):
        candidate = os.path.join(folder, 'bin', name) if folder else ''
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def sync_tree(source: str, target: str) -> None:
    """Makes ``target`` hold ``source``'s files (modification times kept, so the build sees what changed),
    copying only what differs and removing what ``source`` no longer has; NOT_COPIED names stay as they are."""
    os.makedirs(target, exist_ok=True)
    names = {name for name in os.listdir(source) if not NOT_COPIED.match(name)}
    for name in os.listdir(target):
        if name not in names and not NOT_COPIED.match(name):
            remove(os.path.join(target, name))
    for name in names:
        src, dst = os.path.join(source, name), os.path.join(target, name)
        if os.path.isdir(src) != os.path.isdir(dst) and os.path.lexists(dst):
            remove(dst)
        if os.path.isdir(src):
            sync_tree(src, dst)
        elif not os.path.exists(dst) or file_stamp(src) != file_stamp(dst):
            shutil.copy2(src, dst)


def file_stamp(path: str) -> tuple:
    stat = os.stat(path)
    return stat.st_size, stat.st_mtime_ns


def remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def junit_counts(path: str) -> Dict[str, int]:
    """passed/failed/errors/skipped of a pytest --junitxml report."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == 'testsuite' else root.findall('testsuite')
    counts = {key: sum(int(suite.get(key, 0)) for suite in suites)
              for key in ('tests', 'failures', 'errors', 'skipped')}
    return dict(passed=counts['tests'] - counts['failures'] - counts['errors'] - counts['skipped'],
                failed=counts['failures'], errors=counts['errors'], skipped=counts['skipped'])


def failed_test_ids(path: str, limit: int = 5) -> List[str]:
    """The first ``limit`` failed or erroneous tests of a --junitxml report, as ``module::name``."""
    ids = []
    for case in ET.parse(path).getroot().iter('testcase'):
        if case.find('failure') is not None or case.find('error') is not None:
            ids.append(f"{case.get('classname', '')}::{case.get('name', '')}")
    return ids[:limit]


def run_pytest(check: Check, cap_s: int, name: str, paths: List[str], marker: str, no_skips: bool,
               extra_args: List[str] = (), env: Optional[Dict[str, str]] = None) -> Result:
    """pytest over ``paths`` with ``-m marker``; ok when something passed and nothing failed (nor, with
    ``no_skips``, skipped)."""
    if not check.info.get('pytest'):
        return Result('unavailable', f'{check.python} cannot import pytest (carry its wheel: docs/cuda.md)')
    os.makedirs(os.path.join(check.work_dir, 'build'), exist_ok=True)
    report = os.path.join(check.work_dir, 'build', f'{name}.xml')
    if os.path.exists(report):
        os.remove(report)
    finished = check.run([check.python, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-rs', '--tb=short',
                          '--durations=5', '-m', marker, f'--junitxml={report}', *extra_args, *paths],
                         cap_s, env=env or check.work_env())
    if finished.timed_out:
        return Result('timeout', check.out_of_time(finished))
    if not os.path.exists(report):
        return Result('failed', f'pytest left no report (exit {finished.returncode}): {output_end(finished.output)}')
    counts = junit_counts(report)
    summary = ', '.join(f'{n} {key}' for key, n in counts.items())
    if counts['failed'] or counts['errors']:
        return Result('failed', f'{summary}; first: {", ".join(failed_test_ids(report))}', counts)
    if counts['passed'] == 0:
        return Result('failed', f'{summary}: no test passed (exit {finished.returncode})', counts)
    if no_skips and counts['skipped']:
        return Result('failed', f'{summary}: a skipped test counts as a failure here', counts)
    if finished.returncode != 0:
        return Result('failed', f'{summary}, but pytest exited {finished.returncode}', counts)
    return Result('ok', summary, counts)


# ---- the phases ---------------------------------------------------------------------------------------------

def environment(check: Check, cap_s: int) -> Result:
    finished = check.run([check.python, '-c', ENVIRONMENT_PROBE], cap_s, cwd=REPOSITORY)
    if finished.timed_out:
        return Result('timeout', check.out_of_time(finished))
    info = tagged_result(finished.output)
    if info is None:
        return Result('failed', f'{check.python} did not run the probe: {output_end(finished.output)}')
    nvcc = find_tool('nvcc', check.env)
    sanitizer = find_tool('compute-sanitizer', check.env)
    info.update(nvcc=nvcc, nvcc_version=nvcc and nvcc_release(nvcc), compute_sanitizer=sanitizer)
    check.info = info
    if 'torch_error' in info:
        return Result('failed', f'{check.python} (Python {info["python"]}) cannot import torch: {info["torch_error"]}')
    gpus = ', '.join(info['gpus']) or 'none'
    detail = (f'Python {info["python"]}, torch {info["torch"]} (CUDA {info["cuda"]}), GPUs: {gpus}'
              f'{" (sm " + info["capability"] + ")" if info["capability"] else ""}; '
              f'nvcc {info["nvcc_version"] or "not found"}; pytest {info["pytest"] or "not importable"}; '
              f'compute-sanitizer {"found" if sanitizer else "not found"}; OpenMMLab stack '
              f'{"importable" if not info["stack_missing"] else "missing " + ", ".join(info["stack_missing"])}')
    if not check.rehearse and not info['gpus']:
        why = 'torch is not a CUDA build' if info['cuda'] is None else 'torch sees no CUDA GPU'
        return Result('failed', f'{why} ({detail}); --rehearse checks the rest without a GPU')
    return Result('ok', detail)


def nvcc_release(nvcc: str) -> Optional[str]:
    """'13.0' from ``nvcc --version``, or None if it does not answer."""
    try:
        answer = subprocess.run([nvcc, '--version'], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'release (\d+\.\d+)', answer)
    return match.group(1) if match else None


def build(check: Check, cap_s: int) -> Result:
    info = check.info
    nvcc = info['nvcc']
    if check.rehearse:
        why_no_cuda = ('nvcc not found' if nvcc is None else
                       f'torch {info["torch"]} is not a CUDA build' if info['cuda'] is None else '')
    elif nvcc is None:
        return Result('failed', 'nvcc not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin): '
                                'the CUDA kernels cannot be built')
    else:
        why_no_cuda = ''
    check.cuda_built = not why_no_cuda
    tag = f'py{".".join(info["python"].split(".")[:2])}-torch{info["torch"]}'
    check.work_dir = os.path.join(REPOSITORY, 'build', 'gpu_check', tag)
    os.makedirs(check.work_dir, exist_ok=True)
    for entry in WORK_COPY:
        source, target = os.path.join(REPOSITORY, entry), os.path.join(check.work_dir, entry)
        if os.path.isdir(source):
            sync_tree(source, target)
        else:
            shutil.copy2(source, target)
    env = check.work_env(FORCE_CUDA='1' if check.cuda_built else '0',
                         MAX_JOBS=check.env.get('MAX_JOBS', str(os.cpu_count() or 1)))
    if check.cuda_built:
        env['PATH'] = os.pathsep.join([os.path.dirname(nvcc), env.get('PATH', '')])
        env.setdefault('TORCH_CUDA_ARCH_LIST', info['capability'] or REHEARSAL_CUDA_ARCH)
    names = ['_C', '_C_cuda'] if check.cuda_built else ['_C']
    if not check.cuda_built:  # a CUDA library of an earlier run would be loaded as if built now
        stale = os.path.join(check.work_dir, 'mmyolo_dcnv3', '_C_cuda.so')
        if os.path.exists(stale):
            os.remove(stale)
    finished = check.run([check.python, 'setup.py', 'build_ext', '--inplace'], cap_s, env=env)
    if finished.timed_out:
        return Result('timeout', check.out_of_time(finished))
    if finished.returncode != 0:
        return Result('failed', f'setup.py build_ext exited {finished.returncode}: {output_end(finished.output)}')
    missing = [f'{name}.so' for name in names
               if not os.path.exists(os.path.join(check.work_dir, 'mmyolo_dcnv3', f'{name}.so'))]
    if missing:
        return Result('failed', f'setup.py build_ext succeeded but left no {", ".join(missing)}')
    standard = re.search(r'-std=(c\+\+\d+)', finished.output)
    cuda = (f'CUDA for {env["TORCH_CUDA_ARCH_LIST"]}' if check.cuda_built
            else f'CUDA library not built: {why_no_cuda}')
    detail = (f'{compiled_files(finished.output)}{" (" + standard.group(1) + ")" if standard else ""}; {cuda}; '
              f'in {os.path.relpath(check.work_dir, REPOSITORY)}')
    return Result('ok', detail)


def compiled_files(build_output: str) -> str:
    """What ``setup.py build_ext`` compiled, per library: '_C: 6 files compiled, _C_cuda: up to date'."""
    sections = re.split(r"^building 'mmyolo_dcnv3\.(\w+)' extension$", build_output, flags=re.MULTILINE)
    parts = []
    for name, section in zip(sections[1::2], sections[2::2]):
        steps = len(re.findall(r'^\[\d+/\d+\] ', section, flags=re.MULTILINE))  # ninja's, one per file
        parts.append(f'{name}: ' + ('up to date' if 'ninja: no work to do' in section
                                    else f'{steps} file{"s" if steps > 1 else ""} compiled' if steps else 'built'))
    return ', '.join(parts) or 'nothing built'


def kernels(check: Check, cap_s: int) -> Result:
    finished = check.run([check.python, '-c', KERNELS_PROBE], cap_s, env=check.work_env())
    if finished.timed_out:
        return Result('timeout', check.out_of_time(finished))
    missing = tagged_result(finished.output)
    if missing is None:
        return Result('failed', f'the kernels probe crashed (exit {finished.returncode}): '
                                f'{output_end(finished.output)}')
    needed = ('cpu', 'cuda') if check.cuda_built else ('cpu',)
    detail = '; '.join(f'{device}: {"loaded" if not missing[device] else "NOT usable: " + missing[device]}'
                       for device in needed)
    return Result('failed' if any(missing[device] for device in needed) else 'ok', detail)


def cuda_tests(check: Check, cap_s: int) -> Result:
    deselect, note = [], ''
    if len(check.info['gpus']) < 2:
        test = 'tests/ops/test_dcnv3_cuda.py::test_cuda_on_a_second_gpu'
        deselect, note = ['--deselect', test], f'; {test.split("::")[1]} not run: one GPU'
    result = run_pytest(check, cap_s, 'cuda_tests', check.op_tests, 'cuda', no_skips=True, extra_args=deselect,
                        env=check.work_env(CUDA_LAUNCH_BLOCKING='1'))
    result.detail += note
    return result


def memcheck(check: Check, cap_s: int) -> Result:
    sanitizer = check.info.get('compute_sanitizer')
    if sanitizer is None:
        return Result('unavailable', 'compute-sanitizer not found (PATH, $CUDA_HOME/bin, /usr/local/cuda/bin)')
    # Without the caching allocator every tensor is its own allocation, so an access past its end is caught.
    finished = check.run([sanitizer, '--tool', 'memcheck', '--error-exitcode', '3', '--print-limit', '20',
                          check.python, '-c', MEMCHECK_CALLS], cap_s,
                         env=check.work_env(PYTORCH_NO_CUDA_MEMORY_CACHING='1'))
    return memcheck_result(check, finished)


def memcheck_result(check: Check, finished: Finished) -> Result:
    """ok only for a clean run that got to its end; a sanitizer that refuses the GPU is unavailable."""
    if finished.timed_out:
        return Result('timeout', check.out_of_time(finished))
    summaries = re.findall(r'ERROR SUMMARY: (\d+) errors?', finished.output)
    refusal = SANITIZER_REFUSALS.search(finished.output)
    if refusal and not any(int(n) for n in summaries):
        line = next(line for line in finished.output.splitlines() if SANITIZER_REFUSALS.search(line))
        return Result('unavailable', f'compute-sanitizer cannot check this GPU: {line.strip(" =")}')
    if finished.returncode == 0 and summaries and 'memcheck calls done' in finished.output:
        return Result('ok', f'ERROR SUMMARY: {summaries[-1]} errors')
    errors = f'ERROR SUMMARY: {summaries[-1]} errors' if summaries else 'no error summary'
    return Result('failed', f'exit {finished.returncode}, {errors}: {output_end(finished.output)}')


def benchmark(check: Check, cap_s: int) -> Result:
    result_file = os.path.join(check.out_dir, 'benchmark.json')
    finished = check.run([check.python, 'tools/analysis_tools/benchmark_op.py', '--device', 'cuda',
                          '--dtype', 'float32', '--json', result_file], cap_s, env=check.work_env())
    if finished.timed_out:
        return Result('timeout', check.out_of_time(finished))
    if finished.returncode != 0:
        return Result('failed', f'exit {finished.returncode}: {output_end(finished.output)}')
    medians = [line for line in finished.output.splitlines() if line.startswith('medians')]
    return Result('ok', medians[-1] if medians else f'see {result_file}')


def op_tests(check: Check, cap_s: int) -> Result:
    return run_pytest(check, cap_s, 'op_tests', check.op_tests, 'not cuda and not slow', no_skips=False)


def model_tests(check: Check, cap_s: int) -> Result:
    if check.info['stack_missing']:
        return Result('unavailable', f'the OpenMMLab stack is not importable (missing '
                                     f'{", ".join(check.info["stack_missing"])}; carry its wheels: docs/cuda.md)')
    return run_pytest(check, cap_s, 'model_tests', check.model_tests, 'not slow', no_skips=False)


@dataclass(frozen=True)
class Phase:
    name: str
    cap_s: int
    run: Callable[[Check, int], Result]
    needs_gpu: bool = False
    # The phases after it make no sense unless it is ok.
    stops_on_failure: bool = False


PHASES = (
    Phase('environment', 60, environment, stops_on_failure=True),
    Phase('build', 300, build, stops_on_failure=True),
    Phase('kernels', 60, kernels, stops_on_failure=True),
    Phase('cuda_tests', 150, cuda_tests, needs_gpu=True),
    Phase('memcheck', 120, memcheck, needs_gpu=True),
    Phase('benchmark', 90, benchmark, needs_gpu=True),
    Phase('op_tests', 150, op_tests),
    Phase('model_tests', 150, model_tests),
)
REQUIRED = dict(gpu=('environment', 'build', 'kernels', 'cuda_tests'),
                rehearsal=('environment', 'build', 'kernels', 'op_tests'))


def verdict(check: Check, results: Dict[str, Result]) -> Tuple[str, str]:
    """('pass' or 'fail', why)."""
    broken = [f'{name} {result.status}' for name, result in results.items() if result.status in ('failed', 'timeout')]
    if broken:
        return 'fail', ', '.join(broken)
    required = REQUIRED['rehearsal' if check.rehearse else 'gpu']
    not_ok = [f'{name} {results[name].status}' for name in required if results[name].status != 'ok']
    if not_ok:
        return 'fail', f'{", ".join(not_ok)}: the check needs {", ".join(required)} ok'
    return 'pass', f'{", ".join(required)} ok; nothing failed'


def write_summary(check: Check, records: List[dict], final_verdict: str, reason: str) -> None:
    info = check.info
    summary = dict(
        verdict=final_verdict, reason=reason, mode='rehearsal' if check.rehearse else 'gpu',
        budget_s=check.budget_s, elapsed_s=round(check.elapsed_s(), 1),
        versions=dict(python=info.get('python', platform.python_version()), torch=info.get('torch'),
                      cuda=info.get('cuda'), gpus=info.get('gpus'), capability=info.get('capability'),
                      nvcc=info.get('nvcc_version'), pytest=info.get('pytest')),
        phases=records)
    path = os.path.join(check.out_dir, 'summary.json')
    with tempfile.NamedTemporaryFile('w', dir=check.out_dir, delete=False, suffix='.tmp') as f:
        json.dump(summary, f, indent=2)
    os.replace(f.name, path)


def run_check(check: Check) -> str:
    """Runs the phases, printing and logging each one's end, then the table of all; returns the verdict."""
    results: Dict[str, Result] = {}
    records: List[dict] = []
    lines: List[str] = []
    stopped_by = ''
    mode = 'rehearsal (no CUDA execution)' if check.rehearse else 'on the GPU'
    print(f'gpu_check {mode}: {len(PHASES)} phases within {check.budget_s} s; full log {check.log_path}', flush=True)
    for phase in PHASES:
        phase_start = time.monotonic()
        check.last_output = ''
        check.log(f'\n==== {phase.name} ({check.elapsed_s():.0f} s into the check) ====\n')
        if stopped_by:
            result = Result('skipped', f'not run: {stopped_by}')
        elif phase.needs_gpu and check.rehearse:
            result = Result('skipped', 'rehearsal: needs a GPU')
        elif check.left_s() < MIN_PHASE_S:
            result = Result('timeout', f'not started: {check.elapsed_s():.0f} s of the {check.budget_s} s '
                                       'budget used')
        else:
            try:
                result = phase.run(check, phase.cap_s)
            except Exception as error:  # a bug of this script is a failed phase, not a missing verdict
                check.log(traceback.format_exc())
                result = Result('failed', f'gpu_check.py itself raised {type(error).__name__}: {error}')
        if phase.stops_on_failure and result.status != 'ok' and not stopped_by:
            stopped_by = f'{phase.name} {result.status}'
        seconds = round(time.monotonic() - phase_start, 1)
        results[phase.name] = result
        records.append(dict(name=phase.name, seconds=seconds, **asdict(result)))
        lines.append(f'{result.status:<11} {phase.name:<12} {seconds:6.1f} s  {result.detail}')
        check.log(f'[gpu_check] {lines[-1]}\n')
        print(lines[-1], flush=True)
        if result.status in ('failed', 'timeout') and check.last_output:
            for output_line in check.last_output.rstrip().splitlines()[-15:]:
                print(f'    {output_line[:300]}', flush=True)
        write_summary(check, records, 'incomplete', f'running (after {phase.name})')
    final_verdict, reason = verdict(check, results)
    write_summary(check, records, final_verdict, reason)
    closing = '\n'.join(['', '==== gpu_check summary ====', *lines,
                         f'gpu_check: {final_verdict.upper()} ({reason}) in {check.elapsed_s():.0f} s of the '
                         f'{check.budget_s} s budget; results in {check.out_dir}'])
    check.log(closing + '\n')
    print(closing, flush=True)
    return final_verdict


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rehearse', action='store_true',
                        help='no GPU needed: run everything but the CUDA execution (GPU phases skipped)')
    parser.add_argument('--budget', type=int, default=DEFAULT_BUDGET_S, metavar='S',
                        help=f'seconds for all phases together (default: {DEFAULT_BUDGET_S})')
    parser.add_argument('--out', default=os.environ.get('OUT') or 'gpu_check_out',
                        help='folder for gpu_check.log, summary.json, benchmark.json (default: $OUT, else '
                             'gpu_check_out)')
    parser.add_argument('--op-tests', nargs='+', default=['tests/ops'], metavar='PATH',
                        help='the op tests, relative to the repository: those marked cuda run in cuda_tests, '
                             'the others in op_tests (default: tests/ops)')
    parser.add_argument('--model-tests', nargs='+', default=['tests/models'], metavar='PATH',
                        help='the tests that need the OpenMMLab stack (default: tests/models)')
    args = parser.parse_args(argv)
    if args.budget < MIN_PHASE_S:
        parser.error(f'--budget must be at least {MIN_PHASE_S} s, got {args.budget}')
    for path in args.op_tests + args.model_tests:
        if not os.path.exists(os.path.join(REPOSITORY, path.split('::')[0])):
            parser.error(f'--op-tests/--model-tests: {path} does not exist under {REPOSITORY}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    check = Check(out_dir=os.path.abspath(args.out), rehearse=args.rehearse, budget_s=args.budget,
                  op_tests=args.op_tests, model_tests=args.model_tests)
    try:
        return 0 if run_check(check) == 'pass' else 1
    finally:
        check.close()


if __name__ == '__main__':
    sys.exit(main())
