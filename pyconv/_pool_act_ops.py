"""Fake kernels and autograd for the pooling and activation ops (``pyconv::`` and, when built, ``pyconv_emu::``).

The fake kernels apply the C++ glue's checks and output rules (pooling_glue.h, activation_glue.h), so torch.compile
sees the shapes, strides and errors of eager mode. Every backward is a custom op of the same library.
"""
from __future__ import annotations

import torch

from ._ops import ACTIVATION_KINDS as ACTIVATIONS
from ._ops import _check_dtype, output_memory_format


def check_dtype(t, op, name="input"):
    _check_dtype(t, name, op)


def pool_output_size(size, k, pad, stride, dil, ceil_mode):
    """torch's pooling_output_shape (the same rule as pool_output_size in csrc/pooling/pool_params.h)."""
    span = size + 2 * pad - dil * (k - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pool_shape(input, k, st, pad, dil, ceil_mode, op):
    """The C++ checks of pool_shape(), same messages; returns (N, C, P, Q)."""
    check_dtype(input, op)
    if input.dim() != 4:
        raise RuntimeError(f"pyconv.{op}: expected a 4-D input (N, C, H, W), but got size {list(input.shape)}")
    if any(s == 0 for s in input.shape[1:]):
        raise RuntimeError(f"Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, but "
                           f"got:{list(input.shape)}")
    (kH, kW), (dH, dW), (pH, pW), (lH, lW) = k, st, pad, dil
    if kH <= 0 or kW <= 0:
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kH} kW: {kW}")
    if dH <= 0 or dW <= 0:
        raise RuntimeError(f"stride should be greater than zero, but got dH: {dH} dW: {dW}")
    if lH <= 0 or lW <= 0:
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: {lH} dilationW: {lW}")
    if pH < 0 or pW < 0:
        raise RuntimeError(f"pad must be non-negative, but got pad: {pH if pH < 0 else pW}")
    if kW // 2 < pW or kH // 2 < pH:
        raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but got padW = {pW}, "
                           f"padH = {pH}, kW = {kW}, kH = {kH}")
    N, C, H, W = input.shape
    P = pool_output_size(H, kH, pH, dH, lH, ceil_mode)
    Q = pool_output_size(W, kW, pW, dW, lW, ceil_mode)
    if P < 1 or Q < 1:
        raise RuntimeError(f"Given input size: ({C}x{H}x{W}). Calculated output size: ({C}x{P}x{Q}). "
                           f"Output size is too small")
    return N, C, P, Q


def adaptive_shape(input, out, op):
    check_dtype(input, op)
    if input.dim() != 4:
        raise RuntimeError(f"pyconv.{op}: expected a 4-D input (N, C, H, W), but got size {list(input.shape)}")
    for d in range(1, 4):
        if input.shape[d] == 0:
            raise RuntimeError(f"{op}(): Expected input to have non-zero size for non-batch dimensions, but input "
                               f"has sizes {list(input.shape)} with dimension {d} being empty")
    if len(out) != 2:
        raise RuntimeError(f"{op}: output_size must be 2")
    if out[0] < 0 or out[1] < 0:
        raise RuntimeError(f"{op}: elements of output_size must be greater than or equal to 0 but received "
                           f"{{{out[0]}, {out[1]}}}")
    return input.shape[0], input.shape[1], out[0], out[1]


def _empty(shape, like, dtype=None):
    return torch.empty(shape, dtype=dtype or like.dtype, device=like.device,
                       memory_format=output_memory_format(like))


