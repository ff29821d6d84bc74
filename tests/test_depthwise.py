"""The depthwise rung (csrc/conv2d/cpu_depthwise.h, csrc/conv2d/cuda_depthwise.cuh): one input channel per group (MobileNet's depthwise layers,
channel multipliers, and the single-channel groups=1 case), forward and both gradients, every floating dtype, NCHW and
channels_last (the CUDA kernels pick their thread order from the layout), on the CPU, under the CPU emulator (the CUDA
kernels) and on a GPU when present.
float64 must match torch to 1e-10; float16/bfloat16 within 4e-3 / 2e-2 of the largest reference value."""
import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import pyconv
from pyconv import functional as PF
from conftest import HAS_CUDA

TARGETS = ([("cpu", "auto")] + ([("cpu", "emulator")] if pyconv.emulator.available() else []) +
           ([("cuda", "auto")] if HAS_CUDA else []))
TIDS = [f"{d}-{b}" for d, b in TARGETS]

# (x shape, w shape, stride, padding, dilation, groups)
GEOMS = {
    "mobilenet_3x3": ((2, 8, 9, 10), (8, 1, 3, 3), 1, 1, 1, 8),
    "stride2": ((2, 6, 11, 9), (6, 1, 3, 3), 2, 1, 1, 6),
    "mult3_5x5_dil": ((1, 4, 12, 13), (12, 1, 5, 5), 1, 4, 2, 4),
    "asym": ((2, 5, 7, 13), (5, 1, 3, 2), (2, 3), (1, 0), (1, 2), 5),
    "single_channel_g1": ((2, 1, 8, 7), (3, 1, 3, 3), 1, 1, 1, 1),
    "big_taps": ((1, 3, 14, 14), (3, 1, 7, 7), 1, 3, 1, 3),  # 49 taps: several wgrad tap chunks
    # 16 channels: the channels-last fast path (16-byte channel vectors) for every dtype; odd strides, dilation,
    # asymmetric padding, a width that leaves a partial 4-column strip
    "vec_c16_stride2": ((2, 16, 11, 13), (16, 1, 3, 3), 2, (1, 2), (1, 2), 16),
    "vec_c24_3x3": ((1, 24, 7, 10), (24, 1, 3, 3), 1, 1, 1, 24),
    # the windowed kernels (square 3×3 / 5×5 filters, wgrad 7×7 too; dilation 1, stride 1 or 2): padding that
    # exceeds the input, zero padding, partial strips; 72 channels: two wgrad channel blocks (float64: 36 vectors)
    "win_c16_3x3_s2": ((2, 16, 11, 13), (16, 1, 3, 3), 2, 1, 1, 16),
    "win_c8_5x5": ((1, 8, 9, 11), (8, 1, 5, 5), 1, 2, 1, 8),
    "win_c8_5x5_s2_pad0": ((2, 8, 12, 10), (8, 1, 5, 5), 2, 0, 1, 8),
    "win_c16_3x3_pad02": ((1, 16, 8, 9), (16, 1, 3, 3), 1, (0, 2), 1, 16),
    "win_c72_3x3": ((1, 72, 6, 7), (72, 1, 3, 3), 1, 1, 1, 72),
    # the windowed wgrad at stride 2 with padding 2: windows that start two rows and columns before the input
    "win_c16_3x3_s2_pad2": ((1, 16, 5, 6), (16, 1, 3, 3), 2, 2, 1, 16),
    # the windowed fprop/dgrad stage each block's taps in shared memory from the filter itself, one slot per channel
    # vector the block touches: 40 channels put several blocks on channel slots that wrap around (5 f16 vectors,
    # 256 items a block); 2056 channels fill all 256 slots of a block; 5x5 at 1024 channels would need more than
    # 48 KiB of slots (16-bit: 128 vectors x 25 taps x 16 bytes) and reads the [R·S][C] copy instead
    "win_c40_3x3_wrap": ((2, 40, 9, 10), (40, 1, 3, 3), 1, 1, 1, 40),
    "win_c2056_3x3_slots": ((1, 2056, 3, 3), (2056, 1, 3, 3), 1, 1, 1, 2056),
    "win_c1024_5x5_unstaged": ((1, 1024, 4, 5), (1024, 1, 5, 5), 1, 2, 1, 1024),
    # strided dgrad takes the windowed kernel too, its column taps fixed by the parity of pad_w (odd: win_c16_3x3_s2,
    # even: win_c16_3x3_s2_pad2, win_c8_5x5_s2_pad0); here odd 5x5, and pad_h / pad_w of different parities
    "win_c8_5x5_s2_pad1": ((1, 8, 12, 11), (8, 1, 5, 5), 2, 1, 1, 8),
    "win_c16_3x3_s2_pad12": ((2, 16, 9, 12), (16, 1, 3, 3), 2, (1, 2), 1, 16),
    # 7x7 (ConvNeXt's depthwise layer, stride 1 padding 3; and at stride 2): wgrad on the windowed row kernel with
    # 1-pixel strips (fprop/dgrad on the generic kernels)
    "win_c16_7x7": ((2, 16, 9, 10), (16, 1, 7, 7), 1, 3, 1, 16),
    "win_c8_7x7_s2": ((1, 8, 13, 12), (8, 1, 7, 7), 2, 3, 1, 8),
}


