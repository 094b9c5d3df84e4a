#!/usr/bin/env bash
# Set up the project on a fresh Debian/Ubuntu machine: Fashion-MNIST from Debian (when root),
# a virtual environment in .venv with the package and its test extra. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

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
  "$PY" -m venv .venv
fi
if ! .venv/bin/pip show -q timestep-bench >/dev/null 2>&1 \
   || ! (cd / && "$OLDPWD/.venv/bin/python" -c "import bench, torch, torchvision, cleanfid, submitit, sklearn, pandas, pytest") 2>/dev/null; then
  echo "setup: installing the project into .venv (torch is large: a few minutes)" >&2
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".[test]"
fi
