"""The CUDA kernels on the CPU emulator (pyconv.emulator, torch.ops.pyconv_emu) against torch.

Every CUDA conv2d kernel and rung runs here, on every case of test_conv2d's table, forward and all three gradients,
under block/thread orders forward, reverse and random and with 1 and 2 OS threads. The emulator's own self-tests
(warp shuffles, votes, atomics, dynamic shared memory, mma; seeded barrier/warp bugs) run here too.
"""
import itertools
import os

import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import pyconv
from pyconv import functional as PF
from conftest import general_algos
from test_conv2d import CASES, kwargs, make

if not pyconv.emulator.available():
    if os.environ.get("CI"):
        raise RuntimeError("CI must build the CUDA emulator (pyconv._C_emu), but it is missing")
    pytest.skip("pyconv was built without the CUDA emulator", allow_module_level=True)

EMU_ALGOS = general_algos("emulator")
CONFIGS = [dict(order=o, workers=w, seed=s) for (o, w), s in
           zip(itertools.product(("forward", "reverse", "random"), (1, 2)), itertools.count(11))]


def emu_vs_torch(case, dtype, algo):
    x, w, b = make(case, "cpu", dtype, requires_grad=True)
    y = PF.conv2d(x, w, b, **kwargs(case), algo=algo, backend="emulator")
    y_ref = F.conv2d(x, w, b, **kwargs(case))
    grads = grads_ref = ()
    if y_ref.numel() > 0:
        go = torch.randn_like(y_ref)
        inputs = [t for t in (x, w, b) if t is not None]
        grads = torch.autograd.grad(y, inputs, go)
        grads_ref = torch.autograd.grad(y_ref, inputs, go)
    return y, y_ref, grads, grads_ref, x


@pytest.mark.parametrize("algo", EMU_ALGOS)
@pytest.mark.parametrize("name", list(CASES))
def test_float64_exact(name, algo):
    """Forward and input/weight/bias gradients equal torch's in float64, each case under a different order/workers."""
    cfg = CONFIGS[list(CASES).index(name) % len(CONFIGS)]
    with pyconv.emulator.config(**cfg):
        y, y_ref, grads, grads_ref, x = emu_vs_torch(CASES[name], torch.float64, algo)
    assert y.shape == y_ref.shape
    if CASES[name].get("layout") == "cl":
        assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    for g, gr, what in zip(grads, grads_ref, ("input", "weight", "bias")):
        torch.testing.assert_close(g, gr, rtol=1e-10, atol=1e-10, msg=lambda m: f"grad {what} ({cfg}): {m}")


@pytest.mark.parametrize("algo", EMU_ALGOS)
@pytest.mark.parametrize("name", ["3x3_pad1", "odd_everything", "groups3_strided", "wide_tile_edges", "channels_last"])
def test_float32(name, algo):
    y, y_ref, grads, grads_ref, _ = emu_vs_torch(CASES[name], torch.float32, algo)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    for g, gr in zip(grads, grads_ref):
        torch.testing.assert_close(g, gr, rtol=1e-4, atol=1e-4 * max(1.0, gr.abs().max().item()))


