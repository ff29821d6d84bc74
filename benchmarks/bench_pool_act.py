"""Pooling and activations: pyconv against torch (CPU: torch's native/oneDNN kernels; CUDA: torch's kernels).

    python benchmarks/bench_pool_act.py                 # CPU
    python benchmarks/bench_pool_act.py --device cuda   # GPU
    python benchmarks/bench_pool_act.py --quick

These ops are memory-bound, so each row counts the bytes it must move (inputs read once, outputs written once,
max-pooling indices included: pyconv always writes them, int64) and reports GB/s and the percentage of the copy
bandwidth measured in the same run (a large tensor copy: read + write). Every provider's result is checked against
torch before timing; median of --reps runs after warm-up; providers interleaved row by row. Ratio = torch time /
pyconv time (> 1: pyconv faster). Nothing here asserts a speed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import pyconv
from pyconv import functional as PF


def timer(device):
    def run(fn, reps):
        times = []
        for _ in range(reps):
            if device == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b) / 1e3)
            else:
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
        return statistics.median(times)
    return run


def rows(device, quick):
    """(name, pyconv fn, torch fn, bytes moved)."""
    n_big = 16 if quick else 64
    f32 = dict(device=device, dtype=torch.float32)
    out = []

    x = torch.randn(n_big, 64, 112, 112, **f32)  # the ResNet stem's max pool input
    y_shape = F.max_pool2d(x, 3, 2, 1).shape
    nbytes = x.numel() * 4 + y_shape.numel() * (4 + 8)
    out.append((f"max_pool2d 3x3/2 {tuple(x.shape)}", lambda x=x: PF.max_pool2d(x, 3, 2, 1),
                lambda x=x: F.max_pool2d(x, 3, 2, 1), nbytes))
    xcl = x.contiguous(memory_format=torch.channels_last)
    out.append((f"max_pool2d 3x3/2 channels_last", lambda x=xcl: PF.max_pool2d(x, 3, 2, 1),
                lambda x=xcl: F.max_pool2d(x, 3, 2, 1), nbytes))
    xv = torch.randn(n_big // 4, 128, 112, 112, **f32)  # VGG 2×2 pool
    out.append((f"max_pool2d 2x2/2 {tuple(xv.shape)}", lambda x=xv: PF.max_pool2d(x, 2),
                lambda x=xv: F.max_pool2d(x, 2), xv.numel() * 4 + xv.numel() // 4 * 12))
    xa = torch.randn(n_big // 4, 128, 56, 56, **f32)
    out.append((f"avg_pool2d 3x3/1 pad 1 {tuple(xa.shape)}", lambda x=xa: PF.avg_pool2d(x, 3, 1, 1),
                lambda x=xa: F.avg_pool2d(x, 3, 1, 1), xa.numel() * 8))
    xg = torch.randn(n_big, 2048, 7, 7, **f32)  # ResNet-50's global average pool
    out.append((f"global avg pool {tuple(xg.shape)}", lambda x=xg: PF.adaptive_avg_pool2d(x, 1),
                lambda x=xg: F.adaptive_avg_pool2d(x, 1), xg.numel() * 4))
    # max pool backward: read grad_output + indices, write grad_input
    xr = x.detach().requires_grad_(True)
    y, idx = PF.max_pool2d(xr, 3, 2, 1, return_indices=True)
    go = torch.randn_like(y)
    y_ref = F.max_pool2d(xr, 3, 2, 1)
    ops = torch.ops.pyconv
    out.append(("max_pool2d 3x3/2 backward", lambda: ops.max_pool2d_backward(go, x, idx, [3, 3], [2, 2], [1, 1],
                                                                                [1, 1], False),
                lambda: torch.autograd.grad(y_ref, xr, go, retain_graph=True)[0], go.numel() * 12 + x.numel() * 4))

    n_act = (1 << 22) if quick else (1 << 24)
    xe = torch.randn(n_act, **f32)
    for name, ours, ref in (("relu", PF.relu, F.relu), ("gelu", PF.gelu, F.gelu), ("silu", PF.silu, F.silu),
                            ("sigmoid", PF.sigmoid, torch.sigmoid), ("hardswish", PF.hardswish, F.hardswish),
                            ("mish", PF.mish, F.mish)):
        out.append((f"{name} fwd {n_act} floats", lambda x=xe, f=ours: f(x), lambda x=xe, f=ref: f(x), n_act * 8))
    ge = torch.randn_like(xe)
    for kind, ref in (("relu", lambda g, x: torch.ops.aten.threshold_backward(g, x, 0)),
                      ("gelu", lambda g, x: torch.ops.aten.gelu_backward(g, x)),
                      ("silu", lambda g, x: torch.ops.aten.silu_backward(g, x))):
        out.append((f"{kind} bwd {n_act} floats", lambda k=kind: ops.activation_backward(ge, xe, k, 0.0),
                    lambda r=ref: r(ge, xe), n_act * 12))
    xi, xi2 = xe.clone(), xe.clone()
    out.append((f"relu_ in place {n_act} floats", lambda: PF.relu_(xi), lambda: torch.relu_(xi2), n_act * 8))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="smaller tensors")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", help="write results here (default benchmarks/results/pool-act-<device>-<date>.json)")
    args = ap.parse_args()
    if args.device == "cuda" and not pyconv.build_info()["cuda_available"]:
        sys.exit("no CUDA device (or pyconv built without CUDA)")
    torch.manual_seed(0)
    run = timer(args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)

    # The roofline: copy bandwidth (read + write) of a large float32 tensor, measured in this run.
    src = torch.randn(1 << 25, device=args.device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    sync()
    copy_s = run(lambda: dst.copy_(src), args.reps)
    copy_gbs = 2 * src.numel() * 4 / copy_s / 1e9
    del src, dst
    print(f"device {args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"copy bandwidth {copy_gbs:.1f} GB/s")
    print(f"{'op':44s} {'pyconv ms':>10s} {'torch ms':>10s} {'pyconv GB/s':>12s} {'% copy':>7s} {'ratio':>6s}")

    results = []
    for name, ours, ref, nbytes in rows(args.device, args.quick):
        a, b = ours(), ref()
        a = a[0] if isinstance(a, tuple) else a
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")
        for _ in range(2):  # warm-up
            ours(), ref()
        sync()
        t_ours = run(ours, args.reps)
        t_ref = run(ref, args.reps)
        gbs = nbytes / t_ours / 1e9
        row = dict(op=name, pyconv_ms=t_ours * 1e3, torch_ms=t_ref * 1e3, bytes=nbytes, pyconv_gbs=gbs,
                   pct_copy_bandwidth=100 * gbs / copy_gbs, ratio_vs_torch=t_ref / t_ours)
        results.append(row)
        print(f"{name:44s} {row['pyconv_ms']:10.2f} {row['torch_ms']:10.2f} {gbs:12.1f} "
              f"{row['pct_copy_bandwidth']:6.0f}% {row['ratio_vs_torch']:6.2f}")

    meta = dict(date=datetime.date.today().isoformat(), device=args.device, torch=torch.__version__,
                pyconv=pyconv.__version__, threads=torch.get_num_threads(), machine=platform.machine(),
                processor=platform.processor(), copy_bandwidth_gbs=copy_gbs, quick=args.quick, reps=args.reps)
    path = args.json or os.path.join(os.path.dirname(__file__), "results",
                                     f"pool-act-{args.device}-{meta['date']}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
