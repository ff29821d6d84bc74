#!/usr/bin/env bash
# The time-boxed GPU check for a short device lease (the workplace lends ~15 minutes of device time, one command at
# most 10): the steps of scripts/gpu_check.sh, cut to fit and run in parallel where they do not disturb timings.
#   1. build for this GPU's arch only (16 parallel jobs), in place (EMU=0: without the CPU emulator module);
#   2. scripts/sanitizer_subset.py plainly (every rung, every direction, vs torch): a fast correctness smoke;
#   3. in parallel: the tests that touch CUDA (pytest-xdist, -k "$TESTS_K"; the CPU and emulator tests are CI's),
#      compute-sanitizer memcheck then racecheck on the subset, and (GDB_TEST=node id) one test under cuda-gdb for a
#      native backtrace of a crash;
#   4. alone on the GPU (timings; SKIP_PROFILE=1 leaves the first out): scripts/profile_layers.py --time --kernels
#      (auto on five representative layers against cuDNN, each call's kernels in profile.log; PROFILE_KERNELS= leaves
#      them out); with AB=1 the layer A/Bs too (split-K off unless SKIP_SPLITK_AB=1; rung 3 against each wgmma tile,
#      WG_AB_DIRS, unless SKIP_WGMMA_AB=1; PDL off unless SKIP_PDL_AB=1; dgrad's K-major B unless SKIP_DGRAD_B_AB=1);
#      always (unless SKIP_PIXELS_AB=1) the TMA kernels as runs 10-11 had them against tiled pixel loads and TMA
#      stores (four layers),
#      (unless SKIP_PHASES_AB=1) strided dgrad's phases forked against one launch, and (unless
#      SKIP_DW_ROWS_AB=1) the depthwise row groups PYCONV_DW_ROWS=1/2/4;
#      with NCU=1 Nsight Compute over those layers, $OUT/ncu.csv; without it, unless SKIP_NCU_FOCUS=1, a focused
#      Nsight Compute run of three layers, $OUT/ncu-focus.csv; then the issue-7 target benchmark (float16,
#      channels_last, batch 32) in three passes: auto and the heuristic rungs over BENCH_SUITES (default
#      resnet50,fused,mobilenet_v2; BENCH_ALGOS, BENCH_FLAGS), auto against cuDNN under CUDA graphs (GRAPH_S seconds,
#      SKIP_GRAPH=1: no), every tensor-core tile on ResNet-50 (SWEEP_S seconds, SKIP_SWEEP=1: no); then float32
#      resnet50 batch 32 (SKIP_F32=1: no). Files back: 8 with SKIP_F32=1 and without NCU=1 (the tool's limit).
# Every step has a deadline computed from BUDGET_S (default 560 s) so the command ends inside the lease's limit;
# logs and JSON go to $OUT (the device tool brings back at most 8 files). SKIP_SUBSET / SKIP_SANITIZER / SKIP_TESTS
# leave a step out (SKIP_SUBSET=1 VOUCHED=1: a follow-up lease that trusts an earlier subset run). Usage on the device machine:
#   OUT=/some/dir bash scripts/gpu_lease.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
O=${OUT:-build/gpu_lease}
mkdir -p "$O"
PY=${PYTHON:-python3}
BUDGET=${BUDGET_S:-560}
# test_tensor_core names its GPU target "auto" (its emulator one "emulator"), hence the last clause
TESTS_K=${TESTS_K:-cuda or tuning or (test_tensor_core and auto)}
# GDB_TEST=<node id>: run that test alone under cuda-gdb (a native backtrace if it crashes; it leaves the xdist run).
# Used for the test that segfaulted on the 2026-11-26 H200 image (nvidia-h200-2026-11-26-check.txt) until the
# libstdc++ fix; it passed in the xdist run of H100 run 6, so nothing runs under cuda-gdb by default.
GDB_TEST=${GDB_TEST:-}
T0=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
step() { echo "=== $* (t=$(( $(date +%s) - T0 )) s, $(left) s left)"; }

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv 2>&1 | tee "$O/summary.txt"
"$PY" -c "import torch; print('torch', torch.__version__, torch.version.cuda, torch.cuda.get_device_name())" \
  2>&1 | tee -a "$O/summary.txt"
CAP=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())")
[ "$CAP" = "9.0" ] && CAP=9.0a  # Hopper: the sm_90a target, for the wgmma rung (cuda_tensor_core_sm90.cuh)

