"""CNN model builders made of :mod:`pyconv.nn` layers (BatchNorm, Linear and Dropout stay torch.nn).

``lenet5``, ``vgg11``/``vgg11_bn``/``vgg16``/``vgg16_bn``, ``resnet18``/``resnet34``/``resnet50``, ``mobilenet_v2``
and a small ``unet``. The architectures, module names, parameter names and initialisation follow torchvision's
definitions, so a torchvision state_dict loads as it is (``model.load_state_dict(tv_model.state_dict())``) and the
parameter counts match (resnet18: 11,689,512; resnet50: 25,557,032; vgg16: 138,357,544; mobilenet_v2: 3,504,872).
Nothing is downloaded: weights are random unless you load some.

Every builder takes ``layers=``: the namespace the conv/pool/activation classes come from, :mod:`pyconv.nn` by
default; ``layers=torch.nn`` builds the very same network from torch's layers (the reference the tests compare with).
"""
from __future__ import annotations

from types import ModuleType
from typing import Callable, List, Optional, Sequence, Type, Union

import torch
from torch import Tensor

from . import functional as pyconv_functional
from . import nn as pyconv_nn

__all__ = ["lenet5", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "resnet18", "resnet34", "resnet50", "mobilenet_v2",
           "unet", "BUILDERS"]


def _layers(layers: Optional[ModuleType]) -> ModuleType:
    return pyconv_nn if layers is None else layers


# ---- LeNet-5 ---------------------------------------------------------------------------------------------------------


