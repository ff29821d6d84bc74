"""The Winograd rung (csrc/conv2d/cuda_winograd.cuh): F(2x2, 3x3) for 3x3 stride-1 dilation-1 convolutions, fprop and
dgrad (dgrad as the same transform of dy with the flipped, transposed filter), its 16·groups GEMMs run as one grouped
1x1 convolution on the project's own GEMM rungs (the tensor cores for 16-bit types). Under the CPU emulator on every
run, on a GPU when there is one. Reference: torch in float64 on the same rounded inputs.

Tolerances (relative to the largest reference magnitude): float64 1e-10 and float32 2e-6 — the transforms are exact
up to rounding —, float16 3e-3 and bfloat16 3e-2: besides the inputs, V (up to 4 inputs summed), U and the GEMM's
output M are each rounded to the 16-bit type, and the output transform adds 9 rounded M values whose magnitudes
exceed the outputs'. Measured on these shapes (3 seeds, emulator): float16 ≤ 8.7e-4 (the tensor-core implicit GEMM
≤ 4.6e-4), bfloat16 ≤ 8.3e-3 (implicit GEMM ≤ 3.2e-3), float32 ≤ 1.7e-7.
"""
import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import pyconv
from pyconv import functional as PF
from conftest import HAS_CUDA

TARGETS = []
if pyconv.emulator.available():
    TARGETS.append(("cpu", "emulator"))
if HAS_CUDA:
    TARGETS.append(("cuda", "auto"))
if not TARGETS:
    pytest.skip("neither the CUDA emulator nor a GPU is available", allow_module_level=True)
TIDS = [f"{d}-{b}" for d, b in TARGETS]  # "cuda" in the GPU ids: scripts/gpu_lease.sh selects tests by -k cuda
TOL = {torch.float64: 1e-10, torch.float32: 2e-6, torch.float16: 3e-3, torch.bfloat16: 3e-2}

# (x shape, K, padding, groups): 'same' (pad 1), 'valid' (pad 0: dgrad's padding 2), pad 2 (dgrad's padding 0),
# per-axis padding, odd output sizes (a half-empty last tile row and column), groups with channel counts off
# multiples of 8, 3 input channels, a one-pixel output.
GEOMS = {
    "same": ((2, 8, 8, 8), 16, 1, 1),
    "valid_odd": ((1, 5, 9, 7), 6, 0, 1),
    "pad2": ((1, 4, 5, 6), 8, 2, 1),
    "pad_h0_w1": ((2, 3, 7, 10), 5, (0, 1), 1),
    "groups2": ((2, 12, 6, 9), 10, 1, 2),
    "one_pixel": ((1, 6, 3, 3), 4, 0, 1),
}


def _operands(geom, dtype, device, channels_last):
    xs, k, padding, groups = GEOMS[geom]
    x = torch.randn(xs, device=device).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = (torch.randn(k, xs[1] // groups, 3, 3, device=device) / (3 * (xs[1] // groups) ** 0.5)).to(dtype)
    b = torch.randn(k, device=device).to(dtype)
    return x, w, b, dict(padding=padding, groups=groups)


def _close(got, ref, dtype):
    scale = ref.abs().max().item()
    err = (got.double() - ref).abs().max().item()
    assert err <= TOL[dtype] * scale, f"max error {err:.3g} vs tolerance {TOL[dtype] * scale:.3g}"


def _launches(backend):
    mod = pyconv._ops._C_emu if backend == "emulator" else pyconv._C
    return mod.conv2d_tc_launches()


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16],
                         ids=["f64", "f32", "f16", "bf16"])
