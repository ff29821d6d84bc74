"""pyconv.nn layers against their torch.nn counterparts, conv_transpose2d, and pyconv.convert()."""
import copy
import io

import pytest
import torch
import torch.nn.functional as TF

import pyconv
import pyconv.functional as PF
import pyconv.nn as pnn
from conftest import DEVICES

# (class name, constructor args, constructor kwargs, input shape)
LAYER_CASES = [
    ("Conv2d", (3, 8, 3), {}, (2, 3, 9, 10)),
    ("Conv2d", (4, 6, 3), dict(stride=2, padding=1, bias=False), (2, 4, 11, 8)),
    ("Conv2d", (4, 6, (3, 2)), dict(dilation=2, groups=2, padding=(2, 1)), (1, 4, 10, 9)),
    ("Conv2d", (3, 5, 4), dict(padding="same"), (2, 3, 7, 8)),
    ("Conv2d", (3, 4, 3), dict(padding=2, padding_mode="reflect"), (2, 3, 8, 7)),
    ("Conv2d", (3, 4, 3), dict(padding=1, padding_mode="circular", stride=2), (2, 3, 8, 7)),
    ("Conv2d", (3, 4, 3), dict(padding=(1, 2), padding_mode="replicate"), (2, 3, 6, 7)),
    ("Conv2d", (3, 4, 1), {}, (3, 5, 6)),  # unbatched
    ("ConvTranspose2d", (4, 6, 3), {}, (2, 4, 5, 6)),
    ("ConvTranspose2d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1), (2, 4, 5, 4)),
    ("ConvTranspose2d", (4, 6, 3), dict(groups=2, dilation=2, bias=False), (2, 4, 5, 5)),
    ("ConvTranspose2d", (3, 2, 3), dict(stride=1, dilation=2, output_padding=1), (1, 3, 4, 5)),  # op >= stride
    ("ConvTranspose2d", (3, 4, (2, 3)), dict(stride=(2, 1), padding=(0, 1)), (2, 3, 4, 5)),
    ("ConvTranspose2d", (2, 3, 2), dict(stride=2), (2, 4, 4)),  # unbatched
    ("MaxPool2d", (3,), dict(stride=2, padding=1), (2, 3, 9, 10)),
    ("MaxPool2d", (2,), dict(ceil_mode=True), (2, 3, 7, 9)),
    ("MaxPool2d", (3,), dict(stride=1, dilation=2), (1, 2, 8, 8)),
    ("AvgPool2d", (3,), dict(stride=2, padding=1, count_include_pad=False), (2, 3, 9, 10)),
    ("AvgPool2d", (2,), dict(ceil_mode=True, divisor_override=3), (2, 3, 7, 9)),
    ("AdaptiveAvgPool2d", ((3, 5),), {}, (2, 3, 10, 11)),
    ("AdaptiveAvgPool2d", ((None, 2),), {}, (2, 3, 6, 7)),
    ("AdaptiveAvgPool2d", (1,), {}, (2, 3, 6, 7)),
    ("AdaptiveMaxPool2d", ((2, 3),), {}, (2, 3, 7, 8)),
    ("ReLU", (), {}, (2, 3, 4, 5)),
    ("ReLU", (), dict(inplace=True), (2, 3, 4, 5)),
    ("ReLU6", (), {}, (2, 3, 4, 5)),
    ("ReLU6", (), dict(inplace=True), (2, 3, 4, 5)),
    ("LeakyReLU", (0.2,), {}, (2, 3, 4, 5)),
    ("LeakyReLU", (), dict(inplace=True), (2, 3, 4, 5)),
    ("ELU", (0.7,), {}, (2, 3, 4, 5)),
    ("GELU", (), {}, (2, 3, 4, 5)),
    ("GELU", (), dict(approximate="tanh"), (2, 3, 4, 5)),
    ("SiLU", (), {}, (2, 3, 4, 5)),
    ("Sigmoid", (), {}, (2, 3, 4, 5)),
    ("Tanh", (), {}, (2, 3, 4, 5)),
    ("Hardswish", (), {}, (2, 3, 4, 5)),
    ("Mish", (), {}, (2, 3, 4, 5)),
]


def _case_id(case):
    name, args, kwargs, shape = case
    return f"{name}-{'-'.join(f'{k}={v}' for k, v in kwargs.items()) or 'default'}-{len(shape)}d"


def _make_pair(name, args, kwargs):
    """The torch.nn layer and the pyconv.nn layer, built from the same seed (so they must start identical)."""
    torch.manual_seed(1)
    ref = getattr(torch.nn, name)(*args, **kwargs)
    torch.manual_seed(1)
    ours = getattr(pnn, name)(*args, **kwargs)
    return ref, ours


def _scale_input(name, x):
    # Keep activation inputs away from their kinks (0 for the ReLUs, 6 for ReLU6) where a gradient convention decides.
    if name in ("ReLU", "ReLU6", "LeakyReLU", "ELU"):
        x = torch.where(x.abs() < 1e-3, torch.full_like(x, 0.5), x) * 4
    return x


@pytest.mark.parametrize("case", LAYER_CASES, ids=[_case_id(c) for c in LAYER_CASES])
def test_layer_parity_float64(case):
    name, args, kwargs, shape = case
    ref, ours = _make_pair(name, args, kwargs)
    assert isinstance(ours, getattr(torch.nn, name))
    assert repr(ours) == repr(ref)
    # Same initialisation (same RNG draws), same parameter names, same state_dict keys.
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
    assert list(ours.state_dict()) == list(ref.state_dict())
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        assert torch.equal(p, q), n
    ref, ours = ref.double(), ours.double()
    base = _scale_input(name, torch.randn(shape, dtype=torch.float64))
    xr = base.clone().requires_grad_()
    xo = base.clone().requires_grad_()
    inplace = kwargs.get("inplace", False)
    # An in-place layer may not overwrite a leaf: feed it a non-leaf, as inside a network.
    yr = ref(xr * 1 if inplace else xr)
    yo = ours(xo * 1 if inplace else xo)
    if isinstance(yr, tuple):  # return_indices
        assert torch.equal(yo[1], yr[1])
        yr, yo = yr[0], yo[0]
    torch.testing.assert_close(yo, yr, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(yr)
    yr.backward(g)
    yo.backward(g)
    torch.testing.assert_close(xo.grad, xr.grad, rtol=1e-12, atol=1e-12)
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-11, atol=1e-11, msg=n)


@pytest.mark.parametrize("case", [c for c in LAYER_CASES if c[0] in ("Conv2d", "ConvTranspose2d")][::2],
                         ids=_case_id)
def test_state_dict_round_trip(case):
    name, args, kwargs, _ = case
    torch.manual_seed(2)
    ref = getattr(torch.nn, name)(*args, **kwargs)
    torch.manual_seed(3)
    ours = getattr(pnn, name)(*args, **kwargs)
    ours.load_state_dict(ref.state_dict())  # torch → pyconv
    for k, v in ref.state_dict().items():
        assert torch.equal(ours.state_dict()[k], v)
    torch.manual_seed(4)
    other = getattr(torch.nn, name)(*args, **kwargs)
    ours.weight.data.add_(1.0)
    other.load_state_dict(ours.state_dict())  # pyconv → torch
    assert torch.equal(other.weight, ours.weight)
    # And through a file, the way checkpoints travel.
    buf = io.BytesIO()
    torch.save(ours.state_dict(), buf)
    buf.seek(0)
    other.load_state_dict(torch.load(buf))
    assert torch.equal(other.weight, ours.weight)


def test_layers_float32_channels_last():
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.ConvTranspose2d(16, 8, 2, stride=2), torch.nn.SiLU())
    ours, report = pyconv.convert(ref)
    assert report.num_swapped == 5
    x = torch.randn(2, 8, 12, 10).to(memory_format=torch.channels_last)
    y = ours(x)
    torch.testing.assert_close(y, ref(x), rtol=1e-4, atol=1e-4)
    assert y.shape == (2, 8, 12, 10)


