"""Pooling: pyconv against torch.nn.functional on every backend (CPU, the CUDA kernels under the emulator, CUDA).

Outputs, indices and gradients, float64 (to rounding) and float32, on a case table that puts windows at every border;
NaN/±inf and ties; gradcheck; opcheck; torch.compile; bad input.
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

# Fields: x = input size (N None: unbatched), k kernel, s stride (None = kernel), p padding, d dilation (max only),
# ceil = ceil_mode, layout ('cl' channels_last, 'view' non-contiguous).
CASES = {
    "k3s2p1":           dict(x=(2, 3, 9, 8), k=3, s=2, p=1),
    "k2_default_stride": dict(x=(2, 3, 8, 8), k=2, s=None, p=0),
    "k2s2_odd":         dict(x=(1, 2, 7, 9), k=2, s=2, p=0),
    "ceil_k3s2":        dict(x=(2, 2, 8, 8), k=3, s=2, p=0, ceil=True),
    "ceil_k2s2_p1":     dict(x=(1, 2, 5, 6), k=2, s=2, p=1, ceil=True),
    "ceil_last_dropped": dict(x=(1, 1, 6, 6), k=3, s=3, p=1, ceil=True),  # a window starting in right padding is dropped
    "ceil_k3s3_7":      dict(x=(1, 2, 7, 7), k=3, s=3, p=0, ceil=True),
    "kernel_eq_input":  dict(x=(2, 3, 5, 4), k=(5, 4), s=1, p=0),
    "stride_gt_kernel": dict(x=(1, 2, 11, 10), k=2, s=3, p=0),
    "rect":             dict(x=(2, 2, 10, 7), k=(3, 2), s=(2, 1), p=(1, 0)),
    "overlap_s1":       dict(x=(2, 2, 6, 5), k=3, s=1, p=1),
    "dilation2":        dict(x=(1, 2, 9, 9), k=3, s=1, p=1, d=2),
    "dilation_rect":    dict(x=(2, 1, 10, 8), k=(2, 3), s=(1, 2), p=(1, 1), d=(3, 2), ceil=True),
    "channels_last":    dict(x=(2, 4, 7, 6), k=3, s=2, p=1, layout="cl"),
    "noncontig":        dict(x=(2, 3, 7, 6), k=2, s=1, p=1, layout="view"),
    "batch0":           dict(x=(0, 3, 6, 6), k=2, s=2, p=0),
    "unbatched":        dict(x=(None, 3, 7, 7), k=3, s=2, p=1),
    "single_pixel":     dict(x=(2, 3, 1, 1), k=1, s=1, p=0),
}


def _values(shape, device, dtype, values):
    if values == "ties":  # small integers: many equal maxima in every window
        return torch.randint(0, 3, shape, device=device).to(dtype)
    x = torch.randn(shape, dtype=dtype, device=device)
    if values == "special":  # NaN and ±inf sprinkled in
        flat = x.view(-1)
        n = flat.numel()
        flat[torch.arange(0, n, 7, device=device)] = float("nan")
        flat[torch.arange(3, n, 11, device=device)] = float("inf")
        flat[torch.arange(5, n, 13, device=device)] = float("-inf")
    return x


def make(case, device, dtype, values="randn"):
    """Random (never constant) input for a case, in the case's layout."""
    xs = case["x"]
    shape = xs[1:] if xs[0] is None else xs
    if case.get("layout") == "view":
        # A non-contiguous view: the (H, W) of a bigger tensor with the last two dims swapped back, sliced.
        big = _values((shape[0], shape[1], shape[3] + 2, shape[2]), device, dtype, values)
        x = big.transpose(2, 3)[:, :, :, 1:-1]
        assert not x.is_contiguous()
        return x
    x = _values(shape, device, dtype, values)
    if case.get("layout") == "cl":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def max_args(case):
    return dict(kernel_size=case["k"], stride=case["s"], padding=case["p"], dilation=case.get("d", 1),
                ceil_mode=case.get("ceil", False))


def avg_args(case, variant):
    a = dict(kernel_size=case["k"], stride=case["s"], padding=case["p"], ceil_mode=case.get("ceil", False))
    if variant == "exclude_pad":
        a["count_include_pad"] = False
    if variant == "divisor":
        a["divisor_override"] = 3
    return a


def grads(y, y_ref, x):
    if y_ref.numel() == 0:
        return None, None
    go = torch.randn_like(y_ref)
    return torch.autograd.grad(y, x, go)[0], torch.autograd.grad(y_ref, x, go)[0]


TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name", list(CASES))
def test_max_pool2d(name, device, backend, dtype):
    case = CASES[name]
    x = make(case, device, dtype).requires_grad_(True)
    y, idx = PF.max_pool2d(x, **max_args(case), return_indices=True, backend=backend)
    y_ref, idx_ref = F.max_pool2d(x, **max_args(case), return_indices=True)
    assert y.shape == y_ref.shape and idx.dtype == torch.int64
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    assert torch.equal(idx, idx_ref)
    if case.get("layout") == "cl":
        assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
    g, g_ref = grads(y, y_ref, x)
    if g is not None:
        torch.testing.assert_close(g, g_ref, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("variant", ["include_pad", "exclude_pad", "divisor"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name", [n for n, c in CASES.items() if "d" not in c])
def test_avg_pool2d(name, device, backend, dtype, variant):
    case = CASES[name]
    x = make(case, device, dtype).requires_grad_(True)
    y = PF.avg_pool2d(x, **avg_args(case, variant), backend=backend)
    # torch's CPU semantics: its CUDA channels_last backward with padding is wrong up to 2.11 (see conftest.cpu_ref)
    y_ref = cpu_ref(F.avg_pool2d, x, **avg_args(case, variant))
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=TOL[dtype], atol=TOL[dtype])
    g, g_ref = grads(y, y_ref, x)
    if g is not None:
        torch.testing.assert_close(g, g_ref, rtol=TOL[dtype], atol=TOL[dtype])


ADAPTIVE = [((2, 3, 7, 9), (1, 1)), ((2, 3, 7, 9), (3, 2)), ((1, 2, 7, 9), (5, 5)), ((1, 2, 7, 9), (7, 9)),
            ((2, 2, 6, 5), (None, 2)), ((1, 2, 4, 5), (9, 11)), ((2, 3, 10, 10), 4), ((2, 3, 5, 5), (0, 2)),
            ((0, 3, 5, 5), (2, 2)), ((3, 6, 6), (2, 3)), ((2, 4, 9, 7), (1, 1), "cl"), ((2, 4, 9, 7), (3, 3), "cl")]
ADAPTIVE_IDS = [f"{'x'.join(map(str, a[0]))}-to-{a[1]}{'-cl' if len(a) > 2 else ''}" for a in ADAPTIVE]


def make_adaptive(spec, device, dtype):
    x = torch.randn(spec[0], dtype=dtype, device=device)
    if len(spec) > 2:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.requires_grad_(True)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("spec", ADAPTIVE, ids=ADAPTIVE_IDS)
def test_adaptive_avg_pool2d(spec, device, backend, dtype):
    x = make_adaptive(spec, device, dtype)
    y = PF.adaptive_avg_pool2d(x, spec[1], backend=backend)
    y_ref = F.adaptive_avg_pool2d(x, spec[1])
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=TOL[dtype], atol=TOL[dtype])
    g, g_ref = grads(y, y_ref, x)
    if g is not None:
        torch.testing.assert_close(g, g_ref, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("spec", ADAPTIVE, ids=ADAPTIVE_IDS)
def test_adaptive_max_pool2d(spec, device, backend, dtype):
    x = make_adaptive(spec, device, dtype)
    y, idx = PF.adaptive_max_pool2d(x, spec[1], return_indices=True, backend=backend)
    y_ref, idx_ref = F.adaptive_max_pool2d(x, spec[1], return_indices=True)
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0)
    assert torch.equal(idx, idx_ref)
    g, g_ref = grads(y, y_ref, x)
    if g is not None:
        torch.testing.assert_close(g, g_ref, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("values", ["ties", "special"])
@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
@pytest.mark.parametrize("name", ["k3s2p1", "overlap_s1", "ceil_k3s2", "dilation2", "channels_last", "noncontig"])
def test_max_pool_ties_nan_inf(name, device, backend, values):
    """Ties take the first maximum; a NaN in a window wins (the last NaN in scan order, like torch); ±inf are ordinary.
    Indices must equal torch's exactly, and so must the gradient routing."""
    case = CASES[name]
    x = make(case, device, torch.float64, values).requires_grad_(True)
    y, idx = PF.max_pool2d(x, **max_args(case), return_indices=True, backend=backend)
    y_ref, idx_ref = F.max_pool2d(x, **max_args(case), return_indices=True)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(idx, idx_ref)
    g, g_ref = grads(y, y_ref, x)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)
    ya, ia = PF.adaptive_max_pool2d(x, (3, 2), return_indices=True, backend=backend)
    ya_ref, ia_ref = F.adaptive_max_pool2d(x, (3, 2), return_indices=True)
    torch.testing.assert_close(ya, ya_ref, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(ia, ia_ref)


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_avg_pool_special_values(device, backend):
    x = make(CASES["k3s2p1"], device, torch.float64, "special")
    torch.testing.assert_close(PF.avg_pool2d(x, 3, 2, 1, backend=backend), F.avg_pool2d(x, 3, 2, 1), equal_nan=True)
    torch.testing.assert_close(PF.adaptive_avg_pool2d(x, (2, 3), backend=backend), F.adaptive_avg_pool2d(x, (2, 3)),
                               equal_nan=True)


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_indices_work_with_max_unpool2d(device, backend):
    x = torch.randn(2, 3, 8, 8, device=device)
    y, idx = PF.max_pool2d(x, 2, return_indices=True, backend=backend)
    torch.testing.assert_close(F.max_unpool2d(y, idx, 2), F.max_unpool2d(*F.max_pool2d(x, 2, return_indices=True), 2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_half_precision(device, backend, dtype):
    x = torch.randn(2, 3, 9, 8, device=device).to(dtype).requires_grad_(True)
    tol = 1e-2 if dtype == torch.float16 else 2e-2
    for fn, ref in ((lambda t: PF.max_pool2d(t, 3, 2, 1, backend=backend), lambda t: F.max_pool2d(t, 3, 2, 1)),
                    (lambda t: PF.avg_pool2d(t, 3, 2, 1, backend=backend), lambda t: F.avg_pool2d(t, 3, 2, 1)),
                    (lambda t: PF.adaptive_avg_pool2d(t, 1, backend=backend), lambda t: F.adaptive_avg_pool2d(t, 1)),
                    (lambda t: PF.adaptive_max_pool2d(t, 3, backend=backend),
                     lambda t: F.adaptive_max_pool2d(t, 3))):
        y = fn(x)
        assert y.dtype == dtype
        y_ref = ref(x.detach().float().requires_grad_(True))
        torch.testing.assert_close(y.float(), y_ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_gradcheck(device, backend):
    x = torch.randn(2, 2, 7, 6, dtype=torch.float64, device=device, requires_grad=True)
    fns = [lambda t: PF.max_pool2d(t, 3, 2, 1, dilation=(1, 2), ceil_mode=True, backend=backend),
           lambda t: PF.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False, backend=backend),
           lambda t: PF.avg_pool2d(t, (2, 3), 1, (1, 0), divisor_override=5, backend=backend),
           lambda t: PF.adaptive_avg_pool2d(t, (3, 4), backend=backend),
           lambda t: PF.adaptive_max_pool2d(t, (4, 3), backend=backend)]
    for fn in fns:
        assert torch.autograd.gradcheck(fn, (x,))


def _ops(backend):
    return torch.ops.pyconv_emu if backend == "emulator" else torch.ops.pyconv


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_opcheck(device, backend):
    ops = _ops(backend)
    for layout in ("nchw", "cl"):
        x = torch.randn(2, 3, 7, 6, dtype=torch.float64, device=device, requires_grad=True)
        if layout == "cl":
            x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
        opcheck(ops.max_pool2d, (x, [3, 3], [2, 2], [1, 1], [1, 1], True))
        y, idx = ops.max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], True)
        opcheck(ops.max_pool2d_backward, (torch.randn_like(y), x.detach(), idx, [3, 3], [2, 2], [1, 1], [1, 1], True))
        opcheck(ops.avg_pool2d, (x, [3, 2], [2, 1], [1, 1], False, False, None))
        opcheck(ops.avg_pool2d, (x, [2, 2], [2, 2], [0, 0], True, True, 3))
        y = ops.avg_pool2d(x, [3, 2], [2, 1], [1, 1], False, False, None)
        opcheck(ops.avg_pool2d_backward, (torch.randn_like(y), x.detach(), [3, 2], [2, 1], [1, 1], False, False, None))
        opcheck(ops.adaptive_avg_pool2d, (x, [3, 4]))
        opcheck(ops.adaptive_avg_pool2d_backward, (torch.randn(2, 3, 3, 4, dtype=torch.float64, device=device),
                                                   x.detach()))
        opcheck(ops.adaptive_max_pool2d, (x, [4, 3]))
        y, idx = ops.adaptive_max_pool2d(x, [4, 3])
        opcheck(ops.adaptive_max_pool2d_backward, (torch.randn_like(y), x.detach(), idx))


@pytest.mark.parametrize("device,backend", BACKENDS, ids=BACKEND_IDS)
def test_torch_compile_fullgraph(device, backend):
    x = torch.randn(2, 3, 12, 12, device=device, requires_grad=True)

    def f(x):
        y = PF.max_pool2d(x, 3, 2, 1, backend=backend)
        y = PF.avg_pool2d(y, 2, backend=backend)
        return PF.adaptive_avg_pool2d(y, 1, backend=backend).sum() + PF.adaptive_max_pool2d(x, 2, backend=backend).sum()

    def f_ref(x):
        y = F.avg_pool2d(F.max_pool2d(x, 3, 2, 1), 2)
        return F.adaptive_avg_pool2d(y, 1).sum() + F.adaptive_max_pool2d(x, 2).sum()

    out = torch.compile(f, fullgraph=True, backend="aot_eager")(x)
    g = torch.autograd.grad(out, x)[0]
    out_ref = f_ref(x)
    torch.testing.assert_close(out, out_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g, torch.autograd.grad(out_ref, x)[0], rtol=1e-5, atol=1e-5)


def test_deterministic_backward():
    """Overlapping windows (stride < kernel) route several outputs to one input; the gather sums them in a fixed
    order, so repeated backward passes are bitwise equal."""
    x = torch.randn(4, 8, 33, 31, requires_grad=True)
    go = torch.randn(4, 8, 33, 31)
    runs = [torch.autograd.grad(PF.avg_pool2d(x, 3, 1, 1), x, go)[0] for _ in range(3)]
    assert all(torch.equal(runs[0], r) for r in runs[1:])


BAD = [
    (lambda x: PF.max_pool2d(x, (2, 2, 2)), "kernel_size must either be a single int, or a tuple of two ints"),
    (lambda x: PF.max_pool2d(x, 2, stride=(1, 1, 1)), "stride must either be omitted"),
    (lambda x: PF.max_pool2d(x, 2, padding=(1, 1, 1)), "padding must either be a single int"),
    (lambda x: PF.max_pool2d(x, 2, dilation=(1, 1, 1)), "dilation must be either a single int"),
    (lambda x: PF.max_pool2d(x, 0, stride=1), "kernel size should be greater than zero"),
    (lambda x: PF.max_pool2d(x, 2, stride=-1), "stride should be greater than zero"),
    (lambda x: PF.max_pool2d(x, 2, dilation=0), "dilation should be greater than zero"),
    (lambda x: PF.max_pool2d(x, 3, padding=-1), "pad must be non-negative"),
    (lambda x: PF.max_pool2d(x, 3, padding=2), "pad should be smaller than or equal to half of kernel size"),
    (lambda x: PF.avg_pool2d(x, 2, padding=2), "pad should be smaller than or equal to half of kernel size"),
    (lambda x: PF.max_pool2d(x, 5), "Output size is too small"),
    (lambda x: PF.avg_pool2d(x, 5), "Output size is too small"),
    (lambda x: PF.avg_pool2d(x, 2, divisor_override=0), "divisor must be not zero"),
    (lambda x: PF.max_pool2d(torch.randn(3, 4), 2), "non-empty 3D or 4D"),
    (lambda x: PF.max_pool2d(torch.randn(1, 0, 4, 4), 2), "optional 0 dim batch size"),
    (lambda x: PF.max_pool2d(x.int(), 2), "unsupported dtype"),
    (lambda x: PF.adaptive_avg_pool2d(x, (2, 2, 2)), "output_size must be 2"),
    (lambda x: PF.adaptive_avg_pool2d(x, (-1, 2)), "elements of output_size must be greater than or equal to 0"),
    (lambda x: PF.adaptive_max_pool2d(torch.randn(1, 3, 0, 4), 2), "non-zero size for non-batch dimensions"),
]


@pytest.mark.parametrize("backend", [b for _, b in BACKENDS if _ == "cpu"])
@pytest.mark.parametrize("i", range(len(BAD)))
def test_bad_input(i, backend):
    fn, msg = BAD[i]
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(RuntimeError, match=msg):
        fn(x)
    if backend == "emulator":  # the emulated ops and their fake kernels check the same things
        import pyconv.functional as pf
        orig = pf._ops_for
        try:
            pf._ops_for = lambda b, t: orig("emulator", t) if t.device.type == "cpu" else orig(b, t)
            with pytest.raises(RuntimeError, match=msg):
                fn(x)
        finally:
            pf._ops_for = orig


@pytest.mark.parametrize("i", [4, 5, 6, 8, 10, 12])
def test_bad_input_fake(i):
    """The fake kernels (torch.compile's view of the ops) raise the same errors."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    fn, msg = BAD[i]
    with FakeTensorMode():
        x = torch.randn(1, 3, 4, 4)
        with pytest.raises(RuntimeError, match=msg):
            fn(x)
