"""The tensor-core rung (csrc/conv2d/cuda_tensor_core.cuh): mma.sync m16n8k16 implicit GEMM with ldmatrix and a
cp.async pipeline, fprop / dgrad / wgrad (split-K), float16 and bfloat16, and float32 as TF32 (fprop/dgrad; float32
wgrad runs on the SIMT implicit GEMM). Under the CPU emulator (which models the
warp's mma/ldmatrix fragment layouts and lands cp.async copies only at the wait that covers them) on every run, and on
a GPU when there is one. Reference: torch in float64 on the same rounded inputs; tolerances are relative to the
largest reference magnitude: 4e-3 (float16: output rounding 2^-11 plus float accumulation), 2e-2 (bfloat16: 2^-8) and
3e-3 (TF32: inputs rounded to 10 mantissa bits, float accumulation).
"""
import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import pyconv
from pyconv import functional as PF
from conftest import HAS_CUDA

TC_ALGOS = ["tensor_core", "tensor_core_128x128", "tensor_core_128x64", "tensor_core_64x64"]
TOL = {torch.float16: 4e-3, torch.bfloat16: 2e-2, torch.float32: 3e-3}
DTYPES = [torch.float16, torch.bfloat16, torch.float32]
DIDS = ["f16", "bf16", "tf32"]

TARGETS = []
if pyconv.emulator.available():
    TARGETS.append(("cpu", "emulator"))
if HAS_CUDA and torch.cuda.get_device_capability()[0] >= 8:
    TARGETS.append(("cuda", "auto"))
if not TARGETS:
    pytest.skip("neither the CUDA emulator nor an sm_80+ GPU is available", allow_module_level=True)
TIDS = [b for _, b in TARGETS]

# (x shape, w shape, stride, padding, dilation, groups): channel counts on and off multiples of 8, several m and n
# tiles, strides/dilations that leave dgrad taps unreachable, groups with padded per-group channels, 1x1.
GEOMS = {
    "3x3": ((2, 16, 8, 8), (24, 16, 3, 3), 1, 1, 1, 1),
    "c3_stem_stride2": ((1, 3, 9, 7), (10, 3, 3, 3), 2, 1, 1, 1),
    "groups2_dil2": ((2, 12, 7, 9), (16, 6, 3, 2), 2, 2, 2, 2),
    "1x1_wide_n": ((1, 16, 6, 6), (130, 16, 1, 1), 1, 0, 1, 1),
    "many_m_tiles": ((3, 8, 11, 13), (8, 8, 3, 3), 1, 1, 1, 1),
    "asym_stride": ((2, 9, 10, 7), (7, 9, 2, 3), (2, 1), (0, 1), (1, 2), 1),
    # strided dgrad by sub-pixel phases: a 1×1 stride 2 (three phases receive nothing), and 4×3 taps at stride (2, 3)
    # with padding (1, 2) (phases of unequal tap counts; odd H, W not a multiple of the stride)
    "1x1_stride2": ((2, 16, 9, 8), (24, 16, 1, 1), 2, 0, 1, 1),
    "k4x3_stride2x3": ((1, 8, 11, 10), (16, 8, 4, 3), (2, 3), (1, 2), 1, 1),
    # six phases of 2-4 taps each, two groups: the one-launch filter transpose places each group's rows of each phase
    "k5x4_stride3x2_g2": ((2, 16, 17, 13), (24, 8, 5, 4), (3, 2), (2, 1), 1, 2),
    # the gather loader's tap-validity bits: padding beyond the dilated kernel (rows whose origin lies 4 pixels into
    # the padding, taps that never reach the image), the ResNet stem (7×7 stride 2, 3 channels padded to 8: eight taps
    # per 64-element reduction tile), and the largest kernel it takes (15 tap rows: bits 0-14 beside the tail bit)
    "pad4_dil2": ((1, 8, 5, 6), (8, 8, 3, 3), 1, 4, 2, 1),
    "k7_stem": ((1, 3, 12, 11), (8, 3, 7, 7), 2, 3, 1, 1),
    "k15x2_max": ((1, 8, 17, 6), (8, 8, 15, 2), 1, (7, 1), 1, 1),
}


def _operands(geom, dtype, device, channels_last=True):
    xs, ws, stride, padding, dilation, groups = geom
    x = torch.randn(xs, device=device).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = (torch.randn(ws, device=device) * (ws[1] * ws[2] * ws[3]) ** -0.5).to(dtype)
    b = torch.randn(ws[0], device=device).to(dtype)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


def _close(got, ref, dtype):
    scale = ref.abs().max().item()
    err = (got.double() - ref).abs().max().item()
    assert err <= TOL[dtype] * scale, f"max error {err:.3g} vs tolerance {TOL[dtype] * scale:.3g}"


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
@pytest.mark.parametrize("algo", TC_ALGOS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DIDS)
@pytest.mark.parametrize("geom", list(GEOMS), ids=list(GEOMS))
def test_fprop_dgrad_wgrad(geom, dtype, algo, device, backend):
    x, w, b, kw = _operands(GEOMS[geom], dtype, device)
    xd, wd, bd = (t.double().requires_grad_() for t in (x, w, b))
    ref = F.conv2d(xd, wd, bd, **kw)
    go = torch.randn(ref.shape, device=device).to(dtype)
    ref.backward(go.double())
    xx, ww, bb = (t.clone().requires_grad_() for t in (x, w, b))
    y = PF.conv2d(xx, ww, bb, **kw, algo=algo, backend=backend)
    assert y.dtype == dtype and y.shape == ref.shape
    y.backward(go)
    _close(y, ref, dtype)
    _close(xx.grad, xd.grad, dtype)
    _close(ww.grad, wd.grad, dtype)
    _close(bb.grad, bd.grad, dtype)
    if dtype == torch.float32:  # no TF32 wgrad: the SIMT implicit GEMM's float32 result, bit for bit
        ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
        st, pad, dil, g = (list(v) if isinstance(v, tuple) else [v, v] for v in (kw["stride"], kw["padding"],
                                                                                 kw["dilation"], kw["groups"]))
        simt = ops.conv2d_wgrad(go, x, list(w.shape), st, pad, dil, kw["groups"], "implicit_gemm")
        torch.testing.assert_close(ww.grad, simt, rtol=0, atol=0)


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_layouts_and_views(device, backend):
    """NCHW, channels_last and a non-contiguous view give the same result (the glue repacks to padded NHWC); the
    output keeps the input's memory format."""
    geom = GEOMS["3x3"]
    x, w, b, kw = _operands(geom, torch.float16, device, channels_last=False)
    ref = PF.conv2d(x, w, b, **kw, algo="tensor_core", backend=backend)
    assert ref.is_contiguous()
    cl = PF.conv2d(x.contiguous(memory_format=torch.channels_last), w, b, **kw, algo="tensor_core", backend=backend)
    assert cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(cl, ref, rtol=0, atol=0)
    big = torch.randn(2, 32, 9, 9, device=device).to(torch.float16)
    view = big[:, 3:19, 1:9, :8]  # channel and spatial offsets: a misaligned, strided view
    r1 = PF.conv2d(view, w, b, **kw, algo="tensor_core", backend=backend)
    r2 = PF.conv2d(view.contiguous(), w, b, **kw, algo="tensor_core", backend=backend)
    torch.testing.assert_close(r1, r2, rtol=0, atol=0)


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
@pytest.mark.parametrize("geom", ["groups2_dil2", "k4x3_stride2x3", "3x3"])
def test_dgrad_filter_layouts(geom, device, backend):
    """dgrad's B matrix (the filter transposed per tap, per sub-pixel phase) from an NCHW, a channels-last and a
    strided view of the filter: bit-identical results."""
    x, w, b, kw = _operands(GEOMS[geom], torch.float16, device)
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    y = F.conv2d(x.double(), w.double(), None, **kw)
    go = torch.randn(y.shape, device=device).half().contiguous(memory_format=torch.channels_last)
    st, pad, dil = (list(v) if isinstance(v, tuple) else [v, v] for v in (kw["stride"], kw["padding"], kw["dilation"]))
    wide = torch.randn(w.shape[0], w.shape[1] + 3, *w.shape[2:], device=device).half()
    wide[:, 1:1 + w.shape[1]] = w
    outs = [ops.conv2d_dgrad(go, wv, list(x.shape), st, pad, dil, kw["groups"], "tensor_core")
            for wv in (w, w.contiguous(memory_format=torch.channels_last), wide[:, 1:1 + w.shape[1]])]
    xg = x.double().requires_grad_()
    F.conv2d(xg, w.double(), None, **kw).backward(go.double())
    _close(outs[0], xg.grad, torch.float16)
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=DIDS)
def test_fused_epilogue(dtype, device, backend):
    """bias + residual + activation in the tensor-core kernel's shared-memory-staged epilogue: the 16-byte chunk path
    (channels-last output and residual; ReLU and ReLU6 unrolled, other activations through the run-time switch) and
    the per-element path (an NCHW residual; the partial last chunk of 12 output channels)."""
    geoms = [GEOMS["groups2_dil2"], ((2, 8, 6, 7), (12, 8, 3, 3), 1, 1, 1, 1)]
    acts = (("relu", F.relu), ("relu6", F.relu6), ("silu", F.silu), ("leaky_relu", lambda z: F.leaky_relu(z, 0.1)),
            (None, lambda z: z))
    for geom in geoms:
        x, w, b, kw = _operands(geom, dtype, device)
        ref_pre = F.conv2d(x.double(), w.double(), b.double(), **kw)
        r_nchw = torch.randn(ref_pre.shape, device=device).to(dtype)
        for r in (r_nchw, r_nchw.contiguous(memory_format=torch.channels_last), None):
            for act, fn in acts:
                if act is None and r is None:
                    continue  # plain conv2d
                y = PF.conv2d(x, w, b, **kw, activation=act, activation_param=0.1 if act == "leaky_relu" else None,
                              residual=r, algo="tensor_core", backend=backend)
                assert y.is_contiguous(memory_format=torch.channels_last)
                _close(y, fn(ref_pre + (0 if r is None else r.double())), dtype)


