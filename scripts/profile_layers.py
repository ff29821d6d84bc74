"""A few representative convolution layers, each run a handful of times on the GPU, for a profiler to look at.

Meant to run under Nsight Compute (scripts/gpu_lease.sh with NCU=1 does):
    ncu --clock-control none --section SpeedOfLight --section WarpStateStats --section Occupancy \\
        --section LaunchStats -k regex:"tc_conv|tc_wgrad|dw_" --launch-skip 0 --launch-count 40 \\
        python3 scripts/profile_layers.py
Each (layer, direction, rung) is called WARM times first (kernel selection, cuDNN search, allocator warm-up), then
once more inside an NVTX range named after it; with --time it also prints a CUDA-event time per call next to cuDNN's,
so the same script gives a quick A/B without a profiler. float16, channels_last, batch 32 by default: the issue-7
target configuration. Layers (ResNet-50 / MobileNetV2):
  1x1_64_64_56      1×1, 64→64 at 56×56: tiny reduction, the epilogue and launch shape dominate
  3x3_256_256_14    3×3, 256→256 at 14×14: a long reduction on a grid smaller than the SM count
  1x1s2_1024_2048   1×1 stride 2, 1024→2048 at 14×14: strided dgrad (sub-pixel phases)
  dw3x3_144_56      depthwise 3×3, 144 channels at 56×56: memory-bound
  3x3_512_512_7     3×3, 512→512 at 7×7: 1568 output pixels, a 4608-long reduction: split-K territory
  3x3s2_128_128_56  3×3 stride 2, 128→128 at 56×56: strided dgrad, four sub-pixel phases of 4/2/2/1 taps
  3x3s2_256_256_28  3×3 stride 2, 256→256 at 28×28: the same at a quarter of the pixels
  1x1s2_256_512_56  1×1 stride 2, 256→512 at 56×56: one reached phase of four (three phases of dx are zeros)
  dw3x3_32_112      depthwise 3×3, 32 channels at 112×112 (MobileNetV2's first; stride 1)
  dw3x3_576_14      depthwise 3×3, 576 channels at 14×14 (stride 1)
(the last five only when named in --layers)
--time reports the median over 20 samples of 10 back-to-back calls each (so host launch overhead overlaps the GPU
work as in a real model); run it with PYCONV_TC_SPLIT_K=0 for the same layers without fprop/dgrad split-K.
"""
import argparse
import sys

import torch
import torch.nn.functional as F