@pytest.mark.parametrize("geom", list(GEOMS))
def test_fprop_dgrad_wgrad(geom, dtype, device, backend):
    channels_last = geom in ("same", "groups2")
    x, w, b, kw = _operands(geom, dtype, device, channels_last)
    xd, wd, bd = (t.detach().double().clone().requires_grad_() for t in (x, w, b))
    ref = F.conv2d(xd, wd, bd, **kw)
    go = torch.randn(ref.shape, device=device).to(dtype)
    ref.backward(go.double())
    xx, ww, bb = (t.detach().clone().requires_grad_() for t in (x, w, b))
    _launches(backend)
    y = PF.conv2d(xx, ww, bb, **kw, algo="winograd", backend=backend)
    fwd = _launches(backend)
    y.backward(go)
    assert y.dtype == dtype and y.shape == ref.shape
    if channels_last:
        assert y.is_contiguous(memory_format=torch.channels_last)
    _close(y, ref, dtype)
    _close(xx.grad, xd.grad, dtype)  # dgrad: the Winograd transform of dy
    _close(ww.grad, wd.grad, dtype)  # wgrad: auto's rung under this name
    _close(bb.grad, bd.grad, dtype)
    if dtype in (torch.float16, torch.bfloat16):  # the 16 GEMMs ran on the tensor cores (one grouped launch)
        assert len(fwd) == 1 and fwd[0][0].startswith("tensor_core"), fwd


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_matches_direct_bit_for_bit_in_exact_arithmetic(device, backend):
    """Small integers in float64: every transform, product and sum is exact, so Winograd and the direct rung agree
    to the last bit — any misplaced transform coefficient or tile offset would show."""
    x = torch.randint(-3, 4, (2, 5, 7, 6), device=device).double()
    w = torch.randint(-2, 3, (4, 5, 3, 3), device=device).double() * 2  # G's halves stay exact on even taps
    go = torch.randint(-3, 4, (2, 4, 7, 6), device=device).double()
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    geo = ([1, 1], [1, 1], [1, 1], 1)
    torch.testing.assert_close(ops.conv2d_fprop(x, w, None, *geo, "winograd"),
                               ops.conv2d_fprop(x, w, None, *geo, "direct"), rtol=0, atol=0)
    torch.testing.assert_close(ops.conv2d_dgrad(go, w, list(x.shape), *geo, "winograd"),
                               ops.conv2d_dgrad(go, w, list(x.shape), *geo, "direct"), rtol=0, atol=0)


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["f32", "f16"])
def test_fused_epilogue(dtype, device, backend):
    """conv + bias + residual + activation in the output transform, the residual in either layout."""
    x, w, b, kw = _operands("valid_odd", dtype, device, channels_last=True)
    pre = F.conv2d(x.double(), w.double(), b.double(), **kw)
    r = torch.randn(pre.shape, device=device).to(dtype)
    for res in (r, r.contiguous(memory_format=torch.channels_last)):
        for act, fn in (("relu", F.relu), ("silu", F.silu)):
            y = PF.conv2d(x, w, b, **kw, activation=act, residual=res, algo="winograd", backend=backend)
            _close(y, fn(pre + r.double()), dtype)


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_gradcheck_and_opcheck(device, backend):
    x, w, b, kw = _operands("pad_h0_w1", torch.float64, device, channels_last=False)
    x, w, b = (t.requires_grad_() for t in (x, w, b))
    fn = lambda x, w, b: PF.conv2d(x, w, b, **kw, algo="winograd", backend=backend)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    x, w, b, _ = _operands("groups2", torch.float32, device, channels_last=True)
    go = torch.randn(2, 10, 6, 9, device=device)
    geo = ([1, 1], [1, 1], [1, 1], 2)
    opcheck(ops.conv2d_fprop, (x, w, b, *geo, "winograd"))
    opcheck(ops.conv2d_dgrad, (go, w, [2, 12, 6, 9], *geo, "winograd"))


@pytest.mark.parametrize("device,backend", TARGETS, ids=TIDS)
def test_refuses_other_shapes(device, backend):
    """Anything but a 3x3 stride-1 dilation-1 convolution is a clear error naming what F(2x2, 3x3) needs; wgrad under
    the name runs auto's rung (no error)."""
    x = torch.randn(1, 4, 8, 8, device=device)
    for kw, w in ((dict(stride=2, padding=1), torch.randn(4, 4, 3, 3, device=device)),
                  (dict(dilation=2, padding=2), torch.randn(4, 4, 3, 3, device=device)),
                  (dict(padding=2), torch.randn(4, 4, 5, 5, device=device))):
        with pytest.raises(RuntimeError, match=r"algo 'winograd' needs a 3.3 kernel with stride 1 and dilation 1"):
            PF.conv2d(x, w, None, **kw, algo="winograd", backend=backend)
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    go = torch.randn(1, 4, 4, 4, device=device)
    dw = ops.conv2d_wgrad(go, x, [4, 4, 3, 3], [2, 2], [1, 1], [1, 1], 1, "winograd")
    torch.testing.assert_close(dw, ops.conv2d_wgrad(go, x, [4, 4, 3, 3], [2, 2], [1, 1], [1, 1], 1, "auto"),
                               rtol=0, atol=0)
    if backend == "emulator":
        with pytest.raises(RuntimeError, match="winograd"):  # a CUDA rung: not on the CPU backend
            PF.conv2d(x, torch.randn(4, 4, 3, 3), None, padding=1, algo="winograd")
