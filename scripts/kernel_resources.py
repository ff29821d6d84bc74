#!/usr/bin/env python3
"""Per-kernel resource report from ptxas (registers, shared memory, stack, spills) for every CUDA kernel, and the
no-spill check that CI runs.

Compiles each csrc/**/*.cu with nvcc for each architecture (as setup.py does, device code only, plus -Xptxas -v),
parses ptxas's report, writes a markdown table, and with --check fails when a kernel spills registers to local memory
unless it is listed in csrc/kernel_resources_allow.txt with a reason.

    python scripts/kernel_resources.py --check --out build/kernel_resources.md
    python scripts/kernel_resources.py --arch 8.0,9.0 --out benchmarks/results/kernel_resources.md
"""
from __future__ import annotations

import argparse
import concurrent.futures
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLOW = os.path.join(ROOT, "csrc", "kernel_resources_allow.txt")


def _setup_module():
    """setup.py's toolkit finder (importing setup.py runs nothing: its main() is guarded)."""
    spec = importlib.util.spec_from_file_location("pyconv_setup", os.path.join(ROOT, "setup.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def nvcc_command(cuda_home, src, arch):
    import torch
    from torch.utils import cpp_extension

    major, minor = (int(v) for v in torch.__version__.split(".")[:2])
    std = "c++20" if (major, minor) >= (2, 10) else "c++17"  # the standard torch's own headers need
    try:
        incs = cpp_extension.include_paths(device_type="cuda")
    except TypeError:  # older torch: include_paths(cuda=True)
        incs = cpp_extension.include_paths(cuda=True)
    sm = arch.replace(".", "")
    # -cubin: the device passes only (cicc, ptxas), which is all the report needs; skipping the host compilation of
    # the torch-heavy translation units saves a quarter of the time (134 s → 101 s for conv2d_cuda.cu at sm_90a,
    # the same ptxas report)
    cmd = [os.path.join(cuda_home, "bin", "nvcc"), "-cubin", src, "-o", os.devnull, f"-std={std}", "-O3",
           "--expt-relaxed-constexpr", "-Xptxas=-v", f"-gencode=arch=compute_{sm},code=sm_{sm}",
           "-DPYCONV_WITH_CUDA=1", "-DTORCH_EXTENSION_NAME=_C", "-DTORCH_API_INCLUDE_EXTENSION_H",
           f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}", "-I", os.path.join(ROOT, "csrc")]
    for inc in incs:
        cmd += ["-I", inc]
    return cmd


ENTRY = re.compile(r"Compiling entry function '([^']+)' for '(sm_\d+a?)'")
PROPS = re.compile(r"Function properties for (\S+)")
STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers")
SMEM = re.compile(r"(\d+) bytes smem")


# ptxas's own performance warnings, e.g. (C7515) "wgmma.mma_async instructions are serialized due to …": a wgmma
# pipeline that ptxas serialises waits for every wgmma in turn (found on this project's first wgmma kernel).
PERF_LOSS = re.compile(r"\((C\d+)\) Potential Performance Loss: (.*?) in the function '([^']+)'")


def parse(text):
    """ptxas -v output → {(mangled, sm): {registers, smem, stack, spill_stores, spill_loads, perf_loss}}."""
    out, cur, props = {}, None, None
    for line in text.splitlines():
        m = PERF_LOSS.search(line)
        if m and cur:
            key = (m.group(3), cur[1])
            out.setdefault(key, dict(registers=0, smem=0, stack=0, spill_stores=0, spill_loads=0))
            out[key].setdefault("perf_loss", []).append(f"{m.group(1)}: {m.group(2)}")
            continue
        m = ENTRY.search(line)
        if m:
            cur = (m.group(1), m.group(2))
            out.setdefault(cur, dict(registers=0, smem=0, stack=0, spill_stores=0, spill_loads=0))
            continue
        m = PROPS.search(line)
        if m:
            props = m.group(1)
            continue
        m = STACK.search(line)
        if m and cur and props == cur[0]:
            out[cur].update(stack=int(m.group(1)), spill_stores=int(m.group(2)), spill_loads=int(m.group(3)))
            continue
        m = USED.search(line)
        if m and cur:
            sm = SMEM.search(line)
            out[cur].update(registers=int(m.group(1)), smem=int(sm.group(1)) if sm else 0)
    return out


def demangle(names):
    if not names or shutil.which("c++filt") is None:
        return {n: n for n in names}
    r = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return dict(zip(names, r.stdout.splitlines()))


def short(name):
    """Drop the namespaces and argument list, keep the template arguments: readable kernel names."""
    name = re.sub(r"\bpyconv::(cuda::|emu_selftest::)?", "", name)
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):  # the argument list is the first '(' outside template brackets
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            cut = i
            break
    return name[:cut].replace("void ", "")


# Launch configurations the host code uses, for theoretical occupancy: (pattern on the short name) →
# (threads per block, dynamic shared memory bytes). Tensor-core tiles are read off their template arguments. The windowed
# depthwise kernel's staged taps depend on the problem (cuda::dw_window_stage_bytes): its 48 KiB bound is listed.
TC_TILE = re.compile(r"TcTile<(\d+), (\d+), (\d+), (\d+), (\d+)>")
FIXED_LAUNCH = [("implicit_gemm_kernel", 256, 0), ("dw_fprop_kernel", 256, 0), ("dw_dgrad_kernel", 256, 0),
                ("dw_wgrad_kernel", 256, 0), ("dw_nhwc_vec_kernel", 256, 0), ("dw_nhwc_window_kernel", 256, 48 * 1024),
                ("dw_wgrad_nhwc_vec_kernel", 256, 0), ("dw_wgrad_row_kernel", 256, 0),
                ("dw_wgrad_finish_kernel", 256, 0), ("tc_splitk_reduce_kernel", 256, 0),
                ("tc_wgrad_reduce_kernel", 256, 0), ("tc_dgrad_weight_kernel", 256, 0), ("wino_input_kernel", 256, 0),
                ("wino_filter_kernel", 256, 0), ("wino_output_kernel", 256, 0)]
# Per-SM limits (CUDA occupancy calculator): registers, shared memory (bytes), threads, resident blocks.
SM_LIMITS = {"sm_80": (65536, 164 * 1024, 2048, 32), "sm_90": (65536, 228 * 1024, 2048, 32),
             "sm_90a": (65536, 228 * 1024, 2048, 32)}


TC_WG_TILE = re.compile(r"TcWgTile<(\d+), (\d+), (\d+), (\d+)(?:, \d+)?>")
TC_WS_TILE = re.compile(r"TcWsTile<(\d+), (\d+), (\d+)(?:, \d+)?>")


def launch_config(name):
    m = TC_WS_TILE.search(name)
    if m and ("tc_wgmma_ws_conv_kernel" in name or "tc_wgmma_ws_wgrad_kernel" in name or "tc_wgmma_tma_conv_kernel" in name
                  or "tc_wgmma_tma_wgrad_kernel" in name):
        bm, bn, stages = map(int, m.groups())
        # a producer warpgroup + one consumer warpgroup per 64 rows; the stages, the epilogue's staging tile,
        # 2·stages mbarriers, 1 KiB of slack
        return 128 * (1 + bm // 64), stages * (bm + bn) * 128 + bm * (bn + 8) * 2 + 16 * stages + 1024
    m = TC_WG_TILE.search(name)
    if m and ("tc_wgmma_conv_kernel" in name or "tc_wgmma_wgrad_kernel" in name):
        bm, bn, stages = map(int, m.groups()[:3])
        return 128 * (bm // 64), stages * (bm + bn) * 128 + 1024  # cuda_tensor_core_sm90.cuh: 128-byte rows + slack
    m = TC_TILE.search(name)
    if m and ("tc_conv_kernel" in name or "tc_wgrad_kernel" in name):
        bm, bn, wm, wn, stages = map(int, m.groups())
        return 32 * wm * wn, stages * (bm + bn) * 64  # 64-byte tile rows per stage (cuda_tensor_core.cuh)
    for pat, threads, dyn in FIXED_LAUNCH:
        if pat in name:
            return threads, dyn
    return None


def occupancy(regs, smem_static, threads, dyn, sm):
    """Theoretical resident blocks per SM and occupancy (resident warps / 64): registers are allocated per warp in
    units of 256, each block reserves 1 KiB of shared memory beyond its own (sm_80+)."""
    if sm not in SM_LIMITS:
        return None
    reg_sm, smem_sm, thr_sm, blk_sm = SM_LIMITS[sm]
    warps = (threads + 31) // 32
    per_warp = -(-max(regs, 1) * 32 // 256) * 256
    by_regs = (reg_sm // per_warp) // warps
    by_smem = smem_sm // (smem_static + dyn + 1024)
    blocks = min(by_regs, by_smem, thr_sm // threads, blk_sm)
    return blocks, blocks * warps / (thr_sm // 32)


def load_allow():
    rules = []
    if os.path.exists(ALLOW):
        for line in open(ALLOW):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            pattern, _, reason = line.partition("#")
            if not reason.strip():
                sys.exit(f"{ALLOW}: every allowed spill needs a reason after '#': {line!r}")
            rules.append((pattern.strip(), reason.strip()))
    return rules


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default=os.environ.get("TORCH_CUDA_ARCH_LIST", "8.0;9.0a"),
                    help="architectures, e.g. '8.0;9.0a' or 8.0,9.0a (default: TORCH_CUDA_ARCH_LIST or 8.0;9.0a)")
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "kernel_resources.md"), help="markdown report")
    ap.add_argument("--check", action="store_true", help="exit 1 if a kernel spills and is not allowed")
    args = ap.parse_args()

    cuda_home = _setup_module().find_cuda_home()
    if cuda_home is None:
        sys.exit("kernel_resources: no CUDA toolkit found (set CUDA_HOME)")
    os.environ["CUDA_HOME"] = cuda_home  # before torch.utils.cpp_extension is imported: it reads it once
    archs = [a.strip() for a in re.split(r"[;, ]+", args.arch) if a.strip() and a.strip()[0].isdigit()]
    sources = sorted(glob.glob(os.path.join(ROOT, "csrc", "**", "*.cu"), recursive=True))
    # the biggest translation units first, so that the small ones fill in beside them rather than after them
    jobs = sorted(((src, arch) for src in sources for arch in archs), key=lambda j: -os.path.getsize(j[0]))

    def compile_one(job):
        src, arch = job
        r = subprocess.run(nvcc_command(cuda_home, src, arch), capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"nvcc failed on {src} for {arch}:\n{r.stderr[-4000:]}")
        return src, parse(r.stdout + r.stderr)

    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        for src, res in pool.map(compile_one, jobs):
            for key, v in res.items():
                results[key] = dict(v, source=os.path.relpath(src, ROOT))

    names = demangle(sorted({k[0] for k in results}))
    allow = load_allow()
    rows, bad = [], []
    for (mangled, sm), v in sorted(results.items(), key=lambda kv: (short(names[kv[0][0]]), kv[0][1])):
        full = names[mangled]
        spills = v["spill_stores"] + v["spill_loads"]
        reason = next((why for pat, why in allow if pat in full), None) if spills else None
        status = "ok" if spills == 0 else (f"allowed: {reason}" if reason else "SPILLS")
        if spills and not reason:
            bad.append(f"{short(full)} ({sm}): {v['spill_stores']} B spill stores, {v['spill_loads']} B spill loads")
        occ = "–"
        cfg = launch_config(short(full))
        if cfg:
            r = occupancy(v["registers"], v["smem"], cfg[0], cfg[1], sm)
            if r:
                occ = f"{cfg[0]} thr, {cfg[1] // 1024} KiB dyn: {r[0]} blk/SM, {r[1]:.0%}"
        for loss in v.get("perf_loss", []):
            bad.append(f"{short(full)} ({sm}): ptxas {loss}")
            status = "PERF LOSS"
        rows.append(f"| `{short(full)}` | {sm} | {v['registers']} | {v['smem']} | {v['stack']} | "
                    f"{v['spill_stores']} | {v['spill_loads']} | {occ} | {status} |")

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("# CUDA kernel resources (ptxas -v)\n\n")
        f.write(f"Sources: {', '.join(os.path.relpath(s, ROOT) for s in sources)}; architectures: "
                f"{', '.join('sm_' + a.replace('.', '') for a in archs)}; "
                f"generated by scripts/kernel_resources.py. Registers per thread; shared memory, stack and spills in "
                f"bytes. A spill fails CI unless csrc/kernel_resources_allow.txt lists the kernel with a reason. "
                f"Occupancy: theoretical, for the launch configuration the host code uses (threads per block, dynamic "
                f"shared memory), from registers and shared memory (A100 limits for sm_80, H100 for sm_90 and sm_90a).\n\n")
        f.write("| kernel | arch | registers | smem | stack | spill stores | spill loads | occupancy | status |\n")
        f.write("|---|---|---:|---:|---:|---:|---:|---|---|\n")
        f.write("\n".join(rows) + "\n")
    print(f"kernel_resources: {len(rows)} kernel builds, report in {os.path.relpath(args.out, ROOT)}")
    for line in bad:
        print(f"  FAIL: {line}")
    if not results:
        sys.exit("kernel_resources: ptxas reported no kernels (was -Xptxas -v output parsed?)")
    if args.check and bad:
        sys.exit(f"kernel_resources: {len(bad)} problem(s): spilled registers (fix them or list the kernel in "
                 f"{os.path.relpath(ALLOW, ROOT)} with a reason) or a ptxas performance-loss warning (fix it)")


if __name__ == "__main__":
    main()
