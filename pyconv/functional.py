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

from . import _ops, tuning
from ._ops import ops

__all__ = ["conv2d", "conv_transpose2d"]

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


def _check_conv_tensors(input, weight, op: str, weight_layout: str):
    if not isinstance(input, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{op}(): input and weight must be Tensors")
    if input.dim() not in (3, 4):
        raise RuntimeError(
            f"Expected 3D (unbatched) or 4D (batched) input to {op}, but got input of size: {list(input.shape)}")
    if weight.dim() != 4:
        raise RuntimeError(f"pyconv.{op}: expected 4-D weight {weight_layout}, but got weight of size "
                           f"{list(weight.shape)}")


_EPILOGUE_DEFAULT_PARAM = {"leaky_relu": 0.01, "elu": 1.0}


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOr2 = 1,
           padding: Union[str, _IntOr2] = 0, dilation: _IntOr2 = 1, groups: int = 1, *,
           activation: Optional[str] = None, activation_param: Optional[float] = None,
           residual: Optional[Tensor] = None, algo: str = "auto", backend: str = "auto") -> Tensor:
    r"""2-D convolution, as :func:`torch.nn.functional.conv2d`.

    Shapes: input (N, C, H, W) or unbatched (C, H, W); weight (K, C/groups, R, S); bias (K,) or None;
    output (N, K, P, Q) with P = ⌊(H + pad_top + pad_bottom − dilation·(R−1) − 1) / stride⌋ + 1 (same for Q).

    Any memory layout is accepted; the output is channels_last when the input is. float32/float64 everywhere,
    float16/bfloat16 on CUDA (accepted on CPU, computed in float32). Differentiable in input, weight and bias
    (twice, too).

    Fused epilogue: ``activation`` (any pyconv activation kind: relu, relu6, leaky_relu, elu, gelu, gelu_tanh, silu,
    sigmoid, tanh, hardswish, mish; ``activation_param`` is leaky_relu's negative_slope, default 0.01, or elu's
    alpha, default 1.0) and ``residual`` (a tensor of the output's shape, e.g. a ResNet shortcut) give
    ``activation(conv + bias + residual)`` from one kernel, without writing and re-reading the intermediate. Its
    backward recomputes the pre-activation with one more forward convolution.

    ``algo``: ``"auto"`` or a rung name from ``pyconv.build_info()["algorithms"][device]["conv2d"]``.
    ``backend``: ``"auto"``, or ``"emulator"`` to run the CUDA kernels on CPU tensors (``algo`` then names a CUDA
    rung, ``pyconv.build_info()["algorithms"]["emulator"]``); gradients are computed by emulated kernels too.
    """
    _check_conv_tensors(input, weight, "conv2d", "(K, C/groups, R, S)")
    stride = _pair(stride, "stride")
    dilation = _pair(dilation, "dilation")
    pad = _padding(padding, stride, dilation, weight)
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    if algo == "auto" and backend == "auto" and tuning._enabled:
        tuning.tune("fprop", x, x.shape, weight.shape, stride, pad, dilation, groups)
    if activation is None and residual is None:
        y = _ops_for(backend, x).conv2d_fprop(x, weight, bias, stride, pad, dilation, groups, algo)
    else:
        if residual is not None and not isinstance(residual, Tensor):
            raise TypeError(f"conv2d(): residual must be a Tensor, got {type(residual).__name__}")
        if residual is not None and unbatched:
            residual = residual.unsqueeze(0)
        kind = "none" if activation is None else str(activation)
        param = _EPILOGUE_DEFAULT_PARAM.get(kind, 0.0) if activation_param is None else float(activation_param)
        y = _ops_for(backend, x).conv2d_fprop_fused(x, weight, bias, residual, stride, pad, dilation, groups, kind,
                                                    param, algo)
    return y.squeeze(0) if unbatched else y


