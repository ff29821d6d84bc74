"""pyconv.fuse: BatchNorm folding and conv → BN → (add) → activation fusion, output parity with the unfused model."""
import pytest
import torch
import torch.nn.functional as F

import pyconv
from pyconv import models
from pyconv import nn as pnn


def _randomise_bn(model):
    """Non-trivial running statistics and affine parameters, so a wrong fold cannot pass."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model


# builder, kwargs, input, expected patterns
CASES = [
    ("resnet18", dict(num_classes=10), (2, 3, 64, 64), {"conv+bn+relu": 9, "conv+bn+add+relu": 8, "conv+bn": 3}),
    ("resnet50", dict(num_classes=10), (1, 3, 64, 64), {"conv+bn+relu": 33, "conv+bn+add+relu": 16, "conv+bn": 4}),
    ("mobilenet_v2", dict(num_classes=10), (2, 3, 64, 64), {"conv+bn+relu6": 35, "conv+bn": 7, "conv+bn+add": 10}),
    ("unet", dict(in_channels=3, num_classes=2), (2, 3, 20, 28), {"conv+bn+relu": 14}),
]


@pytest.mark.parametrize("name,kwargs,shape,patterns", CASES, ids=[c[0] for c in CASES])
def test_fuse_model_parity(name, kwargs, shape, patterns):
    torch.manual_seed(0)
    model = _randomise_bn(models.BUILDERS[name](**kwargs)).double().eval()
    x = torch.randn(shape, dtype=torch.float64)
    fused, report = pyconv.fuse(model)
    assert report.fused == patterns
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    n_fused = sum(isinstance(m, pyconv.FusedConv2d) for m in fused.modules())
    assert n_fused == report.num_fused and n_fused + sum(isinstance(m, torch.nn.Conv2d) for m in fused.modules()) \
        == n_convs
    torch.testing.assert_close(fused(x), model(x), rtol=1e-10, atol=1e-10)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the original is untouched


def test_fuse_float32_and_compile():
    torch.manual_seed(0)
    model = _randomise_bn(models.resnet18(num_classes=10)).eval()
    x = torch.randn(2, 3, 64, 64)
    fused, _ = pyconv.fuse(model)
    torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-4)
    compiled = torch.compile(fused, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)


def test_fuse_torchvision_models():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    for build in (torchvision.models.resnet18, torchvision.models.mobilenet_v2):
        model = _randomise_bn(build(num_classes=10)).double().eval()
        fused, report = pyconv.fuse(model)
        assert report.num_fused == sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
        torch.testing.assert_close(fused(x), model(x), rtol=1e-10, atol=1e-10)


class Mixed(torch.nn.Module):
    """Chains fuse.fuse must and must not touch."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1 = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8)  # + functional relu
        self.c2 = pnn.Conv2d(8, 8, 3, padding=1)  # + GELU(tanh) module, no BN
        self.act2 = torch.nn.GELU(approximate="tanh")
        self.c3, self.b3 = torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.BatchNorm2d(8)  # conv output used twice
        self.c4 = torch.nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect")  # not fusable
        self.act4 = torch.nn.LeakyReLU(0.3)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        x = self.act2(self.c2(x))
        z = self.c3(x)
        y = self.b3(z)
        x = torch.sigmoid(y) * y + z  # z is needed after BN: folding BN into c3 would lose it
        return self.act4(self.c4(x))


def test_fuse_patterns_and_what_is_left_alone():
    torch.manual_seed(0)
    model = _randomise_bn(Mixed()).double().eval()
    fused, report = pyconv.fuse(model)
    assert report.fused == {"conv+bn+relu": 1, "conv+gelu_tanh": 1}
    kept = {n for n, m in fused.named_modules() if type(m) in (torch.nn.Conv2d, torch.nn.BatchNorm2d)}
    assert kept == {"c3", "b3", "c4"}
    x = torch.randn(2, 3, 9, 10, dtype=torch.float64)
    torch.testing.assert_close(fused(x), model(x), rtol=1e-10, atol=1e-10)
    text = str(report)
    assert "2 chain(s) fused" in text and "conv+gelu_tanh" in text
    assert "activation=gelu_tanh" in repr(fused.c2_fused)


def test_fuse_needs_eval_mode_and_a_module():
    with pytest.raises(RuntimeError, match="model.eval\\(\\) first"):
        pyconv.fuse(models.lenet5())
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        pyconv.fuse(42)


def test_fused_layer_keeps_backend():
    if not pyconv.emulator.available():
        pytest.skip("built without the emulator")
    torch.manual_seed(0)
    model = torch.nn.Sequential(pnn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), pnn.ReLU())
    model = _randomise_bn(model).double().eval()
    model[0].backend = "emulator"
    fused, report = pyconv.fuse(model)
    layer = next(m for m in fused.modules() if isinstance(m, pyconv.FusedConv2d))
    assert layer.backend == "emulator" and report.num_fused == 1
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    torch.testing.assert_close(fused(x), model(x), rtol=1e-10, atol=1e-10)