step "build for sm_${CAP/./}"
# the build's deadline: what the later steps leave, but never under 170 s (an H200 builds the sm_90a-only extension in
# ~125-145 s; H200 run 11's first try, BUDGET_S=295, stopped it at 84 s and lost the lease's time)
BUILD_T=$(( $(left) - 200 > 170 ? $(left) - 200 : 170 ))
if ! TORCH_CUDA_ARCH_LIST="$CAP" MAX_JOBS=16 PYCONV_CUDA=1 PYCONV_EMU=${EMU:-1} timeout "$BUILD_T" \
    "$PY" setup.py build_ext --inplace >"$O/build.log" 2>&1; then
  tail -n 60 "$O/build.log"; echo "gpu_lease: build failed" | tee -a "$O/summary.txt"; exit 1
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
step "built"
grep -c "spill" "$O/build.log" | sed 's/^/ptxas spill lines: /' | tee -a "$O/summary.txt"
# Toolchain facts. On the 2026-11-26 H200 image a TORCH_CHECK that formats an integer inside _C.so segfaulted in
# std::ostream::_M_insert<long>, with libstdc++ code attributed to _C.so itself (cf. pytorch/pytorch#109923: two
# copies of libstdc++'s locale machinery in one process). These lines say whether _C.so carries its own copy.
{ echo "--- toolchain"; echo "CXX=${CXX:-} CC=${CC:-}"; "${CXX:-c++}" --version | head -n 1; nvcc --version | tail -n 1
  echo "c++: $(command -v c++) -> $(readlink -f "$(command -v c++)"); g++: $(command -v g++); nvcc: $(command -v nvcc)"
  readelf -p .comment pyconv/_C*.so 2>/dev/null | grep -v "^$" | sort -u | head -n 6  # the compilers of its objects
  "$PY" -c "import re, torch; c = torch.__config__.show(); print('torch built with:', *re.findall(r'GCC [0-9.]+|C\+\+ Version: [0-9]+|CXX_COMPILER=[^,]+', c))"
  grep -E -- "-shared" "$O/build.log" | head -n 2 | cut -c1-600
  for so in pyconv/_C*.so; do echo "$so: $(ldd "$so" | grep -c stdc++) libstdc++ link(s), \
$(nm -C --defined-only "$so" | grep -c -E ' [TtWw] std::(locale::classic\(|locale::locale\(|basic_ostream<char, std::char_traits<char> >\& std::basic_ostream<char, std::char_traits<char> >::_M_insert<)') libstdc++-only definitions (0 expected)"; done
} 2>&1 | tee -a "$O/summary.txt"
rm -f "$O/build.log"
"$PY" -m pyconv info 2>&1 | tee -a "$O/summary.txt"

# the warp-specialised wgmma rungs (run on their own first: never yet run on hardware)
WS_ALGOS=tensor_core_wgmma_ws,tensor_core_wgmma_ws_128x128,tensor_core_wgmma_ws_128x256,tensor_core_wgmma_ws_64x128,tensor_core_wgmma_ws_128x64
# the TMA producer (tc_wgmma_tma_conv_kernel): its first hardware run also goes first, in a run of its own
TMA_ALGOS=tensor_core_wgmma_tma,tensor_core_wgmma_tma_128x128,tensor_core_wgmma_tma_128x256,tensor_core_wgmma_tma_128x64
if [ -z "${SKIP_SUBSET:-}" ]; then
  step "sanitizer_subset (plain run: correctness smoke)"
  # the warp-specialised wgmma kernel (mbarriers) in a run of its own first: never run on hardware before, it could
  # hang, and must not take the rest of the subset (and the vouching for the other wgmma tiles) with it
  WS_RC=1
  if [ "$CAP" = "9.0a" ]; then
    # (its lines open subset.log, which the main run appends to: $OUT brings back 8 files at most)
    timeout 45 "$PY" scripts/sanitizer_subset.py --algos $WS_ALGOS \
      >"$O/subset.log" 2>&1
    WS_RC=$?
    echo "subset (warp-specialised wgmma) rc=$WS_RC ; $(grep -c '^ok' "$O/subset.log") ok," \
      "$(grep -c MISMATCH "$O/subset.log") MISMATCH" | tee -a "$O/summary.txt"
    grep MISMATCH "$O/subset.log" | head -10
    echo "--- the TMA producer" >>"$O/subset.log"
    timeout 45 "$PY" scripts/sanitizer_subset.py --algos $TMA_ALGOS >"$O/subset_tma.log" 2>&1
    TMA_RC=$?
    echo "subset (TMA wgmma) rc=$TMA_RC ; $(grep -c '^ok' "$O/subset_tma.log") ok," \
      "$(grep -c MISMATCH "$O/subset_tma.log") MISMATCH" | tee -a "$O/summary.txt"
    grep -E "MISMATCH|Error|error" "$O/subset_tma.log" | head -10 | tee -a "$O/summary.txt"
    cat "$O/subset_tma.log" >>"$O/subset.log"; rm -f "$O/subset_tma.log"
    # auto's dgrad reads B MN-major (A K-major: the mixed transposes the wgmma_kb self-test checks, never yet run on
    # a GPU); should that self-test fail, the rest of this lease runs run 8's K-major path instead of losing the
    # wgmma rung's timings to a mismatch
    if grep -q "^MISMATCH gpu_selftest wgmma_kb" "$O/subset.log"; then
      export PYCONV_WGMMA_DGRAD_B=kmajor
      echo "gpu_selftest wgmma_kb failed: PYCONV_WGMMA_DGRAD_B=kmajor from here on" | tee -a "$O/summary.txt"
    fi
    echo "--- the other rungs" >>"$O/subset.log"
  fi
  timeout 90 "$PY" scripts/sanitizer_subset.py --skip $WS_ALGOS,$TMA_ALGOS \
    >>"$O/subset.log" 2>&1
  SUBSET_RC=$?
  echo "subset rc=$SUBSET_RC ; $(grep -c '^ok' "$O/subset.log") ok, $(grep -c MISMATCH "$O/subset.log") MISMATCH" \
    | tee -a "$O/summary.txt"
  grep MISMATCH "$O/subset.log" | head -20
