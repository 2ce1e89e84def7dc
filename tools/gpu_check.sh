#!/usr/bin/env bash
# GPU check of the CUDA kernels, for a machine with a CUDA GPU, torch and
# pytest (nothing of OpenMMLab). It cannot pass by skipping and cannot hang:
#   - the CUDA kernels must load right after the build, else it says why and stops;
#   - a skipped CUDA test counts as a failure, and so does running none;
#   - every step runs under `timeout`, and all of them within one budget
#     (GPU_CHECK_BUDGET_S, default 290 s): a step gets at most what is left;
#   - it prints one summary line per step (also in summary.txt) and exits 0
#     only if every step passed.
#
#   bash tools/gpu_check.sh      # results in $OUT if set, else ./gpu_check_out
#
# Steps, with their time on one H100/H200 and 16 cores. ESTIMATES: the script
# has not yet run on a GPU; replace them with the times of its first run.
#   1 environment   ~5 s   python3 (else python) that imports torch; a GPU must be visible
#   2 build         ~150 s setup.py build_ext --inplace, FORCE_CUDA=1, for this GPU's arch
#   3 kernels load  ~5 s   compiled_kernels() has CPU and CUDA kernels, or says why not
#   4 CUDA tests    ~40 s  tests/ops/test_dcnv3_cuda.py, slow case included,
#                          CUDA_LAUNCH_BLOCKING=1
#   5 memcheck      ~40 s  compute-sanitizer --tool memcheck on small forward+backward
#                          calls (only where compute-sanitizer is installed)
#   6 benchmark     ~20 s  tools/analysis_tools/benchmark_op.py on the GPU, float32 and bfloat16
#   7 CPU op tests  ~40 s  the rest of tests/ops (CPU kernels, host emulation of the CUDA
#                          thread bodies); skips are allowed here and counted
# The steps run in order of value, so that a slow build squeezes the least
# valuable ones; a step cut short by the budget fails. Results, at most 8 small files: summary.txt, build.log (its end), memcheck.txt,
# tests_cuda.txt, tests_ops.txt, benchmark.txt, benchmark_float32.json,
# benchmark_bfloat16.json.
#
# GPU_CHECK_DRY_RUN=1 runs the steps on a machine without a GPU, to exercise
# this script: the GPU steps then fail (every CUDA test skips), so it fails.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check_out}"
mkdir -p "$OUT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BUDGET_S="${GPU_CHECK_BUDGET_S:-290}"
START_S=$SECONDS
FAILED=0
: >"$OUT/summary.txt"

# summary STATUS STEP DETAIL: one line per step with its duration, printed and kept.
STEP_START=$SECONDS
summary() {
  local line
  line="$(printf '%-4s %-13s %4d s  %s' "$1" "$2" $((SECONDS - STEP_START)) "$3")"
  STEP_START=$SECONDS
  echo "$line" >>"$OUT/summary.txt"
  printf '\n>>> %s\n' "$line"
  [ "$1" = ok ] || [ "$1" = info ] || FAILED=1
}
# step_timeout MAX_S: seconds a step may take, within what is left of the budget.
step_timeout() {
  local left=$((BUDGET_S - (SECONDS - START_S)))
  echo $((left < $1 ? left : $1))
}
# timed LIMIT_S CMD...: runs CMD under timeout; 124 (or 137) when it ran out of time.
timed() {
  local limit=$1
  shift
  if [ "$limit" -lt 5 ]; then
    echo "gpu_check: not run, the ${BUDGET_S} s budget is spent" >&2
    return 124
  fi
  timeout -k 10 "$limit" "$@"
}
# out_of_time: the summary's words for exit 124/137.
out_of_time() { echo "timed out ($((SECONDS - START_S)) s of the ${BUDGET_S} s budget used)"; }
# why_no_report RC: why a test step left no report.
why_no_report() {
  if [ "$1" -eq 124 ] || [ "$1" -eq 137 ]; then out_of_time; else echo "crashed (exit $1)"; fi
}
# keep_end FILE: caps a result file at its last 200 kB.
keep_end() {
  if [ "$(wc -c <"$1")" -gt 200000 ]; then
    tail -c 200000 "$1" >"$1.end" && mv "$1.end" "$1"
  fi
}
# junit_counts XML [--no-skips]: "P passed, F failed, E errors, S skipped"; fails
# on failures, errors, no tests, or (with --no-skips) any skip.
junit_counts() {
  "$PYTHON" - "$@" <<'EOF'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == 'testsuite' else root.findall('testsuite')
tests, failures, errors, skipped = (sum(int(s.get(k, 0)) for s in suites)
                                    for k in ('tests', 'failures', 'errors', 'skipped'))
passed = tests - failures - errors - skipped
print(f'{passed} passed, {failures} failed, {errors} errors, {skipped} skipped', end='')
no_skips = '--no-skips' in sys.argv
if no_skips and skipped:
    print(' (a skip counts as a failure)', end='')
sys.exit(0 if passed > 0 and failures == errors == 0 and not (no_skips and skipped) else 1)
EOF
}
finish() {
  echo
  echo "==== gpu_check summary ($((SECONDS - START_S)) s; results in $OUT) ===="
  cat "$OUT/summary.txt"
  if [ "$FAILED" -eq 0 ]; then echo "gpu_check: PASSED"; else echo "gpu_check: FAILED"; fi
  exit "$FAILED"
}

