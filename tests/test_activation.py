"""Activations: pyconv against torch.nn.functional on every backend (CPU, the CUDA kernels under the emulator, CUDA).

Forward and backward in float64/float32 on several layouts (NCHW, channels_last, a non-contiguous view, odd sizes
that leave a vector tail, a misaligned start), NaN/±inf/extreme inputs, in-place variants and their autograd
behaviour, gradcheck, opcheck, torch.compile, bad input.
"""
import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import pyconv
from pyconv import functional as PF
from conftest import HAS_CUDA, cpu_ref

BACKENDS = [("cpu", "auto")] + ([("cpu", "emulator")] if pyconv.emulator.available() else []) + \
           ([("cuda", "auto")] if HAS_CUDA else [])
BACKEND_IDS = [f"{d}-{b}" for d, b in BACKENDS]

# name → (pyconv fn(x, backend), torch fn(x), has an inplace= flag)
ACTS = {
    "relu": (lambda x, b, **k: PF.relu(x, backend=b, **k), lambda x, **k: F.relu(x, **k), True),
    "leaky_relu": (lambda x, b, **k: PF.leaky_relu(x, 0.2, backend=b, **k), lambda x, **k: F.leaky_relu(x, 0.2, **k),
                   True),
    "leaky_relu_default": (lambda x, b, **k: PF.leaky_relu(x, backend=b, **k), lambda x, **k: F.leaky_relu(x, **k),
                           True),
    "elu": (lambda x, b, **k: PF.elu(x, backend=b, **k), lambda x, **k: F.elu(x, **k), True),
    "elu_alpha": (lambda x, b, **k: PF.elu(x, 0.7, backend=b, **k), lambda x, **k: F.elu(x, 0.7, **k), True),
    "gelu": (lambda x, b: PF.gelu(x, backend=b), lambda x: F.gelu(x), False),
    "gelu_tanh": (lambda x, b: PF.gelu(x, approximate="tanh", backend=b), lambda x: F.gelu(x, approximate="tanh"),
                  False),
    "silu": (lambda x, b, **k: PF.silu(x, backend=b, **k), lambda x, **k: F.silu(x, **k), True),
    "sigmoid": (lambda x, b: PF.sigmoid(x, backend=b), torch.sigmoid, False),
    "tanh": (lambda x, b: PF.tanh(x, backend=b), torch.tanh, False),
    "hardswish": (lambda x, b, **k: PF.hardswish(x, backend=b, **k), lambda x, **k: F.hardswish(x, **k), True),
    "mish": (lambda x, b, **k: PF.mish(x, backend=b, **k), lambda x, **k: F.mish(x, **k), True),
    "relu6": (lambda x, b, **k: PF.relu6(x, backend=b, **k), lambda x, **k: F.relu6(x, **k), True),
}

LAYOUTS = {
    "nchw": lambda t: t,
    "channels_last": lambda t: t.contiguous(memory_format=torch.channels_last),
    "view": lambda t: t.transpose(1, 3)[:, 1:],  # non-contiguous, not dense
    "misaligned": lambda t: t.reshape(-1)[1:],  # starts 1 element past a 16-byte boundary: scalar path
}


def make(device, dtype, layout, shape=(2, 3, 5, 7)):
    x = torch.randn(shape, dtype=dtype, device=device) * 3
    return LAYOUTS[layout](x).detach()


TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-5)}  # float32: formula order differs from torch


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name", list(ACTS))
def test_forward_backward(name, device, backend, dtype, layout):
    fn, ref, _ = ACTS[name]
    x = make(device, dtype, layout).requires_grad_(True)
    y, y_ref = fn(x, backend), cpu_ref(ref, x)
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(y, y_ref, rtol=rtol, atol=atol)
    if layout in ("nchw", "channels_last"):
        assert y.stride() == x.stride()  # a dense input's layout is kept
    go = torch.randn_like(y_ref)
    g, g_ref = torch.autograd.grad(y, x, go)[0], torch.autograd.grad(y_ref, x, go)[0]
    torch.testing.assert_close(g, g_ref, rtol=rtol, atol=atol)


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name", list(ACTS))
def test_special_values(name, device, backend):
    """NaN in → NaN out (and the gradient torch gives, NaN or not); ±inf, ±0, large magnitudes where exp overflows."""
    fn, ref, _ = ACTS[name]
    vals = [float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1e-30, -1e-30, 20.0, -20.0, 90.0, -90.0, 800.0,
            -800.0, 3.0, -3.0, 2.9999, -3.0001, 6.0, 5.9999, 6.0001]
    x = torch.tensor(vals, dtype=torch.float64, device=device, requires_grad=True)
    y, y_ref = fn(x, backend), cpu_ref(ref, x)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12, equal_nan=True)
    go = torch.ones_like(y_ref)
    g, g_ref = torch.autograd.grad(y, x, go)[0], torch.autograd.grad(y_ref, x, go)[0]
    if name == "relu6":
        # torch's hardtanh_backward at NaN gives 1 on its scalar path and 0 on its vectorised one (which of the two
        # runs depends on the position in the tensor); pyconv passes the gradient, as relu does.
        assert g[0].item() == 1.0
        g, g_ref = g[1:], g_ref[1:]
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("isa", ["avx512", "avx2", "base"])
@pytest.mark.parametrize("name", list(ACTS))
def test_cpu_every_isa(name, isa, monkeypatch):
    """Each CPU vector width (the float loops are compiled for AVX-512, AVX2 and baseline SSE and picked at run time;
    a CPU without one falls back to the next), float32 forward and backward, with a vector tail."""
    monkeypatch.setenv("PYCONV_CPU_ISA", isa)
    fn, ref, _ = ACTS[name]
    x = (torch.randn(1000, 37) * 4).requires_grad_(True)
    y, y_ref = fn(x, "auto"), ref(x)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    go = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, x, go)[0], torch.autograd.grad(y_ref, x, go)[0], rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 8, 17, 1000, 40001])