def register(ns):
    ops = getattr(torch.ops, ns)

    # ---- fake kernels ----
    def max_pool2d_fake(input, kernel_size, stride, padding, dilation, ceil_mode):
        shape = pool_shape(input, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
        return _empty(shape, input), _empty(shape, input, torch.int64)

    def avg_pool2d_fake(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
        if divisor_override is not None and divisor_override == 0:
            raise RuntimeError("divisor must be not zero")
        return _empty(pool_shape(input, kernel_size, stride, padding, (1, 1), ceil_mode, "avg_pool2d"), input)

    def adaptive_avg_fake(input, output_size):
        return _empty(adaptive_shape(input, output_size, "adaptive_avg_pool2d"), input)

    def adaptive_max_fake(input, output_size):
        shape = adaptive_shape(input, output_size, "adaptive_max_pool2d")
        return _empty(shape, input), _empty(shape, input, torch.int64)

    def like_input(grad_output, input, *args):
        return _empty(tuple(input.shape), input)

    def activation_fake(input, kind, param=0.0):
        if kind not in ACTIVATIONS:
            raise RuntimeError(f"pyconv.activation: unknown kind '{kind}'; expected one of {', '.join(ACTIVATIONS)}")
        check_dtype(input, "activation")
        return torch.empty_like(input) if _dense(input) else torch.empty_like(input, memory_format=torch.contiguous_format)

    def activation_inplace_fake(self, kind, param=0.0):
        if kind not in ACTIVATIONS:
            raise RuntimeError(f"pyconv.activation: unknown kind '{kind}'; expected one of {', '.join(ACTIVATIONS)}")
        check_dtype(self, "activation_", "self")

    def activation_backward_fake(grad_output, input, kind, param=0.0):
        same = _dense(input) and grad_output.stride() == input.stride()
        return torch.empty_like(input) if same else torch.empty_like(input, memory_format=torch.contiguous_format)

    for name, fake in (("max_pool2d", max_pool2d_fake), ("avg_pool2d", avg_pool2d_fake),
                       ("adaptive_avg_pool2d", adaptive_avg_fake), ("adaptive_max_pool2d", adaptive_max_fake),
                       ("max_pool2d_backward", like_input), ("avg_pool2d_backward", like_input),
                       ("adaptive_avg_pool2d_backward", like_input), ("adaptive_max_pool2d_backward", like_input),
                       ("activation", activation_fake), ("activation_", activation_inplace_fake),
                       ("activation_backward", activation_backward_fake)):
        torch.library.register_fake(f"{ns}::{name}", fake)

    # ---- autograd: every backward is a gather kernel of the same library ----
    def max_setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output[1])
        ctx.args = inputs[1:]
        ctx.mark_non_differentiable(output[1])
        # Without this autograd would hand backward a zero-filled int64 "gradient" of the indices (as large as the
        # output, 8 bytes an element): a third of the backward's time for nothing.
        ctx.set_materialize_grads(False)

    def max_backward(ctx, grad, _grad_indices):
        input, indices = ctx.saved_tensors
        if grad is None:  # only the indices were used downstream
            return (None,) * (1 + len(ctx.args))
        return (ops.max_pool2d_backward(grad, input, indices, *ctx.args),) + (None,) * len(ctx.args)

    def avg_setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.args = inputs[1:]

    def avg_backward(ctx, grad):
        (input,) = ctx.saved_tensors
        return (ops.avg_pool2d_backward(grad, input, *ctx.args),) + (None,) * len(ctx.args)

    def adaptive_avg_backward(ctx, grad):
        (input,) = ctx.saved_tensors
        return ops.adaptive_avg_pool2d_backward(grad, input), None

    def adaptive_max_backward(ctx, grad, _grad_indices):
        input, indices = ctx.saved_tensors
        if grad is None:
            return None, None
        return ops.adaptive_max_pool2d_backward(grad, input, indices), None

    def act_setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.kind, ctx.param = inputs[1], inputs[2] if len(inputs) > 2 else 0.0

    def act_backward(ctx, grad):
        (input,) = ctx.saved_tensors
        return ops.activation_backward(grad, input, ctx.kind, ctx.param), None, None

    torch.library.register_autograd(f"{ns}::max_pool2d", max_backward, setup_context=max_setup)
    torch.library.register_autograd(f"{ns}::avg_pool2d", avg_backward, setup_context=avg_setup)
    torch.library.register_autograd(f"{ns}::adaptive_avg_pool2d", adaptive_avg_backward, setup_context=avg_setup)
    torch.library.register_autograd(f"{ns}::adaptive_max_pool2d", adaptive_max_backward, setup_context=max_setup)
    torch.library.register_autograd(f"{ns}::activation", act_backward, setup_context=act_setup)


def _dense(t):
    """Mirror of Tensor::is_non_overlapping_and_dense for the layouts that occur (a permutation of a contiguous
    tensor): the C++ glue keeps such layouts and makes everything else contiguous."""
    if t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)):
        return True
    perm = sorted(range(t.dim()), key=lambda d: t.stride(d))
    expected = 1
    for d in perm:
        if t.shape[d] != 1 and t.stride(d) != expected:
            return False
        expected *= t.shape[d]
    return True
