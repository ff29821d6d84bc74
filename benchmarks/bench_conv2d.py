"""conv2d: pyconv against torch on ResNet-style layers (CPU: oneDNN; CUDA: cuDNN and torch's native kernels).

    python benchmarks/bench_conv2d.py                      # CPU, batch 8, every direction
    python benchmarks/bench_conv2d.py --device cuda        # GPU: pyconv rungs vs cuDNN (TF32 off) and native
    python benchmarks/bench_conv2d.py --quick --json out.json

Method: every provider's result is checked against torch in float64 before it is timed; warm-up, then the median
of --reps timed runs (CUDA events on GPU, perf_counter on CPU), providers interleaved layer by layer so that machine
noise hits all of them alike. FLOPs per direction = 2·N·K·P·Q·(C/groups)·R·S. Ratios are pyconv time over the
reference time inverted (ratio > 1: pyconv faster). Nothing here asserts a speed.
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

# (name, C, K, H(=W), R(=S), stride, padding): ResNet-50/18-style layers.
LAYERS = [
    ("stem 7x7/2", 3, 64, 224, 7, 2, 3),
    ("res2 3x3", 64, 64, 56, 3, 1, 1),
    ("res2 1x1 expand", 64, 256, 56, 1, 1, 0),
    ("res3 3x3", 128, 128, 28, 3, 1, 1),
    ("res3 3x3/2", 128, 128, 56, 3, 2, 1),
    ("res4 3x3", 256, 256, 14, 3, 1, 1),
    ("res4 1x1 reduce", 1024, 256, 14, 1, 1, 0),
    ("res5 3x3", 512, 512, 7, 3, 1, 1),
]
QUICK = {"res2 3x3", "res4 3x3", "res5 3x3"}


def timer(device):
    if device == "cuda":
        def run(fn, reps):
            times = []
            for _ in range(reps):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                fn()
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b) / 1e3)
            return statistics.median(times)
    else:
        def run(fn, reps):
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return statistics.median(times)
    return run


def directions(x, w, stride, pad):
    """Per direction: (pyconv fn(algo), torch fn) computing the same tensor."""
    go = torch.randn_like(F.conv2d(x, w, None, stride, pad))
    geo = ([stride, stride], [pad, pad], [1, 1], 1)
    ops = torch.ops.pyconv

    def aten_bw(mask):
        return lambda: torch.ops.aten.convolution_backward(go, x, w, None, [stride] * 2, [pad] * 2, [1, 1], False,
                                                           [0, 0], 1, mask)
    return {
        "fprop": (lambda a: ops.conv2d_fprop(x, w, None, *geo, a), lambda: F.conv2d(x, w, None, stride, pad)),
        "dgrad": (lambda a: ops.conv2d_dgrad(go, w, list(x.shape), *geo, a),
                  lambda: aten_bw([True, False, False])()[0]),
        "wgrad": (lambda a: ops.conv2d_wgrad(go, x, list(w.shape), *geo, a),
                  lambda: aten_bw([False, True, False])()[1]),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "float64"])
    ap.add_argument("--dirs", default="fprop,dgrad,wgrad")
    ap.add_argument("--algos", default=None, help="comma list of pyconv algos (default: every rung)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="three layers, fastest rung, few repetitions")
    ap.add_argument("--json", default=None, help="write results here (default benchmarks/results/<dev>-<date>.json)")
    args = ap.parse_args(argv)

    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device visible")
    info = pyconv.build_info()
    dtype = getattr(torch, args.dtype)
    algos = args.algos.split(",") if args.algos else info["algorithms"][dev]["conv2d"]
    if args.quick and not args.algos:
        algos = algos[-1:]  # the fastest rung only: the direct CPU rung alone takes seconds per call
    reps = args.reps or (3 if args.quick else (20 if dev == "cuda" else 5))
    if dev == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False  # an IEEE float32 row against an IEEE float32 row
        torch.backends.cuda.matmul.allow_tf32 = False
    run = timer(dev)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    dev_name = torch.cuda.get_device_name() if dev == "cuda" else (platform.processor() or platform.machine())
    ref_name = "cuDNN" if dev == "cuda" else "torch (oneDNN)"
    print(f"pyconv {info['version']} conv2d on {dev} ({dev_name}), {args.dtype}, batch {args.batch}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, median of {reps}")
    rows = []
    layers = [l for l in LAYERS if not args.quick or l[0] in QUICK]
    hdr = f"{'layer':18s} {'dir':5s} {'provider':18s} {'ms':>9s} {'GFLOP/s':>9s} {'vs ' + ref_name:>14s}"
    print(hdr + "\n" + "-" * len(hdr))
    for name, C, K, H, R, stride, pad in layers:
        x = torch.randn(args.batch, C, H, H, device=dev, dtype=dtype)
        w = torch.randn(K, C, R, R, device=dev, dtype=dtype) / (C * R * R) ** 0.5
        P = (H + 2 * pad - R) // stride + 1
        flops = 2.0 * args.batch * K * P * P * C * R * R
        for d, (ours, theirs) in directions(x, w, stride, pad).items():
            if d not in args.dirs.split(","):
                continue
            expected = theirs().double()
            providers = {f"pyconv {a}": (lambda a=a: ours(a)) for a in algos}
            providers[ref_name] = theirs
            if dev == "cuda":
                providers["torch native"] = lambda: (torch.backends.cudnn.flags(enabled=False).__enter__(), theirs())[1]
            timings = {}
            for pname, fn in providers.items():
                out = fn()
                sync()
                err = ((out.double() - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()
                tol = 1e-3 if dtype in (torch.float16, torch.bfloat16) else 1e-4
                if not err <= tol:
                    print(f"{name:18s} {d:5s} {pname:18s} WRONG RESULT (max rel err {err:.2e}); not timed")
                    rows.append(dict(layer=name, dir=d, provider=pname, ok=False, rel_err=err))
                    continue
                fn()  # warm-up (cudnn.benchmark autotunes here)
                sync()
                timings[pname] = (run(fn, reps), err)
            if dev == "cuda":
                torch.backends.cudnn.enabled = True
            ref_t = timings.get(ref_name, (None,))[0]
            for pname, (t, err) in timings.items():
                ratio = ref_t / t if ref_t else None
                rows.append(dict(layer=name, dir=d, provider=pname, ok=True, rel_err=err, ms=t * 1e3,
                                 gflops=flops / t / 1e9, ratio_vs_ref=ratio, N=args.batch, C=C, K=K, H=H, W=H,
                                 R=R, S=R, stride=stride, padding=pad, flops=flops))
                print(f"{name:18s} {d:5s} {pname:18s} {t * 1e3:9.3f} {flops / t / 1e9:9.1f} "
                      f"{(f'{ratio:.2f}x' if ratio else ''):>14s}")
    for a in algos:
        rs = [r["ratio_vs_ref"] for r in rows if r.get("ok") and r["provider"] == f"pyconv {a}" and r["dir"] == "fprop"
              and r["ratio_vs_ref"]]
        if rs:
            print(f"geomean fprop ratio, pyconv {a} vs {ref_name}: {statistics.geometric_mean(rs):.2f}x")
    out = args.json or os.path.join(os.path.dirname(__file__), "results",
                                    f"conv2d-{dev}-{datetime.date.today().isoformat()}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(dict(device=dev, device_name=dev_name, dtype=args.dtype, batch=args.batch, reps=reps,
                       torch=torch.__version__, pyconv=info, threads=torch.get_num_threads(),
                       date=datetime.datetime.now().isoformat(timespec="seconds"), rows=rows), f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
