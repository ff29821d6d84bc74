"""A small run of every CUDA kernel, for compute-sanitizer (scripts/gpu_check.sh runs it under memcheck and
racecheck): each conv2d rung in every direction (float32, half; odd sizes, groups, stride, padding), pooling forward
and backward, every activation forward and backward, global average pooling and the emulator's GPU self-tests.
Results are checked against torch too, so a sanitizer run is also a correctness run. Exits non-zero on a mismatch."""
import argparse
import sys

import torch
import torch.nn.functional as F

import pyconv
from pyconv import functional as PF


def check(name, got, want, tol):
    err = (got.double() - want.double()).abs().max().item() / max(want.double().abs().max().item(), 1e-30)
    status = "ok" if err <= tol else "MISMATCH"
    print(f"{status:8s} {name}: rel err {err:.2e}")
    return err <= tol


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--algos", default="", help="comma list: only these conv2d rungs (and no pools, activations or "
                                                "self-tests), e.g. a rung not yet run on hardware, on its own")
    ap.add_argument("--skip", default="", help="comma list of conv2d rungs to leave out")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("sanitizer_subset: needs a CUDA device")
    torch.manual_seed(0)
    ok = True
    ops = torch.ops.pyconv
    algos = pyconv.build_info()["algorithms"]["cuda"]["conv2d"]
    only = [a for a in args.algos.split(",") if a]
    skip = {a for a in args.skip.split(",") if a}
    algos = [a for a in algos if (not only or a in only) and a not in skip]
    # the wgmma rung: compute capability 9.0 with an sm_90a build, 16-bit types
    wg_ok = torch.cuda.get_device_capability() == (9, 0) and "9.0a" in pyconv.build_info()["arch_list"]
    if wg_ok and any(a.startswith("tensor_core_wgmma_tma") for a in algos) and hasattr(pyconv._C, "gpu_selftest"):
        # the TMA rungs' own checks first: the descriptors' reading of corners, offsets and strides (gpu_selftest tma,
        # against the convolution's definition) and the mixed operand layout of the TMA dgrad kernel (wgmma_kb: A
        # K-major, B MN-major) say more about a wrong result below than the result itself
        for name in ("tma", "wgmma_kb"):
            res = pyconv._C.gpu_selftest(name)
            print(f"{'ok' if res == '' else 'MISMATCH':8s} gpu_selftest {name} {res}", flush=True)
            ok &= res == ""
    for dtype, tol in ((torch.float32, 1e-4), (torch.float16, 2e-2)):
        # odd sizes with groups; a strided 5x5 on 3 channels; depthwise; and one long N·P·Q reduction, which the
        # tensor-core and depthwise wgrad split across blocks (split-K). cl: channels-last operands, for the depthwise
        # rung only — its fast path (16-byte channel vectors; the windowed kernels staging their taps in shared
        # memory between two barriers, stride 1 and the strided dgrad, several blocks with wrapping channel slots;
        # wgrad's row kernel, one filter row a block, at 3x3, 5x5 (a short last reduction round) and 7x7)
        for (N, C, H, W, K, R, stride, pad, groups, cl) in [
                (2, 6, 9, 7, 8, 3, 1, 1, 2, False), (1, 3, 17, 15, 5, 5, 2, 2, 1, False),
                (2, 8, 6, 6, 8, 3, 1, 1, 8, False), (4, 16, 32, 32, 16, 3, 1, 1, 1, False),
                (2, 40, 9, 11, 40, 3, 1, 1, 40, True), (2, 40, 12, 13, 40, 3, 2, 1, 40, True),
                (2, 16, 10, 9, 16, 5, 1, 2, 16, True), (1, 16, 9, 10, 16, 7, 1, 3, 16, True),
                (2, 64, 11, 9, 72, 3, 2, 1, 1, False)]:  # 64 channels: the TMA kernels' wgrad too
            mf = torch.channels_last if cl else torch.contiguous_format
            x = torch.randn(N, C, H, W, device="cuda", dtype=dtype).contiguous(memory_format=mf)
            w = torch.randn(K, C // groups, R, R, device="cuda", dtype=dtype) * 0.2
            y_ref = F.conv2d(x.float(), w.float(), None, stride, pad, 1, groups)
            go = torch.randn_like(y_ref).to(dtype).contiguous(memory_format=mf)
            gx_ref, gw_ref, _ = torch.ops.aten.convolution_backward(go.float(), x.float(), w.float(), None,
                                                                    [stride] * 2, [pad] * 2, [1, 1], False, [0, 0],
                                                                    groups, [True, True, False])
            geo = ([stride] * 2, [pad] * 2, [1, 1], groups)
            for a in algos:
                if (a == "depthwise" and C // groups != 1) or (cl and a != "depthwise"):
                    continue  # that rung takes only one input channel per group; the cl cases are its own
                if a.startswith("tensor_core_wgmma") and (dtype == torch.float32 or not wg_ok):
                    continue
                if a == "winograd" and (R != 3 or stride != 1):
                    continue  # F(2x2, 3x3): 3x3 stride-1 convolutions only
                tag = f"conv2d {a} {str(dtype)[6:]} N{N}C{C}K{K}R{R}s{stride}g{groups}"
                t = 5e-3 if a.startswith("tensor_core") and dtype == torch.float32 else tol  # TF32 inputs
                ok &= check(tag + " fprop", ops.conv2d_fprop(x, w, None, *geo, a), y_ref, t)
                ok &= check(tag + " dgrad", ops.conv2d_dgrad(go, w, list(x.shape), *geo, a), gx_ref, t)
                ok &= check(tag + " wgrad", ops.conv2d_wgrad(go, x, list(w.shape), *geo, a), gw_ref, 10 * tol)
                if a in ("depthwise", "tensor_core", "tensor_core_wgmma", "tensor_core_wgmma_ws", "tensor_core_wgmma_tma",
                         "implicit_gemm", "winograd"):  # epilogues
                    b, r = torch.randn(K, device="cuda", dtype=dtype), torch.randn_like(go)
                    ref = F.silu(F.conv2d(x.float(), w.float(), b.float(), stride, pad, 1, groups) + r.float())
                    got = ops.conv2d_fprop_fused(x, w, b, r, *geo, "silu", 0.0, a)
                    ok &= check(tag + " fprop+bias+residual+silu", got, ref, t)
    if only:
        torch.cuda.synchronize()
        sys.exit(0 if ok else 1)
    x = torch.randn(2, 5, 13, 11, device="cuda", requires_grad=True)
    for name, f, g in [("max_pool2d", lambda t: PF.max_pool2d(t, 3, 2, 1), lambda t: F.max_pool2d(t, 3, 2, 1)),
                       ("avg_pool2d", lambda t: PF.avg_pool2d(t, 3, 2, 1), lambda t: F.avg_pool2d(t, 3, 2, 1)),
                       ("adaptive_max", lambda t: PF.adaptive_max_pool2d(t, (4, 3)),
                        lambda t: F.adaptive_max_pool2d(t, (4, 3))),
                       ("global_avg", lambda t: PF.adaptive_avg_pool2d(t, 1), lambda t: F.adaptive_avg_pool2d(t, 1)),
                       ("relu", PF.relu, F.relu), ("gelu", PF.gelu, F.gelu), ("silu", PF.silu, F.silu),
                       ("mish", PF.mish, F.mish), ("hardswish", PF.hardswish, F.hardswish),
                       ("relu6", PF.relu6, F.relu6)]:
        y, y_ref = f(x), g(x)
        ok &= check(name + " fwd", y, y_ref, 1e-5)
        go = torch.randn_like(y)
        ok &= check(name + " bwd", torch.autograd.grad(y, x, go)[0], torch.autograd.grad(y_ref, x, go)[0], 1e-5)
    # the emulator's feature self-tests (the seeded bugs are for the emulator; on hardware they would really fault),
    # listed by pyconv._C itself, so that an EMU=0 build runs them too
    if hasattr(pyconv._C, "gpu_selftests"):
        for name in pyconv._C.gpu_selftests():
            if name.startswith(("wgmma", "mbarrier", "tma")) and not wg_ok:
                continue
            res = pyconv._C.gpu_selftest(name)
            print(f"{'ok' if res == '' else 'MISMATCH':8s} gpu_selftest {name} {res}")
            ok &= res == ""
    torch.cuda.synchronize()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
