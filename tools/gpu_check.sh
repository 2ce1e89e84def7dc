#!/usr/bin/env bash
# GPU check: one command for a machine with a CUDA GPU, torch and pytest only
# (no OpenMMLab packages needed). Builds the kernels in place, runs the
# operator tests (the CUDA ones included), then the op benchmark on the GPU,
# and prints a summary. Results go to ${OUT:-gpu_check_out}/.
#
#   bash tools/gpu_check.sh
#
# Designed to finish within 8 minutes on one H100.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_check_out}"
mkdir -p "$OUT"
PYTHON="${PYTHON:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0
step() { printf '\n=== %s (%s) ===\n' "$1" "$(date +%T)"; }

step "environment"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" \
  | tee "$OUT/environment.txt"
"$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
  || { echo "gpu_check: torch sees no CUDA GPU"; exit 1; }

step "build (FORCE_CUDA=1, arch of this GPU)"
if ! FORCE_CUDA=1 MAX_JOBS="${MAX_JOBS:-16}" "$PYTHON" setup.py -q build_ext --inplace >"$OUT/build.log" 2>&1; then
  tail -n 60 "$OUT/build.log"; echo "gpu_check: BUILD FAILED (log: $OUT/build.log)"; exit 1
fi
echo "built: $(ls mmyolo_dcnv3/*.so | tr '\n' ' ')"

step "CUDA tests first, then the rest of the operator tests"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/ops/test_dcnv3_cuda.py 2>&1 | tee "$OUT/tests_cuda.txt" | tail -n 25
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
"$PYTHON" -m pytest -q -p no:cacheprovider tests/ops --ignore=tests/ops/test_dcnv3_cuda.py 2>&1 | tee "$OUT/tests_ops.txt" | tail -n 5
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "benchmark (float32, then bfloat16)"
"$PYTHON" tools/benchmark_op.py --device cuda --json "$OUT/benchmark_cuda_float32.json" 2>&1 | tee "$OUT/benchmark_float32.txt" || status=1
"$PYTHON" tools/benchmark_op.py --device cuda --dtype bfloat16 --json "$OUT/benchmark_cuda_bfloat16.json" 2>&1 | tee "$OUT/benchmark_bfloat16.txt" || status=1

step "summary"
echo "CUDA tests:  $(tail -n 1 "$OUT/tests_cuda.txt")"
echo "op tests:    $(tail -n 1 "$OUT/tests_ops.txt")"
grep -h "^medians" "$OUT"/benchmark_*.txt
[ "$status" -eq 0 ] && echo "gpu_check: PASSED" || echo "gpu_check: FAILED"
exit "$status"
