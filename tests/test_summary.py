"""pyconv.summary: parameter, FLOP and byte counts checked against hand counts."""
import pytest
import torch

import pyconv
import pyconv.nn as pnn
from pyconv import models


def test_lecture_mlp_21_parameters():
    # A 3 → 4 → 1 network: 12 + 4 weights, 4 + 1 biases: "16 weights + 5 biases = 21 parameters".
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 1))
    s = pyconv.summary(mlp, (1, 3))
    assert (s.total_weights, s.total_biases, s.total_params) == (16, 5, 21)
    assert "21 parameters (21 trainable) = 16 weights + 5 biases" in str(s)
    assert [r.output_shape for r in s.rows] == [[1, 4], [1, 4], [1, 1]]


def test_fully_connected_vs_convolution_on_a_large_image():
    # One 640×960 grey image, 4 outputs: a fully-connected layer needs a weight per pixel and output (≈2.5 M);
    # a 3×3 convolution with 4 filters needs 4·9 weights + 4 biases, whatever the image size.
    fc = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(640 * 960, 4))
    conv = pnn.Conv2d(1, 4, 3)
    s_fc = pyconv.summary(fc, (1, 1, 640, 960))
    s_conv = pyconv.summary(conv, (1, 1, 640, 960))
    assert s_fc.total_params == 640 * 960 * 4 + 4 == 2_457_604
    assert s_conv.total_params == 40
    row = s_conv.rows[0]
    assert row.output_shape == [1, 4, 638, 958]
    assert row.flops == 2 * 4 * 638 * 958 * 9 + 4 * 638 * 958
    assert row.bytes == 4 * (640 * 960 + 4 * 638 * 958 + 40)


def test_conv_and_transposed_flops():
    m = torch.nn.Sequential(pnn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2, bias=False), pnn.ReLU(),
                            pnn.ConvTranspose2d(16, 4, 2, stride=2), pnn.MaxPool2d(2), pnn.AdaptiveAvgPool2d(1))
    s = pyconv.summary(m, (2, 8, 10, 12))
    conv, relu, deconv, pool, gap = s.rows
    assert conv.output_shape == [2, 16, 5, 6] and conv.flops == 2 * (2 * 16 * 5 * 6) * (8 // 2) * 9
    assert relu.flops == 2 * 16 * 5 * 6
    assert deconv.output_shape == [2, 4, 10, 12]
    assert deconv.flops == 2 * (2 * 16 * 5 * 6) * 4 * 4 + 2 * 4 * 10 * 12
    assert pool.flops == 2 * 4 * 5 * 6 * 4 and gap.flops == 2 * 4 * 5 * 6
    assert (conv.weights, conv.biases, deconv.weights, deconv.biases) == (16 * 4 * 9, 0, 16 * 4 * 4, 4)
    assert s.total_flops == sum(r.flops for r in s.rows)


def test_resnet18_macs_and_shared_relu_counted_once():
    s = pyconv.summary(models.resnet18(), (1, 3, 224, 224))
    assert s.total_params == 11_689_512
    assert sum(r.params for r in s.rows) == s.total_params  # ResNet's reused relu adds no parameters twice
    macs = sum(r.flops for r in s.rows if r.type in ("Conv2d", "Linear")) / 2
    assert 1.81e9 < macs < 1.83e9  # the well-known 1.82 GMACs ("1.8 GFLOPs") of ResNet-18 at 224×224
    assert s.rows[-1].output_shape == [1, 1000]
    d = s.to_dict()
    assert d["total_params"] == 11_689_512 and len(d["layers"]) == len(s.rows)


def test_summary_restores_training_mode_and_checks_input():
    m = models.lenet5()
    m.train()
    pyconv.summary(m, (1, 1, 28, 28))
    assert m.training
    with pytest.raises(ValueError, match="input_shape"):
        pyconv.summary(m, (1, 0, 28, 28))
    with pytest.raises(TypeError):
        pyconv.summary("model", (1, 1, 28, 28))