def _conv_transpose_output_size(input_size, weight, stride, padding, output_padding, dilation, output_size=None):
    """torch's rule for the output of a transposed convolution: (H−1)·stride − 2·padding + dilation·(R−1) + 1 +
    output_padding. ``output_size`` (what ``nn.ConvTranspose2d.forward`` takes) picks output_padding instead."""
    sizes = []
    for d in range(2):
        sizes.append((input_size[d + 2] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (weight.shape[d + 2] - 1) + 1)
    if output_size is None:
        return tuple(sizes[d] + output_padding[d] for d in range(2)), output_padding
    out = list(output_size)
    if len(out) == len(input_size):  # (N, C, H, W) or (C, H, W) given: keep the spatial part, as torch does
        out = out[-2:]
    if len(out) != 2:
        raise ValueError(f"ConvTranspose2D: for {len(input_size)}D input, output_size must have 2 or "
                         f"{len(input_size)} elements (got {len(output_size)})")
    for d in range(2):
        lo, hi = sizes[d], sizes[d] + stride[d] - 1
        if not lo <= out[d] <= hi:
            raise ValueError(f"requested an output size of {list(out)}, but valid sizes range from "
                             f"{[sizes[0], sizes[1]]} to {[sizes[0] + stride[0] - 1, sizes[1] + stride[1] - 1]} "
                             f"(for an input of {list(input_size[2:])})")
    return tuple(out), tuple(out[d] - sizes[d] for d in range(2))


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _IntOr2 = 1,
                     padding: _IntOr2 = 0, output_padding: _IntOr2 = 0, groups: int = 1, dilation: _IntOr2 = 1, *,
                     output_size: Optional[Sequence[int]] = None, algo: str = "auto", backend: str = "auto") -> Tensor:
    r"""2-D transposed convolution ("deconvolution"), as :func:`torch.nn.functional.conv_transpose2d`.

    A transposed convolution is the backward-input pass (dgrad) of the convolution that maps its *output* back to its
    input: weight (C_in, C_out/groups, R, S) is that convolution's (K, C/groups, R, S). So it runs pyconv's dgrad
    kernels; its own backward is fprop (w.r.t. input) and wgrad (w.r.t. weight).

    Output (N, C_out, H_out, W_out), H_out = (H−1)·stride − 2·padding + dilation·(R−1) + 1 + output_padding.
    ``output_padding`` (< stride or < dilation, as torch requires) only adds rows/columns at the bottom/right that
    the convolution's stride skipped; ``output_size`` may be given instead, as in ``nn.ConvTranspose2d.forward``.
    """
    _check_conv_tensors(input, weight, "conv_transpose2d", "(C_in, C_out/groups, R, S)")
    stride = _pair(stride, "stride")
    padding = _pair(padding, "padding")
    dilation = _pair(dilation, "dilation")
    output_padding = _pair(output_padding, "output_padding")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
        raise RuntimeError(f"non-positive groups is not supported (got groups={groups})")
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"non-positive stride is not supported (got stride={list(stride)})")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"dilation should be greater than zero, but got dilation={list(dilation)}")
    if any(p < 0 for p in padding):
        raise RuntimeError(f"negative padding is not supported (got padding={list(padding)})")
    if any(op < 0 or (op >= s and op >= d) for op, s, d in zip(output_padding, stride, dilation)):
        raise RuntimeError(
            f"output padding must be smaller than either stride or dilation, but got output_padding_height: "
            f"{output_padding[0]} output_padding_width: {output_padding[1]} stride_height: {stride[0]} stride_width: "
            f"{stride[1]} dilation_height: {dilation[0]} dilation_width: {dilation[1]}")
    unbatched = input.dim() == 3
    x = input.unsqueeze(0) if unbatched else input
    C_in = weight.shape[0]
    if C_in % groups != 0:
        raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, but "
                           f"got weight of size {list(weight.shape)} instead")
    if x.shape[1] != C_in:
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected input{list(x.shape)} "
                           f"to have {C_in} channels, but got {x.shape[1]} channels instead")
    C_out = weight.shape[1] * groups
    if bias is not None and (bias.dim() != 1 or bias.shape[0] != C_out):
        raise RuntimeError(f"Given transposed=1, weight of size {list(weight.shape)}, expected bias to be 1-dimensional "
                           f"with {C_out} elements, but got bias of size {list(bias.shape)} instead")
    (H_out, W_out), output_padding = _conv_transpose_output_size(x.shape, weight, stride, padding, output_padding,
                                                                 dilation, output_size)
    if H_out <= 0 or W_out <= 0:
        raise RuntimeError(f"Given input size per channel: ({x.shape[2]} x {x.shape[3]}). Calculated output size per "
                           f"channel: ({H_out} x {W_out}). Output size is too small")
    # The dgrad of the convolution that maps (H_out, W_out) back to (H, W). Only the top/left padding fixes which
    # output pixel each input pixel feeds (h_out = h·stride − padding + r·dilation); the bottom/right padding only has
    # to make that convolution's output size come out as H, so output_padding is absorbed there: bottom = padding −
    # output_padding. When output_padding exceeds padding that would be negative: use 0, and the rows no input pixel
    # reaches (possible only when output_padding − padding ≥ stride) are zeros, appended afterwards.
    pads, run = [], []
    for d, size in enumerate((H_out, W_out)):
        bottom = max(0, padding[d] - output_padding[d])
        extent = dilation[d] * (weight.shape[d + 2] - 1) + 1
        run.append(min(size, x.shape[d + 2] * stride[d] - 1 - padding[d] - bottom + extent))
        pads += [padding[d], bottom]
    y = _ops_for(backend, x).conv2d_dgrad(x, weight, (x.shape[0], C_out, run[0], run[1]), stride,
                                          pads if pads[0::2] != pads[1::2] else padding, dilation, groups, algo)
    if (run[0], run[1]) != (H_out, W_out):
        y = torch.nn.functional.pad(y, (0, W_out - run[1], 0, H_out - run[0]))
    if bias is not None:
        y = y + bias.view(1, -1, 1, 1)
    return y.squeeze(0) if unbatched else y


