"""conv2d with a fused epilogue (conv2d_fprop_fused): activation(conv + bias + residual) in one kernel, on every rung
of every backend (CPU, the CUDA kernels under the emulator, CUDA), against the unfused torch computation."""
import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import pyconv
from pyconv import functional as PF
from conftest import HAS_CUDA, cpu_ref, general_algos

BACKENDS = [("cpu", "auto", a) for a in general_algos("cpu")]
if pyconv.emulator.available():
    BACKENDS += [("cpu", "emulator", a) for a in general_algos("emulator")]
if HAS_CUDA:
    BACKENDS += [("cuda", "auto", a) for a in general_algos("cuda")]
IDS = [f"{d}-{b}-{a}" for d, b, a in BACKENDS]

# kind → (torch reference on the pre-activation, pyconv activation_param or None)
ACTS = {
    "relu": (F.relu, None), "relu6": (F.relu6, None), "leaky_relu": (lambda z: F.leaky_relu(z, 0.2), 0.2),
    "leaky_relu_default": (lambda z: F.leaky_relu(z), None), "elu": (lambda z: F.elu(z, 0.7), 0.7),
    "gelu": (F.gelu, None), "gelu_tanh": (lambda z: F.gelu(z, approximate="tanh"), None), "silu": (F.silu, None),
    "sigmoid": (torch.sigmoid, None), "tanh": (torch.tanh, None), "hardswish": (F.hardswish, None),
    "mish": (F.mish, None), None: (lambda z: z, None),
}


def _kind(name):
    return None if name is None else name.replace("_default", "")


