"""pyconv.models: parameter counts, parity with the same architecture built from torch.nn, convert() on each builder,
and (when torchvision is installed) state_dict compatibility with torchvision's definitions."""
import pytest
import torch

import pyconv
import pyconv.nn as pnn
from pyconv import models

# torchvision's published parameter counts at 1000 classes (ResNet-18 11.7 M, ...), and the U-Net's own.
PARAM_COUNTS = {
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840, "vgg16": 138_357_544, "vgg16_bn": 138_365_992, "mobilenet_v2": 3_504_872,
}

# (builder, kwargs, input shape, float64?) — small inputs; VGG's 25088×4096 classifier stays float32.
PARITY = [
    ("lenet5", {}, (2, 1, 28, 28), True),
    ("resnet18", dict(num_classes=10), (2, 3, 64, 64), True),
    ("resnet34", dict(num_classes=10), (1, 3, 48, 40), True),
    ("resnet50", dict(num_classes=10), (2, 3, 64, 64), True),
    ("mobilenet_v2", dict(num_classes=10), (2, 3, 64, 64), True),
    ("unet", dict(in_channels=3, num_classes=4), (2, 3, 36, 44), True),
    ("vgg11", dict(num_classes=10), (1, 3, 32, 32), False),
    ("vgg16_bn", dict(num_classes=10), (2, 3, 32, 32), False),
]


def _count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PARAM_COUNTS))
def test_parameter_counts_match_torchvision(name):
    with torch.device("meta"):  # no memory, no init cost: only the shapes are made
        model = models.BUILDERS[name]()
    assert _count(model) == PARAM_COUNTS[name]


def test_small_model_counts():
    assert _count(models.lenet5()) == 61_706  # 156 + 2,416 + 48,120 + 10,164 + 850
    assert _count(models.unet()) == sum(p.numel() for p in models.unet(layers=torch.nn).parameters())


def _pyconv_layer_types(model):
    return {type(m) for m in model.modules() if type(m).__module__ == "pyconv.nn"}


@pytest.mark.parametrize("name,kwargs,shape,f64", PARITY, ids=[p[0] for p in PARITY])
def test_model_parity_with_torch_nn(name, kwargs, shape, f64):
    builder = models.BUILDERS[name]
    torch.manual_seed(0)
    ours = builder(**kwargs)
    ref = builder(**kwargs, layers=torch.nn)
    assert _pyconv_layer_types(ours) and not _pyconv_layer_types(ref)
    assert list(ours.state_dict()) == list(ref.state_dict())
    ref.load_state_dict(ours.state_dict())
    dtype = torch.float64 if f64 else torch.float32
    ours, ref = ours.to(dtype), ref.to(dtype)
    tol = dict(rtol=1e-9, atol=1e-9) if f64 else dict(rtol=2e-4, atol=2e-4)
    x = torch.randn(shape, dtype=dtype)
    # train mode (batch statistics; dropout would draw different masks, so VGG/MobileNet are compared in eval mode
    # for the gradient as well)
    has_dropout = any(isinstance(m, torch.nn.Dropout) for m in ours.modules())
    for mode in (["eval"] if has_dropout else ["train", "eval"]):
        ours.train(mode == "train")
        ref.train(mode == "train")
        xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        yo, yr = ours(xo), ref(xr)
        torch.testing.assert_close(yo, yr, **tol)
        g = torch.randn_like(yr)
        yo.backward(g)
        yr.backward(g)
        torch.testing.assert_close(xo.grad, xr.grad, **tol)
        for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
            torch.testing.assert_close(p.grad, q.grad, **tol, msg=n)
        ours.zero_grad()
        ref.zero_grad()


@pytest.mark.parametrize("name,kwargs,shape,f64", [p for p in PARITY if p[3]], ids=[p[0] for p in PARITY if p[3]])
def test_convert_each_builder(name, kwargs, shape, f64):
    torch.manual_seed(0)
    ref = models.BUILDERS[name](**kwargs, layers=torch.nn).double().eval()
    converted, report = pyconv.convert(ref)
    assert not report.kept
    convs = sum(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in ref.modules())
    assert report.swapped["Conv2d"] + report.swapped.get("ConvTranspose2d", 0) == convs
    # Nothing convertible is left over: every conv/pool/activation module is now a pyconv one.
    left = [n for n, m in converted.named_modules() if type(m) in pnn.TWINS]
    assert not left, left
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(converted(x), ref(x), rtol=1e-9, atol=1e-9)


def test_unet_odd_sizes_and_shape():
    torch.manual_seed(0)
    net = models.unet(in_channels=1, num_classes=3, depth=2)
    for h, w in [(16, 16), (17, 23), (9, 12)]:
        assert net(torch.randn(2, 1, h, w)).shape == (2, 3, h, w)


def test_mobilenet_uses_depthwise_and_relu6():
    net = models.mobilenet_v2(num_classes=10)
    dw = [m for m in net.modules() if isinstance(m, pnn.Conv2d) and m.groups == m.in_channels > 1]
    assert len(dw) == 17
    assert any(type(m) is pnn.ReLU6 for m in net.modules())


TORCHVISION = ["resnet18", "resnet50", "mobilenet_v2", "vgg11_bn"]


@pytest.mark.parametrize("name", TORCHVISION)
def test_torchvision_state_dict_loads(name):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    tv = getattr(torchvision.models, name)(num_classes=10).eval()
    ours = models.BUILDERS[name](num_classes=10).eval()
    assert list(ours.state_dict()) == list(tv.state_dict())
    ours.load_state_dict(tv.state_dict())  # strict: same keys and shapes
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(ours(x), tv(x), rtol=1e-4, atol=1e-4)


def test_resnet18_torch_compile_fullgraph_forward_backward():
    """A whole pyconv model compiles as one graph (every op has a fake kernel) and trains through it."""
    torch.manual_seed(0)
    model = models.resnet18(num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out = compiled(x)
    torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    g_compiled = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for a, (n, p) in zip(g_compiled, model.named_parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-4, msg=n)