class LeNet5(torch.nn.Module):
    """LeNet-5 (LeCun et al. 1998) in its modern form: ReLU and max pooling instead of tanh and subsampling.

    Input (N, in_channels, 28, 28); the first convolution pads by 2, so the classic 32×32 geometry follows:
    28 → conv5 → 28 → pool → 14 → conv5 → 10 → pool → 5, then 16·5·5 = 400 → 120 → 84 → classes."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, layers: Optional[ModuleType] = None):
        super().__init__()
        L = _layers(layers)
        self.features = torch.nn.Sequential(
            L.Conv2d(in_channels, 6, kernel_size=5, padding=2), L.ReLU(inplace=True), L.MaxPool2d(2, 2),
            L.Conv2d(6, 16, kernel_size=5), L.ReLU(inplace=True), L.MaxPool2d(2, 2))
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(16 * 5 * 5, 120), L.ReLU(inplace=True), torch.nn.Linear(120, 84), L.ReLU(inplace=True),
            torch.nn.Linear(84, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def lenet5(num_classes: int = 10, in_channels: int = 1, *, layers: Optional[ModuleType] = None) -> LeNet5:
    return LeNet5(num_classes, in_channels, layers)


# ---- VGG (torchvision.models.vgg) -----------------------------------------------------------------------------------

_VGG_CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(torch.nn.Module):
    def __init__(self, features: torch.nn.Module, num_classes: int = 1000, init_weights: bool = True,
                 dropout: float = 0.5, layers: Optional[ModuleType] = None):
        super().__init__()
        L = _layers(layers)
        self.features = features
        self.avgpool = L.AdaptiveAvgPool2d((7, 7))
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(512 * 7 * 7, 4096), L.ReLU(True), torch.nn.Dropout(p=dropout),
            torch.nn.Linear(4096, 4096), L.ReLU(True), torch.nn.Dropout(p=dropout),
            torch.nn.Linear(4096, num_classes))
        if init_weights:
            for m in self.modules():
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        torch.nn.init.constant_(m.bias, 0)
                elif isinstance(m, torch.nn.BatchNorm2d):
                    torch.nn.init.constant_(m.weight, 1)
                    torch.nn.init.constant_(m.bias, 0)
                elif isinstance(m, torch.nn.Linear):
                    torch.nn.init.normal_(m.weight, 0, 0.01)
                    torch.nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def _vgg_features(cfg: Sequence[Union[int, str]], batch_norm: bool, L: ModuleType) -> torch.nn.Sequential:
    seq: List[torch.nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            seq.append(L.MaxPool2d(kernel_size=2, stride=2))
        else:
            seq.append(L.Conv2d(in_channels, v, kernel_size=3, padding=1))
            if batch_norm:
                seq.append(torch.nn.BatchNorm2d(v))
            seq.append(L.ReLU(inplace=True))
            in_channels = v
    return torch.nn.Sequential(*seq)


def _vgg(cfg: str, batch_norm: bool, num_classes: int, dropout: float, layers: Optional[ModuleType]) -> VGG:
    L = _layers(layers)
    return VGG(_vgg_features(_VGG_CFGS[cfg], batch_norm, L), num_classes, dropout=dropout, layers=L)


def vgg11(num_classes: int = 1000, dropout: float = 0.5, *, layers: Optional[ModuleType] = None) -> VGG:
    """VGG-11 (configuration "A"), 132,863,336 parameters at 1000 classes."""
    return _vgg("A", False, num_classes, dropout, layers)


def vgg11_bn(num_classes: int = 1000, dropout: float = 0.5, *, layers: Optional[ModuleType] = None) -> VGG:
    """VGG-11 with BatchNorm after every convolution."""
    return _vgg("A", True, num_classes, dropout, layers)


def vgg16(num_classes: int = 1000, dropout: float = 0.5, *, layers: Optional[ModuleType] = None) -> VGG:
    """VGG-16 (configuration "D"), 138,357,544 parameters at 1000 classes."""
    return _vgg("D", False, num_classes, dropout, layers)


def vgg16_bn(num_classes: int = 1000, dropout: float = 0.5, *, layers: Optional[ModuleType] = None) -> VGG:
    """VGG-16 with BatchNorm after every convolution."""
    return _vgg("D", True, num_classes, dropout, layers)


# ---- ResNet (torchvision.models.resnet, v1.5: the stride sits on the 3×3 convolution) -------------------------------


class BasicBlock(torch.nn.Module):
    expansion = 1

    def __init__(self, L: ModuleType, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[torch.nn.Module] = None):
        super().__init__()
        self.conv1 = L.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(planes)
        self.relu = L.ReLU(inplace=True)
        self.conv2 = L.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(torch.nn.Module):
    expansion = 4

    def __init__(self, L: ModuleType, inplanes: int, planes: int, stride: int = 1,
                 downsample: Optional[torch.nn.Module] = None):
        super().__init__()
        width = planes
        self.conv1 = L.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(width)
        self.conv2 = L.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(width)
        self.conv3 = L.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = torch.nn.BatchNorm2d(planes * self.expansion)
        self.relu = L.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(torch.nn.Module):
    def __init__(self, block: Type[Union[BasicBlock, Bottleneck]], blocks: Sequence[int], num_classes: int = 1000,
                 zero_init_residual: bool = False, layers: Optional[ModuleType] = None):
        super().__init__()
        L = _layers(layers)
        self.inplanes = 64
        self.conv1 = L.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(64)
        self.relu = L.ReLU(inplace=True)
        self.maxpool = L.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(L, block, 64, blocks[0])
        self.layer2 = self._make_layer(L, block, 128, blocks[1], stride=2)
        self.layer3 = self._make_layer(L, block, 256, blocks[2], stride=2)
        self.layer4 = self._make_layer(L, block, 512, blocks[3], stride=2)
        self.avgpool = L.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.constant_(m.weight, 1)
                torch.nn.init.constant_(m.bias, 0)
        if zero_init_residual:  # each residual branch starts as the identity (Goyal et al. 2017)
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    torch.nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    torch.nn.init.constant_(m.bn2.weight, 0)

    def _make_layer(self, L, block, planes: int, n: int, stride: int = 1) -> torch.nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            # The shortcut must match the branch's shape: a strided 1×1 convolution (+ BN) projects it.
            downsample = torch.nn.Sequential(
                L.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                torch.nn.BatchNorm2d(planes * block.expansion))
        seq = [block(L, self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        seq += [block(L, self.inplanes, planes) for _ in range(1, n)]
        return torch.nn.Sequential(*seq)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes: int = 1000, zero_init_residual: bool = False, *,
             layers: Optional[ModuleType] = None) -> ResNet:
    """ResNet-18: 11,689,512 parameters at 1000 classes."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, zero_init_residual, layers)


def resnet34(num_classes: int = 1000, zero_init_residual: bool = False, *,
             layers: Optional[ModuleType] = None) -> ResNet:
    """ResNet-34: 21,797,672 parameters at 1000 classes."""
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, zero_init_residual, layers)


def resnet50(num_classes: int = 1000, zero_init_residual: bool = False, *,
             layers: Optional[ModuleType] = None) -> ResNet:
    """ResNet-50 (bottleneck blocks): 25,557,032 parameters at 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, zero_init_residual, layers)


# ---- MobileNetV2 (torchvision.models.mobilenetv2) -------------------------------------------------------------------


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Rounds a channel count to a multiple of `divisor`, never more than 10 % below `v` (the MobileNet rule)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class Conv2dNormActivation(torch.nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d → activation, "same" padding: torchvision.ops.Conv2dNormActivation's layout."""

    def __init__(self, L: ModuleType, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: Optional[Callable[..., torch.nn.Module]] = None):
        activation = L.ReLU6 if activation is None else activation
        super().__init__(
            L.Conv2d(in_channels, out_channels, kernel_size, stride, (kernel_size - 1) // 2, groups=groups,
                     bias=False),
            torch.nn.BatchNorm2d(out_channels), activation(inplace=True))
        self.out_channels = out_channels