fi
# The wgmma rung goes into the timed steps only once the plain run vouched for it (the subset ran to its end, its
# wgmma rows ok, none wrong; the GPU self-test too where _C_emu was built): a faulting kernel would take the whole
# benchmark process, and its rows, down with it. (Until H100 run 6 this wanted the self-test's line, which an EMU=0
# build never prints: the rung was left out of the timed steps though every wgmma row was ok.)
WG_TIMED=""
if [ "$CAP" = "9.0a" ] && [ "${SUBSET_RC:-1}" = 0 ] && grep -v -E "wgmma_(ws|tma)" "$O/subset.log" | grep -q "^ok .*tensor_core_wgmma" \
    && ! grep -v -E "wgmma_(ws|tma)" "$O/subset.log" | grep -E "MISMATCH|Error" | grep -q wgmma; then
  WG_TIMED=1
fi
# VOUCHED=1 (with SKIP_SUBSET=1): a short follow-up lease on kernels an earlier lease's subset already vouched for —
# the wgmma, warp-specialised and TMA rungs are timed (and the TMA tests run) without the plain run first
if [ "$CAP" = "9.0a" ] && [ -n "${VOUCHED:-}" ]; then WG_TIMED=1; WS_RC=0; TMA_RC=0; fi
[ "$CAP" = "9.0a" ] && echo "wgmma rung timed: ${WG_TIMED:-no (subset did not vouch for it)}" | tee -a "$O/summary.txt"
# the rungs the benchmark times (the issue-7 ladder: the CUDA-core rungs are slow on 16-bit and only cost time)
WS_TIMED=""
[ -n "$WG_TIMED" ] && [ "${WS_RC:-1}" = 0 ] && WS_TIMED=1
[ "$CAP" = "9.0a" ] && echo "warp-specialised wgmma timed: ${WS_TIMED:-no}" | tee -a "$O/summary.txt"
TMA_TIMED=""
[ -n "$WG_TIMED" ] && [ "${TMA_RC:-1}" = 0 ] && TMA_TIMED=1
[ "$CAP" = "9.0a" ] && echo "TMA wgmma timed: ${TMA_TIMED:-no}" | tee -a "$O/summary.txt"
# the sweep's rungs (bench pass 3): every tensor-core tile the subset vouched for, Winograd
SWEEP_ALGOS=${SWEEP_ALGOS:-winograd,tensor_core,tensor_core_128x128,tensor_core_128x64,tensor_core_64x64${WG_TIMED:+,tensor_core_wgmma,tensor_core_wgmma_128x256,tensor_core_wgmma_128x128,tensor_core_wgmma_128x128_s3,tensor_core_wgmma_128x64,tensor_core_wgmma_64x64,tensor_core_wgmma_64x16}${WS_TIMED:+,${WS_ALGOS#*,}}${TMA_TIMED:+,$TMA_ALGOS}}

step "tests + compute-sanitizer (+ cuda-gdb) in parallel"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -n1)
# the tests' deadline: what the timed steps after them leave (~230 s), at least 90 s (enough on an H200), at most 150
TEST_T=${TEST_T:-$(( $(left) - 230 < 90 ? 90 : ($(left) - 230 > 150 ? 150 : $(left) - 230) ))}
pids=()
if [ -z "${SKIP_TESTS:-}" ]; then
  (
    # -v: a run stopped by its deadline still leaves each finished test's verdict in the log
    sel=(); [ -n "${GDB_TEST:-}" ] && sel=(--deselect "$GDB_TEST")
    # the TMA tests only once the TMA kernels' own plain run passed (a hang would eat the tests' whole deadline)
    tk="$TESTS_K"; [ "$CAP" != "9.0a" ] || [ "${TMA_RC:-1}" = 0 ] || tk="($TESTS_K) and not tma"
    timeout "$TEST_T" "$PY" -m pytest -v -ra --tb=short -p no:cacheprovider -n 12 --dist loadfile -k "$tk" \
      "${sel[@]}" --ignore=tests/test_emu_sanitizers.py --ignore=tests/test_sass_report.py tests >"$O/tests.log" 2>&1
    echo "pytest rc=$?" >>"$O/tests.log"
  ) &
  pids+=($!)
fi
if [ -z "${SKIP_SANITIZER:-}" ]; then
  (
    # the warp-specialised kernels only once their own plain run passed (a hang would eat the sanitizer's time)
    san_skip=(); [ "${WS_RC:-1}" = 0 ] || san_skip=(--skip $WS_ALGOS,$TMA_ALGOS)
    [ "${WS_RC:-1}" = 0 ] && [ "${TMA_RC:-1}" != 0 ] && san_skip=(--skip $TMA_ALGOS)
    for tool in memcheck racecheck; do
      timeout $(( TEST_T / 2 )) "$SAN" --tool "$tool" --error-exitcode 99 "$PY" scripts/sanitizer_subset.py \
        "${san_skip[@]}" >"$O/san_$tool.log" 2>&1
      echo "compute-sanitizer $tool rc=$?" >>"$O/san_$tool.log"
    done
    cat "$O/san_memcheck.log" "$O/san_racecheck.log" >"$O/sanitizer.log"; rm -f "$O"/san_*.log
  ) &
  pids+=($!)
fi
if [ -n "${GDB_TEST:-}" ]; then
  (
    timeout "$TEST_T" cuda-gdb -batch -ex run -ex bt -ex "info sharedlibrary pyconv" --args "$PY" -m pytest -x -q \
      -p no:cacheprovider -p no:xdist "$GDB_TEST" >"$O/gdb.log" 2>&1
    echo "cuda-gdb rc=$?" >>"$O/gdb.log"
  ) &
  pids+=($!)
fi
wait "${pids[@]}"
{ [ -f "$O/tests.log" ] && { tail -n 1 "$O/tests.log"; grep -E " passed| failed" "$O/tests.log" | tail -n 1
    grep -E "^(FAILED|ERROR)" "$O/tests.log" | head -40; }
  [ -f "$O/sanitizer.log" ] && grep -E "rc=|ERROR SUMMARY|RACECHECK SUMMARY|MISMATCH" "$O/sanitizer.log" | head -8
  [ -f "$O/gdb.log" ] && { grep -E "^#[0-9]+ |signal|rc=| passed| failed" "$O/gdb.log" | cut -c1-400 | head -25; }
} | tee -a "$O/summary.txt"
rm -f "$O/gdb.log"  # its verdict and backtrace are in summary.txt: $OUT brings back 8 files at most
# (the same limit: the sanitizer's log goes to the end of the tests' log)
[ -f "$O/sanitizer.log" ] && { { echo "=== compute-sanitizer"; cat "$O/sanitizer.log"; } >>"$O/tests.log"; rm -f "$O/sanitizer.log"; }

# The layer A/Bs (split-K off, PDL off, dgrad's K-major B, every wgmma tile on four layers) answered their questions
# in H200 run 10 (benchmarks/results/nvidia-h200-2026-11-27-run10-check.txt: split-K and PDL on, MN-major dgrad B;
# the bench's tile sweep supersedes the per-layer tile A/B): AB=1 runs them again (each SKIP_*_AB=1 still leaves
# one out), so that by default the lease's time goes to the benchmark, which ran out of it in run 10.
step "layer timing (scripts/profile_layers.py --time)${AB:+, then the A/Bs}"
# --kernels: each call's GPU kernels and their times (torch.profiler) in profile.log, next to the event timings
if [ -z "${SKIP_PROFILE:-}" ]; then
  timeout 90 "$PY" scripts/profile_layers.py --time ${PROFILE_KERNELS:---kernels} >"$O/profile.log" 2>&1
  grep -E "ratio" "$O/profile.log" | tee -a "$O/summary.txt"
fi
# The three A/Bs below (each call capped at 25-40 s; the first the most telling) run only while the budget leaves
# the benchmark its share (> 420 s left here): the benchmark is the lease's first answer.
if [ -z "${SKIP_PIXELS_AB:-}" ] && [ "$(left)" -gt 420 ]; then
  # the TMA kernels (auto's on ResNet-50's 1x1 stride-1 layers, 0.44-0.72x cuDNN in run 11, and on most 3x3s), three
  # ways back to back: as runs 10-11 timed them (im2col loads of the pixel operand, chunked stores of the output:
  # PYCONV_TMA_PIXELS=im2col PYCONV_TMA_STORE=0), with tiled pixel loads only (TcTmaMaps::pix_tiled), and with TMA
  # stores of the output too (TcTmaMaps::y_tiled) — the two defaults since 2026-11-27, unmeasured
  echo "--- TMA kernels A/B: old (im2col + chunked stores), pixels (tiled loads), store (tiled loads + TMA stores)" \
    | tee -a "$O/summary.txt"
  for v in old pixels store; do
    px=tiled; st=1
    [ "$v" = old ] && px=im2col && st=0
    [ "$v" = pixels ] && st=0
    PYCONV_TMA_PIXELS=$px PYCONV_TMA_STORE=$st timeout 40 "$PY" scripts/profile_layers.py --time \
      --dirs fprop,dgrad,wgrad --layers 1x1_64_64_56,1x1_256_64_56,1x1_1024_256_14,3x3_256_256_14 2>&1 \
      | grep -E "ratio|Error|error" | sed "s/^/TMA=$v /" | tee -a "$O/summary.txt"
  done
  # the TMA stores run on the 128x64 and 128x128 tiles only (128x256 spilled with the swizzled staging tile), so on
  # the layers whose rule picks 128x256 (GEMMs of > 128 columns in >= 2 waves: 64 -> 256 fprop, 256 -> 64 dgrad at
  # 56x56) 128x128 with TMA stores may now win: both named, side by side
  echo "--- TMA 128x128 (TMA stores) against 128x256 (chunked stores)" | tee -a "$O/summary.txt"
  timeout 25 "$PY" scripts/profile_layers.py --time --dirs fprop,dgrad \
    --algo tensor_core_wgmma_tma_128x128,tensor_core_wgmma_tma_128x256 --layers 1x1_64_256_56,1x1_256_64_56 2>&1 \
    | grep -E "ratio|Error|error" | sed "s/^/TMA=tiles /" | tee -a "$O/summary.txt"
fi
if [ -z "${SKIP_PHASES_AB:-}" ] && [ "$(left)" -gt 420 ]; then
  # strided dgrad: its sub-pixel phases in one launch (the default since 2026-11-27, unmeasured) against one launch
  # per phase on forked streams (PYCONV_DGRAD_PHASES=fork: runs 5-11), back to back, on auto's tiles (the plain wgmma
  # tiles for the 3x3s; TMA for the 1x1, one phase and a fill of dx) and on the plain wgmma tiles (the 1x1: its
  # unreached phases as zero GEMMs in the one launch, against TMA's fill)
  echo "--- strided dgrad phases A/B: PYCONV_DGRAD_PHASES=fork, then one launch (default)" | tee -a "$O/summary.txt"
  for ph in fork one; do
    PYCONV_DGRAD_PHASES=$ph timeout 25 "$PY" scripts/profile_layers.py --time --dirs dgrad \
      --algo auto,tensor_core_wgmma --layers 3x3s2_128_128_56,3x3s2_256_256_28,1x1s2_256_512_56 2>&1 \
      | grep -E "ratio|Error|error" \
      | sed "s/^/PHASES=$ph /" | tee -a "$O/summary.txt"
  done
fi
if [ -z "${SKIP_DW_ROWS_AB:-}" ] && [ "$(left)" -gt 420 ]; then
  # the windowed depthwise kernels' row groups (PYCONV_DW_ROWS, default 1 = the order every run so far measured):
  # MobileNetV2's stride-1 depthwise fprop ran 0.88-0.96x cuDNN in run 10 (the issue's depthwise goal is > 1.0x)
  echo "--- depthwise row groups A/B: PYCONV_DW_ROWS=1, 2, 4" | tee -a "$O/summary.txt"
  for rows in 1 2 4; do
    PYCONV_DW_ROWS=$rows timeout 25 "$PY" scripts/profile_layers.py --time --dirs fprop,dgrad \
      --layers dw3x3_32_112,dw3x3_144_56,dw3x3_576_14 2>&1 | grep -E "ratio|Error|error" \
      | sed "s/^/DW_ROWS=$rows /" | tee -a "$O/summary.txt"
  done
fi
if [ -n "${AB:-}" ] && [ -z "${SKIP_SPLITK_AB:-}" ]; then
  echo "--- PYCONV_TC_SPLIT_K=0" | tee -a "$O/summary.txt"
  PYCONV_TC_SPLIT_K=0 timeout 60 "$PY" scripts/profile_layers.py --time --dirs fprop,dgrad \
    --layers 3x3_256_256_14,1x1s2_1024_2048,3x3_512_512_7 2>&1 | tail -n 7 | tee -a "$O/summary.txt"
fi
if [ -n "${AB:-}" ] && [ -z "${SKIP_PDL_AB:-}" ]; then
  # the second passes (split-K reduce, wgrad reduce, depthwise wgrad finish) as programmatic dependent launches
  # (launch_dependent, Hopper) against plain launches: the same layers both ways, back to back
  echo "--- PDL A/B: default, then PYCONV_PDL=0" | tee -a "$O/summary.txt"
  for pdl in 1 0; do
    PYCONV_PDL=$pdl timeout 60 "$PY" scripts/profile_layers.py --time --dirs fprop,dgrad,wgrad \
      --layers 3x3_256_256_14,dw3x3_144_56,3x3_512_512_7 2>&1 | grep -E "ratio" | sed "s/^/PDL=$pdl /" \
      | tee -a "$O/summary.txt"
  done
fi
if [ -n "$WG_TIMED" ] && [ -n "${AB:-}" ] && [ -z "${SKIP_DGRAD_B_AB:-}" ]; then
  # wgmma dgrad's B on auto's plain tiles: PYCONV_WGMMA_DGRAD_B=kmajor (the transposed copy run 8 measured: a
  # transpose kernel, then the GEMM) against mn (the default since 2026-11-27: the channels_last filter read in place,
  # MN-major: no transpose, a longer loader loop); fprop beside it (the same GEMM shapes on the 3×3 C = K layers)
  echo "--- wgmma dgrad B A/B: PYCONV_WGMMA_DGRAD_B=kmajor, then mn (default)" | tee -a "$O/summary.txt"
  for b in kmajor mn; do
    PYCONV_WGMMA_DGRAD_B=$b timeout 60 "$PY" scripts/profile_layers.py --time --dirs fprop,dgrad \
      --layers 1x1_64_64_56,3x3_256_256_14,1x1s2_1024_2048,3x3_512_512_7 2>&1 | grep -E "ratio" \
      | sed "s/^/DGRAD_B=$b /" | tee -a "$O/summary.txt"
  done
fi
if [ -n "$WG_TIMED" ] && [ -n "${AB:-}" ] && [ -z "${SKIP_WGMMA_AB:-}" ]; then
  # the Hopper rung against rung 3, per tile (the "wgmma" self-test and the tests above check its results)
  # WG_AB_DIRS: the directions (default fprop,wgrad: the warp-specialised fprop kernel and the MN-major wgrad kernel
  # are the ones not yet timed; runs 6-7 swept every other tile of fprop/dgrad)
  echo "--- wgmma A/B (${WG_AB_DIRS:-fprop,wgrad}): tensor_core vs tensor_core_wgmma (heuristic tile, then each tile)" \
    | tee -a "$O/summary.txt"
  timeout 90 "$PY" scripts/profile_layers.py --time --dirs "${WG_AB_DIRS:-fprop,wgrad}" \
    --layers 1x1_64_64_56,3x3_256_256_14,1x1s2_1024_2048,3x3_512_512_7 \
    --algo tensor_core,tensor_core_wgmma,tensor_core_wgmma_128x256,tensor_core_wgmma_128x128,tensor_core_wgmma_128x128_s3,tensor_core_wgmma_128x64,tensor_core_wgmma_64x64${WS_TIMED:+,${WS_ALGOS#*,}}${TMA_TIMED:+,$TMA_ALGOS} \
    2>&1 | grep -E "ratio|Error|error" | tee -a "$O/summary.txt"
fi
if [ -n "$WG_TIMED" ] && [ -z "${SKIP_NCU_FOCUS:-}" ] && [ -z "${NCU:-}" ]; then
  # auto's kernels under Nsight Compute (~40 s): the 1x1 64 ch layer at 56x56 (one reduction tile a block; run 10
  # saw the integer pipes busy and the tensor pipe at 3.5% on the plain tile, before the FastDiv decode; auto now
  # runs it on TMA), the 3x3 stride-2 dgrad at 56x56 (its four phases in one launch since 2026-11-27) and the 3x3
  # 512 ch layer at 7x7 (wgrad: 144 tiles on 132 SMs, one block each). Duration, throughputs, occupancy and the
  # stall reasons go to summary.txt (the raw CSV to ncu-focus.csv)
  step "Nsight Compute, focused: 1x1_64_64_56, 3x3s2_128_128_56 (dgrad), 3x3_512_512_7"
  NCU_BIN=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -n1)
  timeout 60 "$NCU_BIN" --clock-control none --section SpeedOfLight --section WarpStateStats --section Occupancy \
    --section LaunchStats --section MemoryWorkloadAnalysis -k regex:"tc_wgmma|tc_wgrad|tc_conv|tc_dgrad" \
    --launch-count 24 --csv --page raw "$PY" scripts/profile_layers.py --warm 1 --dirs fprop,dgrad,wgrad \
    --layers 1x1_64_64_56,3x3s2_128_128_56,3x3_512_512_7 >"$O/ncu-focus.csv" 2>/tmp/ncu.err
  echo "ncu-focus rc=$? ($(wc -l <"$O/ncu-focus.csv") lines)" | tee -a "$O/summary.txt"
  # --page raw: a header row of metric names, a row of units, then one row a kernel launch; per launch the
  # duration, the throughputs, occupancy, issue activity and the six largest stall reasons (cycles per issue)
  "$PY" - "$O/ncu-focus.csv" <<'PYEOF' 2>&1 | cut -c1-300 | tee -a "$O/summary.txt"
import csv, sys
with open(sys.argv[1]) as f:
    rows = list(csv.reader(l for l in f if l.startswith('"')))  # ncu's own messages are not CSV rows
head, units, data = rows[0], rows[1], rows[2:]
unit = dict(zip(head, units))
# (DRAM% under its name in these sections' raw page, gpu__dram_throughput: run 10's dram__throughput came empty;
# inst: warp instructions executed in the launch, the issue work that run 10 found setting the 1x1 layer's speed)
want = {"gpu__time_duration.sum": "time", "launch__grid_size": "grid", "launch__registers_per_thread": "regs",
        "sm__throughput.avg.pct_of_peak_sustained_elapsed": "SM%",
        "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed": "DRAM%",
        "lts__throughput.avg.pct_of_peak_sustained_elapsed": "L2%",
        "sm__pipe_tensor_cycles_active.avg.pct_of_peak_sustained_elapsed": "tensor%", "inst_executed": "inst",
        "sm__warps_active.avg.pct_of_peak_sustained_active": "occ%", "smsp__issue_active.avg.per_cycle_active": "issue"}
for r in data:
    m = dict(zip(head, r))
    out = [m.get("Kernel Name", "?")[:48]]
    for k, short in want.items():
        out.append(f"{short}={m.get(k, '')}{unit.get(k, '') if k == 'gpu__time_duration.sum' else ''}")
    stalls = []
    for k, v in m.items():
        if k.startswith("smsp__average_warps_issue_stalled_") and k.endswith("_per_issue_active.ratio"):
            try:
                stalls.append((float(v.replace(",", "")), k[len("smsp__average_warps_issue_stalled_"):-23]))
            except ValueError:
                pass
    out.append("stalls " + " ".join(f"{n}={x:.1f}" for x, n in sorted(stalls, reverse=True)[:6]))
    print(" ".join(out))
PYEOF
  tail -n 3 /tmp/ncu.err | tee -a "$O/summary.txt"
fi
if [ -n "${NCU:-}" ]; then
  # NCU_LAYERS / NCU_DIRS / NCU_ALGO narrow it (default: the five layers, every direction, auto's kernels); e.g.
  # NCU_LAYERS=3x3_512_512_7 NCU_DIRS=wgrad for the wgrad kernel that H200 run 8 timed at 0.27x cuDNN
  step "Nsight Compute on the representative layers"
  NCU_BIN=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda*/bin/ncu 2>/dev/null | head -n1)
  timeout 150 "$NCU_BIN" --clock-control none --section SpeedOfLight --section WarpStateStats --section Occupancy \
    --section LaunchStats --section MemoryWorkloadAnalysis -k regex:"tc_conv|tc_wgmma|tc_wgrad|tc_splitk|tc_dgrad|dw_" \
    --launch-count 60 --csv --page details \
    "$PY" scripts/profile_layers.py --warm 1 --algo "${NCU_ALGO:-auto}" --dirs "${NCU_DIRS:-fprop,dgrad,wgrad}" \
    ${NCU_LAYERS:+--layers "$NCU_LAYERS"} >"$O/ncu.csv" 2>/tmp/ncu.err
  echo "ncu rc=$? ($(wc -l <"$O/ncu.csv") lines)" | tee -a "$O/summary.txt"; tail -n 5 /tmp/ncu.err | tee -a "$O/summary.txt"
fi

# The benchmark in three passes, so that the first answers the issue's question whatever the budget leaves:
#   1. eager, BENCH_SUITES (default resnet50,fused,mobilenet_v2), `auto` and the heuristic rungs only (BENCH_ALGOS
#      overrides): what auto runs, against the rungs it chooses between and cuDNN;
#   2. GRAPH_S seconds (default 75; SKIP_GRAPH=1: none): auto (+ depthwise) against cuDNN under CUDA graphs, ResNet-50
#      and MobileNetV2 (the kernels' GPU time without the host work in front of them: run 8's eager dgrad/wgrad rows
#      spread over 1.5-2x between repetitions, cuDNN's too);
#   3. SWEEP_S seconds (default 100; SKIP_SWEEP=1: none): every tile of every tensor-core rung on ResNet-50 — the data
#      the tile rules are read from (run 10's sweep gave the TMA tile rule) — to bench-f16-nhwc-sweep.json.
# (Run 10 timed all 19 rungs over three suites in one pass and ran out of its 90 s inside MobileNetV2.)
GRAPH_S=${GRAPH_S:-75}
[ -n "${SKIP_GRAPH:-}" ] && GRAPH_S=0
SWEEP_S=${SWEEP_S:-100}
[ -n "${SKIP_SWEEP:-}" ] && SWEEP_S=0
CORE_ALGOS=depthwise,tensor_core${WG_TIMED:+,tensor_core_wgmma}${TMA_TIMED:+,tensor_core_wgmma_tma}
step "bench: float16 channels_last batch 32 (${BENCH_SUITES:-resnet50,fused,mobilenet_v2}) ${BENCH_FLAGS:-}"
timeout $(( $(left) - ${F32_S:-70} - GRAPH_S - SWEEP_S )) "$PY" -m pyconv bench --device cuda --dtype float16 \
  --channels-last --suite "${BENCH_SUITES:-resnet50,fused,mobilenet_v2}" --batch 32 --reps 20 --no-progress --no-plot \
  ${BENCH_FLAGS:-} --algos "${BENCH_ALGOS:-$CORE_ALGOS}" --json "$O/bench-f16-nhwc.json" >"$O/bench.log" 2>&1
echo "bench f16 rc=$?" | tee -a "$O/summary.txt"
if [ "$GRAPH_S" -gt 0 ] && [ $(( $(left) - ${F32_S:-70} - SWEEP_S )) -gt 20 ]; then
  step "bench --graph: auto (and depthwise) against cuDNN, resnet50 and mobilenet_v2"
  timeout $(( $(left) - ${F32_S:-70} - SWEEP_S )) "$PY" -m pyconv bench --device cuda --dtype float16 --channels-last \
    --graph --suite resnet50,mobilenet_v2 --batch 32 --reps 20 --no-progress --no-plot --algos depthwise \
    --json "$O/bench-f16-nhwc-graph.json" >>"$O/bench.log" 2>&1
  echo "bench f16 --graph rc=$?" | tee -a "$O/summary.txt"
fi
if [ "$SWEEP_S" -gt 0 ] && [ $(( $(left) - ${F32_S:-70} )) -gt 20 ]; then
  step "bench: the tile sweep, resnet50 (every tensor-core tile)"
  timeout $(( $(left) - ${F32_S:-70} )) "$PY" -m pyconv bench --device cuda --dtype float16 --channels-last \
    --suite resnet50 --batch 32 --reps 20 --no-progress --no-plot --algos "$SWEEP_ALGOS" \
    --json "$O/bench-f16-nhwc-sweep.json" >>"$O/bench.log" 2>&1
  echo "bench f16 sweep rc=$?" | tee -a "$O/summary.txt"
fi
if [ -z "${SKIP_F32:-}" ]; then
  step "bench: float32 resnet50 batch 32"
  timeout $(( $(left) > 20 ? $(left) : 20 )) "$PY" -m pyconv bench --device cuda --dtype float32 --suite resnet50 \
    --batch 32 --reps 10 --no-progress --no-plot ${BENCH_FLAGS:-} --json "$O/bench-f32.json" >>"$O/bench.log" 2>&1
  echo "bench f32 rc=$?" | tee -a "$O/summary.txt"
fi
rm -f "$O"/*.md
# each pass's row count and geomeans (eager first, then --graph, the sweep, float32); the whole log goes to the end of
# summary.txt (the device tool brings back 8 files: summary, subset, tests, profile, ncu-focus and three bench JSONs)
grep -E "rows \(|×" "$O/bench.log" | tee -a "$O/summary.txt"
{ echo "=== bench.log"; cat "$O/bench.log"; } >>"$O/summary.txt"; rm -f "$O/bench.log"
step "done"