def test_conv_transpose2d_functional_vs_torch():
    torch.manual_seed(0)
    for stride, padding, output_padding, groups, dilation in [(1, 0, 0, 1, 1), (2, 1, 1, 1, 1), (3, 2, 2, 2, 1),
                                                              (2, 0, 0, 3, 2), (1, 1, 1, 1, 2), ((2, 1), (1, 0),
                                                                                                 (1, 0), 1, (1, 3))]:
        x = torch.randn(2, 6, 5, 7, dtype=torch.float64)
        w = torch.randn(6, 4 // (2 if groups == 2 else 1) if groups != 3 else 2, 3, 3, dtype=torch.float64)
        b = torch.randn(w.shape[1] * groups, dtype=torch.float64)
        args = (stride, padding, output_padding, groups, dilation)
        torch.testing.assert_close(PF.conv_transpose2d(x, w, b, *args), TF.conv_transpose2d(x, w, b, *args),
                                   rtol=1e-12, atol=1e-12, msg=str(args))


def test_conv_transpose2d_output_size():
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=1)
    ours, _ = pyconv.convert(ref)
    x = torch.randn(1, 4, 5, 6)
    for size in [(9, 11), (10, 12), [1, 3, 10, 11]]:
        torch.testing.assert_close(ours(x, output_size=size), ref(x, output_size=size), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="valid sizes"):
        ours(x, output_size=(12, 11))