def _run(geom, dtype, device, backend, channels_last):
    xs, ws, stride, padding, dilation, groups = GEOMS[geom]
    x = torch.randn(xs, device=device).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(ws, device=device).to(dtype)
    b = torch.randn(ws[0], device=device).to(dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    xd, wd, bd = (t.detach().double().clone().requires_grad_() for t in (x, w, b))
    ref = F.conv2d(xd, wd, bd, **kw)
    go = torch.randn(ref.shape, device=device).to(dtype)
    if channels_last:  # as autograd hands a channels-last network its gradients: dgrad/wgrad's fast path
        go = go.contiguous(memory_format=torch.channels_last)
    ref.backward(go.double())
    xx, ww, bb = (t.clone().requires_grad_() for t in (x, w, b))
    y = PF.conv2d(xx, ww, bb, **kw, algo="depthwise", backend=backend)
    y.backward(go)
    return [(y, ref), (xx.grad, xd.grad), (ww.grad, wd.grad), (bb.grad, bd.grad)], y


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
@pytest.mark.parametrize("geom", list(GEOMS), ids=list(GEOMS))
def test_float64_exact(geom, channels_last, device, backend):
    pairs, y = _run(geom, torch.float64, device, backend, channels_last)
    if channels_last and GEOMS[geom][0][1] > 1:  # a 1-channel input is NCHW-contiguous too: torch keeps NCHW
        assert y.is_contiguous(memory_format=torch.channels_last)
    for got, ref in pairs:
        torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("geom", ["mobilenet_3x3", "mult3_5x5_dil", "vec_c16_stride2", "vec_c24_3x3", "win_c16_3x3_s2",
                                  "win_c8_5x5", "win_c72_3x3", "win_c16_3x3_s2_pad2", "win_c40_3x3_wrap",
                                  "win_c2056_3x3_slots", "win_c1024_5x5_unstaged", "win_c8_5x5_s2_pad1",
                                  "win_c16_3x3_s2_pad12", "win_c16_7x7", "win_c8_7x7_s2"])
def test_reduced_precision(geom, dtype, device, backend):
    tol = {torch.float32: 1e-5, torch.float16: 4e-3, torch.bfloat16: 2e-2}[dtype]
    pairs, y = _run(geom, dtype, device, backend, True)
    assert y.dtype == dtype
    for got, ref in pairs:
        err = (got.double() - ref).abs().max().item()
        assert err <= tol * ref.abs().max().item()


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_split_wgrad_and_fused(device, backend):
    """Enough pixels per channel for a split reduction (deterministic: two runs are bit-identical), and the fused
    epilogue (bias + residual + relu6, MobileNetV2's block) in the depthwise kernel."""
    x = torch.randn(4, 2, 40, 40, device=device, dtype=torch.float64)
    w = torch.randn(2, 1, 3, 3, device=device, dtype=torch.float64)
    go = torch.randn(4, 2, 40, 40, device=device, dtype=torch.float64)
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    geo = ([1, 1], [1, 1], [1, 1], 2)  # on CUDA (emulated: 4 SMs) the wgrad reduction is split over N·P·Q
    dw1 = ops.conv2d_wgrad(go, x, [2, 1, 3, 3], *geo, "depthwise")
    dw2 = ops.conv2d_wgrad(go, x, [2, 1, 3, 3], *geo, "depthwise")
    assert torch.equal(dw1, dw2)
    wd = w.clone().requires_grad_()
    F.conv2d(x, wd, None, 1, 1, 1, 2).backward(go)
    torch.testing.assert_close(dw1, wd.grad, rtol=1e-10, atol=1e-10)
    # the channels-last fast path's split (16 float64 channels = 8 vectors, 32 pixel lanes, 6400 pixels: 8 splits
    # on the emulator's 4 SMs, one block each), and at stride 2
    for stride in (1, 2):
        xc = torch.randn(4, 16, 40, 40, device=device, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
        p = (40 - 1) // stride + 1
        gc = torch.randn(4, 16, p, p, device=device, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
        geo = ([stride, stride], [1, 1], [1, 1], 16)
        dwa = ops.conv2d_wgrad(gc, xc, [16, 1, 3, 3], *geo, "depthwise")
        assert torch.equal(dwa, ops.conv2d_wgrad(gc, xc, [16, 1, 3, 3], *geo, "depthwise"))
        wc = torch.randn(16, 1, 3, 3, device=device, dtype=torch.float64, requires_grad=True)
        F.conv2d(xc, wc, None, stride, 1, 1, 16).backward(gc)
        torch.testing.assert_close(dwa, wc.grad, rtol=1e-10, atol=1e-10)
    b, r = torch.randn(2, device=device, dtype=torch.float64), torch.randn_like(go)
    y = PF.conv2d(x, w, b, 1, 1, 1, 2, activation="relu6", residual=r, algo="depthwise", backend=backend)
    torch.testing.assert_close(y, F.relu6(F.conv2d(x, w, b, 1, 1, 1, 2) + r), rtol=1e-10, atol=1e-10)
    # the same epilogue on the channels-last fast path (C a multiple of the vector), with an NCHW residual
    xc = torch.randn(2, 8, 9, 11, device=device, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    wc, bc = torch.randn(8, 1, 3, 3, device=device, dtype=torch.float64), torch.randn(8, device=device,
                                                                                      dtype=torch.float64)
    rc = torch.randn(2, 8, 5, 6, device=device, dtype=torch.float64)
    yc = PF.conv2d(xc, wc, bc, 2, 1, 1, 8, activation="silu", residual=rc, algo="depthwise", backend=backend)
    assert yc.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(yc, F.silu(F.conv2d(xc, wc, bc, 2, 1, 1, 8) + rc), rtol=1e-10, atol=1e-10)


CUDA_TARGETS = [(d, b) for d, b in TARGETS if b == "emulator" or d == "cuda"]


@pytest.mark.skipif(not CUDA_TARGETS, reason="neither the CUDA emulator nor a GPU")
@pytest.mark.parametrize("device,backend", CUDA_TARGETS, ids=[f"{d}-{b}" for d, b in CUDA_TARGETS])
@pytest.mark.parametrize("rows", [2, 3, 4])
@pytest.mark.parametrize("geom", ["win_c40_3x3_wrap", "win_c16_3x3_s2", "win_c8_5x5", "win_c8_5x5_s2_pad1",
                                  "win_c16_3x3_s2_pad12", "win_c72_3x3"])
def test_window_row_groups(geom, rows, device, backend, monkeypatch):
    """The windowed kernels' row-group work order (PYCONV_DW_ROWS: output rows in groups, channel vector fastest, then
    the row in its group, then the strip): fprop (with bias and a fused residual + ReLU6) and dgrad give the same
    bits as the one-row order — each output's sum is the same — for group sizes that do and do not divide the output
    rows (items past the last row skipped), stride 1 and 2, 3×3 and 5×5, channel slots that wrap; float16,
    channels_last (the fast path)."""
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    xs, ws_, stride, padding, dilation, groups = GEOMS[geom]
    two = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
    geo = (two(stride), two(padding), two(dilation), groups)
    x = torch.randn(xs, device=device).half().contiguous(memory_format=torch.channels_last)
    w = (torch.randn(ws_, device=device) * 0.3).half()
    b = torch.randn(ws_[0], device=device).half()
    y_ref = F.conv2d(x.double(), w.double(), b.double(), *geo)
    go = torch.randn(y_ref.shape, device=device).half().contiguous(memory_format=torch.channels_last)
    r = torch.randn(y_ref.shape, device=device).half().contiguous(memory_format=torch.channels_last)

    def run():
        return (ops.conv2d_fprop(x, w, b, *geo, "depthwise"),
                ops.conv2d_fprop_fused(x, w, b, r, *geo, "relu6", 0.0, "depthwise"),
                ops.conv2d_dgrad(go, w, list(xs), *geo, "depthwise"))

    one = run()
    monkeypatch.setenv("PYCONV_DW_ROWS", str(rows))
    grouped = run()
    for a, c in zip(one, grouped):
        assert torch.equal(a, c)
    y, fused, dx = grouped
    tol = 4e-3
    assert (y.double() - y_ref).abs().max() <= tol * y_ref.abs().max()
    fused_ref = F.relu6(y_ref + r.double())
    assert (fused.double() - fused_ref).abs().max() <= tol * fused_ref.abs().max() + 2e-3
    dx_ref = torch.nn.grad.conv2d_input(xs, w.double(), go.double(), *geo)
    assert (dx.double() - dx_ref).abs().max() <= tol * dx_ref.abs().max()


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_auto_and_errors(device, backend):
    x = torch.randn(2, 4, 6, 6, device=device, dtype=torch.float64)
    w = torch.randn(4, 1, 3, 3, device=device, dtype=torch.float64)
    torch.testing.assert_close(PF.conv2d(x, w, None, 1, 1, 1, 4, algo="auto", backend=backend),
                               PF.conv2d(x, w, None, 1, 1, 1, 4, algo="depthwise", backend=backend), rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="algo 'depthwise' needs one input channel per group.*C=4 with groups=2"):
        PF.conv2d(x, torch.randn(4, 2, 3, 3, dtype=torch.float64, device=device), None, 1, 1, 1, 2,
                  algo="depthwise", backend=backend)


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_opcheck(device, backend):
    x = torch.randn(1, 3, 5, 5, device=device, dtype=torch.float64)
    w = torch.randn(6, 1, 3, 3, device=device, dtype=torch.float64)
    go = torch.randn(1, 6, 5, 5, device=device, dtype=torch.float64)
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    geo = ([1, 1], [1, 1], [1, 1], 3)
    opcheck(ops.conv2d_fprop, (x, w, None, *geo, "depthwise"))
    opcheck(ops.conv2d_dgrad, (go, w, [1, 3, 5, 5], *geo, "depthwise"))
    opcheck(ops.conv2d_wgrad, (go, x, [6, 1, 3, 3], *geo, "depthwise"))
