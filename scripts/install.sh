#!/usr/bin/env bash
# Creates ./.venv if it is missing and installs pyconv into it from this checkout, building the C++/CUDA extension.
# Idempotent: a second run only rebuilds what changed (ninja keeps build/ between runs).
#   PYTHON=python3.11 bash scripts/install.sh      # choose the interpreter for a new venv
#   PYCONV_CUDA=0 bash scripts/install.sh          # CPU-only build; PYCONV_CUDA=1 insists on CUDA (see setup.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first: pip takes the build that matches this machine (here: 2.14.1, CUDA 13.0, from local disk).
.venv/bin/python -m pip install -q "torch>=2.6" numpy pybind11 ninja "setuptools>=64" wheel pytest
# --no-build-isolation: build against the torch just installed instead of downloading another into a temporary env.
log=$(mktemp)
if ! .venv/bin/python -m pip install -v --no-build-isolation -e ".[test]" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "pyconv: build failed (full log: $log)" >&2
  exit 1
fi
# Optional: torchvision lets the tests check pyconv.models and convert() against torchvision's own definitions (those
# tests are skipped without it). Pinned to the release checked against this torch; --no-deps so torch is never touched.
.venv/bin/python -m pip install -q pillow >/dev/null 2>&1 &&
  .venv/bin/python -m pip install -q --no-deps "torchvision==0.29.1" >/dev/null 2>&1 ||
  echo "pyconv: torchvision not installed (the tests that compare with it will be skipped)"
grep -F "[pyconv build]" "$log" | sort -u || true
grep -E "ptxas (warning|info)" "$log" | sort -u | head -20 || true
.venv/bin/python -c "import pyconv, json; print('pyconv installed:', json.dumps(pyconv.build_info()))"