def test_conv_transpose2d_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 4, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)

    def f(x, w, b):
        return PF.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2)

    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


def test_conv_transpose2d_errors():
    x = torch.randn(1, 4, 5, 5)
    with pytest.raises(RuntimeError, match="expected input\\[1, 4, 5, 5\\] to have 3 channels"):
        PF.conv_transpose2d(x, torch.randn(3, 2, 3, 3))
    with pytest.raises(RuntimeError, match="output padding must be smaller than either stride or dilation"):
        PF.conv_transpose2d(x, torch.randn(4, 2, 3, 3), stride=2, output_padding=2)
    with pytest.raises(RuntimeError, match="expected bias to be 1-dimensional with 2 elements"):
        PF.conv_transpose2d(x, torch.randn(4, 2, 3, 3), torch.randn(3))
    with pytest.raises(RuntimeError, match="Output size is too small"):
        PF.conv_transpose2d(torch.randn(1, 4, 1, 1), torch.randn(4, 2, 1, 1), padding=1)
    with pytest.raises(RuntimeError, match="Expected 3D \\(unbatched\\) or 4D"):
        PF.conv_transpose2d(torch.randn(4, 5), torch.randn(4, 2, 3, 3))
    with pytest.raises(RuntimeError, match="unsupported dtype"):
        PF.conv_transpose2d(x.int(), torch.randn(4, 2, 3, 3).int())
    with pytest.raises(ValueError, match='Only "zeros" padding mode'):
        layer = pnn.ConvTranspose2d(4, 2, 3)
        layer.padding_mode = "reflect"
        layer(x)


def test_relu6_functional():
    for dtype in (torch.float32, torch.float64):
        # 40 elements: the CPU loop's vector body and its scalar tail both see every special value.
        x = torch.tensor([-1.0, 0.0, 3.0, 6.0, 7.0, float("nan"), 5.5, -0.5] * 5, dtype=dtype, requires_grad=True)
        y = PF.relu6(x)
        torch.testing.assert_close(y, TF.relu6(x.detach()), equal_nan=True)
        y.backward(torch.full_like(y, 2.0))
        # torch's hardtanh_backward: 0 at the kinks (0, 6) and outside; a NaN input passes the gradient (torch's
        # scalar path does so, its vectorised float path returns 0: pyconv keeps one rule, the one relu follows).
        expect = torch.tensor([0.0, 0.0, 2.0, 0.0, 0.0, 2.0, 2.0, 0.0] * 5, dtype=dtype)
        torch.testing.assert_close(x.grad, expect)


def test_model_torch_compile_fullgraph():
    torch.manual_seed(0)
    model = torch.nn.Sequential(pnn.Conv2d(3, 8, 3, padding=1), pnn.ReLU(inplace=True), pnn.MaxPool2d(2),
                                pnn.ConvTranspose2d(8, 4, 2, stride=2), pnn.Hardswish(), pnn.AdaptiveAvgPool2d(1))
    x = torch.randn(2, 3, 8, 8)
    eager = model(x)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), eager)
    xg = x.clone().requires_grad_()
    compiled(xg).sum().backward()
    xe = x.clone().requires_grad_()
    model(xe).sum().backward()
    torch.testing.assert_close(xg.grad, xe.grad)


def test_backend_emulator_attribute():
    if not pyconv.build_info()["emulator"]:
        pytest.skip("built without the emulator")
    torch.manual_seed(0)
    model = torch.nn.Sequential(pnn.Conv2d(3, 4, 3, padding=1), pnn.ReLU(), pnn.MaxPool2d(2),
                                pnn.ConvTranspose2d(4, 2, 2, stride=2)).double()
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    expect = model(x)
    for m in model:
        m.backend = "emulator"
    torch.testing.assert_close(model(x), expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_layers_on_device(device):
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.AvgPool2d(2), torch.nn.ConvTranspose2d(8, 3, 2, stride=2), torch.nn.GELU())
    ref = ref.to(device)
    ours, report = pyconv.convert(ref)
    assert report.num_swapped == 5 and not report.kept
    x = torch.randn(2, 3, 8, 8, device=device)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-4)