def _make(device, dtype, stride=1, padding=1, groups=1, channels_last=False):
    x = torch.randn(2, 4, 7, 6, device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(6, 4 // groups, 3, 3, device=device, dtype=dtype) * 0.3
    b = torch.randn(6, device=device, dtype=dtype)
    y = F.conv2d(x, w, None, stride, padding, 1, groups)
    r = torch.randn(y.shape, device=device, dtype=dtype)
    return x, w, b, r


@pytest.mark.parametrize("device,backend,algo", BACKENDS, ids=IDS)
@pytest.mark.parametrize("name", list(ACTS), ids=[str(k) for k in ACTS])
def test_fused_matches_unfused_float64(name, device, backend, algo):
    ref_act, param = ACTS[name]
    x, w, b, r = _make(device, torch.float64)
    for bias, residual in ((b, r), (None, r), (b, None)):
        if name is None and residual is None:
            continue  # that is plain conv2d
        y = PF.conv2d(x, w, bias, 1, 1, activation=_kind(name), activation_param=param, residual=residual,
                      algo=algo, backend=backend)
        z = F.conv2d(x, w, bias, 1, 1)
        expect = cpu_ref(ref_act, z + residual if residual is not None else z)  # torch's CPU semantics
        torch.testing.assert_close(y, expect, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("device,backend,algo", BACKENDS, ids=IDS)
def test_fused_geometry_layouts_float32(device, backend, algo):
    """Stride, groups, channels_last input, a non-contiguous residual view, unbatched input; float32."""
    x, w, b, _ = _make(device, torch.float32, stride=2, padding=2, groups=2, channels_last=True)
    y_shape = F.conv2d(x, w, b, 2, 2, 1, 2).shape
    r = torch.randn(y_shape[0], y_shape[1], y_shape[3], y_shape[2], device=device).transpose(2, 3)  # a view
    y = PF.conv2d(x, w, b, 2, 2, 1, 2, activation="silu", residual=r, algo=algo, backend=backend)
    torch.testing.assert_close(y, F.silu(F.conv2d(x, w, b, 2, 2, 1, 2) + r), rtol=1e-5, atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last)  # the output keeps the input's layout
    x3, r3 = x[0].contiguous(), torch.randn(y_shape[1:], device=device)
    y3 = PF.conv2d(x3, w, b, 2, 2, 1, 2, activation="gelu", residual=r3, algo=algo, backend=backend)
    torch.testing.assert_close(y3, F.gelu(F.conv2d(x3, w, b, 2, 2, 1, 2) + r3), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device,backend,algo", BACKENDS, ids=IDS)
def test_fused_gradients(device, backend, algo):
    x, w, b, r = (t.requires_grad_() for t in _make(device, torch.float64))

    def f(x, w, b, r):
        return PF.conv2d(x, w, b, 1, 1, activation="silu", residual=r, algo=algo, backend=backend)

    assert torch.autograd.gradcheck(f, (x, w, b, r))
    # and against torch's unfused graph, with leaky_relu (a kink) kept away from zero by the data
    go = torch.randn(2, 6, 7, 6, dtype=torch.float64, device=device)
    y = PF.conv2d(x, w, b, 1, 1, activation="leaky_relu", activation_param=0.1, residual=r, algo=algo,
                  backend=backend)
    y_ref = F.leaky_relu(F.conv2d(x, w, b, 1, 1) + r, 0.1)
    g = torch.autograd.grad(y, (x, w, b, r), go)
    g_ref = torch.autograd.grad(y_ref, (x, w, b, r), go)
    for a, e in zip(g, g_ref):
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("device,backend,algo", BACKENDS, ids=IDS)
def test_fused_opcheck(device, backend, algo):
    ops = torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv
    x, w, b, r = (t.requires_grad_() for t in _make(device, torch.float64))
    opcheck(ops.conv2d_fprop_fused, (x, w, b, r, [1, 1], [1, 1], [1, 1], 1, "mish", 0.0, algo))
    opcheck(ops.conv2d_fprop_fused, (x, w, None, None, [1, 1], [1, 1], [1, 1], 1, "elu", 0.5, algo))


def test_fused_torch_compile_fullgraph():
    x, w, b, r = _make("cpu", torch.float32)

    def f(x, w, b, r):
        return PF.conv2d(x, w, b, padding=1, activation="hardswish", residual=r).sum()

    xg = x.clone().requires_grad_()
    out = torch.compile(f, fullgraph=True, backend="aot_eager")(xg, w, b, r)
    xe = x.clone().requires_grad_()
    ref = F.hardswish(F.conv2d(xe, w, b, padding=1) + r).sum()
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.autograd.grad(out, xg)[0], torch.autograd.grad(ref, xe)[0], rtol=1e-4,
                               atol=1e-4)


@pytest.mark.skipif(not pyconv.emulator.available(), reason="built without the emulator")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_half_on_the_cuda_kernels(dtype):
    """Half/bfloat16 run natively only in the CUDA kernels (here under the emulator): accumulate in float, round the
    pre-activation to the storage type, activate in float (what conv → activation unfused does)."""
    x, w, b, r = (t.to(dtype) for t in _make("cpu", torch.float32))
    for algo in general_algos("emulator"):
        y = PF.conv2d(x, w, b, padding=1, activation="gelu", residual=r, algo=algo, backend="emulator")
        assert y.dtype == dtype
        ref = F.gelu(F.conv2d(x.float(), w.float(), b.float(), padding=1) + r.float())
        tol = 2e-2 if dtype == torch.float16 else 6e-2
        torch.testing.assert_close(y.float(), ref, rtol=tol, atol=tol)


def test_fused_errors():
    x, w, b, r = _make("cpu", torch.float32)
    with pytest.raises(RuntimeError, match="expected residual of size \\[2, 6, 7, 6\\]"):
        PF.conv2d(x, w, b, padding=1, residual=r[:, :, :5])
    with pytest.raises(RuntimeError, match="unknown kind 'swish'"):
        PF.conv2d(x, w, b, padding=1, activation="swish")
    with pytest.raises(RuntimeError, match="expected input and residual to have the same dtype"):
        PF.conv2d(x, w, b, padding=1, residual=r.double())
    with pytest.raises(TypeError, match="residual must be a Tensor"):
        PF.conv2d(x, w, b, padding=1, residual=[1.0])