# ---- 1 environment ------------------------------------------------------------
PYTHON=""
for candidate in python3 python; do
  if command -v "$candidate" >/dev/null && timed 60 "$candidate" -c 'import torch' 2>/dev/null; then
    PYTHON="$candidate"
    break
  fi
done
if [ -z "$PYTHON" ]; then
  summary FAIL environment "neither python3 nor python imports torch"
  finish
fi
ENVIRONMENT="$(timed 60 "$PYTHON" -c '
import torch
gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, GPUs: {gpus}")
' 2>&1 | tail -n 1)"
GPUS="$(timed 60 "$PYTHON" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null | tail -n 1)"
[[ "$GPUS" =~ ^[0-9]+$ ]] || GPUS=0
if [ "${GPUS:-0}" -gt 0 ]; then
  summary ok environment "$PYTHON: $ENVIRONMENT"
elif [ "${GPU_CHECK_DRY_RUN:-0}" = 1 ]; then
  summary FAIL environment "$PYTHON: $ENVIRONMENT; no GPU visible (GPU_CHECK_DRY_RUN=1: continuing)"
else
  summary FAIL environment "$PYTHON: $ENVIRONMENT; torch sees no CUDA GPU"
  finish
fi

# ---- 2 build ------------------------------------------------------------------
timed "$(step_timeout 240)" env FORCE_CUDA=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
  "$PYTHON" setup.py build_ext --inplace >"$WORK/build.log" 2>&1
rc=$?
tail -n 200 "$WORK/build.log" >"$OUT/build.log"
case $rc in
  0) summary ok build "$(ls mmyolo_dcnv3/_C*.so | tr '\n' ' ')in $((SECONDS - START_S)) s since start" ;;
  124 | 137) summary FAIL build "$(out_of_time); log end: $OUT/build.log"; finish ;;
  *) tail -n 40 "$WORK/build.log"; summary FAIL build "exit $rc; log end: $OUT/build.log"; finish ;;
esac

# ---- 3 kernels load -----------------------------------------------------------
LOAD="$(timed "$(step_timeout 60)" "$PYTHON" -c '
import sys
from mmyolo_dcnv3.ops._library import compiled_kernels
kernels = compiled_kernels()
print("; ".join(f"{d}: " + ("loaded" if kernels.available(d) else "NOT usable: " + kernels.why_missing(d))
                for d in ("cpu", "cuda")))
sys.exit(0 if kernels.available("cpu") and kernels.available("cuda") else 1)
' 2>&1)"
if [ $? -eq 0 ]; then
  summary ok kernels "$(echo "$LOAD" | tail -n 1)"
else
  summary FAIL kernels "$(echo "$LOAD" | tail -n 3 | tr '\n' ' ')"
  finish
fi

# ---- 4 CUDA tests -------------------------------------------------------------
DESELECT=()
if [ "${GPUS:-0}" -lt 2 ]; then
  DESELECT=(--deselect tests/ops/test_dcnv3_cuda.py::test_cuda_on_a_second_gpu)
fi
CUDA_LAUNCH_BLOCKING=1 timed "$(step_timeout 150)" "$PYTHON" -m pytest -q -p no:cacheprovider -rs --tb=short \
  --durations=10 \
  -m 'slow or not slow' --junitxml="$WORK/cuda.xml" ${DESELECT[@]+"${DESELECT[@]}"} tests/ops/test_dcnv3_cuda.py \
  >"$OUT/tests_cuda.txt" 2>&1