# ---- pooling ---------------------------------------------------------------------------------------------------------


def _pool_pair(v, op: str, what: str, allow_none: bool = False):
    if v is None and allow_none:
        return None
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    v = tuple(v)
    if allow_none and len(v) == 0:
        return None
    if len(v) == 1:
        return (v[0], v[0])
    if len(v) != 2:
        how = {"stride": "either be omitted, a single int, or a tuple of two ints",
               "dilation": "be either a single int, or a tuple of two ints"}.get(
                   what, "either be a single int, or a tuple of two ints")
        raise RuntimeError(f"{op}: {what} must {how}")
    return v


def _batched(input: Tensor, op: str):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}(): input must be a Tensor, got {type(input).__name__}")
    if input.dim() not in (3, 4):
        raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
    return (input.unsqueeze(0), True) if input.dim() == 3 else (input, False)


def max_pool2d(input: Tensor, kernel_size: _IntOr2, stride: Optional[_IntOr2] = None, padding: _IntOr2 = 0,
               dilation: _IntOr2 = 1, ceil_mode: bool = False, return_indices: bool = False, *,
               backend: str = "auto"):
    r"""2-D max pooling, as :func:`torch.nn.functional.max_pool2d`.

    Padding counts as −∞; a NaN in a window wins; ties take the first element. ``return_indices=True`` also returns
    the flat index ``h·W + w`` of each maximum within its plane (what :func:`torch.nn.functional.max_unpool2d` takes).
    The backward pass is deterministic (a gather, no atomics)."""
    k = _pool_pair(kernel_size, "max_pool2d", "kernel_size")
    st = _pool_pair(stride, "max_pool2d", "stride", allow_none=True) or k
    pad = _pool_pair(padding, "max_pool2d", "padding")
    dil = _pool_pair(dilation, "max_pool2d", "dilation")
    x, unbatched = _batched(input, "max_pool2d")
    y, idx = _ops_for(backend, x).max_pool2d(x, k, st, pad, dil, bool(ceil_mode))
    if unbatched:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def avg_pool2d(input: Tensor, kernel_size: _IntOr2, stride: Optional[_IntOr2] = None, padding: _IntOr2 = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: Optional[int] = None, *,
               backend: str = "auto") -> Tensor:
    r"""2-D average pooling, as :func:`torch.nn.functional.avg_pool2d` (same divisor rule: ``divisor_override`` if
    given, else the window clipped to the padded input (``count_include_pad``) or to the image). Deterministic
    backward."""
    k = _pool_pair(kernel_size, "avg_pool2d", "kernel_size")
    st = _pool_pair(stride, "avg_pool2d", "stride", allow_none=True) or k
    pad = _pool_pair(padding, "avg_pool2d", "padding")
    x, unbatched = _batched(input, "avg_pool2d")
    y = _ops_for(backend, x).avg_pool2d(x, k, st, pad, bool(ceil_mode), bool(count_include_pad), divisor_override)
    return y.squeeze(0) if unbatched else y


def _adaptive_size(output_size, x: Tensor, op: str):
    if isinstance(output_size, int) and not isinstance(output_size, bool):
        return (output_size, output_size)
    out = tuple(output_size)
    if len(out) != 2:
        raise RuntimeError(f"{op}: output_size must be 2")
    return tuple(x.shape[-2 + i] if v is None else v for i, v in enumerate(out))  # None: keep the input's size