# ---- convert() -------------------------------------------------------------------------------------------------------


class MyConv(torch.nn.Conv2d):
    """A user's subclass: convert() must not replace it (its forward is its own)."""

    def forward(self, x):
        return super().forward(x) * 2


class Handmade(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.act = torch.nn.ReLU(inplace=True)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"),
                                        torch.nn.BatchNorm2d(8), torch.nn.LeakyReLU(0.1), MyConv(8, 8, 1))
        self.weird = torch.nn.Conv2d(8, 8, 1, dtype=torch.complex64)  # unsupported dtype: kept, not called
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = self.act(self.stem(x))
        x = self.act(self.body(x))  # self.act is used twice: a shared layer
        return self.head(torch.flatten(self.pool(x), 1))


def test_convert_handmade():
    torch.manual_seed(0)
    model = Handmade().eval()
    calls = []
    model.stem.register_forward_hook(lambda m, i, o: calls.append(type(m)))
    x = torch.randn(2, 3, 8, 8)
    expect = model(x)
    before = copy.deepcopy(model.state_dict())

    converted, report = pyconv.convert(model)
    # The original is untouched (inplace=False converts a copy).
    assert type(model.stem) is torch.nn.Conv2d and type(model.act) is torch.nn.ReLU
    assert type(converted.stem) is pnn.Conv2d and type(converted.act) is pnn.ReLU
    assert type(converted.body[0]) is pnn.Conv2d and type(converted.body[2]) is pnn.LeakyReLU
    assert type(converted.body[3]) is MyConv and type(converted.weird) is torch.nn.Conv2d
    assert type(converted.body[1]) is torch.nn.BatchNorm2d and type(converted.head) is torch.nn.Linear
    assert report.swapped == {"Conv2d": 2, "ReLU": 1, "LeakyReLU": 1, "AdaptiveAvgPool2d": 1}
    kept = {name: why for name, _, why in report.kept}
    assert set(kept) == {"body.3", "weird"}
    assert "subclass MyConv" in kept["body.3"] and "complex64" in kept["weird"]
    text = str(report)
    assert "5 layer(s) swapped, 2 kept" in text and "body.3" in text

    calls.clear()
    torch.testing.assert_close(converted(x), expect, rtol=1e-5, atol=1e-5)
    assert calls == [pnn.Conv2d]  # the forward hook travelled with the layer
    assert list(converted.state_dict()) == list(before)
    for k, v in converted.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_convert_inplace_shares_parameters():
    torch.manual_seed(0)
    model = Handmade()
    params = list(model.parameters())
    converted, report = pyconv.convert(model, inplace=True)
    assert converted is model
    assert type(model.stem) is pnn.Conv2d
    assert all(a is b for a, b in zip(model.parameters(), params))  # an optimizer built before still applies
    opt = torch.optim.SGD(params, lr=0.1)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()  # no error: the optimizer's tensors are the model's


def test_convert_bare_layer_and_lazy():
    conv = torch.nn.Conv2d(3, 4, 3)
    new, report = pyconv.convert(conv, inplace=True)
    assert type(new) is pnn.Conv2d and new.weight is conv.weight
    lazy = torch.nn.Sequential(torch.nn.LazyConv2d(4, 3), torch.nn.ReLU())
    new, report = pyconv.convert(lazy)
    assert report.swapped == {"ReLU": 1}
    assert len(report.kept) == 1 and "lazy" in report.kept[0][2]
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        pyconv.convert(lambda x: x)


def test_convert_parametrized_weight_is_kept():
    conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv2d(3, 4, 3))
    _, report = pyconv.convert(torch.nn.Sequential(conv))
    assert report.num_swapped == 0 and "subclass" in report.kept[0][2]


def test_convert_torchvision_resnet18():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    tv = torchvision.models.resnet18(num_classes=10).eval()
    ours, report = pyconv.convert(tv)
    assert report.swapped == {"Conv2d": 20, "ReLU": 9, "MaxPool2d": 1, "AdaptiveAvgPool2d": 1}
    assert not report.kept
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), tv(x), rtol=1e-4, atol=1e-4)