def _native(backend):
    """The compiled module whose ops run `backend` (the emulator's, or the CUDA build's): its launch log and
    counters."""
    return pyconv._ops._C_emu if backend == "emulator" else pyconv._C


def _launches(backend):
    return _native(backend).conv2d_tc_launches()


# Split-K fprop/dgrad (a long reduction on a grid of few tiles: 1 to 2 output tiles here, 4 SMs on the emulator, 100+
# on a GPU): (x shape, w shape, stride, padding, groups, which direction splits). Odd output channel counts take the
# workspace's scalar stores; groups and a strided dgrad (one split GEMM per sub-pixel phase) index the slices.
SPLITK = {
    "fprop_odd_k": ((1, 176, 5, 5), (23, 176, 3, 3), 1, 1, 1, "fprop"),
    "fprop_k16": ((1, 176, 5, 5), (16, 176, 3, 3), 1, 1, 1, "fprop"),  # the reduce pass's 16-byte chunk path
    "fprop_groups2": ((1, 352, 4, 5), (24, 176, 3, 3), 1, 1, 2, "fprop"),
    "dgrad_odd_c": ((1, 21, 5, 5), (176, 21, 3, 3), 1, 1, 1, "dgrad"),
    "dgrad_stride2": ((1, 16, 7, 6), (1040, 16, 3, 3), 2, 1, 1, "dgrad"),
}


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=["f16", "tf32"])
@pytest.mark.parametrize("case", list(SPLITK), ids=list(SPLITK))
def test_split_k_fprop_dgrad(case, dtype, device, backend):
    """The reduction cut into slices whose float partial sums a second pass adds in a fixed order before bias and
    epilogue: the launch log proves the split ran; results match float64 torch, are deterministic, and the fused
    epilogue (bias + residual + activation) sees the same values as without a split."""
    xs, ws, stride, padding, groups, direction = SPLITK[case]
    x, w, b, kw = _operands((xs, ws, stride, padding, 1, groups), dtype, device)
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    geo = ([stride] * 2, [padding] * 2, [1, 1], groups)
    xd, wd, bd = x.double(), w.double(), b.double()
    ref = F.conv2d(xd, wd, bd, stride, padding, 1, groups)
    _launches(backend)
    if direction == "fprop":
        r = torch.randn(ref.shape, device=device).to(dtype)
        for act, fn in (("gelu", F.gelu), ("relu", F.relu)):  # gelu: the reduce pass's per-element epilogue
            # an NCHW and a channels-last residual (the latter takes the chunk path when the channels allow)
            for res in (r.contiguous(memory_format=torch.channels_last), r):
                y = ops.conv2d_fprop_fused(x, w, b, res, *geo, act, 0.0, "tensor_core")
                log = _launches(backend)
                _close(y, fn(ref + r.double()), dtype)
        y2 = ops.conv2d_fprop_fused(x, w, b, r, *geo, "relu", 0.0, "tensor_core")
    else:
        go = torch.randn(ref.shape, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
        y = ops.conv2d_dgrad(go, w, list(x.shape), *geo, "tensor_core")
        log = _launches(backend)
        xg = xd.clone().requires_grad_()
        F.conv2d(xg, wd, None, stride, padding, 1, groups).backward(go.double())
        _close(y, xg.grad, dtype)
        y2 = ops.conv2d_dgrad(go, w, list(x.shape), *geo, "tensor_core")
    assert log and all(splits > 1 for _, splits in log), f"expected split-K launches, got {log}"
    if case == "dgrad_stride2":
        assert len(log) == 4  # one GEMM per (row, column) phase
    assert torch.equal(y, y2)


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_split_k_wgrad(device, backend):
    """N·P·Q long enough for several split-K slices (the emulated device reports 4 SMs): the slices' float partial
    sums are added in a fixed order, so the result is deterministic and matches torch."""
    x = torch.randn(2, 16, 24, 24, device=device).half().contiguous(memory_format=torch.channels_last)
    w = torch.randn(8, 16, 3, 3, device=device).half()
    go = torch.randn(2, 8, 24, 24, device=device).half()
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    _launches(backend)  # the log is process-wide: start from this test's own launches
    dw = ops.conv2d_wgrad(go, x, list(w.shape), [1, 1], [1, 1], [1, 1], 1, "tensor_core")
    dw2 = ops.conv2d_wgrad(go, x, list(w.shape), [1, 1], [1, 1], [1, 1], 1, "tensor_core")
    assert torch.equal(dw, dw2)
    xd = x.double().requires_grad_()
    wd = w.double().requires_grad_()
    F.conv2d(xd, wd, None, 1, 1).backward(go.double())
    _close(dw, wd.grad, torch.float16)
    log = _launches(backend)
    assert len(log) == 2 and all(splits > 1 for _, splits in log), log
    # one image row: a single slice, whose kernel writes dw itself (no workspace, no reduce pass); C = 12 leaves
    # padded channels (cp = 16) that the direct store must skip
    x1 = torch.randn(1, 12, 3, 5, device=device).half().contiguous(memory_format=torch.channels_last)
    g1 = torch.randn(1, 8, 3, 5, device=device).half()
    dw1 = ops.conv2d_wgrad(g1, x1, [8, 12, 3, 3], [1, 1], [1, 1], [1, 1], 1, "tensor_core")
    assert [s for _, s in _launches(backend)] == [1]
    wd1 = torch.zeros(8, 12, 3, 3, dtype=torch.float64, device=device, requires_grad=True)
    F.conv2d(x1.double(), wd1, None, 1, 1).backward(g1.double())
    _close(dw1, wd1.grad, torch.float16)


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_auto_picks_tensor_cores_for_half(device, backend):
    """algo='auto' on float16 is the tensor-core rung — its wgmma form where that runs (the emulator, which models a
    Hopper GPU, or cc 9.0 with an sm_90a build), with its tile rule: 64×64 for a GEMM of ≤ 64 columns too short to
    give every SM a 128-row tile; a 1×1 on the TMA kernels (128×128 above 128 columns, too few tiles for 128×256) —
    bit-identical to asking for that rung; float32 stays
    on SIMT unless torch.backends.cuda.matmul.allow_tf32 is set, then it is the TF32 tensor-core rung."""
    wgmma = (device, backend) in WG_TARGETS
    expected = "tensor_core_wgmma" if wgmma else "tensor_core"
    # (the 3×3's 16 channels would take 9 TMA reduction tiles against the gather's 3: the plain tiles; a 1×1 takes the
    # TMA kernels where wgmma runs — test_auto_takes_tma_where_it_suits)
    for geom, tile in (("3x3", "64x64"), ("1x1_wide_n", "tma_128x128")):
        x, w, b, kw = _operands(GEOMS[geom], torch.float16, device)
        _launches(backend)
        a = PF.conv2d(x, w, b, **kw, algo="auto", backend=backend)
        log = _launches(backend)
        assert log and all(t.startswith(expected + "_") for t, _ in log), log
        named = expected
        if wgmma:
            assert [t for t, _ in log] == [f"tensor_core_wgmma_{tile}"], log
            named = "tensor_core_wgmma_tma" if tile.startswith("tma") else expected
        else:
            assert not any("wgmma" in t for t, _ in log), log
        t = PF.conv2d(x, w, b, **kw, algo=named, backend=backend)
        torch.testing.assert_close(a, t, rtol=0, atol=0)
    # wgrad: the same rung (the MN-major wgmma wgrad kernel where wgmma runs: faster than rung 3 on an H200, run 8),
    # its tile rule giving 64×64 for these 24 output channels; bit-identical to naming that rung
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    x, w, b, kw = _operands(GEOMS["3x3"], torch.float16, device)
    go = torch.randn(2, 24, 8, 8, device=device).half()
    _launches(backend)
    a = ops.conv2d_wgrad(go, x, list(w.shape), [1, 1], [1, 1], [1, 1], 1, "auto")
    log = _launches(backend)
    assert log and all(t.startswith(expected + "_") for t, _ in log), log
    if wgmma:
        assert [t for t, _ in log] == ["tensor_core_wgmma_64x64"], log
    else:
        assert not any("wgmma" in t for t, _ in log), log
    torch.testing.assert_close(a, ops.conv2d_wgrad(go, x, list(w.shape), [1, 1], [1, 1], [1, 1], 1, expected),
                               rtol=0, atol=0)
    # a 1×1 wgrad of > 64 output channels and > 64 GEMM columns: 128×64 (tc_wgrad_tile: faster than _s3 on 11 of the
    # 12 such ResNet-50 layers in H200 run 8); the 3×3 layers keep _s3
    if wgmma:
        for ws_, tile in (((72, 72, 1, 1), "128x64"), ((72, 72, 3, 3), "128x128_s3")):
            x = torch.randn(1, 72, 5, 5, device=device).half().contiguous(memory_format=torch.channels_last)
            go = torch.randn(1, 72, 5, 5, device=device).half().contiguous(memory_format=torch.channels_last)
            _launches(backend)
            ops.conv2d_wgrad(go, x, list(ws_), [1, 1], [ws_[2] // 2] * 2, [1, 1], 1, "auto")
            assert [t for t, _ in _launches(backend)] == [f"tensor_core_wgmma_{tile}"]
    _launches(backend)  # leave the process-wide log empty for the next test
    x, w, b, kw = _operands(GEOMS["3x3"], torch.float16, device)
    xf, wf, bf = x.float(), w.float(), b.float()
    simt = PF.conv2d(xf, wf, bf, **kw, algo="implicit_gemm", backend=backend)
    tf32 = PF.conv2d(xf, wf, bf, **kw, algo="tensor_core", backend=backend)
    assert not torch.equal(simt, tf32)
    was = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.testing.assert_close(PF.conv2d(xf, wf, bf, **kw, backend=backend), simt, rtol=0, atol=0)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.testing.assert_close(PF.conv2d(xf, wf, bf, **kw, backend=backend), tf32, rtol=0, atol=0)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = was


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_errors(device, backend):
    x, w, b, kw = _operands(GEOMS["3x3"], torch.float16, device)
    with pytest.raises(RuntimeError, match="tensor_core_64x64.*float16, bfloat16 or float32.*Double"):
        PF.conv2d(x.double(), w.double(), None, **kw, algo="tensor_core_64x64", backend=backend)
    with pytest.raises(RuntimeError, match="unknown algo 'tensor_core_1x1'"):
        PF.conv2d(x, w, b, **kw, algo="tensor_core_1x1", backend=backend)
    # 16 tap rows: past the gather loader's bits; 'auto' takes another rung (same result as torch)
    x16 = torch.randn(1, 8, 20, 9, device=device).half().contiguous(memory_format=torch.channels_last)
    w16 = torch.randn(8, 8, 16, 1, device=device).half() * 0.1
    for algo in ("tensor_core", "tensor_core_wgmma"):
        with pytest.raises(RuntimeError, match="at most 15×15 taps, but got 16×1"):
            PF.conv2d(x16, w16, None, algo=algo, backend=backend)
    _launches(backend)
    got = PF.conv2d(x16, w16, None, backend=backend)
    assert not any(t.startswith("tensor_core") for t, _ in _launches(backend))
    _close(got, F.conv2d(x16.double(), w16.double()), torch.float16)


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_opcheck(device, backend):
    x, w, b, _ = _operands(((1, 8, 5, 5), (8, 8, 3, 3), 1, 1, 1, 1), torch.float16, device)
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    go = torch.randn(1, 8, 5, 5, device=device).half()
    geo = ([1, 1], [1, 1], [1, 1], 1)
    opcheck(ops.conv2d_fprop, (x, w, b, *geo, "tensor_core"))
    opcheck(ops.conv2d_dgrad, (go, w, [1, 8, 5, 5], *geo, "tensor_core"))
    opcheck(ops.conv2d_wgrad, (go, x, [8, 8, 3, 3], *geo, "tensor_core"))


@pytest.mark.skipif(not pyconv.emulator.available(), reason="built without the emulator")
@pytest.mark.parametrize("name", ["mma_bf16", "ldmatrix_cp_async"])
def test_warp_primitive_selftests(name):
    """The emulator's models of the PTX the tensor-core kernels use, against independently computed layouts (the same
    self-tests run on a GPU in tests/test_emulator.py, which checks the model against the hardware)."""
    assert pyconv.emulator.selftest(name) == ""


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_compile_fullgraph(device, backend):
    """The tensor-core rung inside torch.compile(fullgraph=True): forward and backward through the registered fake
    kernels and autograd, same numbers as eager."""
    x, w, b, kw = _operands(GEOMS["c3_stem_stride2"], torch.float16, device)

    def f(a, c, d):
        return PF.conv2d(a, c, d, **kw, activation="relu", algo="tensor_core", backend=backend)

    g = torch.compile(f, fullgraph=True, backend="aot_eager")
    xs = [t.clone().requires_grad_() for t in (x, w, b)]
    xe = [t.clone().requires_grad_() for t in (x, w, b)]
    yc, ye = g(*xs), f(*xe)
    torch.testing.assert_close(yc, ye, rtol=0, atol=0)
    go = torch.randn(ye.shape, device=device).half()
    yc.backward(go)
    ye.backward(go)
    for a, e in zip(xs, xe):
        torch.testing.assert_close(a.grad, e.grad, rtol=0, atol=0)


# ---- rung 4: wgmma (csrc/conv2d/cuda_tensor_core_sm90.cuh) ----------------------------------------------------------
# Under the emulator on every run (its wgmma model: 128-byte-swizzled operands read through the descriptors at the
# wait that covers the group, the m64nNk16 accumulator layout; checked against the hardware by the "wgmma" self-test
# on a compute capability 9.0 GPU), and on such a GPU when there is one.
WG_ALGOS = ["tensor_core_wgmma", "tensor_core_wgmma_128x256", "tensor_core_wgmma_128x128", "tensor_core_wgmma_128x128_s3",
            "tensor_core_wgmma_128x64", "tensor_core_wgmma_64x64", "tensor_core_wgmma_ws", "tensor_core_wgmma_ws_128x128",
            "tensor_core_wgmma_ws_128x256", "tensor_core_wgmma_ws_64x128", "tensor_core_wgmma_ws_128x64"]
WG_TARGETS = [t for t in TARGETS if t[1] == "emulator"]
if HAS_CUDA and torch.cuda.get_device_capability() == (9, 0) and "9.0a" in pyconv.build_info()["arch_list"]:
    WG_TARGETS.append(("cuda", "auto"))
WG_TIDS = [b for _, b in WG_TARGETS]
# + 11 reduction tiles of 64 in fprop and dgrad: the wgmma pipeline wraps around its 4 stages (a stage reused while
# its wgmma is pending is an emulator error)
WG_GEOMS = dict(GEOMS, deep_k=((1, 72, 5, 6), (72, 72, 3, 3), 1, 1, 1, 1))


def _run_all_directions(geom, dtype, algo, device, backend, w_channels_last=False):
    """fprop (with bias) and its backward on `algo` against float64 torch; returns the launch logs of the forward and
    of the backward (dgrad, one launch per sub-pixel phase when strided, then wgrad)."""
    x, w, b, kw = _operands(geom, dtype, device)
    if w_channels_last:
        w = w.contiguous(memory_format=torch.channels_last)
    xd, wd, bd = (t.double().requires_grad_() for t in (x, w, b))
    ref = F.conv2d(xd, wd, bd, **kw)
    go = torch.randn(ref.shape, device=device).to(dtype)
    ref.backward(go.double())
    xx, ww, bb = (t.clone().requires_grad_() for t in (x, w, b))
    _launches(backend)
    y = PF.conv2d(xx, ww, bb, **kw, algo=algo, backend=backend)
    fwd = _launches(backend)
    y.backward(go)
    bwd = _launches(backend)
    _close(y, ref, dtype)
    _close(xx.grad, xd.grad, dtype)
    _close(ww.grad, wd.grad, dtype)
    _close(bb.grad, bd.grad, dtype)
    return fwd, bwd


def _wg_cases():
    # every geometry with the heuristic tile in both 16-bit types; each fixed tile on three geometries
    for geom in WG_GEOMS:
        for dtype, did in zip(DTYPES[:2], DIDS[:2]):
            yield pytest.param(geom, dtype, "tensor_core_wgmma", id=f"{geom}-{did}-tensor_core_wgmma")
    for algo in WG_ALGOS[1:]:
        for geom in ("groups2_dil2", "1x1_wide_n", "k4x3_stride2x3", "deep_k"):
            yield pytest.param(geom, torch.float16, algo, id=f"{geom}-f16-{algo}")
    # the warp-specialised kernels in bfloat16 too
    for algo in ("tensor_core_wgmma_ws_128x128", "tensor_core_wgmma_ws_128x256", "tensor_core_wgmma_ws_64x128",
                 "tensor_core_wgmma_ws_128x64"):
        yield pytest.param("deep_k", torch.bfloat16, algo, id=f"deep_k-bf16-{algo}")


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
@pytest.mark.parametrize("geom,dtype,algo", list(_wg_cases()))
def test_wgmma_fprop_dgrad_wgrad(geom, dtype, algo, device, backend):
    """fprop, dgrad and wgrad (MN-major operands) on the wgmma kernels (the launch log names their tiles), against
    float64 torch. The warp-specialised names: a producer warpgroup and mbarriers, in all three directions (deep_k's
    11 reduction tiles of fprop/dgrad go round the 6-stage ring twice)."""
    fwd, bwd = _run_all_directions(WG_GEOMS[geom], dtype, algo, device, backend)
    assert fwd and all(t.startswith("tensor_core_wgmma_") for t, _ in fwd), fwd
    # dgrad (one launch per sub-pixel phase when strided), then wgrad: every one a wgmma tile
    assert len(bwd) >= 2 and all(t.startswith("tensor_core_wgmma_") for t, _ in bwd), bwd
    if algo != "tensor_core_wgmma":
        if algo == "tensor_core_wgmma_ws":  # its heuristic tile: 128×256 for GEMMs of more than 128 columns
            assert all(t.startswith("tensor_core_wgmma_ws_") for t, _ in fwd + bwd), (fwd, bwd)
        else:
            assert all(t == algo for t, _ in fwd + bwd), (fwd, bwd)


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
@pytest.mark.parametrize("tile", ["tensor_core_wgmma_ws_128x128", "tensor_core_wgmma_ws_128x256",
                                  "tensor_core_wgmma_ws_64x128", "tensor_core_wgmma_ws_128x64",
                                  "tensor_core_wgmma_tma_128x128", "tensor_core_wgmma_tma_128x64"])
def test_wgmma_ws_persistent(tile, device, backend):
    """The persistent warp-specialised kernel with more output tiles than blocks (the emulator's 4 SMs: 9-36 tiles on
    4-8 blocks), so each block loops over several and the ring of stages runs on across them (9 reduction tiles a
    tile): fprop with bias + residual + ReLU and dgrad against float64 torch, the launch log naming the tile."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    x, w, b, _ = _operands(((2, 64, 24, 24), (256, 64, 3, 3), 1, 1, 1, 1), torch.float16, device)
    geo = ([1, 1], [1, 1], [1, 1], 1)
    ref_pre = F.conv2d(x.double(), w.double(), b.double(), 1, 1)
    r = torch.randn(ref_pre.shape, device=device).half().contiguous(memory_format=torch.channels_last)
    _launches(backend)
    y = ops.conv2d_fprop_fused(x, w, b, r, *geo, "relu", 0.0, tile)
    go = torch.randn(ref_pre.shape, device=device).half().contiguous(memory_format=torch.channels_last)
    dx = ops.conv2d_dgrad(go, w, list(x.shape), *geo, tile)
    assert [t for t, _ in _launches(backend)] == [tile, tile]
    _close(y, F.relu(ref_pre + r.double()), torch.float16)
    xd = x.double().requires_grad_()
    F.conv2d(xd, w.double(), None, 1, 1).backward(go.double())
    _close(dx, xd.grad, torch.float16)


# ---- the TMA producer (tc_wgmma_tma_conv_kernel, csrc/common/tma.cuh) -----------------------------------------------
# Under the emulator: its TMA model (im2col walk over the bounding box, tiled boxes, 128-byte swizzle by address, zero
# fill outside the tensor, bytes counted on the mbarrier, loads landing as late as possible) — the semantics as the PTX
# ISA and the driver documentation describe them; the hardware's reading of them is checked when a GPU is lent.
# geometry → (x shape, w shape, stride, padding, dilation, groups)
TMA_GEOMS = dict(
    WG_GEOMS,
    # grouped with 64-channel groups (the only grouped case TMA takes): each group's chunk at its channel offset
    groups2_c64=((1, 128, 5, 6), (128, 64, 3, 3), 1, 1, 1, 2),
    # the walk wrapping from image to image in the middle of a 128-pixel load, stride 2 (traversal stride)
    images_s2=((3, 16, 9, 7), (24, 16, 3, 3), 2, 1, 1, 1),
    # 64-channel multiples, which wgrad's TMA kernel needs (one tap per 64 GEMM columns): strided 3×3 over three
    # images; a 1×1 whose 128 columns are two channel blocks of one tap; non-square, asymmetric stride, padding and
    # dilation (a W/H mix-up in the maps' corners, strides or offsets shows in all three directions)
    c64_s2=((3, 64, 9, 7), (32, 64, 3, 3), 2, 1, 1, 1),
    c128_1x1=((2, 128, 5, 6), (72, 128, 1, 1), 1, 0, 1, 1),
    c64_asym=((1, 64, 7, 10), (24, 64, 2, 3), (2, 1), (0, 1), (1, 2), 1),
)


def _tma_expected(geom):
    """Whether fprop, dgrad and wgrad of the geometry take the TMA kernels (else the host falls back to the _ws
    kernel): grouped convolutions need 64-channel groups; dgrad with stride and dilation keeps its divisibility
    gather, and dgrad reads the filter in place, whose tap stride (C/g elements) TMA needs in multiples of 16 bytes;
    wgrad needs 64-channel multiples (C/g padded to 8)."""
    xs, ws, stride, padding, dilation, groups = TMA_GEOMS[geom]
    two = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    cp = -(-(xs[1] // groups) // 8) * 8
    kp = -(-(ws[0] // groups) // 8) * 8
    fprop = groups == 1 or cp % 64 == 0
    strided, dilated = max(two(stride)) > 1, max(two(dilation)) > 1
    dgrad = (groups == 1 or kp % 64 == 0) and not (strided and dilated) and (xs[1] // groups) % 8 == 0
    return fprop, dgrad, cp % 64 == 0


def _tma_cases():
    for geom in TMA_GEOMS:
        yield pytest.param(geom, torch.float16, "tensor_core_wgmma_tma", False, id=f"{geom}-f16-tma")
    for algo in ("tensor_core_wgmma_tma_128x128", "tensor_core_wgmma_tma_128x256", "tensor_core_wgmma_tma_128x64"):
        for geom in ("deep_k", "images_s2", "c64_s2"):
            yield pytest.param(geom, torch.float16, algo, False, id=f"{geom}-f16-{algo}")
    yield pytest.param("deep_k", torch.bfloat16, "tensor_core_wgmma_tma", False, id="deep_k-bf16-tma")
    # a channels_last filter, which dgrad reads in place (the others: a channels_last copy of a 3×3 filter; a 1×1's
    # channels are contiguous either way): stride 1, strided phases of unequal tap counts, non-square dilated
    for geom in ("deep_k", "k4x3_stride2x3", "c64_s2", "c64_asym", "groups2_c64"):
        yield pytest.param(geom, torch.float16, "tensor_core_wgmma_tma", True, id=f"{geom}-f16-tma-wcl")


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
@pytest.mark.parametrize("geom,dtype,algo,w_channels_last", list(_tma_cases()))
def test_wgmma_tma(geom, dtype, algo, w_channels_last, device, backend):
    """fprop, dgrad and wgrad with the TMA unit as producer (one thread issues the im2col load of the tile's pixels
    and the tiled loads of the filter — wgrad: of dy — per reduction tile) against float64 torch; the launch log names
    the TMA tile where the maps describe the problem and the warp-specialised tile of the same shape where the host
    falls back (64-channel groups only; no strided-and-dilated dgrad; dgrad C/g a multiple of 8; wgrad 64-channel
    multiples only)."""
    fwd, bwd = _run_all_directions(TMA_GEOMS[geom], dtype, algo, device, backend, w_channels_last)
    tma_fprop, tma_dgrad, tma_wgrad = _tma_expected(geom)
    kind = lambda ok: "tensor_core_wgmma_tma_" if ok else "tensor_core_wgmma_ws_"  # noqa: E731
    assert fwd and all(t.startswith(kind(tma_fprop)) for t, _ in fwd), fwd
    # dgrad (one launch per sub-pixel phase when strided), then wgrad
    assert len(bwd) >= 2 and all(t.startswith(kind(tma_dgrad)) for t, _ in bwd[:-1]), bwd
    assert bwd[-1][0].startswith(kind(tma_wgrad)), bwd
    if algo != "tensor_core_wgmma_tma":
        shape = algo.rsplit("_", 1)[1]
        assert all(t.endswith(shape) for t, _ in fwd + bwd), (fwd, bwd)


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
def test_wgmma_tma_wgrad_split_k(device, backend):
    """wgrad on the TMA kernel with its N·P·Q reduction (12 tiles of 64 rows, the last one partial: rows past N·P·Q
    read zero from both maps) split over slices summed in a fixed order (bit-identical on a second run), and the
    heuristic's 64×128 tile for ≤ 64 output channels."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    x, w, _, kw = _operands(((4, 64, 14, 13), (36, 64, 1, 1), 1, 0, 1, 1), torch.float16, device)
    go = torch.randn(4, 36, 14, 13, device=device).half().contiguous(memory_format=torch.channels_last)
    wd = w.double().requires_grad_()
    F.conv2d(x.double(), wd, None, **kw).backward(go.double())
    _launches(backend)
    dw = ops.conv2d_wgrad(go, x, list(w.shape), [1, 1], [0, 0], [1, 1], 1, "tensor_core_wgmma_tma")
    log = _launches(backend)
    assert [t for t, _ in log] == ["tensor_core_wgmma_tma_64x128"] and log[0][1] > 1, log
    _close(dw, wd.grad, torch.float16)
    assert torch.equal(dw, ops.conv2d_wgrad(go, x, list(w.shape), [1, 1], [0, 0], [1, 1], 1, "tensor_core_wgmma_tma"))


# The TMA kernels' pixel operand by tiled loads where the im2col walk is the identity (TcTmaMaps::pix_tiled: one tap,
# stride 1, no padding, over a source dense in its pixels): (x shape, w shape, stride, padding, groups), then how many
# of fprop, dgrad, wgrad take the tiled map.
TMA_PIXELS = {
    # 72 output channels: dgrad's dy has 72 (kp), so its second 64-channel chunk reads zeros past 72 from the map
    "1x1_k72": (((2, 128, 5, 6), (72, 128, 1, 1), 1, 0, 1), (1, 1, 1)),
    # 189 pixels: fprop/dgrad tiles of 128 rows (the second one partial), wgrad 3 reduction tiles of 64 (partial)
    "1x1_m189": (((3, 64, 9, 7), (96, 64, 1, 1), 1, 0, 1), (1, 1, 1)),
    # two groups of 64 channels: each group's chunk at its own channel offset in the one map
    "1x1_g2": (((2, 128, 4, 5), (128, 64, 1, 1), 1, 0, 2), (1, 1, 1)),
    # stride 2: fprop and wgrad walk every other pixel (im2col); dgrad's one reached sub-pixel phase is a stride-1
    # GEMM over dx's even rows and columns, whose grid is dy's own: tiled
    "1x1_s2": (((2, 64, 9, 8), (64, 64, 1, 1), 2, 0, 1), (0, 1, 0)),
    # padding 1: no direction's walk is the identity
    "1x1_p1": (((1, 64, 5, 6), (64, 64, 1, 1), 1, 1, 1), (0, 0, 0)),
}


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
@pytest.mark.parametrize("geom", list(TMA_PIXELS))
def test_tma_tiled_pixels(geom, device, backend, monkeypatch):
    """The TMA kernels of fprop, dgrad and wgrad read the pixel operand by tiled loads exactly where the im2col walk is
    the identity (the counter), against float64 torch, and bit-identical to the im2col loads PYCONV_TMA_PIXELS=im2col
    keeps (the same bytes land in the same stages), for channels_last and NCHW operands alike."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    (xs, ws_, stride, padding, groups), expected = TMA_PIXELS[geom]
    x, w, _, kw = _operands((xs, ws_, stride, padding, 1, groups), torch.float16, device)
    w = w.contiguous(memory_format=torch.channels_last)
    geo = ([stride] * 2, [padding] * 2, [1, 1], groups)
    xd, wd = x.double().requires_grad_(), w.double().requires_grad_()
    ref = F.conv2d(xd, wd, None, **kw)
    go = torch.randn(ref.shape, device=device).half().contiguous(memory_format=torch.channels_last)
    ref.backward(go.double())
    algo = "tensor_core_wgmma_tma"

    def run(xx, gg):
        _launches(backend), _native(backend).conv2d_tc_tma_tiled_pixels()
        out, counts = [], []
        for f in (lambda: ops.conv2d_fprop(xx, w, None, *geo, algo),
                  lambda: ops.conv2d_dgrad(gg, w, list(xs), *geo, algo),
                  lambda: ops.conv2d_wgrad(gg, xx, list(ws_), *geo, algo)):
            out.append(f())
            counts.append(_native(backend).conv2d_tc_tma_tiled_pixels())
        assert all("_tma_" in t for t, _ in _launches(backend))
        return out, tuple(counts)

    tiled, counts = run(x, go)
    assert counts == expected
    for got, want in zip(tiled, (ref.detach(), xd.grad, wd.grad)):
        _close(got, want, torch.float16)
    monkeypatch.setenv("PYCONV_TMA_PIXELS", "im2col")
    walked, counts = run(x, go)
    monkeypatch.delenv("PYCONV_TMA_PIXELS")
    assert counts == (0, 0, 0)
    for a, b in zip(tiled, walked):
        assert torch.equal(a, b)
    # NCHW operands: the host's channels-last copy (nhwc_padded, always dense) is what the maps describe
    nchw, counts = run(x.contiguous(), go.contiguous())
    assert counts == expected
    for a, b in zip(tiled, nchw):
        assert torch.equal(a, b)


# The TMA kernels' epilogue by TMA stores (TcTmaMaps::y_tiled: a channels_last output dense over its pixels, channels
# in 16-byte rows, no split-K, bias only, 64-channel boxes inside a group): (x shape, w shape, stride, padding,
# groups), then whether fprop and dgrad store by TMA.
TMA_STORE = {
    # 64 channels: 128×64 tiles; a 3×3 with padding (the store is independent of the gather)
    "c64_3x3": (((2, 64, 6, 7), (64, 64, 3, 3), 1, 1, 1), (True, True)),
    # 72 output channels on 128×128 tiles: the second 64-column box is clipped at channel 72 by the map
    "1x1_k72": (((2, 128, 5, 6), (72, 128, 1, 1), 1, 0, 1), (True, True)),
    # 190 pixels: the second 128-row tile is clipped at the last pixel
    "m190": (((2, 64, 5, 19), (64, 64, 3, 3), 1, 1, 1), (True, True)),
    # 1280 pixels: 10 tiles on the emulator's 4 persistent blocks, so each block reuses its staging tile (the wait for
    # the previous tile's store before the next tile's accumulators overwrite it)
    "many_tiles": (((2, 64, 20, 32), (64, 64, 1, 1), 1, 0, 1), (True, True)),
    # two groups of 64 channels: each group's box at its own channel offset
    "g2_c64": (((1, 128, 5, 6), (128, 64, 3, 3), 1, 1, 2), (True, True)),
    # 20 output channels: 40-byte pixel rows are no TMA stride (fprop falls back); dgrad's dx has 64 channels
    "k20": (((1, 64, 5, 5), (20, 64, 3, 3), 1, 1, 1), (False, True)),
    # stride 2: fprop stores by TMA; dgrad writes each sub-pixel phase into a strided view of dx (falls back)
    "c64_s2": (((2, 64, 9, 8), (64, 64, 3, 3), 2, 1, 1), (True, False)),
}


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
@pytest.mark.parametrize("geom", list(TMA_STORE))
def test_tma_store_epilogue(geom, dtype, device, backend, monkeypatch):
    """fprop (with bias; also fused with ReLU or ReLU6) and dgrad on the TMA kernels store their output tiles by TMA
    where the output's map can be made (the counter: one per launch), against float64 torch, and bit-identical to the
    chunked stores that PYCONV_TMA_STORE=0 keeps — and that fused residuals and other activations keep; with split-K
    the slices write float partial sums instead (no TMA store)."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    (xs, ws_, stride, padding, groups), (want_f, want_d) = TMA_STORE[geom]
    x, w, b, kw = _operands((xs, ws_, stride, padding, 1, groups), dtype, device)
    w = w.contiguous(memory_format=torch.channels_last)
    geo = ([stride] * 2, [padding] * 2, [1, 1], groups)
    xd, wd, bd = x.double().requires_grad_(), w.double().requires_grad_(), b.double()
    ref = F.conv2d(xd, wd, bd, **kw)
    go = torch.randn(ref.shape, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    ref.backward(go.double())
    algo = "tensor_core_wgmma_tma"

    def run():
        _launches(backend), _native(backend).conv2d_tc_tma_stores()
        y = ops.conv2d_fprop(x, w, b, *geo, algo)
        nf, fwd = _native(backend).conv2d_tc_tma_stores(), _launches(backend)
        dx = ops.conv2d_dgrad(go, w, list(xs), *geo, algo)
        nd, bwd = _native(backend).conv2d_tc_tma_stores(), _launches(backend)
        assert all(t.startswith("tensor_core_wgmma_tma_") for t, _ in fwd + bwd), (fwd, bwd)
        split = any(n > 1 for _, n in fwd)
        return y, dx, nf, nd, split, len(bwd)

    y, dx, nf, nd, split, n_dgrad = run()
    assert nf == (1 if want_f and not split else 0)
    assert nd == (n_dgrad if want_d else 0)
    _close(y, ref.detach(), dtype)
    _close(dx, xd.grad, dtype)
    monkeypatch.setenv("PYCONV_TMA_STORE", "0")
    y0, dx0, nf0, nd0, _, _ = run()
    monkeypatch.delenv("PYCONV_TMA_STORE")
    assert (nf0, nd0) == (0, 0)
    assert torch.equal(y, y0) and torch.equal(dx, dx0)
    # ReLU / ReLU6 without a residual: applied as the tile is staged, then stored by TMA wherever the plain fprop
    # was, bit-identical to the chunk path's activation of the rounded value
    for act, fn in (("relu", F.relu), ("relu6", F.relu6)):
        _native(backend).conv2d_tc_tma_stores()
        ya = ops.conv2d_fprop_fused(x, w, b, None, *geo, act, 0.0, algo)
        assert _native(backend).conv2d_tc_tma_stores() == nf
        monkeypatch.setenv("PYCONV_TMA_STORE", "0")
        ya0 = ops.conv2d_fprop_fused(x, w, b, None, *geo, act, 0.0, algo)
        monkeypatch.delenv("PYCONV_TMA_STORE")
        assert torch.equal(ya, ya0)
        _close(ya, fn(ref.detach()), dtype)
    # with a residual (or another activation) the chunked stores stay: same conv, bias and rounding, then the add
    r = torch.randn(ref.shape, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    _native(backend).conv2d_tc_tma_stores()
    yf = ops.conv2d_fprop_fused(x, w, b, r, *geo, "relu", 0.0, algo)
    ys = ops.conv2d_fprop_fused(x, w, b, None, *geo, "silu", 0.0, algo)
    assert _native(backend).conv2d_tc_tma_stores() == 0
    _close(yf, F.relu(ref.detach() + r.double()), dtype)
    _close(ys, F.silu(ref.detach()), dtype)


# auto on the wgmma rung: the TMA kernels where tma_suits_auto (the maps describe the shape, and whole 64-channel
# chunks per tap add no reduction tiles over the gather loader's dense packing), else the plain wgmma tiles.
# geometry → (x shape, w shape, stride, padding, groups), then the expected tile of fprop, dgrad, wgrad
AUTO_TMA = {
    # 64 channels: TMA in all three directions (≤ 64 GEMM columns: 128×64; wgrad of ≤ 64 output channels: 64×128)
    "c64_3x3": (((2, 64, 6, 7), (64, 64, 3, 3), 1, 1, 1),
                ("tensor_core_wgmma_tma_128x64", "tensor_core_wgmma_tma_128x64", "tensor_core_wgmma_tma_64x128")),
    # 64-channel groups: TMA; 3×3 stride 2: dgrad by four sub-pixel phases in one launch of the plain tiles
    # (phased_dgrad_ok; the TMA kernels would fork one launch per phase)
    "g2_c64_s2": (((1, 128, 7, 6), (128, 64, 3, 3), 2, 1, 2),
                  ("tensor_core_wgmma_tma_128x64", "tensor_core_wgmma_64x64", "tensor_core_wgmma_tma_64x128")),
    # 1×1 of 16 → 130 channels: fprop and dgrad on TMA (one 64-channel chunk, one reduction tile either way: fprop
    # 130 GEMM columns → 128×128; dgrad 136 = 3 chunks of K); wgrad's C/g = 16 is no 64-multiple: plain 128×64
    "1x1_c16_k130": (((1, 16, 6, 6), (130, 16, 1, 1), 1, 0, 1),
                     ("tensor_core_wgmma_tma_128x128", "tensor_core_wgmma_tma_128x64", "tensor_core_wgmma_128x64")),
    # 3×3 of 16 channels: 9 TMA reduction tiles against the gather loader's 3 (fprop; dgrad 24 → 9 against 4): plain
    # (dgrad's 16 GEMM columns on the n16 tile)
    "c16_3x3": (((2, 16, 8, 8), (24, 16, 3, 3), 1, 1, 1),
                ("tensor_core_wgmma_64x64", "tensor_core_wgmma_64x16", "tensor_core_wgmma_64x64")),
    # the ResNet stem's shape (3 channels padded to 8, 7×7 stride 2): 49 TMA tiles against 7; dgrad C/g = 3, its
    # four phases in one launch; fprop's 8 and dgrad's 3 GEMM columns on the n16 tile (wgrad has its own rule)
    "k7_stem": (((1, 3, 12, 11), (8, 3, 7, 7), 2, 3, 1),
                ("tensor_core_wgmma_64x16", "tensor_core_wgmma_64x16", "tensor_core_wgmma_64x64")),
}


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
@pytest.mark.parametrize("geom", list(AUTO_TMA))
def test_auto_takes_tma_where_it_suits(geom, device, backend):
    """algo='auto' in float16 on a wgmma target: fprop, dgrad and wgrad each take the TMA kernels where
    tma_suits_auto holds and the plain wgmma tiles where it does not (the launch log names each tile; a strided
    dgrad's phases in one launch), against float64 torch, and bit-identical to naming the heuristic rung it picked."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    (xs, ws_, stride, padding, groups), expected = AUTO_TMA[geom]
    x = torch.randn(xs, device=device).half().contiguous(memory_format=torch.channels_last)
    w = torch.randn(ws_, device=device).half().contiguous(memory_format=torch.channels_last)
    geo = ([stride] * 2, [padding] * 2, [1, 1], groups)
    xd, wd = x.double().requires_grad_(), w.double().requires_grad_()
    ref = F.conv2d(xd, wd, None, stride, padding, 1, groups)
    go = torch.randn(ref.shape, device=device).half().contiguous(memory_format=torch.channels_last)
    ref.backward(go.double())
    _launches(backend)
    got = {"fprop": ops.conv2d_fprop(x, w, None, *geo, "auto")}
    got["dgrad"] = ops.conv2d_dgrad(go, w, list(x.shape), *geo, "auto")
    got["wgrad"] = ops.conv2d_wgrad(go, x, list(w.shape), *geo, "auto")
    assert tuple(t for t, _ in _launches(backend)) == expected
    _close(got["fprop"], ref.detach(), torch.float16)
    _close(got["dgrad"], xd.grad, torch.float16)
    _close(got["wgrad"], wd.grad, torch.float16)
    # the heuristic rung each direction's tile belongs to, named: the same launches and bits
    rung = lambda t: "tensor_core_wgmma_tma" if "_tma_" in t else "tensor_core_wgmma"  # noqa: E731
    named = {"fprop": ops.conv2d_fprop(x, w, None, *geo, rung(expected[0])),
             "dgrad": ops.conv2d_dgrad(go, w, list(x.shape), *geo, rung(expected[1])),
             "wgrad": ops.conv2d_wgrad(go, x, list(w.shape), *geo, rung(expected[-1]))}
    assert tuple(t for t, _ in _launches(backend)) == expected
    for d in got:
        assert torch.equal(got[d], named[d]), d


# A strided dgrad's sub-pixel phases in one launch (phased_dgrad_ok: the plain tiles of rung 3 and the wgmma rung, 2 to 4
# phases, a grid too big to want split-K): (x shape, w shape, stride, padding, groups).
PHASED = {
    # 3×3 stride 2 over odd H, W: four phases of 4, 2, 2 and 1 taps over unequal output grids (17 or 16 rows of 15
    # columns), so the phase table's row-tile offsets, taps, paddings and output divisors all differ
    "3x3_s2_odd": ((2, 16, 33, 30), (24, 16, 3, 3), 2, 1, 1),
    # 1×5 taps at stride (1, 3): three column phases of 1-2 taps
    "1x5_s1x3": ((2, 16, 20, 31), (16, 16, 1, 5), (1, 3), (0, 2), 1),
    # two groups, K/g = 36 (padded to 40): the wgmma rung's MN-major copy of the filter, linear, whose per-phase slices
    # have their own offsets, group strides and valid rows
    "g2_k36_s2": ((1, 16, 25, 26), (72, 8, 3, 3), 2, 1, 2),
    # phases no tap reaches are zeros written by the same launch (no fill of dx first): a 1×1 at stride 2 (one phase
    # of one tap, three of none), 3×1 taps at stride 2 (two of 1-2 taps, two of none)
    "1x1_s2": ((2, 24, 31, 29), (40, 24, 1, 1), 2, 0, 1),
    "3x1_s2": ((1, 16, 30, 27), (24, 16, 3, 1), 2, (1, 0), 1),
}


def _reached_phases(ws, stride, padding):
    """The sub-pixel phases of a strided dgrad that some tap reaches (the GEMMs dgrad_tc forks)."""
    two = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    (sh, sw), (ph, pw), (R, S) = two(stride), two(padding), ws[2:]
    return sum((i + ph) % sh < R and (j + pw) % sw < S for i in range(sh) for j in range(sw))


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
@pytest.mark.parametrize("algo", ["tensor_core_128x64", "tensor_core_64x64", "tensor_core_wgmma",
                                  "tensor_core_wgmma_128x128_s3", "tensor_core_wgmma_64x64"])
@pytest.mark.parametrize("geom", list(PHASED))
def test_dgrad_phases_one_launch(geom, algo, device, backend, monkeypatch):
    """The phases of a strided dgrad as one launch over a table of per-phase GEMMs (TcConvParams::phase; the phases
    no tap reaches as GEMMs of no taps, which store zeros): one entry in the launch log where
    PYCONV_DGRAD_PHASES=fork makes one per reached phase (after a zero fill of dx), both against float64 torch for a
    channels_last and an NCHW filter (MN-major in place or copied; rung 3's K-major transpose), and bit-identical to
    the forked phases where those ran the same tile without split-K (the same GEMMs, the same reduction order)."""
    if "wgmma" in algo and (device, backend) not in WG_TARGETS:
        pytest.skip("no wgmma target")
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    xs, ws_, stride, padding, groups = PHASED[geom]
    two = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    x, w, _, kw = _operands((xs, ws_, stride, padding, 1, groups), torch.float16, device)
    xd = x.double().requires_grad_()
    ref = F.conv2d(xd, w.double(), None, **kw)
    go = torch.randn(ref.shape, device=device).half().contiguous(memory_format=torch.channels_last)
    ref.backward(go.double())
    geo = (two(stride), two(padding), [1, 1], groups)
    for wl in (w.contiguous(memory_format=torch.channels_last), w):
        # NaN in the memory the allocator is likely to hand dx next: a phase left unwritten shows
        poison = torch.full(xs, float("nan"), dtype=torch.float16, device=device).contiguous(
            memory_format=torch.channels_last)
        del poison
        _launches(backend)
        dx = ops.conv2d_dgrad(go, wl, list(xs), *geo, algo)
        one = _launches(backend)
        assert len(one) == 1 and one[0][1] == 1, one
        assert algo == "tensor_core_wgmma" or one[0][0] == algo, one
        _close(dx, xd.grad, torch.float16)
        monkeypatch.setenv("PYCONV_DGRAD_PHASES", "fork")
        dx_fork = ops.conv2d_dgrad(go, wl, list(xs), *geo, algo)
        monkeypatch.delenv("PYCONV_DGRAD_PHASES")
        fork = _launches(backend)
        assert len(fork) == _reached_phases(ws_, stride, padding), fork
        _close(dx_fork, xd.grad, torch.float16)
        if all(t == one[0][0] and n == 1 for t, n in fork):
            assert torch.equal(dx, dx_fork)
    assert torch.equal(dx, ops.conv2d_dgrad(go, wl, list(xs), *geo, algo))  # deterministic
    if "wgmma" in algo:  # the plain wgmma tiles on the K-major transposed filter: each phase's own matrix
        monkeypatch.setenv("PYCONV_WGMMA_DGRAD_B", "kmajor")
        _launches(backend)
        dx_k = ops.conv2d_dgrad(go, wl, list(xs), *geo, algo)
        assert len(_launches(backend)) == 1
        _close(dx_k, xd.grad, torch.float16)
    _launches(backend)


# The n16 wgmma tile (tensor_core_wgmma_64x16: tc_tile's choice for ≤ 16 GEMM columns, fprop and dgrad): (x shape,
# w shape, stride, padding, groups). fprop's GEMM columns are K/g, dgrad's C/g.
N16 = {
    # the ResNet stem's shape at a small size: fprop 8 columns, dgrad 3 (its four phases in one launch)
    "stem": ((2, 3, 19, 17), (8, 3, 7, 7), 2, 3, 1),
    # 16 → 16 channels 1×1 (MobileNetV2's): both directions exactly one n16 tile wide
    "1x1_c16": ((2, 16, 12, 11), (16, 16, 1, 1), 1, 0, 1),
    # 12 → 13 channels 3×3, two groups of 6 → 6.5: odd column counts (a B row past gemm_n, partial output chunks)
    "g2_odd": ((1, 12, 9, 10), (14, 6, 3, 3), 1, 1, 2),
}


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
@pytest.mark.parametrize("dtype", DTYPES[:2], ids=DIDS[:2])
@pytest.mark.parametrize("geom", list(N16))
def test_wgmma_n16_tile(geom, dtype, device, backend):
    """fprop (with bias and a fused residual + ReLU) and dgrad on the 64×16 wgmma tile, which the rung's heuristic
    picks for ≤ 16 GEMM columns (the launch log names it; auto too where the TMA kernels do not suit: the stem, see
    AUTO_TMA) and which dgrad feeds its K-major transposed filter (the tile has no MN-major form); against float64
    torch and bit-identical between the rung and the tile's name. wgrad named with it runs the rung's own wgrad
    tile."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    xs, ws_, stride, padding, groups = N16[geom]
    x, w, b, kw = _operands((xs, ws_, stride, padding, 1, groups), dtype, device)
    xd, wd, bd = (t.double().requires_grad_() for t in (x, w, b))
    ref = F.conv2d(xd, wd, bd, **kw)
    go = torch.randn(ref.shape, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    ref.backward(go.double())
    res = torch.randn(ref.shape, device=device).to(dtype).contiguous(memory_format=torch.channels_last)
    geo = ([stride] * 2, [padding] * 2, [1, 1], groups)
    _launches(backend)
    y = ops.conv2d_fprop(x, w, b, *geo, "tensor_core_wgmma")
    dx = ops.conv2d_dgrad(go, w, list(xs), *geo, "tensor_core_wgmma")
    log = _launches(backend)
    assert [t for t, _ in log] == ["tensor_core_wgmma_64x16"] * 2, log
    _close(y, ref.detach(), dtype)
    _close(dx, xd.grad, dtype)
    fused = ops.conv2d_fprop_fused(x, w, b, res, *geo, "relu", 0.0, "tensor_core_wgmma_64x16")
    _close(fused, F.relu(ref.detach() + res.double()), dtype)
    assert torch.equal(y, ops.conv2d_fprop(x, w, b, *geo, "tensor_core_wgmma_64x16"))
    assert torch.equal(dx, ops.conv2d_dgrad(go, w, list(xs), *geo, "tensor_core_wgmma_64x16"))
    dw = ops.conv2d_wgrad(go, x, list(ws_), *geo, "tensor_core_wgmma_64x16")
    log = _launches(backend)
    assert log[-1][0] != "tensor_core_wgmma_64x16" and log[-1][0].startswith("tensor_core_wgmma_"), log
    _close(dw, wd.grad, dtype)


def _filter_copies(backend):
    return _native(backend).conv2d_tc_filter_copies()


# dgrad on the wgmma rung (its plain tiles unless PYCONV_WGMMA_DGRAD_B=kmajor — or the n16 tile, which the heuristic
# picks for C/g ≤ 16 as in most of these, hence named tiles below; always on the warp-specialised and TMA kernels)
# reads B MN-major: the filter itself when it is channels_last (or a 1×1 with contiguous channels), K/g padded to a
# multiple of 64 (a 64-row reduction tile in one tap) and C/g a multiple of 8; else a one-launch MN-major copy.
# geometry → (x shape, w shape, stride, padding, dilation, groups), in place?
DGRAD_B = {
    "k64": (((2, 16, 7, 9), (64, 16, 3, 3), 1, 1, 1, 1), True),
    "k60_tail": (((1, 16, 6, 5), (60, 16, 3, 3), 1, 1, 1, 1), True),  # rows 60..63 of each tap read zero
    "k64_s2": (((2, 24, 9, 11), (64, 24, 3, 3), 2, 1, 1, 1), True),  # four phases, each its own taps of the filter
    "k64_s2_dil2": (((1, 16, 11, 10), (64, 16, 3, 3), 2, 2, 2, 1), True),  # strided and dilated: the general gather
    "g2_k128": (((1, 32, 6, 7), (128, 16, 3, 3), 1, 1, 1, 2), True),  # each group's 64 output channels
    "1x1_k128": (((2, 24, 5, 6), (128, 24, 1, 1), 1, 0, 1, 1), True),
    "k72_straddle": (((1, 16, 6, 5), (72, 16, 3, 3), 1, 1, 1, 1), False),  # kp = 72: tiles straddle taps
    "c12": (((1, 12, 6, 5), (64, 12, 3, 3), 1, 1, 1, 1), False),  # C/g = 12: not whole 16-byte chunks
}


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
@pytest.mark.parametrize("algo", ["tensor_core_wgmma_128x64", "tensor_core_wgmma_64x64", "tensor_core_wgmma_ws",
                                  "tensor_core_wgmma_tma_128x128"])
@pytest.mark.parametrize("geom", list(DGRAD_B))
def test_wgmma_dgrad_filter_in_place(geom, algo, device, backend, monkeypatch):
    """wgmma dgrad with a channels_last filter and B MN-major: read in place where it can be (no filter copy: the
    counter stays 0), else copied once (MN-major; TMA: to channels_last), against float64 torch, and bit-identical to
    the same dgrad on a contiguous (NCHW) filter, which a 3×3 reads through a copy (same tiles, same reduction order).
    The plain tiles read B MN-major by default (and with PYCONV_WGMMA_DGRAD_B=mn); with =kmajor they transpose the
    filter (one copy) and read it K-major — the same result to rounding."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    g, in_place = DGRAD_B[geom]
    two = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    x, w, _, kw = _operands(g, torch.float16, device)
    xd = x.double().requires_grad_()
    ref = F.conv2d(xd, w.double(), None, **kw)
    go = torch.randn(ref.shape, device=device).half().contiguous(memory_format=torch.channels_last)
    ref.backward(go.double())
    geo = (two(kw["stride"]), two(kw["padding"]), two(kw["dilation"]), kw["groups"])
    wcl = w.contiguous(memory_format=torch.channels_last)
    plain = "_ws" not in algo and "_tma" not in algo
    if plain:  # K-major on request: one transpose, the same numbers to float16 rounding
        monkeypatch.setenv("PYCONV_WGMMA_DGRAD_B", "kmajor")
        _filter_copies(backend)
        dx_k = ops.conv2d_dgrad(go, wcl, list(x.shape), *geo, algo)
        assert _filter_copies(backend) == 1
        _close(dx_k, xd.grad, torch.float16)
        monkeypatch.setenv("PYCONV_WGMMA_DGRAD_B", "mn")  # = the default (below, unset), the same kernel
        dx_mn = ops.conv2d_dgrad(go, wcl, list(x.shape), *geo, algo)
        monkeypatch.delenv("PYCONV_WGMMA_DGRAD_B")
    _filter_copies(backend)
    _launches(backend)
    dx = ops.conv2d_dgrad(go, wcl, list(x.shape), *geo, algo)
    if plain:
        assert torch.equal(dx, dx_mn)
    copies, log = _filter_copies(backend), _launches(backend)
    assert log and all(t.startswith("tensor_core_wgmma") for t, _ in log), log
    tma = any("_tma_" in t for t, _ in log)
    # TMA's maps take any K/g and the filter's own taps (C/g a multiple of 8): only c12 falls back (to _ws), copying
    assert copies == (0 if in_place or (tma and geom != "c12") else 1), (copies, log)
    _close(dx, xd.grad, torch.float16)
    dx_nchw = ops.conv2d_dgrad(go, w, list(x.shape), *geo, algo)
    nchw_copies = _filter_copies(backend)
    assert nchw_copies == (0 if g[1][2] * g[1][3] == 1 and in_place else 1), nchw_copies
    assert torch.equal(dx, dx_nchw)


@pytest.mark.skipif(not pyconv.build_info()["emulator"], reason="pyconv built without the emulator")
@pytest.mark.parametrize("order", ["reverse", "random"])
@pytest.mark.parametrize("tile", ["tensor_core_wgmma_ws_128x128", "tensor_core_wgmma_ws_64x128",
                                  "tensor_core_wgmma_ws_128x64", "tensor_core_wgmma_tma_128x128"])
def test_wgmma_ws_thread_orders(tile, order):
    """The warp-specialised kernels' mbarrier ring under the emulator's other thread and block orders (consumers may
    run before the producer, blocks in any order, on two OS threads): bit-identical results to the forward order in
    all three directions (fixed summation order: the schedule must not change a value). 6-10 output tiles on 4-8
    persistent blocks, 9 reduction tiles each."""
    x, w, _, kw = _operands(((2, 64, 12, 12), (160, 64, 3, 3), 1, 1, 1, 1), torch.float16, "cpu")
    geo = ([1, 1], [1, 1], [1, 1], 1)
    ops = torch.ops.pyconv_emu
    go = torch.randn(2, 160, 12, 12).half().contiguous(memory_format=torch.channels_last)

    def run():
        return (ops.conv2d_fprop(x, w, None, *geo, tile), ops.conv2d_dgrad(go, w, list(x.shape), *geo, tile),
                ops.conv2d_wgrad(go, x, list(w.shape), *geo, tile))

    ref = run()
    with pyconv.emulator.config(order=order, workers=2, seed=5):
        got = run()
    for a, b in zip(got, ref):
        assert torch.equal(a, b)


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
@pytest.mark.parametrize("tile", ["tensor_core_wgmma_128x128", "tensor_core_wgmma_ws_128x128",
                                  "tensor_core_wgmma_ws_128x256", "tensor_core_wgmma_ws_64x128",
                                  "tensor_core_wgmma_ws_128x64", "tensor_core_wgmma_tma_128x128"])
def test_wgmma_fused_and_split_k(tile, device, backend):
    """The wgmma kernels end in rung 3's epilogue: fused bias + residual (both layouts) + activation, and split-K
    slices (a reduction of 36 tiles of 64 on one output tile) reduced in a fixed order, fprop and dgrad (the
    warp-specialised kernel: its producer warps skip the split-K store and help with the staged copy-out)."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    x, w, b, kw = _operands(((2, 8, 6, 7), (12, 8, 3, 3), 1, 1, 1, 1), torch.float16, device)
    ref_pre = F.conv2d(x.double(), w.double(), b.double(), **kw)
    r = torch.randn(ref_pre.shape, device=device).half()
    for res in (r, r.contiguous(memory_format=torch.channels_last)):
        for act, fn in (("relu", F.relu), ("silu", F.silu)):
            y = PF.conv2d(x, w, b, **kw, activation=act, residual=res, algo=tile, backend=backend)
            _close(y, fn(ref_pre + r.double()), torch.float16)
    geo = ([1, 1], [1, 1], [1, 1], 1)
    x, w, b, _ = _operands(((1, 256, 5, 5), (24, 256, 3, 3), 1, 1, 1, 1), torch.float16, device)
    ref = F.conv2d(x.double(), w.double(), b.double(), 1, 1)
    rr = torch.randn(ref.shape, device=device).half().contiguous(memory_format=torch.channels_last)
    _launches(backend)
    y = ops.conv2d_fprop_fused(x, w, b, rr, *geo, "relu", 0.0, tile)
    log = _launches(backend)
    _close(y, F.relu(ref + rr.double()), torch.float16)
    assert log and all(t == tile and s > 1 for t, s in log), log
    assert torch.equal(y, ops.conv2d_fprop_fused(x, w, b, rr, *geo, "relu", 0.0, tile))
    c = 24 if "_tma" in tile else 21  # (TMA's dgrad reads the filter in place: C/g a multiple of 8, else _ws runs)
    x, w, _, _ = _operands(((1, c, 5, 5), (256, c, 3, 3), 1, 1, 1, 1), torch.float16, device)
    go = torch.randn(1, 256, 5, 5, device=device).half().contiguous(memory_format=torch.channels_last)
    dx = ops.conv2d_dgrad(go, w, [1, c, 5, 5], *geo, tile)
    log = _launches(backend)
    assert log and all(t == tile and s > 1 for t, s in log), log
    xg = x.double().requires_grad_()
    F.conv2d(xg, w.double(), None, 1, 1).backward(go.double())
    _close(dx, xg.grad, torch.float16)


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
@pytest.mark.parametrize("c,layout", [(8, "channels_last"), (6, "channels_last"), (8, "nchw")])
@pytest.mark.parametrize("n,splits", [(8, 8), (5, 5)])
def test_wgrad_slice_sum_lanes(n, splits, c, layout, device, backend):
    """wgrad's slice sum (tc_wgrad_reduce_kernel) with its slices spread over split lanes — 8 slices on 8 lanes, 5 on
    4 lanes (lanes 0 summing slices 0 and 4) — then added in lane order: one 64×64 rung-3 tile of a 1×1 wgrad whose
    N·P·Q = n·256 reduction splits into `splits` slices (of ≥ 8 tiles of 32 rows; on the emulator's 4 SMs and on a
    GPU alike), four channels a thread (C = 8) or one (C = 6), dw channels_last or NCHW; against float64 torch and
    bit-identical on a second run."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    x = torch.randn(n, c, 16, 16, device=device).half().contiguous(memory_format=fmt)
    go = torch.randn(n, 8, 16, 16, device=device).half().contiguous(memory_format=fmt)
    args = (go, x, [8, c, 1, 1], [1, 1], [0, 0], [1, 1], 1, "tensor_core")
    _launches(backend)
    dw = ops.conv2d_wgrad(*args)
    assert [(t, k) for t, k in _launches(backend)] == [("tensor_core_64x64", splits)]
    wd = torch.zeros(8, c, 1, 1, dtype=torch.float64, device=device, requires_grad=True)
    F.conv2d(x.double(), wd).backward(go.double())
    _close(dw, wd.grad, torch.float16)
    assert torch.equal(dw, ops.conv2d_wgrad(*args))


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
@pytest.mark.parametrize("algo,tile", [("tensor_core_wgmma", "64x64"), ("tensor_core_wgmma_128x256", "128x256"),
                                       ("tensor_core_wgmma_128x128_s3", "128x128_s3"),
                                       ("tensor_core_wgmma_ws", "ws_64x128"), ("tensor_core_wgmma_ws_128x128", "ws_128x128")])
def test_wgmma_wgrad_split_k(algo, tile, device, backend):
    """wgrad on the wgmma kernel with a long N·P·Q reduction (12 tiles of 64 rows, the last one partial) split over
    slices whose float partial sums are added in a fixed order (bit-identical on a second run), and with one slice
    (written straight to dw through its strides): two groups of 10 → 36 channels (padded to 16 and 40), 3×3 taps.
    The warp-specialised kernel (one block per SM: the emulator's 4 "SMs" leave room for slices only with fewer
    tiles) on one such group."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    g = 1 if "_ws" in algo else 2
    x, w, _, kw = _operands(((4, 10 * g, 14, 13), (36 * g, 10, 3, 3), 1, 1, 1, g), torch.float16, device)
    geo = ([1, 1], [1, 1], [1, 1], g)
    go = torch.randn(4, 36 * g, 14, 13, device=device).half().contiguous(memory_format=torch.channels_last)
    wd = w.double().requires_grad_()
    F.conv2d(x.double(), wd, None, **kw).backward(go.double())
    _launches(backend)
    dw = ops.conv2d_wgrad(go, x, list(w.shape), *geo, algo)
    log = _launches(backend)
    assert [t for t, _ in log] == [f"tensor_core_wgmma_{tile}"] and log[0][1] > 1, log
    _close(dw, wd.grad, torch.float16)
    assert torch.equal(dw, ops.conv2d_wgrad(go, x, list(w.shape), *geo, algo))
    # one slice: a reduction of 3 tiles (too short to split)
    x, go = x[:1, :, :8, :8], go[:1, :, :8, :8]
    wd = w.double().requires_grad_()
    F.conv2d(x.double(), wd, None, **kw).backward(go.double())
    _launches(backend)
    dw = ops.conv2d_wgrad(go, x, list(w.shape), *geo, algo)
    assert [s for _, s in _launches(backend)] == [1]
    _close(dw, wd.grad, torch.float16)


# wgrad's dw stores (tc_wgrad_store, tc_wgrad_reduce_kernel). dw follows the input's layout (wgrad_format): with
# channels_last, one slice stores a lane's channel pair as one 4-byte word and the slice sum four channels as one
# 8-byte word; C/g odd, or an NCHW 3×3 dw (channels R·S apart), falls back to element stores. (w shape, groups):
DW_STORE_GEOMS = {"c16": ((24, 16, 3, 3), 1), "c6_groups2": ((20, 6, 3, 3), 2), "c5_odd": ((8, 5, 3, 3), 1),
                  "c12_1x1": ((24, 12, 1, 1), 1)}
DW_STORE_RUNS = [(d, b, "tensor_core") for d, b in TARGETS] + [
    (d, b, a) for d, b in WG_TARGETS for a in ("tensor_core_wgmma", "tensor_core_wgmma_ws")]


@pytest.mark.parametrize("device,backend,algo", DW_STORE_RUNS, ids=[f"{b}-{a}" for _, b, a in DW_STORE_RUNS])
@pytest.mark.parametrize("layout", ["channels_last", "nchw"])
@pytest.mark.parametrize("geom", list(DW_STORE_GEOMS))
def test_wgrad_dw_layout_and_stores(geom, layout, algo, device, backend):
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    ws, g = DW_STORE_GEOMS[geom]
    pad = ws[2] // 2
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    expected = torch.empty(ws, memory_format=fmt).stride()
    # a long reduction (N·P·Q = 768: split over slices) and a short one (one slice, dw written by the kernel)
    for n, (h, wd_), split in ((4, (16, 12), True), (1, (6, 6), False)):
        x, w, _, kw = _operands(((n, ws[1] * g, h, wd_), ws, 1, pad, 1, g), torch.float16, device,
                                channels_last=layout == "channels_last")
        go = torch.randn(n, ws[0], h, wd_, device=device).half().contiguous(memory_format=fmt)
        wref = w.double().requires_grad_()
        F.conv2d(x.double(), wref, None, **kw).backward(go.double())
        _launches(backend)
        dw = ops.conv2d_wgrad(go, x, list(ws), [1, 1], [pad, pad], [1, 1], g, algo)
        log = _launches(backend)
        assert len(log) == 1 and (log[0][1] > 1) == split, log
        assert dw.stride() == expected, (dw.stride(), expected)
        _close(dw, wref.grad, torch.float16)


@pytest.mark.skipif(not WG_TARGETS, reason="neither the emulator nor a compute capability 9.0 GPU with sm_90a")
@pytest.mark.parametrize("device,backend", WG_TARGETS, ids=WG_TIDS)
def test_wgmma_errors_and_opcheck(device, backend):
    x, w, b, kw = _operands(GEOMS["3x3"], torch.float16, device)
    with pytest.raises(RuntimeError, match="tensor_core_wgmma.*float16 or bfloat16.*Float"):
        PF.conv2d(x.float(), w.float(), None, **kw, algo="tensor_core_wgmma", backend=backend)
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    x, w, b, _ = _operands(((1, 8, 5, 5), (8, 8, 3, 3), 1, 1, 1, 1), torch.float16, device)
    go = torch.randn(1, 8, 5, 5, device=device).half()
    geo = ([1, 1], [1, 1], [1, 1], 1)
    opcheck(ops.conv2d_fprop, (x, w, b, *geo, "tensor_core_wgmma"))
    opcheck(ops.conv2d_dgrad, (go, w, [1, 8, 5, 5], *geo, "tensor_core_wgmma"))
    opcheck(ops.conv2d_wgrad, (go, x, [8, 8, 3, 3], *geo, "tensor_core_wgmma"))


# ---- streams and CUDA graphs (GPU only: the emulator has neither) ---------------------------------------------------
# A strided dgrad runs its sub-pixel phases side by side on pool streams (StreamFork in csrc/common/cuda_glue.h), with
# an event fork/join around them: on a non-default stream and inside a CUDA graph capture the op must stay ordered on
# the caller's stream and give the eager result. fprop with split-K (a float workspace) rides along.
_GPU_ALGOS = ["tensor_core"] + (["tensor_core_wgmma"] if ("cuda", "auto") in WG_TARGETS else [])
# (x shape, w shape, stride, padding): all four phases reached with unequal tap counts; a split-K fprop
_STREAM_GEOMS = {"3x3_s2": ((4, 32, 15, 14), (40, 32, 3, 3), 2, 1), "k4x3_s2x3": ((2, 16, 11, 10), (24, 16, 4, 3),
                                                                                    (2, 3), (1, 2))}


def _dgrad_and_fprop(go, w, x_shape, stride, padding, algo):
    st = list(stride) if isinstance(stride, tuple) else [stride] * 2
    pad = list(padding) if isinstance(padding, tuple) else [padding] * 2
    return (lambda: torch.ops.pyconv.conv2d_dgrad(go, w, list(x_shape), st, pad, [1, 1], 1, algo),
            lambda x: torch.ops.pyconv.conv2d_fprop(x, w, None, st, pad, [1, 1], 1, algo))


@pytest.mark.skipif(not (HAS_CUDA and ("cuda", "auto") in TARGETS), reason="needs an sm_80+ GPU")
@pytest.mark.parametrize("phases", ["default", "fork"])
@pytest.mark.parametrize("algo", _GPU_ALGOS)
@pytest.mark.parametrize("geom", list(_STREAM_GEOMS))
def test_side_stream_and_cuda_graph(geom, algo, phases, monkeypatch):
    """default: 3x3_s2's four phases run as one launch (phased_dgrad_ok; its grid is too big for split-K on any
    GPU), k4x3_s2x3's six fork; fork (PYCONV_DGRAD_PHASES=fork): every strided dgrad forks."""
    if phases == "fork":
        monkeypatch.setenv("PYCONV_DGRAD_PHASES", "fork")
    xs, ws, stride, padding = _STREAM_GEOMS[geom]
    x, w, _, kw = _operands((xs, ws, stride, padding, 1, 1), torch.float16, "cuda")
    ref_x = F.conv2d(x.double(), w.double(), None, **kw)
    go = torch.randn(ref_x.shape, device="cuda").to(torch.float16).contiguous(memory_format=torch.channels_last)
    dgrad, fprop = _dgrad_and_fprop(go, w, xs, stride, padding, algo)
    ref_dx = torch.nn.grad.conv2d_input(xs, w.double(), go.double(), **kw)
    _launches("auto")
    eager_dx, eager_y = dgrad(), fprop(x)
    _close(eager_dx, ref_dx, torch.float16)
    _close(eager_y, ref_x, torch.float16)
    sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
    # one GEMM per phase (every phase has taps here) when forked, else one for all four; then the fprop
    dgrad_launches = 1 if phases == "default" and sh * sw <= 4 else sh * sw
    assert len(_launches("auto")) == dgrad_launches + 1

    # on a side stream: the fork waits for that stream's work and joins back into it
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            side_dx, side_y = dgrad(), fprop(x)
    torch.cuda.current_stream().wait_stream(s)
    assert torch.equal(side_dx, eager_dx) and torch.equal(side_y, eager_y)

    # captured into a CUDA graph, replayed on new data written into the captured inputs
    with torch.cuda.stream(s):  # warm-up on a side stream, as torch.cuda.graphs asks
        dgrad(), fprop(x)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        graph_dx, graph_y = dgrad(), fprop(x)
    go.copy_(torch.randn(go.shape, device="cuda").to(torch.float16))
    x.copy_(torch.randn(x.shape, device="cuda").to(torch.float16))
    g.replay()
    torch.cuda.synchronize()
    _close(graph_dx, torch.nn.grad.conv2d_input(xs, w.double(), go.double(), **kw), torch.float16)
    _close(graph_y, F.conv2d(x.double(), w.double(), None, **kw), torch.float16)
    assert torch.equal(graph_dx, dgrad()) and torch.equal(graph_y, fprop(x))  # deterministic: bit-equal to eager