rc=$?
keep_end "$OUT/tests_cuda.txt"
note=""
[ ${#DESELECT[@]} -gt 0 ] && note="; test_cuda_on_a_second_gpu not run: ${GPUS:-0} GPU(s)"
if [ $rc -eq 124 ] || [ $rc -eq 137 ] || [ ! -s "$WORK/cuda.xml" ]; then
  summary FAIL "CUDA tests" "$(why_no_report $rc); see $OUT/tests_cuda.txt$note"
elif counts="$(junit_counts "$WORK/cuda.xml" --no-skips)" && [ $rc -eq 0 ]; then
  summary ok "CUDA tests" "$counts$note"
else
  summary FAIL "CUDA tests" "$counts (exit $rc)$note"
fi

# ---- 5 memcheck ---------------------------------------------------------------
SANITIZER="$(command -v compute-sanitizer || true)"
for dir in "${CUDA_HOME:-}" /usr/local/cuda; do
  if [ -z "$SANITIZER" ] && [ -n "$dir" ] && [ -x "$dir/bin/compute-sanitizer" ]; then
    SANITIZER="$dir/bin/compute-sanitizer"
  fi
done
# Small calls over the kernel variants: vector widths 1/2/4/8, warp-shuffle and
# atomic reductions, a misaligned input, remove_center, float16/bfloat16.
MEMCHECK_CALLS='
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
'
if [ -z "$SANITIZER" ]; then
  echo "compute-sanitizer not found on PATH, in \$CUDA_HOME/bin or /usr/local/cuda/bin" >"$OUT/memcheck.txt"
  summary info memcheck "not run: compute-sanitizer is not installed"
else
  # Without the caching allocator every tensor is its own allocation, so an
  # access past a tensor's end is caught.
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 timed "$(step_timeout 120)" "$SANITIZER" --tool memcheck \
    --error-exitcode 3 --print-limit 20 "$PYTHON" -c "$MEMCHECK_CALLS" >"$OUT/memcheck.txt" 2>&1
  rc=$?
  keep_end "$OUT/memcheck.txt"
  errors="$(grep -h 'ERROR SUMMARY' "$OUT/memcheck.txt" | tail -n 1 | sed 's/^=* *//')"
  case $rc in
    0) summary ok memcheck "${errors:-no error summary}" ;;
    124 | 137) summary FAIL memcheck "$(out_of_time)" ;;
    *) summary FAIL memcheck "exit $rc: ${errors:-see $OUT/memcheck.txt}" ;;
  esac
fi

# ---- 6 benchmark --------------------------------------------------------------
: >"$OUT/benchmark.txt"
for dtype in float32 bfloat16; do
  timed "$(step_timeout 60)" "$PYTHON" tools/analysis_tools/benchmark_op.py --device cuda --dtype "$dtype" \
    --json "$OUT/benchmark_$dtype.json" >>"$OUT/benchmark.txt" 2>&1
  rc=$?
  medians="$(grep -h '^medians' "$OUT/benchmark.txt" | tail -n 1)"
  case $rc in
    0) summary ok "bench $dtype" "${medians:-see $OUT/benchmark.txt}" ;;
    124 | 137) summary FAIL "bench $dtype" "$(out_of_time)" ;;
    *) summary FAIL "bench $dtype" "exit $rc; see $OUT/benchmark.txt" ;;
  esac
done
keep_end "$OUT/benchmark.txt"

# ---- 7 CPU op tests -----------------------------------------------------------
timed "$(step_timeout 120)" "$PYTHON" -m pytest -q -p no:cacheprovider -rs --tb=short \
  --junitxml="$WORK/ops.xml" tests/ops --ignore=tests/ops/test_dcnv3_cuda.py >"$OUT/tests_ops.txt" 2>&1
rc=$?
keep_end "$OUT/tests_ops.txt"
if [ $rc -eq 124 ] || [ $rc -eq 137 ] || [ ! -s "$WORK/ops.xml" ]; then
  summary FAIL "CPU op tests" "$(why_no_report $rc); see $OUT/tests_ops.txt"
elif counts="$(junit_counts "$WORK/ops.xml")" && [ $rc -eq 0 ]; then
  summary ok "CPU op tests" "$counts"
else
  summary FAIL "CPU op tests" "$counts (exit $rc)"
fi

finish