@pytest.mark.parametrize("algo", [a for a in pyconv.build_info()["algorithms"]["emulator"]["conv2d"] if a != "depthwise"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_kernels(dtype, algo):
    """The __half / __nv_bfloat16 kernel instantiations (float accumulation), as a GPU would run them."""
    for name in ("3x3_pad1", "groups2", "channels_last"):
        y, y_ref, grads, grads_ref, _ = emu_vs_torch(CASES[name], dtype, algo)
        assert y.dtype == dtype
        tol = 1e-2 if dtype == torch.float16 else 3e-2
        ref = y_ref.float()  # torch's CPU conv in the same dtype
        torch.testing.assert_close(y.float(), ref, rtol=tol, atol=tol * ref.abs().max().item())
        for g, gr in zip(grads, grads_ref):
            torch.testing.assert_close(g.float(), gr.float(), rtol=tol, atol=tol * gr.abs().max().item())


@pytest.mark.parametrize("algo", EMU_ALGOS)
def test_every_order_gives_identical_bits(algo):
    """No kernel uses float atomics, so block and thread order must not change a single bit of any result."""
    case = CASES["wide_tile_edges"]
    results = []
    for cfg in CONFIGS:
        torch.manual_seed(5)
        with pyconv.emulator.config(**cfg):
            y, y_ref, grads, _, _ = emu_vs_torch(case, torch.float32, algo)
        results.append((cfg, [y.detach()] + [g.detach() for g in grads]))
    base_cfg, base = results[0]
    for cfg, ts in results[1:]:
        for a, b in zip(base, ts):
            assert torch.equal(a, b), f"{cfg} differs from {base_cfg}"


def test_big_grid_many_blocks():
    """Enough output elements for several hundred blocks (direct) and several tiles in each GEMM dimension."""
    x = torch.randn(4, 6, 33, 35, dtype=torch.float64, requires_grad=True)
    w = torch.randn(70, 6, 3, 3, dtype=torch.float64, requires_grad=True)
    for algo in EMU_ALGOS:
        with pyconv.emulator.config(order="random", workers=2, seed=1):
            y = PF.conv2d(x, w, padding=1, stride=(1, 2), algo=algo, backend="emulator")
            go = torch.randn_like(y)
            gx, gw = torch.autograd.grad(y, (x, w), go)
        y_ref = F.conv2d(x, w, padding=1, stride=(1, 2))
        gx_ref, gw_ref = torch.autograd.grad(y_ref, (x, w), go)
        torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(gw, gw_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("algo", EMU_ALGOS)
def test_gradcheck(algo):
    # Small on purpose: gradgradcheck launches the kernels a few thousand times. Stride, padding, dilation, groups.
    x = torch.randn(2, 4, 5, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    geo = dict(stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2)
    fn = lambda x, w, b: PF.conv2d(x, w, b, **geo, algo=algo, backend="emulator")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_opcheck_emulated_ops():
    ops = torch.ops.pyconv_emu
    for algo in EMU_ALGOS:
        for name in ("3x3_pad1", "groups3_strided", "channels_last"):
            case = CASES[name]
            x, w, b = make(case, "cpu", torch.float64, requires_grad=True)
            from pyconv.functional import _padding, _pair
            st, dil = _pair(case["stride"], "stride"), _pair(case["dilation"], "dilation")
            pad = _padding(case["padding"], st, dil, w)
            args = (x, w, b, st, pad, dil, case["groups"], algo)
            opcheck(ops.conv2d_fprop, args)
            y = ops.conv2d_fprop(*args).detach()
            go = torch.randn_like(y)
            opcheck(ops.conv2d_dgrad, (go, w.detach(), list(x.shape), st, pad, dil, case["groups"], algo))
            opcheck(ops.conv2d_wgrad, (go, x.detach(), list(w.shape), st, pad, dil, case["groups"], algo))
            opcheck(ops.conv2d_bgrad, (go,))


def test_torch_compile_fullgraph():
    x = torch.randn(2, 3, 9, 9, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)

    def f(x, w):
        return PF.conv2d(x, w, padding=1, backend="emulator", algo="implicit_gemm").relu().sum()

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    loss = compiled(x, w)
    gx, gw = torch.autograd.grad(loss, (x, w))
    loss_ref = F.conv2d(x, w, padding=1).relu().sum()
    gx_ref, gw_ref = torch.autograd.grad(loss_ref, (x, w))
    torch.testing.assert_close(loss, loss_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gw, gw_ref, rtol=1e-4, atol=1e-4)


# ---- the emulator itself ---------------------------------------------------------------------------------------

SELFTESTS = pyconv.emulator.selftests()


@pytest.mark.parametrize("order", ["forward", "reverse", "random"])
@pytest.mark.parametrize("name,kind,expect", [t for t in SELFTESTS if t[1] == "feature"])
def test_selftest_features(name, kind, expect, order):
    """Shuffles (mask, width, segments), votes, __syncthreads_count/and/or, __activemask, atomics across blocks and
    OS threads, dynamic shared memory, a shuffle reduction and mma.sync fragments give the documented results."""
    with pyconv.emulator.config(order=order, workers=2, seed=3):
        assert pyconv.emulator.selftest(name) == ""


@pytest.mark.parametrize("order", ["forward", "reverse", "random"])
@pytest.mark.parametrize("name,kind,expect", [t for t in SELFTESTS if t[1] == "emulator_bug"])
def test_seeded_bugs_are_reported(name, kind, expect, order):
    """A seeded barrier/warp bug comes back as an error naming the problem, never a hang or a silent result."""
    with pyconv.emulator.config(order=order, workers=1, seed=4):
        msg = pyconv.emulator.selftest(name)
    assert expect in msg, msg
    if name == "bad_launch_config":
        assert "invalid grid dimensions" in msg and "bytes of dynamic shared memory requested" in msg, msg
    else:
        assert "selftests.h:" in msg  # points at the source line


@pytest.mark.skipif(not pyconv.build_info()["cuda_available"], reason="needs a CUDA GPU")
@pytest.mark.parametrize("name,kind,expect", [t for t in SELFTESTS if t[1] == "feature"])
def test_selftest_features_on_gpu(name, kind, expect):
    """The same feature kernels on real hardware: the emulator's model of shuffles, votes, __activemask, atomics,
    mma fragment layouts and (on a compute capability 9.0 GPU with an sm_90a build) wgmma's swizzled operands, K-major
    and MN-major (wgmma_mn: wgrad's transposed layout), and accumulator layout, and the TMA loads' im2col walk,
    bounding box, zero fill and swizzle (tma) are the GPU's."""
    if name.startswith(("wgmma", "tma")) and (torch.cuda.get_device_capability() != (9, 0)
                            or "9.0a" not in pyconv.build_info()["arch_list"]):
        pytest.skip("wgmma (and the TMA kernels beside it) run on compute capability 9.0 with an sm_90a build only")
    if name.startswith("mbarrier") and torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("mbarrier.try_wait needs compute capability 9.0")
    assert pyconv._C.gpu_selftest(name) == ""


@pytest.mark.skipif(not pyconv.build_info()["cuda"], reason="pyconv built without its CUDA kernels")
def test_gpu_selftest_names():
    """pyconv._C lists the feature self-tests it can run on a GPU (so a build without the emulator module runs them
    too: scripts/sanitizer_subset.py) — the emulator's feature tests, no seeded bug."""
    assert pyconv._C.gpu_selftests() == [name for name, kind, _ in SELFTESTS if kind == "feature"]
    assert {"wgmma", "wgmma_mn", "wgmma_kb", "mbarrier_ring"} <= set(pyconv._C.gpu_selftests())


def test_sanitizer_bugs_pass_silently_without_a_sanitizer():
    """What only a sanitizer sees is not caught here (tests/test_emu_sanitizers.py runs these under ASan/TSan/UBSan);
    the kernels still run to the end without crashing the process."""
    names = [t[0] for t in SELFTESTS if t[1] == "sanitizer_bug"]
    assert set(names) == {"missing_syncthreads", "global_oob", "smem_overflow"}
    assert pyconv.emulator.selftest("missing_syncthreads") == ""


def test_config_roundtrip_and_validation():
    before = pyconv.emulator.get_config()
    with pyconv.emulator.config(workers=3, order="reverse", seed=9, stack_kib=128) as cfg:
        assert (cfg["workers"], cfg["order"], cfg["seed"], cfg["stack_kib"]) == (3, "reverse", 9, 128)
    assert pyconv.emulator.get_config() == before
    with pytest.raises(ValueError, match="order must be one of"):
        pyconv.emulator.set_config(order="sideways")
    with pytest.raises(RuntimeError, match="workers must be in"):
        pyconv.emulator.set_config(workers=0)
    with pytest.raises(RuntimeError, match="stack_kib"):
        pyconv.emulator.set_config(stack_kib=1)
    assert pyconv.emulator.get_config() == before


def test_bad_input():
    x = torch.randn(1, 3, 6, 6)
    w = torch.randn(4, 3, 3, 3)
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        PF.conv2d(x, w, backend="gpu")
    with pytest.raises(RuntimeError, match="takes CPU tensors, but got a tensor on meta"):
        PF.conv2d(x.to("meta"), w.to("meta"), backend="emulator")
    with pytest.raises(RuntimeError, match="unknown algo 'im2col_gemm' for CUDA; available: auto, direct, implicit_gemm"):
        PF.conv2d(x, w, backend="emulator", algo="im2col_gemm")
    with pytest.raises(RuntimeError, match=r"expected input\[1, 3, 6, 6\] to have 6 channels"):
        PF.conv2d(x, torch.randn(4, 6, 3, 3), backend="emulator")
    with pytest.raises(RuntimeError, match="no self-test named"):
        pyconv.emulator.selftest("nope")
