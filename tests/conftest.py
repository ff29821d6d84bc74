import pytest
import torch

import pyconv

HAS_CUDA = pyconv.build_info()["cuda_available"]
DEVICES = ["cpu"] + (["cuda"] if HAS_CUDA else [])


def algos(device):
    return pyconv.build_info()["algorithms"][device]["conv2d"]


def general_algos(device):
    """The conv2d rungs of `device` that take every floating dtype and every shape: not the float16/bfloat16-only
    tensor-core ones (tests/test_tensor_core.py) nor 'depthwise', which needs C/groups == 1 (tests/test_depthwise.py)."""
    only = pyconv.build_info()["algorithm_dtypes"]["conv2d"]
    return [a for a in algos(device) if a not in only and a != "depthwise"]


def pytest_report_header(config):
    info = pyconv.build_info()
    return [f"pyconv {info['version']}: cuda compiled={info['cuda']} available={info['cuda_available']} "
            f"arch={info['arch_list']!r} algorithms={info['algorithms']}"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
