#!/usr/bin/env bash
# The one-command GPU check, for a machine with an NVIDIA GPU and no network (torch, a CUDA toolkit, pytest, ninja and
# pybind11 already installed). Builds pyconv from source against the torch that is there, runs the whole test suite
# (the CUDA tests run when a GPU is visible), runs compute-sanitizer (memcheck and racecheck) on a small run of every
# CUDA kernel, runs the full benchmark, and writes benchmarks/results/<gpu>-<date>.{json,md,png} plus
# <gpu>-<date>-check.txt (build facts, test summary, sanitizer verdicts); updates the README's results table.
# Commit what it wrote. Target: under 20 minutes on an H100, build included.
#   bash scripts/gpu_check.sh                 # everything
#   QUICK=1 bash scripts/gpu_check.sh         # --quick benchmark (batch 1)
#   SKIP_TESTS=1 / SKIP_SANITIZER=1 / SKIP_BENCH=1 to leave a step out
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
OUT=${OUT_DIR:-benchmarks/results}
mkdir -p "$OUT" build
status=0
step() { echo; echo "=== $* ($(date +%H:%M:%S))"; }

step "build (PYCONV_CUDA=1, from source, no network)"
t0=$(date +%s)
if ! PYCONV_CUDA=1 "$PY" -m pip install --no-build-isolation --no-deps -e . >build/gpu_check_build.log 2>&1; then
  tail -n 40 build/gpu_check_build.log
  echo "gpu_check: build failed (log: build/gpu_check_build.log)" >&2
  exit 1
fi
echo "built in $(( $(date +%s) - t0 )) s"
"$PY" - <<'PY' || exit 1
import sys, torch, pyconv
info = pyconv.build_info()
print({k: info[k] for k in ("version", "cuda", "cuda_version", "arch_list", "torch_version", "cuda_available")})
if not info["cuda_available"]:
    sys.exit("gpu_check: pyconv sees no usable CUDA device (cuda compiled: %s)" % info["cuda"])
print("device:", torch.cuda.get_device_name())
PY
GPU=$("$PY" -c "import torch,re; print(re.sub(r'[^a-z0-9]+','-',torch.cuda.get_device_name().lower()).strip('-'))")
STEM="$OUT/$GPU-$(date +%F)"
CHECK="$STEM-check.txt"
{ echo "# gpu_check $(date -Iseconds)"; "$PY" -m pyconv info; nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv 2>/dev/null; } >"$CHECK"

if [ -z "${SKIP_TESTS:-}" ]; then
  step "tests"
  if "$PY" -m pytest -q -ra >build/gpu_check_tests.log 2>&1; then res=passed; else res=FAILED; status=1; fi
  tail -n 25 build/gpu_check_tests.log
  { echo; echo "## tests: $res"; grep -E "^(FAILED|ERROR|SKIPPED)|passed|failed" build/gpu_check_tests.log | tail -n 40; } >>"$CHECK"
fi

if [ -z "${SKIP_SANITIZER:-}" ]; then
  SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n1 || true)
  if [ -z "$SAN" ]; then
    echo "compute-sanitizer not found" | tee -a "$CHECK"; status=1
  else
    for tool in memcheck racecheck; do
      step "compute-sanitizer --tool $tool"
      if "$SAN" --tool "$tool" --error-exitcode 99 "$PY" scripts/sanitizer_subset.py >"build/gpu_check_$tool.log" 2>&1
      then res=clean; else res="FAILED (exit $?)"; status=1; fi
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY|MISMATCH" "build/gpu_check_$tool.log" | tail -n 5
      { echo; echo "## compute-sanitizer $tool: $res"; grep -E "ERROR SUMMARY|RACECHECK SUMMARY|MISMATCH|Invalid|hazard" \
        "build/gpu_check_$tool.log" | head -n 20; } >>"$CHECK"
    done
  fi
fi

if [ -z "${SKIP_BENCH:-}" ]; then
  step "benchmark"
  "$PY" -m pyconv bench --device cuda ${QUICK:+--quick} --json "$STEM.json" --readme README.md || status=1
  # The issue-7 target: float16 NHWC ResNet-50 layers, batch 32, plain and fused, against cuDNN.
  "$PY" -m pyconv bench --device cuda --dtype float16 --channels-last --suite resnet50,fused,mobilenet_v2 \
      --batch 32 --json "$STEM-f16-nhwc.json" || status=1
  { echo; echo "## benchmark: $STEM.{json,md,png}"; } >>"$CHECK"
fi
step "done (status $status): commit $OUT/$GPU-$(date +%F)* and README.md"
exit $status