def adaptive_avg_pool2d(input: Tensor, output_size, *, backend: str = "auto") -> Tensor:
    r"""Adaptive 2-D average pooling, as :func:`torch.nn.functional.adaptive_avg_pool2d`: window ``p`` covers rows
    ``⌊p·H/P⌋ … ⌈(p+1)·H/P⌉−1``. ``output_size`` may hold ``None`` (keep that input size). Output 1×1 (global average
    pooling) takes a reduction fast path on CUDA."""
    x, unbatched = _batched(input, "adaptive_avg_pool2d")
    y = _ops_for(backend, x).adaptive_avg_pool2d(x, _adaptive_size(output_size, x, "adaptive_avg_pool2d"))
    return y.squeeze(0) if unbatched else y


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False, *, backend: str = "auto"):
    r"""Adaptive 2-D max pooling, as :func:`torch.nn.functional.adaptive_max_pool2d` (indices as in max_pool2d)."""
    x, unbatched = _batched(input, "adaptive_max_pool2d")
    y, idx = _ops_for(backend, x).adaptive_max_pool2d(x, _adaptive_size(output_size, x, "adaptive_max_pool2d"))
    if unbatched:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


# ---- activations -----------------------------------------------------------------------------------------------------


def _act(input: Tensor, kind: str, param: float, inplace: bool, backend: str) -> Tensor:
    if not isinstance(input, Tensor):
        raise TypeError(f"{kind}(): input must be a Tensor, got {type(input).__name__}")
    ops_ = _ops_for(backend, input)
    if not inplace:
        return ops_.activation(input, kind, float(param))
    if torch.is_grad_enabled() and input.requires_grad:
        # Autograd needs the value the in-place op overwrites: compute out of place on a copy (the backward saves the
        # copy) and write back, which records the in-place write exactly as torch does (version counter bumped;
        # torch's error for a leaf that requires grad).
        return input.copy_(ops_.activation(input.clone(), kind, float(param)))
    ops_.activation_(input, kind, float(param))
    return input


def relu(input: Tensor, inplace: bool = False, *, backend: str = "auto") -> Tensor:
    """max(x, 0), as :func:`torch.nn.functional.relu` (NaN propagates)."""
    return _act(input, "relu", 0.0, inplace, backend)


def relu_(input: Tensor, *, backend: str = "auto") -> Tensor:
    return _act(input, "relu", 0.0, True, backend)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False, *, backend: str = "auto") -> Tensor:
    return _act(input, "leaky_relu", negative_slope, inplace, backend)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01, *, backend: str = "auto") -> Tensor:
    return _act(input, "leaky_relu", negative_slope, True, backend)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False, *, backend: str = "auto") -> Tensor:
    return _act(input, "elu", alpha, inplace, backend)


def elu_(input: Tensor, alpha: float = 1.0, *, backend: str = "auto") -> Tensor:
    return _act(input, "elu", alpha, True, backend)


def gelu(input: Tensor, approximate: str = "none", *, backend: str = "auto") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise RuntimeError("approximate argument must be either none or tanh.")
    return _act(input, "gelu" if approximate == "none" else "gelu_tanh", 0.0, False, backend)


def silu(input: Tensor, inplace: bool = False, *, backend: str = "auto") -> Tensor:
    return _act(input, "silu", 0.0, inplace, backend)


def sigmoid(input: Tensor, *, backend: str = "auto") -> Tensor:
    return _act(input, "sigmoid", 0.0, False, backend)


def tanh(input: Tensor, *, backend: str = "auto") -> Tensor:
    return _act(input, "tanh", 0.0, False, backend)


def hardswish(input: Tensor, inplace: bool = False, *, backend: str = "auto") -> Tensor:
    return _act(input, "hardswish", 0.0, inplace, backend)


def relu6(input: Tensor, inplace: bool = False, *, backend: str = "auto") -> Tensor:
    """min(max(x, 0), 6), as :func:`torch.nn.functional.relu6` (MobileNetV2's activation); gradient 0 at the kinks."""
    return _act(input, "relu6", 0.0, inplace, backend)


def mish(input: Tensor, inplace: bool = False, *, backend: str = "auto") -> Tensor:
    return _act(input, "mish", 0.0, inplace, backend)


__all__ += ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "relu", "relu_", "leaky_relu",
            "leaky_relu_", "elu", "elu_", "gelu", "silu", "sigmoid", "tanh", "hardswish", "mish", "relu6"]
