"""Drop-in replacements for ``torch.nn.functional``: same signatures, same results, same errors.

Every function takes two extra keywords: ``algo`` (default ``"auto"``) selects the kernel variant (see
``pyconv.build_info()["algorithms"]`` for what each device offers), and ``backend``: ``"auto"`` runs pyconv's kernels
for the tensors' device; ``"emulator"`` runs the *CUDA* kernels on CPU tensors through the CPU emulator
(:mod:`pyconv.emulator`), for studying and testing them without a GPU.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from . import _ops
from ._ops import ops

__all__ = ["conv2d"]

_IntOr2 = Union[int, Sequence[int]]


def _pair(v, name: str):
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    if len(v) == 1:
        return (v[0], v[0])
    if len(v) != 2:
        raise RuntimeError(f"expected {name} to be a single integer value or a list of 2 values to match the "
                           f"convolution dimensions, but got {name}={list(v)}")
    return v


def _padding(padding, stride, dilation, weight):
    """Normalises padding to 2 (symmetric) or 4 (top, bottom, left, right) ints, as the ops take it."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if padding != "same":
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        if any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        # Output size = input size: the dilated kernel's extent minus one is split, any odd unit going to the
        # bottom/right, which is what torch does.
        tot_h, tot_w = dilation[0] * (weight.shape[2] - 1), dilation[1] * (weight.shape[3] - 1)
        top, left = tot_h // 2, tot_w // 2
        if tot_h % 2 == 0 and tot_w % 2 == 0:
            return (top, left)
        return (top, tot_h - top, left, tot_w - left)
    return _pair(padding, "padding")


def _ops_for(backend: str, t: Tensor):
    if backend == "auto":
        return ops
    if backend == "emulator":
        if _ops._C_emu is None:
            raise RuntimeError("pyconv: backend='emulator' is not available: pyconv was built without the CUDA "
                               "emulator (CUDA's headers were not found at build time)")
        if t.device.type != "cpu":
            raise RuntimeError(f"pyconv: backend='emulator' runs the CUDA kernels on the CPU and takes CPU tensors, "
                               f"but got a tensor on {t.device}")
        return torch.ops.pyconv_emu
    raise ValueError(f"pyconv: unknown backend {backend!r}; expected 'auto' or 'emulator'")


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOr2 = 1,
           padding: Union[str, _IntOr2] = 0, dilation: _IntOr2 = 1, groups: int = 1, *, algo: str = "auto",
           backend: str = "auto") -> Tensor:
    r"""2-D convolution, as :func:`torch.nn.functional.conv2d`.

    Shapes: input (N, C, H, W) or unbatched (C, H, W); weight (K, C/groups, R, S); bias (K,) or None;
    output (N, K, P, Q) with P = ⌊(H + pad_top + pad_bottom − dilation·(R−1) − 1) / stride⌋ + 1 (same for Q).

    Any memory layout is accepted; the output is channels_last when the input is. float32/float64 everywhere,
    float16/bfloat16 on CUDA (accepted on CPU, computed in float32). Differentiable in input, weight and bias
    (twice, too).

    ``algo``: ``"auto"`` or a rung name from ``pyconv.build_info()["algorithms"][device]["conv2d"]``.
    ``backend``: ``"auto"``, or ``"emulator"`` to run the CUDA kernels on CPU tensors (``algo`` then names a CUDA
    rung, ``pyconv.build_info()["algorithms"]["emulator"]``); gradients are computed by emulated kernels too.
    """
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError("conv2d(): input and weight must be Tensors")
    if input.dim() not in (3, 4):
        raise RuntimeError(
            f"Expected 3D (unbatched) or 4D (batched) input to conv2d, but got input of size: {list(input.shape)}")
    if weight.dim() != 4:
        raise RuntimeError(f"pyconv.conv2d: expected 4-D weight (K, C/groups, R, S), but got weight of size "
                           f"{list(weight.shape)}")
    stride = _pair(stride, "stride")
    dilation = _pair(dilation, "dilation")
    pad = _padding(padding, stride, dilation, weight)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    y = _ops_for(backend, x).conv2d_fprop(x, weight, bias, stride, pad, dilation, groups, algo)
    return y.squeeze(0) if unbatched else y