LAYERS = {
    # name: (C, K, H, W, R, stride, pad, groups)
    "1x1_64_64_56": (64, 64, 56, 56, 1, 1, 0, 1),
    "3x3_256_256_14": (256, 256, 14, 14, 3, 1, 1, 1),
    "1x1s2_1024_2048": (1024, 2048, 14, 14, 1, 2, 0, 1),
    "dw3x3_144_56": (144, 144, 56, 56, 3, 1, 1, 144),
    "3x3_512_512_7": (512, 512, 7, 7, 3, 1, 1, 1),
}
EXTRA_LAYERS = {  # named in --layers only (the default set stays the one earlier runs profiled)
    "3x3s2_128_128_56": (128, 128, 56, 56, 3, 2, 1, 1),
    "3x3s2_256_256_28": (256, 256, 28, 28, 3, 2, 1, 1),
    "1x1s2_256_512_56": (256, 512, 56, 56, 1, 2, 0, 1),
    "dw3x3_32_112": (32, 32, 112, 112, 3, 1, 1, 32),
    "dw3x3_576_14": (576, 576, 14, 14, 3, 1, 1, 576),
    "1x1_256_64_56": (256, 64, 56, 56, 1, 1, 0, 1),
    "1x1_1024_256_14": (1024, 256, 14, 14, 1, 1, 0, 1),
    "1x1_64_256_56": (64, 256, 56, 56, 1, 1, 0, 1),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", default=",".join(LAYERS), help="comma list (default: all)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    ap.add_argument("--dirs", default="fprop,dgrad,wgrad")
    ap.add_argument("--warm", type=int, default=3)
    ap.add_argument("--algo", default="auto",
                    help="comma list of rungs to run on the non-depthwise layers (default auto: what a model runs, "
                         "the wgmma rung on Hopper; e.g. tensor_core,tensor_core_wgmma for an A/B of the mma.sync and "
                         "wgmma rungs); depthwise layers run 'depthwise'")
    ap.add_argument("--time", action="store_true", help="also print CUDA-event times per call vs cuDNN")
    ap.add_argument("--kernels", action="store_true",
                    help="also print the GPU kernels one pyconv call runs (torch.profiler, 10 calls): where the time "
                         "goes besides the main kernel (layout copies, weight transposes, zero fills, reductions)")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("profile_layers: needs a CUDA GPU")
    import pyconv  # noqa: F401  (registers torch.ops.pyconv)

    ops = torch.ops.pyconv
    dtype = getattr(torch, args.dtype)
    torch.backends.cudnn.benchmark = True
    for name in args.layers.split(","):
        C, K, H, W, R, st, pad, g = {**LAYERS, **EXTRA_LAYERS}[name]
        x = torch.randn(args.batch, C, H, W, device="cuda", dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = (torch.randn(K, C // g, R, R, device="cuda", dtype=dtype) * 0.1).contiguous(
            memory_format=torch.channels_last)
        y = F.conv2d(x, w, None, st, pad, 1, g)
        go = torch.randn_like(y)
        geo = ([st, st], [pad, pad], [1, 1], g)
        algos = ["depthwise"] if g == C and g > 1 else args.algo.split(",")

        def calls(algo):
            return {
                "fprop": (lambda: ops.conv2d_fprop(x, w, None, *geo, algo),
                          lambda: F.conv2d(x, w, None, st, pad, 1, g)),
                "dgrad": (lambda: ops.conv2d_dgrad(go, w, list(x.shape), *geo, algo),
                          lambda: torch.ops.aten.convolution_backward(go, x, w, None, [st] * 2, [pad] * 2, [1, 1],
                                                                      False, [0, 0], g, [True, False, False])[0]),
                "wgrad": (lambda: ops.conv2d_wgrad(go, x, list(w.shape), *geo, algo),
                          lambda: torch.ops.aten.convolution_backward(go, x, w, None, [st] * 2, [pad] * 2, [1, 1],
                                                                      False, [0, 0], g, [False, True, False])[1]),
            }
        for d, algo in ((d, a) for a in algos for d in args.dirs.split(",")):
            ours, theirs = calls(algo)[d]
            for _ in range(args.warm):
                ours(), theirs()
            torch.cuda.synchronize()
            counters = [getattr(pyconv._C, f) for f in ("conv2d_tc_launches", "conv2d_tc_tma_tiled_pixels",
                                                         "conv2d_tc_tma_stores") if hasattr(pyconv._C, f)]
            for c in counters:
                c()
            torch.cuda.nvtx.range_push(f"{name} {d} {algo}")
            ours()
            torch.cuda.nvtx.range_pop()
            plan = " ".join(f"{t.replace('tensor_core_', '')}/{k}" for t, k in pyconv._C.conv2d_tc_launches())
            # the TMA kernels' forms this call took: tiled pixel loads, TMA stores (launch counts)
            if len(counters) == 3:
                plan += f" pix={counters[1]()} st={counters[2]()}"
            torch.cuda.synchronize()
            if args.time:
                def med(fn):
                    ts = []
                    for _ in range(20):
                        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        a.record()
                        for _ in range(10):
                            fn()
                        b.record()
                        b.synchronize()
                        ts.append(a.elapsed_time(b) * 1e3 / 10)
                    return sorted(ts)[len(ts) // 2]
                t_ours, t_cudnn = med(ours), med(theirs)
                print(f"{name:18s} {d}  pyconv {algo:17s} {t_ours:8.1f} us   cuDNN {t_cudnn:8.1f} us   "
                      f"ratio {t_cudnn / t_ours:5.2f}x  {plan}", flush=True)
            if args.kernels:
                from torch.profiler import ProfilerActivity, profile
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    for _ in range(10):
                        ours()
                    torch.cuda.synchronize()
                def dev_us(e):  # the attribute's name changed across torch versions
                    return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
                rows = sorted((e for e in prof.key_averages() if dev_us(e) > 0), key=lambda e: -dev_us(e))
                for e in rows[:6]:  # per call: total over the 10 calls / 10
                    print(f"    {dev_us(e) / 10:8.1f} us  x{e.count / 10:g}  {e.key[:110]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
