"""conv2d: pyconv against torch.nn.functional.conv2d, on every device and every algorithm of the ladder."""
import itertools
import re

import pytest
import torch
import torch.nn.functional as F
from torch.library import opcheck

import pyconv
from pyconv import functional as PF
from conftest import DEVICES, HAS_CUDA, algos, general_algos

# One table of cases, boundaries first. Fields: input (N, C, H, W) (N=None: unbatched), weight (K, C/g, R, S),
# stride, padding, dilation, groups, bias, layout ('nchw', 'cl' = channels_last, 'view' = non-contiguous view).
CASES = {
    "3x3_pad1":         dict(x=(2, 4, 7, 9), w=(6, 4, 3, 3), stride=1, padding=1, dilation=1, groups=1),
    "1x1":              dict(x=(2, 5, 6, 6), w=(7, 5, 1, 1), stride=1, padding=0, dilation=1, groups=1),
    "1x1_stride2":      dict(x=(2, 3, 7, 7), w=(4, 3, 1, 1), stride=2, padding=0, dilation=1, groups=1),
    "kernel_eq_input":  dict(x=(2, 3, 5, 4), w=(4, 3, 5, 4), stride=1, padding=0, dilation=1, groups=1),
    "stride_gt_kernel": dict(x=(1, 2, 11, 10), w=(3, 2, 2, 2), stride=3, padding=0, dilation=1, groups=1),
    "odd_everything":   dict(x=(3, 3, 13, 11), w=(5, 3, 3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2),
                             groups=1),
    "groups2":          dict(x=(2, 4, 8, 8), w=(6, 2, 3, 3), stride=1, padding=1, dilation=1, groups=2),
    "groups3_strided":  dict(x=(2, 6, 9, 7), w=(9, 2, 3, 2), stride=2, padding=(0, 1), dilation=1, groups=3),
    "depthwise":        dict(x=(2, 5, 9, 9), w=(5, 1, 3, 3), stride=1, padding=1, dilation=1, groups=5),
    "depthwise_mult2":  dict(x=(2, 3, 8, 8), w=(6, 1, 3, 3), stride=2, padding=1, dilation=1, groups=3),
    "dilation2":        dict(x=(2, 3, 10, 10), w=(4, 3, 3, 3), stride=1, padding=2, dilation=2, groups=1),
    "same_odd":         dict(x=(2, 3, 7, 6), w=(4, 3, 3, 5), stride=1, padding="same", dilation=1, groups=1),
    "same_even_dil":    dict(x=(2, 3, 7, 6), w=(4, 3, 4, 2), stride=1, padding="same", dilation=(1, 3), groups=1),
    "valid":            dict(x=(2, 3, 6, 7), w=(4, 3, 3, 3), stride=1, padding="valid", dilation=1, groups=1),
    "pad_gt_kernel":    dict(x=(1, 2, 4, 4), w=(3, 2, 2, 2), stride=2, padding=3, dilation=1, groups=1),
    "batch1":           dict(x=(1, 3, 6, 6), w=(4, 3, 3, 3), stride=1, padding=1, dilation=1, groups=1),
    "batch0":           dict(x=(0, 3, 6, 6), w=(4, 3, 3, 3), stride=1, padding=1, dilation=1, groups=1),
    "unbatched":        dict(x=(None, 3, 6, 5), w=(4, 3, 3, 3), stride=1, padding=1, dilation=1, groups=1),
    "channels_last":    dict(x=(2, 4, 7, 6), w=(5, 4, 3, 3), stride=1, padding=1, dilation=1, groups=1, layout="cl"),
    "cl_groups":        dict(x=(2, 4, 6, 6), w=(4, 2, 3, 3), stride=2, padding=1, dilation=1, groups=2, layout="cl"),
    "noncontig_view":   dict(x=(2, 4, 7, 6), w=(5, 4, 3, 3), stride=1, padding=1, dilation=1, groups=1,
                             layout="view"),
    "no_bias":          dict(x=(2, 3, 6, 6), w=(4, 3, 3, 3), stride=1, padding=1, dilation=1, groups=1, bias=False),
    "single_channel":   dict(x=(2, 1, 5, 5), w=(1, 1, 2, 2), stride=1, padding=0, dilation=1, groups=1),
    "wide_tile_edges":  dict(x=(2, 3, 19, 21), w=(70, 3, 3, 3), stride=1, padding=1, dilation=1, groups=1),
}


