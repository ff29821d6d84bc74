"""pyconv: hand-written CNN kernels (CPU and CUDA) as real PyTorch custom ops.

    import torch, pyconv
    y = pyconv.functional.conv2d(x, w, b, stride=2, padding=1)   # same signature as torch.nn.functional.conv2d

The ops live in the ``torch.ops.pyconv`` namespace (``conv2d_fprop``, ``conv2d_dgrad``, ``conv2d_wgrad``,
``conv2d_bgrad``); autograd and fake (meta) kernels are registered in :mod:`pyconv._ops`.
"""
import torch  # noqa: F401  (must be imported before the extension: it links against libtorch)

from . import _C  # registers the pyconv:: ops with the dispatcher
from . import _ops  # noqa: F401  fake kernels and autograd
from . import functional  # noqa: F401

__version__ = _C.build_info()["version"]


def build_info():
    """How this pyconv was built and what it can run.

    Returns a dict: ``version``, ``cuda`` (CUDA kernels compiled in), ``cuda_version``, ``arch_list``, ``compiler``,
    ``torch_version_built``, ``ops``, ``algorithms`` (per device, per op family: the rungs of the ladder, fastest
    last), plus the runtime facts ``torch_version`` and ``cuda_available``.
    """
    info = dict(_C.build_info())
    info["torch_version"] = torch.__version__
    info["cuda_available"] = bool(info["cuda"] and torch.cuda.is_available())
    return info


__all__ = ["build_info", "functional", "__version__"]
