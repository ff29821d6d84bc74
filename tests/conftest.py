import pytest
import torch

import pyconv

HAS_CUDA = pyconv.build_info()["cuda_available"]
DEVICES = ["cpu"] + (["cuda"] if HAS_CUDA else [])


def algos(device):
    return pyconv.build_info()["algorithms"][device]["conv2d"]


def general_algos(device):
    """The conv2d rungs of `device` that take every floating dtype and every shape: not the float16/bfloat16-only
    tensor-core ones (tests/test_tensor_core.py), nor 'depthwise', which needs C/groups == 1 (tests/test_depthwise.py),
    nor 'winograd', which needs a 3x3 stride-1 dilation-1 convolution (tests/test_winograd.py)."""
    only = pyconv.build_info()["algorithm_dtypes"]["conv2d"]
    return [a for a in algos(device) if a not in only and a not in ("depthwise", "winograd")]


def cpu_ref(fn, *args, **kwargs):
    """torch's result for fn(*args) computed on the CPU, returned on the device of the first tensor argument.

    The reference semantics are torch's CPU kernels: torch's own CUDA kernels depart from them in places pyconv does
    not copy (torch 2.11, seen on an H200): float64 hardswish multiplies by a float32 1/6 (3e-8 relative error),
    hardswish's gradient at x = 3 is 1.5·g instead of g, elu's gradient at a NaN input is g instead of NaN, and the
    channels_last avg_pool2d backward with padding > 0 is wrong (pytorch/pytorch#188344, fixed after 2.11). Tensors
    move with .cpu() / .to(), which autograd differentiates, so gradients of the result reach the original inputs."""
    dev = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
    if dev.type == "cpu":
        return fn(*args, **kwargs)
    out = fn(*[a.cpu() if isinstance(a, torch.Tensor) else a for a in args], **kwargs)
    return out.to(dev) if isinstance(out, torch.Tensor) else type(out)(o.to(dev) for o in out)


def pytest_report_header(config):
    info = pyconv.build_info()
    return [f"pyconv {info['version']}: cuda compiled={info['cuda']} available={info['cuda_available']} "
            f"arch={info['arch_list']!r} algorithms={info['algorithms']}"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
