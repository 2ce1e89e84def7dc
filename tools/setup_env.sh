#!/usr/bin/env bash
# Create or update the project's virtual environment, idempotently.
#
#   tools/setup_env.sh            # torch 2.14.1 CUDA 13.0 build (default)
#   TORCH_VARIANT=cpu tools/setup_env.sh    # torch 2.13.0, CPU only
#   TORCH_VARIANT=keep tools/setup_env.sh   # keep the torch already in the venv
#
# Environment variables:
#   VENV            where the environment lives (default: .venv in the checkout)
#   TORCH_VARIANT   cu130 | cpu | keep (default cu130)
#   PYTHON          interpreter used to create the venv (default python3)
#   WHEEL_CACHE     where built mmcv wheels are kept
#                   (default ~/.cache/mmyolo-dcnv3/wheels)
#   MAX_JOBS        parallel compile jobs (default: number of cores)
#
# The first run builds mmcv 2.0.1 from source (about 13 minutes on 2 cores)
# and caches the wheel under WHEEL_CACHE, keyed by the mmcv, torch and Python
# versions; later runs reuse it and finish in well under a minute.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
TORCH_VARIANT="${TORCH_VARIANT:-cu130}"
PYTHON="${PYTHON:-python3}"
WHEEL_CACHE="${WHEEL_CACHE:-$HOME/.cache/mmyolo-dcnv3/wheels}"
CONSTRAINTS="$ROOT/requirements/constraints.txt"
MMCV_VERSION="$(sed -n 's/^mmcv==//p' "$CONSTRAINTS")"
export MAX_JOBS="${MAX_JOBS:-$(nproc)}"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

# ---- checks that need nothing installed ------------------------------------
command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH; install Python 3.10 or 3.11, or set PYTHON=/path/to/python3.11."
PY_VER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
case "$PY_VER" in
  3.10|3.11) ;;
  *) die "Python $PY_VER is not supported (mmcv 2.0.1 and mmyolo 0.6.0 need 3.10 or 3.11); set PYTHON=/path/to/python3.11." ;;
esac
command -v g++ >/dev/null || command -v c++ >/dev/null \
  || die "no C++ compiler found (g++); install one, e.g. 'apt-get install g++', then rerun."
case "$TORCH_VARIANT" in
  cu130) NEED_GB=12 ;;
  cpu|keep) NEED_GB=4 ;;
  *) die "TORCH_VARIANT='$TORCH_VARIANT' is not one of cu130, cpu, keep." ;;
esac
mkdir -p "$(dirname "$VENV")"
if [ ! -x "$VENV/bin/python" ]; then
  FREE_GB="$(df -Pk "$(dirname "$VENV")" | awk 'NR==2 {print int($4 / 1048576)}')"
  [ "$FREE_GB" -ge "$NEED_GB" ] || die "only ${FREE_GB} GB free next to $VENV; the environment and the mmcv build need about ${NEED_GB} GB. Free some space or set VENV to another disk."
  say "creating $VENV with Python $PY_VER"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)
# pip's own exit status; this machine's pip config makes it warn about every
# missing local index folder, which is filtered out.
pip_install() { "${PIP[@]}" install -c "$CONSTRAINTS" "$@" 2> >(grep -v "^WARNING: Location" >&2); }

# ---- build tools and torch ----------------------------------------------------
pip_install setuptools wheel ninja
case "$TORCH_VARIANT" in
  cu130) pip_install -r "$ROOT/requirements/torch-cu130.txt" ;;
  cpu) pip_install -r "$ROOT/requirements/torch-cpu.txt" ;;
  keep) "$PY" -c "import torch" 2>/dev/null || die "TORCH_VARIANT=keep but $VENV has no torch; install one first (see docs/get_started.md, 'Other CUDA versions')." ;;
esac
TORCH_VER="$("$PY" -c 'import torch; print(torch.__version__)')"
"$PY" - "$TORCH_VER" <<'PYEOF' || die "torch $TORCH_VER is outside the supported range 2.4 <= torch <= 2.14; install a supported release (see docs/get_started.md, 'Version matrix')."
import sys
major, minor = (int(x) for x in sys.argv[1].split('+')[0].split('.')[:2])
sys.exit(0 if (2, 4) <= (major, minor) <= (2, 14) else 1)
PYEOF
CXX_STD="$("$PY" -c 'import torch; v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]); print("c++20" if v >= (2, 14) else "c++17")')"