def make(case, device, dtype, requires_grad=False):
    """Random (never zero) inputs for one case, laid out as the case says."""
    xs, ws = case["x"], case["w"]
    N = xs[0]
    if case.get("layout") == "view":
        # A non-contiguous view: the (H, W) of a bigger tensor with the last two dims swapped back.
        x = torch.randn(N, xs[1], xs[3] + 2, xs[2], dtype=dtype, device=device).transpose(2, 3)[:, :, :, 1:-1]
        w = torch.randn(ws[0], ws[1], ws[3], ws[2] * 2, dtype=dtype, device=device).transpose(2, 3)[:, :, ::2, :]
        assert not x.is_contiguous() and not w.is_contiguous()
    else:
        shape = xs[1:] if N is None else xs
        x = torch.randn(shape, dtype=dtype, device=device)
        w = torch.randn(ws, dtype=dtype, device=device)
        if case.get("layout") == "cl":
            x = x.contiguous(memory_format=torch.channels_last)
            w = w.contiguous(memory_format=torch.channels_last)
    b = torch.randn(ws[0], dtype=dtype, device=device) if case.get("bias", True) else None
    for t in (x, w, b):
        if t is not None:
            t.requires_grad_(requires_grad)
    return x, w, b


def kwargs(case):
    return {k: case[k] for k in ("stride", "padding", "dilation", "groups")}


def run_both(case, device, dtype, algo, ref_dtype=None):
    """pyconv and torch on the same inputs: output and the gradients of all inputs. With ref_dtype (float64), torch
    runs on upcast copies and its results are cast back: a float32 reference on a GPU would be cuDNN, whose float32
    convolutions use TF32 by default (torch.backends.cudnn.allow_tf32), 1e-3 off."""
    x, w, b = make(case, device, dtype, requires_grad=True)
    y = PF.conv2d(x, w, b, **kwargs(case), algo=algo)
    up = (lambda t: t if t is None else t.to(ref_dtype)) if ref_dtype is not None else (lambda t: t)
    y_ref = F.conv2d(up(x), up(w), up(b), **kwargs(case)).to(dtype)  # .to: differentiable, grads reach x, w, b
    grads = grads_ref = None
    if y_ref.numel() > 0:
        go = torch.randn_like(y_ref)
        inputs = [t for t in (x, w, b) if t is not None]
        grads = torch.autograd.grad(y, inputs, go)
        grads_ref = torch.autograd.grad(y_ref, inputs, go)
    return y, y_ref, grads, grads_ref, x


def algo_params():
    return [(d, a) for d in DEVICES for a in general_algos(d)]


@pytest.mark.parametrize("device,algo", algo_params())
@pytest.mark.parametrize("name", list(CASES))
def test_float64_exact(name, device, algo):
    """Output and all three gradients equal torch's to float64 rounding, for every case and every rung."""
    y, y_ref, grads, grads_ref, x = run_both(CASES[name], device, torch.float64, algo)
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    if grads is not None:
        for g, gr, what in zip(grads, grads_ref, ("input", "weight", "bias")):
            assert g.shape == gr.shape, what
            torch.testing.assert_close(g, gr, rtol=1e-10, atol=1e-10, msg=lambda m: f"grad {what}: {m}")


@pytest.mark.parametrize("device,algo", algo_params())
@pytest.mark.parametrize("name", list(CASES))
def test_float32_tolerance(name, device, algo):
    """float32 vs torch in float64: differences are only float32 rounding, bounded by 1e-4 relative to the scale."""
    y, y_ref, grads, grads_ref, _ = run_both(CASES[name], device, torch.float32, algo, ref_dtype=torch.float64)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    if grads is not None:
        for g, gr in zip(grads, grads_ref):
            torch.testing.assert_close(g, gr, rtol=1e-4, atol=1e-4 * max(1.0, gr.abs().max().item()))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["channels_last", "cl_groups", "3x3_pad1", "noncontig_view"])