@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_sizes_vector_tails(device, backend, n):
    """Lengths around the 16-byte vector width and the CPU task size: every tail path."""
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(n, dtype=dtype, device=device, requires_grad=True)
        y = PF.silu(x, backend=backend)
        torch.testing.assert_close(y, F.silu(x))
        if n:
            torch.testing.assert_close(torch.autograd.grad(y.sum(), x)[0], torch.autograd.grad(F.silu(x).sum(), x)[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name", list(ACTS))
def test_half_precision(name, device, backend, dtype):
    fn, ref, _ = ACTS[name]
    x = (torch.randn(4, 37, device=device) * 3).to(dtype).requires_grad_(True)
    y = fn(x, backend)
    assert y.dtype == dtype
    xf = x.detach().float().requires_grad_(True)
    y_ref = ref(xf)
    tol = 1e-2 if dtype == torch.float16 else 2e-2
    torch.testing.assert_close(y.float(), y_ref, rtol=tol, atol=tol)
    go = torch.randn_like(y_ref)
    g = torch.autograd.grad(y, x, go.to(dtype))[0]
    torch.testing.assert_close(g.float(), torch.autograd.grad(y_ref, xf, go)[0], rtol=4 * tol, atol=4 * tol)


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name", [n for n, a in ACTS.items() if a[2]])
def test_inplace(name, device, backend):
    fn, ref, _ = ACTS[name]
    # no autograd: the in-place kernel writes into the tensor itself (dense and non-dense)
    for layout in ("nchw", "channels_last", "view"):
        x = make(device, torch.float64, layout)
        expected = cpu_ref(ref, x)
        ptr = x.data_ptr()
        out = fn(x, backend, inplace=True)
        assert out is x and x.data_ptr() == ptr
        torch.testing.assert_close(x, expected, rtol=1e-12, atol=1e-12)
    # autograd through an in-place activation of a non-leaf: same gradient as torch's in-place version
    a = torch.randn(3, 4, dtype=torch.float64, device=device, requires_grad=True)
    h = a * 2
    y = fn(h, backend, inplace=True)
    assert y is h and h._version > 0
    h_ref = a * 2
    y_ref = ref(h_ref, inplace=True)
    torch.testing.assert_close(y, y_ref)
    go = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, a, go)[0], torch.autograd.grad(y_ref, a, go)[0])
    # a leaf that requires grad cannot be modified in place, as in torch
    leaf = torch.randn(3, device=device, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        fn(leaf, backend, inplace=True)


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_underscore_variants(device, backend):
    for f, ref in ((PF.relu_, torch.relu_), (PF.leaky_relu_, F.leaky_relu_), (PF.elu_, F.elu_)):
        x = torch.randn(5, 6, dtype=torch.float64, device=device)
        x2 = x.clone()
        assert f(x, backend=backend) is x
        torch.testing.assert_close(x, ref(x2))


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_gradcheck(device, backend):
    # Inputs kept away from the kinks (0 for relu/leaky_relu/elu, ±3 for hardswish), where finite differences lie.
    x = torch.randn(3, 7, dtype=torch.float64, device=device)
    x = (x + 0.2 * x.sign()).clamp(-2.8, 2.8).requires_grad_(True)
    for name, (fn, _, _) in ACTS.items():
        assert torch.autograd.gradcheck(lambda t: fn(t, backend), (x,)), name


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_opcheck(device, backend):
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    for kind, param in (("relu", 0.0), ("leaky_relu", 0.1), ("elu", 1.3), ("gelu", 0.0), ("gelu_tanh", 0.0),
                        ("silu", 0.0), ("sigmoid", 0.0), ("tanh", 0.0), ("hardswish", 0.0), ("mish", 0.0),
                        ("relu6", 0.0)):
        for layout in ("nchw", "channels_last"):
            x = make(device, torch.float64, layout).requires_grad_(True)
            opcheck(ops.activation, (x, kind, param))
            opcheck(ops.activation_backward, (torch.randn_like(x), x.detach(), kind, param))
            opcheck(ops.activation_, (x.detach().clone(), kind, param))


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_torch_compile_fullgraph(device, backend):
    x = torch.randn(2, 3, 8, 8, device=device, requires_grad=True)

    def f(x):
        y = PF.gelu(PF.relu(x, backend=backend) - 0.5, backend=backend)
        y = PF.mish(PF.silu(y, backend=backend), backend=backend)
        return PF.hardswish(PF.elu(y, 0.5, backend=backend), backend=backend).sum()

    def f_ref(x):
        return F.hardswish(F.elu(F.mish(F.silu(F.gelu(F.relu(x) - 0.5))), 0.5)).sum()

    out = torch.compile(f, fullgraph=True, backend="aot_eager")(x)
    out_ref = f_ref(x)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.autograd.grad(out, x)[0], torch.autograd.grad(out_ref, x)[0], rtol=1e-5,
                               atol=1e-5)


def test_bad_input():
    x = torch.randn(3, 4)
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        PF.gelu(x, approximate="fast")
    with pytest.raises(RuntimeError, match="unsupported dtype"):
        PF.relu(x.int())
    with pytest.raises(RuntimeError, match="unknown kind 'swish'"):
        torch.ops.pyconv.activation(x, "swish", 0.0)
    with pytest.raises(RuntimeError, match="grad_output must match input"):
        torch.ops.pyconv.activation_backward(torch.randn(3, 5), x, "relu", 0.0)
    with pytest.raises(TypeError, match="must be a Tensor"):
        PF.relu([1.0, 2.0])