# ---- mmcv with its compiled ops, built once per (mmcv, torch, python) ---------
if ! "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  KEY="mmcv-$MMCV_VERSION-torch-$TORCH_VER-py$PY_VER"
  CACHE_DIR="$WHEEL_CACHE/$KEY"
  WHEEL="$(ls "$CACHE_DIR"/mmcv-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$WHEEL" ]; then
    say "building mmcv $MMCV_VERSION with compiled ops against torch $TORCH_VER ($CXX_STD)."
    say "this happens once per torch/Python version and takes about 13 minutes on 2 cores;"
    say "the wheel is cached in $CACHE_DIR"
    BUILD_DIR="$(mktemp -d)"
    trap 'rm -rf "$BUILD_DIR"' EXIT
    "${PIP[@]}" download --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD_DIR" \
      2> >(grep -v "^WARNING: Location" >&2) || die "could not download the mmcv $MMCV_VERSION source from PyPI."
    tar -xzf "$BUILD_DIR/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD_DIR"
    # mmcv's setup.py forces -std=c++14, which current torch headers reject.
    sed -i "s/c++14/$CXX_STD/g" "$BUILD_DIR/mmcv-$MMCV_VERSION/setup.py"
    # Python's own CFLAGS (which a CFLAGS variable would replace, not extend) with their -g undone:
    # without debug information the build is markedly faster and the wheel smaller (docs/get_started.md).
    MMCV_CFLAGS="$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("CFLAGS"))') -g0"
    (cd "$BUILD_DIR/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 CFLAGS="$MMCV_CFLAGS" "$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$BUILD_DIR/dist" . ) \
      || die "the mmcv build failed; the compiler output is above."
    mkdir -p "$CACHE_DIR"
    cp "$BUILD_DIR"/dist/mmcv-*.whl "$CACHE_DIR/"
    WHEEL="$(ls "$CACHE_DIR"/mmcv-*.whl | head -n1)"
  else
    say "using cached $WHEEL"
  fi
  pip_install "$WHEEL"
fi

# ---- the rest of the stack, and this package with its kernels -----------------
pip_install mmengine mmdet mmyolo openmim albumentations pycocotools pytest hypothesis
# ONNX export and runtimes (mmyolo_dcnv3.deploy and its tools).
pip_install -r "$ROOT/requirements/deploy.txt"
# Data files only (the warped-digits benchmark); see the file for why --no-deps.
pip_install --no-deps -r "$ROOT/requirements/datasets.txt"
pip_install -r "$ROOT/requirements/lint.txt"
# setup.py finds the CUDA toolkit itself (through nvcc, see find_cuda_toolkit there); asked here only
# whether it will build the CUDA kernels, to build them for one architecture when no GPU is visible.
if [ -z "${TORCH_CUDA_ARCH_LIST:-}" ] && (cd "$ROOT" && "$PY" -c "import sys, torch, setup
sys.exit(not setup.cuda_requested(torch) or torch.cuda.is_available())") 2>/dev/null; then
  export TORCH_CUDA_ARCH_LIST="9.0"
  say "no GPU visible: CUDA kernels are built for sm_90 (H100/H200) only; set TORCH_CUDA_ARCH_LIST to choose"
fi
say "building mmyolo_dcnv3's kernels (incremental)"
mkdir -p "$ROOT/build"
BUILD_LOG="$ROOT/build/kernels.log"
if ! (cd "$ROOT" && "$PY" setup.py build_ext --inplace >"$BUILD_LOG" 2>&1); then
  tail -n 40 "$BUILD_LOG" >&2
  die "building the mmyolo_dcnv3 kernels failed; the end of $BUILD_LOG is above."
fi
if ! "$PY" -m pip show -q mmyolo-dcnv3 >/dev/null 2>&1; then
  # compat mode builds in place through build/, so it reuses the objects above.
  pip_install --no-build-isolation --no-deps --config-settings editable_mode=compat -e "$ROOT"
fi
# An editable install carries no start-up .pth; `_base_ = 'mmyolo_dcnv3::...'`
# in a user's config needs it (see mmyolo_dcnv3_config_scope.py).
cp "$ROOT/mmyolo_dcnv3_config_scope.pth" "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/"
"$PY" -c "import mmcv.ops, mmyolo, mmyolo_dcnv3" || die "the environment was installed but does not import; see the error above."
# Optional: qemu-user runs ONNX Runtime as on an AVX2 CPU without VNNI for one INT8 test
# (tests/deploy/test_quantize.py, skipped without it). Installed only where that needs no
# prompt (root with apt-get); never a reason to fail.
if ! command -v qemu-x86_64 >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    install_qemu() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q qemu-user >/dev/null 2>&1; }
    if install_qemu || { apt-get update -q >/dev/null 2>&1 && install_qemu; }; then
      say "installed qemu-user (apt) for the emulated-CPU INT8 test"
    else
      say "qemu-user could not be installed; the emulated-CPU INT8 test will be skipped"
    fi
  else
    say "no qemu-x86_64: the emulated-CPU INT8 test will be skipped (apt install qemu-user to run it)"
  fi
fi
say "ready: $VENV (torch $TORCH_VER, mmcv $MMCV_VERSION)"
