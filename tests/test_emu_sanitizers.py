"""The emulator under sanitizers, through the standalone harness (tests/emu_harness/harness.cpp, no torch/Python in it).

Builds the harness four ways with the host compiler and runs it:
  plain            every conv2d, pooling and activation CUDA kernel vs the CPU loops (several orders, 1 and 2 OS
                   threads) and the self-tests
  ucontext         the same with the portable glibc context switch instead of the x86-64 assembly one
  asan+ubsan       clean on the kernels; catches the seeded global out-of-bounds read (ASan) and shared-memory index
                   overflow (UBSan)
  tsan             clean on the kernels (the barriers publish happens-before); catches the seeded missing
                   __syncthreads as a data race
"""
import glob
import hashlib
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "tests", "emu_harness", "harness.cpp")
CACHE = os.path.join(ROOT, "build", "emu_harness")
CXX = os.environ.get("CXX", "g++")

FLAVOURS = {
    "plain": ["-O1"],
    "ucontext": ["-O1", "-DPYCONV_EMU_UCONTEXT"],
    "asan": ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"],
    "tsan": ["-O1", "-fsanitize=thread"],
}


def cuda_include():
    cands = []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            cands.append(os.path.join(os.environ[var], "include"))
    cands += sorted(glob.glob("/usr/local/cuda*/include"), reverse=True)
    for site in sys.path:
        cands += sorted(glob.glob(os.path.join(site, "nvidia", "cu*", "include")), reverse=True)
    for c in cands:
        if os.path.exists(os.path.join(c, "cuda_runtime.h")) and os.path.exists(os.path.join(c, "cuda_fp16.h")):
            return c
    return None


def _missing(why):
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the sanitizer harness: {why}")
    pytest.skip(why)


def _sources_digest(flags):
    h = hashlib.sha256(" ".join([CXX] + flags).encode())
    for path in sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.*"), recursive=True)) + [HARNESS]:
        if path.endswith((".h", ".cuh", ".cu", ".cpp")):
            with open(path, "rb") as f:
                h.update(path.encode() + f.read())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def build():
    if shutil.which(CXX) is None:
        _missing(f"no host compiler {CXX}")
    inc = cuda_include()
    if inc is None:
        _missing("CUDA headers not found (set CUDA_HOME)")
    os.makedirs(CACHE, exist_ok=True)
    built = {}

    def get(flavour):
        if flavour in built:
            return built[flavour]
        flags = ["-std=c++17", "-g", "-pthread", "-Wno-psabi", "-I", inc] + FLAVOURS[flavour]
        exe = os.path.join(CACHE, f"harness-{flavour}-{_sources_digest(flags)}")
        if not os.path.exists(exe):
            r = subprocess.run([CXX] + flags + [HARNESS, "-o", exe + ".tmp"], capture_output=True, text=True)
            if r.returncode != 0:
                if "sanitize" in " ".join(FLAVOURS[flavour]) and "cannot find" in r.stderr:
                    _missing(f"{flavour} runtime library not installed: {r.stderr.strip()[-300:]}")
                raise AssertionError(f"building the {flavour} harness failed:\n{r.stderr[-4000:]}")
            os.replace(exe + ".tmp", exe)
        built[flavour] = exe
        return exe

    return get


def run(exe, *args, env=None, timeout=600):
    e = dict(os.environ)
    e.pop("PYCONV_EMU_ORDER", None)
    e.update(env or {})
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, env=e)


@pytest.mark.parametrize("flavour", ["plain", "ucontext", "asan"])
def test_kernels_and_selftests_clean(build, flavour):
    exe = build(flavour)
    for mode in ("conv", "pool", "act"):
        r = run(exe, mode)
        assert r.returncode == 0 and "0 failure(s)" in r.stdout, r.stdout + r.stderr[-4000:]
        assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr[-4000:]
    for order in ("forward", "reverse", "random"):
        r = run(exe, "selftests", env={"PYCONV_EMU_ORDER": order})
        assert r.returncode == 0 and "0 failure(s)" in r.stdout, r.stdout + r.stderr[-4000:]
        assert "Sanitizer" not in r.stderr, r.stderr[-4000:]


def test_tsan_clean_on_kernels(build):
    """Every conv2d, pooling and activation kernel (incl. the shared-memory implicit GEMM and the bgrad and global-average
    trees) and every self-test under TSan:
    no race reported, i.e. the kernels' barriers are where they must be."""
    exe = build("tsan")
    for args in (("conv", "--quick"), ("pool",), ("act",)):
        r = run(exe, *args)
        assert r.returncode == 0 and "0 failure(s)" in r.stdout, r.stdout + r.stderr[-4000:]
        assert "ThreadSanitizer" not in r.stderr, r.stderr[-6000:]
    r = run(exe, "selftests", env={"PYCONV_EMU_ORDER": "random"})
    assert r.returncode == 0 and "0 failure(s)" in r.stdout, r.stdout + r.stderr[-4000:]
    assert "ThreadSanitizer" not in r.stderr, r.stderr[-6000:]


def test_tsan_catches_missing_syncthreads(build):
    r = run(build("tsan"), "bug", "missing_syncthreads")
    assert "WARNING: ThreadSanitizer: data race" in r.stderr, r.stdout + r.stderr[-4000:]
    assert "missing_syncthreads_kernel" in r.stderr
    assert r.returncode != 0  # TSan exits non-zero when it reported


def test_asan_catches_global_out_of_bounds(build):
    r = run(build("asan"), "bug", "global_oob")
    assert "AddressSanitizer: heap-buffer-overflow" in r.stderr, r.stdout + r.stderr[-4000:]
    assert "global_oob_kernel" in r.stderr
    assert r.returncode != 0


def test_ubsan_catches_shared_memory_overflow(build):
    r = run(build("asan"), "bug", "smem_overflow")
    assert "index 64 out of bounds for type 'float [64]'" in r.stderr, r.stdout + r.stderr[-4000:]
    assert r.returncode != 0


def test_plain_build_does_not_see_sanitizer_bugs(build):
    """Control: without a sanitizer these bugs run to completion, so the reports above come from the sanitizers."""
    exe = build("plain")
    for name in ("missing_syncthreads", "global_oob"):
        r = run(exe, "bug", name)
        assert r.returncode == 0 and "launch returned success" in r.stdout, r.stdout + r.stderr
