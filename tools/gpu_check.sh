#!/usr/bin/env bash
# GPU check of the CUDA kernels, for a machine with a CUDA GPU, torch, pytest
# and nvcc (nothing of OpenMMLab): one verdict within one device call.
#
#   bash tools/gpu_check.sh              # results in $OUT if set, else ./gpu_check_out
#   bash tools/gpu_check.sh --rehearse   # on a machine without a GPU: all but the CUDA execution
#   bash tools/gpu_check.sh --help       # phases, statuses, options
#
# The check itself is tools/gpu_check.py (standard library only); this picks
# its interpreter: $GPU_CHECK_PYTHON if set, else the first of python3 and
# python that has torch, else python3 (whose missing torch the check reports).
set -u
cd "$(dirname "$0")/.."
python="${GPU_CHECK_PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in python3 python; do
    if command -v "$candidate" >/dev/null &&
      "$candidate" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' 2>/dev/null; then
      python="$candidate"
      break
    fi
  done
fi
python="${python:-python3}"
if ! command -v "$python" >/dev/null; then
  echo "gpu_check: FAILED: no interpreter '$python' (set GPU_CHECK_PYTHON to a Python that has torch)" >&2
  exit 1
fi
exec "$python" tools/gpu_check.py "$@"
