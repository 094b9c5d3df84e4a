#!/usr/bin/env bash
# Set up the project on a fresh Debian/Ubuntu machine: Fashion-MNIST from Debian (when root),
# a virtual environment in .venv with the package and its test extra. Idempotent.
#   TSB_TORCH=cpu   install the CPU-only torch/torchvision wheels first (a laptop without a GPU:
#                   ~0.2 GB instead of the multi-GB CUDA build); TSB_TORCH_INDEX overrides the
#                   wheel index (default https://download.pytorch.org/whl/cpu).
#   PYTHON=python3.12  the interpreter for the venv (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."

case "${TSB_TORCH:-}" in
  ""|cpu) ;;
  *) echo "setup: error: TSB_TORCH=${TSB_TORCH}: valid values are cpu (the CPU-only wheels) or unset (PyPI's default build)" >&2
     exit 2 ;;
esac

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian package dataset-fashion-mnist" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "setup: Fashion-MNIST not found; 'sudo apt-get install dataset-fashion-mnist' enables it" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  # Debian/Ubuntu ship venv's pip bootstrap (ensurepip) separately, in python3-venv
  if ! "$PY" -c "import ensurepip, venv" 2>/dev/null; then
    pkg="python3-venv"
    ver=$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || true)
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "setup: installing Debian package $pkg (venv needs ensurepip)" >&2
      apt-get update -qq >/dev/null
      # the interpreter's own venv package first (python3-venv is the default python's only)
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${ver}-venv" >/dev/null 2>&1 \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
      "$PY" -c "import ensurepip, venv" 2>/dev/null || {
        echo "setup: error: $PY still has no ensurepip after installing python${ver}-venv/$pkg" >&2
        exit 1; }
    else
      echo "setup: error: $PY cannot create a virtual environment (no ensurepip); install it with 'sudo apt-get install $pkg' (or python${ver}-venv) and rerun" >&2
      exit 1
    fi
  fi
  "$PY" -m venv .venv
fi
if ! .venv/bin/pip show -q timestep-bench >/dev/null 2>&1 \
   || ! (cd / && "$OLDPWD/.venv/bin/python" -c "import bench, torch, torchvision, cleanfid, submitit, sklearn, pandas, pytest") 2>/dev/null; then
  echo "setup: installing the project into .venv (torch is large: a few minutes)" >&2
  .venv/bin/pip install -q --upgrade pip >/dev/null
  if [ "${TSB_TORCH:-}" = cpu ]; then
    echo "setup: TSB_TORCH=cpu: the CPU-only torch and torchvision wheels" >&2
    .venv/bin/pip install -q torch torchvision \
      --index-url "${TSB_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
  fi
  .venv/bin/pip install -q -e ".[test]"
fi
