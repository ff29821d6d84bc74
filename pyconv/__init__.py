"""pyconv: hand-written CNN kernels (CPU and CUDA) as real PyTorch custom ops.

    import torch, pyconv
    y = pyconv.functional.conv2d(x, w, b, stride=2, padding=1)   # same signature as torch.nn.functional.conv2d
    conv = pyconv.nn.Conv2d(3, 64, 3, padding=1)                   # a torch.nn.Conv2d that runs pyconv's kernels
    model, report = pyconv.convert(torchvision_model)              # swap the layers of an existing model
    print(pyconv.summary(pyconv.models.resnet18(), (1, 3, 224, 224)))

The ops live in the ``torch.ops.pyconv`` namespace (``conv2d_fprop``, ``conv2d_dgrad``, ``conv2d_wgrad``,
``conv2d_bgrad``); autograd and fake (meta) kernels are registered in :mod:`pyconv._ops`. The CUDA kernels also run on
the CPU under :mod:`pyconv.emulator` (``torch.ops.pyconv_emu``; ``backend="emulator"`` in :mod:`pyconv.functional`).
"""
import torch  # noqa: F401  (must be imported before the extension: it links against libtorch)

from . import _C  # registers the pyconv:: ops with the dispatcher
from . import _ops  # noqa: F401  fake kernels and autograd (and loads pyconv._C_emu when it was built)
from . import emulator  # noqa: F401
from . import functional  # noqa: F401
from . import tuning  # noqa: F401
from . import nn  # noqa: F401
from . import models  # noqa: F401
from ._convert import ConvertReport, convert  # noqa: F401
from ._summary import ModelSummary, summary  # noqa: F401
from ._fuse import FusedConv2d, FuseReport, fuse  # noqa: F401

__version__ = _C.build_info()["version"]


def build_info():
    """How this pyconv was built and what it can run.

    Returns a dict: ``version``, ``cuda`` (CUDA kernels compiled in), ``cuda_version``, ``arch_list``, ``compiler``,
    ``torch_version_built``, ``ops``, ``algorithms`` (per device, per op family: the rungs of the ladder, fastest
    last; key ``"emulator"`` for the CUDA kernels on the CPU emulator), ``algorithm_dtypes`` (per op family: the rungs
    that accept only some dtypes, e.g. ``tensor_core*``: float16/bfloat16; any other rung takes every floating dtype),
    ``emulator`` (whether it was built), plus the runtime facts ``torch_version`` and ``cuda_available``.
    """
    info = dict(_C.build_info())
    info["emulator"] = emulator.available()
    if info["emulator"]:
        info["algorithms"] = dict(info["algorithms"])
        info["algorithms"]["emulator"] = dict(emulator.build_info()["algorithms"])
    info["algorithm_dtypes"] = {k: dict(v) for k, v in dict(info["algorithm_dtypes"]).items()}
    info["torch_version"] = torch.__version__
    info["cuda_available"] = bool(info["cuda"] and torch.cuda.is_available())
    return info


__all__ = ["build_info", "emulator", "functional", "tuning", "nn", "models", "convert", "ConvertReport", "summary",
           "ModelSummary", "fuse", "FusedConv2d", "FuseReport", "__version__"]