def test_memory_format_kept(name, device):
    case = CASES[name]
    x, w, b = make(case, device, torch.float32)
    y = PF.conv2d(x, w, b, **kwargs(case))
    if case.get("layout") == "cl":
        assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    else:
        assert y.is_contiguous()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", ["channels_last", "cl_groups", "3x3_pad1", "1x1", "noncontig_view", "depthwise"])
def test_wgrad_layout_follows_input(name, device):
    """wgrad's dw is channels_last when the input is (csrc/conv2d/conv2d_glue.h: wgrad_format), as cuDNN gives a
    channels_last model's weight gradient, else NCHW-contiguous; the fake kernel says the same strides; values exact
    (float64) on every rung that takes the case, and the weight's .grad keeps the layout through autograd."""
    case = dict(CASES[name])
    if name == "depthwise":
        case["layout"] = "cl"
    x, w, b = make(case, device, torch.float64)
    cl = case.get("layout") == "cl"
    y = F.conv2d(x, w, None, **kwargs(case))
    go = torch.randn_like(y)
    wr = w.detach().clone().requires_grad_()
    F.conv2d(x, wr, None, **kwargs(case)).backward(go)
    pad = pyconv.functional._padding(case["padding"], (case["stride"],) * 2, (case["dilation"],) * 2, w)
    geo = ([case["stride"]] * 2, list(pad), [case["dilation"]] * 2, case["groups"])
    fmt = torch.channels_last if cl else torch.contiguous_format
    expected = torch.empty(w.shape, memory_format=fmt).stride()
    rungs = general_algos(device) + (["depthwise"] if name == "depthwise" else [])
    for algo in rungs:
        dw = torch.ops.pyconv.conv2d_wgrad(go, x, list(w.shape), *geo, algo)
        fake = pyconv._ops._wgrad_fake(go, x, list(w.shape), *geo, algo)
        assert dw.stride() == fake.stride() == expected, (algo, dw.stride(), fake.stride(), expected)
        torch.testing.assert_close(dw, wr.grad, rtol=1e-10, atol=1e-10, msg=lambda m: f"{algo}: {m}")
    # through autograd: a channels_last model (input and weight) gets a channels_last .grad, equal to torch's
    wp = w.detach().clone().requires_grad_()
    PF.conv2d(x, wp, None, **kwargs(case)).backward(go)
    torch.testing.assert_close(wp.grad, wr.grad, rtol=1e-10, atol=1e-10)
    if cl:
        assert wp.grad.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("isa", ["avx512", "avx2", "base"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpu_every_micro_kernel(isa, dtype, monkeypatch):
    """Each vector micro-kernel variant of the CPU GEMM (the CPU may lack some: it then falls back to a narrower one)."""
    monkeypatch.setenv("PYCONV_CPU_ISA", isa)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    for name in ("3x3_pad1", "groups3_strided", "wide_tile_edges", "same_even_dil"):
        y, y_ref, grads, grads_ref, _ = run_both(CASES[name], "cpu", dtype, "im2col_gemm")
        torch.testing.assert_close(y, y_ref, rtol=tol, atol=tol)
        for g, gr in zip(grads, grads_ref):
            torch.testing.assert_close(g, gr, rtol=tol, atol=tol * max(1.0, gr.abs().max().item()))


def test_cpu_large_tiles_and_threads():
    """P·Q spanning several 256-column tiles, a reduction longer than one 128-slice, several threads."""
    x = torch.randn(3, 40, 23, 29, dtype=torch.float64, requires_grad=True)
    w = torch.randn(13, 40, 3, 3, dtype=torch.float64, requires_grad=True)
    y = PF.conv2d(x, w, padding=1)
    y_ref = F.conv2d(x, w, padding=1)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    go = torch.randn_like(y)
    for g, gr in zip(torch.autograd.grad(y, (x, w), go), torch.autograd.grad(y_ref, (x, w), go)):
        torch.testing.assert_close(g, gr, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_accepted_on_cpu(dtype):
    x = torch.randn(2, 3, 8, 8).to(dtype)
    w = torch.randn(4, 3, 3, 3).to(dtype)
    b = torch.randn(4).to(dtype)
    y = PF.conv2d(x, w, b, padding=1)
    assert y.dtype == dtype
    ref = F.conv2d(x.float(), w.float(), b.float(), padding=1)
    torch.testing.assert_close(y.float(), ref, rtol=2e-2, atol=2e-2 * ref.abs().max().item())


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("algo", [a for a in algos("cuda") if a not in ("depthwise", "winograd")] if HAS_CUDA else [])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_cuda(dtype, algo):
    """Every CUDA rung that takes these (dense) shapes; 'depthwise' needs C/groups == 1: tests/test_depthwise.py;
    'winograd' 3x3 stride 1: tests/test_winograd.py."""
    for name in ("3x3_pad1", "groups2", "channels_last", "odd_everything"):
        y, y_ref, grads, grads_ref, _ = run_both(CASES[name], "cuda", dtype, algo)
        scale = y_ref.abs().max().item()
        tol = 1e-2 if dtype == torch.float16 else 3e-2
        torch.testing.assert_close(y.float(), y_ref.float(), rtol=tol, atol=tol * scale)
        for g, gr in zip(grads, grads_ref):
            torch.testing.assert_close(g.float(), gr.float(), rtol=tol, atol=tol * gr.abs().max().item())


@pytest.mark.parametrize("device,algo", algo_params())
@pytest.mark.parametrize("name", ["odd_everything", "groups3_strided", "same_even_dil", "depthwise_mult2"])
def test_gradcheck(name, device, algo):
    case = CASES[name]
    x, w, b = make(case, device, torch.float64, requires_grad=True)
    fn = lambda x, w, b: PF.conv2d(x, w, b, **kwargs(case), algo=algo)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w, b))
    # conv is bilinear, so the double backward runs the same ops again (dgrad/wgrad of dgrad/wgrad).
    assert torch.autograd.gradgradcheck(fn, (x, w, b))


def test_gradcheck_several_seeds():
    case = CASES["groups2"]
    for seed in range(3):
        torch.manual_seed(seed)
        x, w, b = make(case, "cpu", torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda x, w, b: PF.conv2d(x, w, b, **kwargs(case)), (x, w, b))


def test_grad_only_where_needed():
    """Backward skips the gradients nobody asked for (ctx.needs_input_grad) and still gets the others right."""
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    y = PF.conv2d(x, w, padding=1)
    (gw,) = torch.autograd.grad(y.sum(), (w,))
    torch.testing.assert_close(gw, torch.autograd.grad(F.conv2d(x, w, padding=1).sum(), (w,))[0])


# ---- opcheck: schema, fake kernel, autograd registration, dispatch, for every op -----------------------------------

def op_samples(device):
    ops = torch.ops.pyconv
    for name in ("3x3_pad1", "odd_everything", "groups3_strided", "channels_last", "same_even_dil"):
        case = CASES[name]
        x, w, b = make(case, device, torch.float64, requires_grad=True)
        stride = tuple(case["stride"]) if isinstance(case["stride"], tuple) else (case["stride"],) * 2
        dilation = tuple(case["dilation"]) if isinstance(case["dilation"], tuple) else (case["dilation"],) * 2
        pad = pyconv.functional._padding(case["padding"], stride, dilation, w)
        geo = (list(stride), list(pad), list(dilation), case["groups"])
        y = ops.conv2d_fprop(x.detach(), w.detach(), b.detach(), *geo)
        go = torch.randn_like(y)
        yield ops.conv2d_fprop.default, (x, w, b, *geo)
        yield ops.conv2d_dgrad.default, (go.requires_grad_(), w, list(x.shape), *geo)
        yield ops.conv2d_wgrad.default, (go.detach().requires_grad_(), x, list(w.shape), *geo)
        yield ops.conv2d_bgrad.default, (go.detach().requires_grad_(),)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck(device):
    n = 0
    for op, args in op_samples(device):
        opcheck(op, args)
        n += 1
    assert n == 20


# ---- torch.compile ------------------------------------------------------------------------------------------------

class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = torch.nn.Parameter(torch.randn(8, 3, 3, 3) * 0.2)
        self.b1 = torch.nn.Parameter(torch.randn(8) * 0.1)
        self.w2 = torch.nn.Parameter(torch.randn(8, 4, 3, 3) * 0.2)

    def forward(self, x):
        x = torch.relu(PF.conv2d(x, self.w1, self.b1, stride=2, padding=1))
        return PF.conv2d(x, self.w2, None, padding="same", groups=2).mean(dim=(2, 3))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_fullgraph(device):
    torch._dynamo.reset()
    model = TinyNet().to(device)
    x = torch.randn(2, 3, 12, 12, device=device)
    ref = model(x)
    (g_ref,) = torch.autograd.grad(ref.sum(), (model.w1,))
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x)
    (g,) = torch.autograd.grad(out.sum(), (model.w1,))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, g_ref, rtol=1e-5, atol=1e-5)
    # The compiled graph calls pyconv's ops, not torch's convolution.
    gm_ops = set()

    def backend(gm, example_inputs):
        gm_ops.update(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    torch._dynamo.reset()
    torch.compile(model, fullgraph=True, backend=backend)(x)
    assert any("pyconv.conv2d_fprop" in t for t in gm_ops), gm_ops


# ---- bad input: a clear exception naming the problem, wherever torch raises too -----------------------------------

X = lambda *s: torch.randn(*s)  # noqa: E731

BAD = {
    "input_dims":        (lambda f: f(X(1, 2, 4, 5, 5), X(6, 4, 3, 3)), r"3D \(unbatched\) or 4D \(batched\) input"),
    "weight_dims":       (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3)), r"weight"),
    "channels_mismatch": (lambda f: f(X(2, 3, 5, 5), X(6, 4, 3, 3)), r"expected input\[2, 3, 5, 5\] to have 4 channels"),
    "groups_not_divide": (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), groups=4), r"divisible by 4 at dimension 0"),
    "groups_channels":   (lambda f: f(X(2, 6, 5, 5), X(6, 4, 3, 3), groups=2), r"to have 8 channels, but got 6"),
    "groups_zero":       (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), groups=0), r"non-positive groups"),
    "stride_zero":       (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), stride=0), r"non-positive stride"),
    "stride_negative":   (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), stride=(1, -1)), r"non-positive stride"),
    "dilation_zero":     (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), dilation=0), r"non-positive dilation"),
    "padding_negative":  (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), padding=-1), r"negative padding"),
    "kernel_too_big":    (lambda f: f(X(2, 4, 2, 2), X(6, 4, 3, 3)), r"Kernel size can't be greater"),
    "dilated_too_big":   (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), dilation=3), r"Kernel size can't be greater"),
    "dtype_mismatch":    (lambda f: f(X(2, 4, 5, 5).double(), X(6, 4, 3, 3)), r"dtype"),
    "bias_dtype":        (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), X(6).double()), r"bias"),
    "bias_shape":        (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), X(5)), r"bias of size"),
    "same_strided":      (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), stride=2, padding="same"),
                          r"padding='same' is not supported for strided convolutions"),
    "padding_string":    (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), padding="full"), r"Invalid padding string"),
    "stride_length":     (lambda f: f(X(2, 4, 5, 5), X(6, 4, 3, 3), stride=(1, 2, 3)), r"stride"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input(name):
    call, pattern = BAD[name]
    with pytest.raises(RuntimeError):
        call(F.conv2d)  # torch rejects it too
    with pytest.raises(RuntimeError, match=pattern):
        call(PF.conv2d)


@pytest.mark.parametrize("name", ["channels_mismatch", "kernel_too_big", "stride_zero", "bias_shape"])
def test_bad_input_under_fake_tensors(name):
    """torch.compile traces with fake tensors: the fake kernels raise the same errors as the real ones."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    call, pattern = BAD[name]
    with FakeTensorMode(), pytest.raises(RuntimeError, match=pattern):
        call(PF.conv2d)


def test_unsupported_dtype_and_algo():
    with pytest.raises(RuntimeError, match="unsupported dtype"):
        PF.conv2d(torch.ones(1, 1, 3, 3, dtype=torch.int64), torch.ones(1, 1, 2, 2, dtype=torch.int64))
    with pytest.raises(RuntimeError, match=re.escape("unknown algo 'nope' for CPU")):
        PF.conv2d(X(1, 1, 3, 3), X(1, 1, 2, 2), algo="nope")


def test_bad_grad_output_to_backward_ops():
    x, w = X(2, 3, 6, 6), X(4, 3, 3, 3)
    with pytest.raises(RuntimeError, match="expected grad_output of size"):
        torch.ops.pyconv.conv2d_dgrad(X(2, 4, 5, 6), w, list(x.shape), [1, 1], [1, 1], [1, 1], 1)
    with pytest.raises(RuntimeError, match="expected grad_output of size"):
        torch.ops.pyconv.conv2d_wgrad(X(2, 4, 6, 6), x, list(w.shape), [1, 1], [0, 0], [1, 1], 1)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_device_mismatch():
    with pytest.raises(RuntimeError, match="same device"):
        PF.conv2d(X(1, 3, 6, 6).cuda(), X(4, 3, 3, 3))


@pytest.mark.parametrize("device", DEVICES)
def test_backward_deterministic(device):
    x = torch.randn(4, 8, 15, 15, device=device, requires_grad=True)
    w = torch.randn(16, 8, 3, 3, device=device, requires_grad=True)
    b = torch.randn(16, device=device, requires_grad=True)
    go = torch.randn(4, 16, 8, 8, device=device)
    runs = [torch.autograd.grad(PF.conv2d(x, w, b, stride=2, padding=1), (x, w, b), go) for _ in range(3)]
    for other in runs[1:]:
        for a, c in zip(runs[0], other):
            assert torch.equal(a, c)


def test_build_info():
    info = pyconv.build_info()
    for key in ("version", "cuda", "cuda_version", "arch_list", "compiler", "ops", "algorithms"):
        assert key in info
    assert {"conv2d_fprop", "conv2d_dgrad", "conv2d_wgrad", "conv2d_bgrad"} <= set(info["ops"])
    for op in info["ops"]:  # every op listed is registered
        assert hasattr(torch.ops.pyconv, op), op
    assert info["algorithms"]["cpu"]["conv2d"] == ["direct", "im2col_gemm", "depthwise"]
    if info["cuda"]:
        assert info["algorithms"]["cuda"]["conv2d"] == ["direct", "implicit_gemm", "depthwise", "tensor_core",
                                                        "tensor_core_128x128", "tensor_core_128x64",
                                                        "tensor_core_64x64", "tensor_core_wgmma",
                                                        "tensor_core_wgmma_128x256", "tensor_core_wgmma_128x128",
                                                        "tensor_core_wgmma_128x128_s3", "tensor_core_wgmma_128x64",
                                                        "tensor_core_wgmma_64x64", "tensor_core_wgmma_64x16",
                                                        "tensor_core_wgmma_ws",
                                                        "tensor_core_wgmma_ws_128x128", "tensor_core_wgmma_ws_128x256",
                                                        "tensor_core_wgmma_ws_64x128", "tensor_core_wgmma_ws_128x64",
                                                        "tensor_core_wgmma_tma", "tensor_core_wgmma_tma_128x128",
                                                        "tensor_core_wgmma_tma_128x256", "tensor_core_wgmma_tma_128x64",
                                                        "winograd"]
        assert set(info["algorithm_dtypes"]["conv2d"]) == {a for a in info["algorithms"]["cuda"]["conv2d"]
                                                           if a.startswith("tensor_core")}
        assert info["arch_list"] and info["cuda_version"]