class InvertedResidual(torch.nn.Module):
    """Expand (1×1) → depthwise 3×3 (groups = channels) → project (1×1, linear); residual when shapes allow."""

    def __init__(self, L: ModuleType, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        seq: List[torch.nn.Module] = []
        if expand_ratio != 1:
            seq.append(Conv2dNormActivation(L, inp, hidden_dim, kernel_size=1))
        seq += [Conv2dNormActivation(L, hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
                L.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False), torch.nn.BatchNorm2d(oup)]
        self.conv = torch.nn.Sequential(*seq)
        self.out_channels = oup
        self._is_cn = stride > 1

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(torch.nn.Module):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2,
                 layers: Optional[ModuleType] = None):
        super().__init__()
        L = _layers(layers)
        self._pyconv_pool = L is pyconv_nn  # the global pooling torchvision calls functionally: pyconv's or torch's
        input_channel = _make_divisible(32 * width_mult)
        self.last_channel = _make_divisible(1280 * max(1.0, width_mult))
        # t: expansion factor, c: output channels, n: repeats, s: stride of the first repeat
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                   [6, 320, 1, 1]]
        features: List[torch.nn.Module] = [Conv2dNormActivation(L, 3, input_channel, stride=2)]
        for t, c, n, s in setting:
            output_channel = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(L, input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(L, input_channel, self.last_channel, kernel_size=1))
        self.features = torch.nn.Sequential(*features)
        self.classifier = torch.nn.Sequential(torch.nn.Dropout(p=dropout),
                                              torch.nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.BatchNorm2d):
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, 0, 0.01)
                torch.nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        F = pyconv_functional if self._pyconv_pool else torch.nn.functional
        x = F.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


def mobilenet_v2(num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2, *,
                 layers: Optional[ModuleType] = None) -> MobileNetV2:
    """MobileNetV2 (depthwise 3×3 + pointwise 1×1 inverted residuals, ReLU6): 3,504,872 parameters at 1000 classes."""
    return MobileNetV2(num_classes, width_mult, dropout, layers)


# ---- a small U-Net (Ronneberger et al. 2015), for segmentation -------------------------------------------------------


class DoubleConv(torch.nn.Sequential):
    """(3×3 conv, no bias → BatchNorm → ReLU) twice, "same" padding."""

    def __init__(self, L: ModuleType, in_channels: int, out_channels: int):
        super().__init__(
            L.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), torch.nn.BatchNorm2d(out_channels),
            L.ReLU(inplace=True),
            L.Conv2d(out_channels, out_channels, 3, padding=1, bias=False), torch.nn.BatchNorm2d(out_channels),
            L.ReLU(inplace=True))


class Up(torch.nn.Module):
    """2×2 stride-2 transposed convolution (learned upsampling, halves the channels), concatenation with the encoder's
    skip connection, DoubleConv. ``output_size`` makes the upsampled map match an odd-sized skip exactly."""

    def __init__(self, L: ModuleType, in_channels: int, out_channels: int):
        super().__init__()
        self.up = L.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(L, in_channels // 2 + out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = self.up(x, output_size=skip.shape[-2:])
        return self.conv(torch.cat([skip, x], dim=1))


class UNet(torch.nn.Module):
    """Encoder: DoubleConv, then ``depth`` × (2×2 max pool → DoubleConv doubling the channels); decoder: ``depth`` ×
    Up; a 1×1 convolution gives per-pixel class scores (N, num_classes, H, W). Any H, W ≥ 2**depth."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 16, depth: int = 3,
                 layers: Optional[ModuleType] = None):
        super().__init__()
        L = _layers(layers)
        ch = [base_channels * 2 ** i for i in range(depth + 1)]
        self.inc = DoubleConv(L, in_channels, ch[0])
        self.downs = torch.nn.ModuleList(
            torch.nn.Sequential(L.MaxPool2d(2), DoubleConv(L, ch[i], ch[i + 1])) for i in range(depth))
        self.ups = torch.nn.ModuleList(Up(L, ch[i + 1], ch[i]) for i in reversed(range(depth)))
        self.outc = L.Conv2d(ch[0], num_classes, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)


def unet(in_channels: int = 1, num_classes: int = 2, base_channels: int = 16, depth: int = 3, *,
         layers: Optional[ModuleType] = None) -> UNet:
    """A small U-Net: 16-32-64-128 channels at the defaults (≈0.47 M parameters), ConvTranspose2d upsampling."""
    return UNet(in_channels, num_classes, base_channels, depth, layers)


#: name → builder, for the CLI and the tests.
BUILDERS = {name: globals()[name] for name in __all__ if name != "BUILDERS"}
