"""Fake kernels and autograd for the pyconv:: ops (the C++ side only declares schemas and device kernels).

The fake kernels mirror the C++ checks (same messages) and the C++ output-layout rule, so torch.compile sees the same
errors, shapes and strides as eager mode. The same registrations are made for the ``pyconv_emu::`` library (the CUDA
kernels on the CPU emulator, when pyconv._C_emu is built): its backward runs on the emulator too.
"""
from __future__ import annotations

import torch

from . import tuning

ops = torch.ops.pyconv

# The activation kinds of pyconv::activation (csrc/activation/activation_glue.h), also the fused conv epilogues'.
ACTIVATION_KINDS = ("relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh", "hardswish", "mish",
                    "relu6")


def _pads(padding):
    """2 entries (symmetric) or 4 entries (top, bottom, left, right) → (top, bottom, left, right)."""
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    if len(padding) == 4:
        return tuple(padding)
    raise RuntimeError(
        f"pyconv.conv2d: expected padding to have 2 (symmetric) or 4 (top, bottom, left, right) elements, "
        f"but got {len(padding)}")


def conv2d_output_size(input_size, weight_size, stride, padding, dilation, groups):
    """Checks one convolution's geometry the way the C++ glue does and returns (N, K, P, Q)."""
    if len(stride) != 2:
        raise RuntimeError(f"pyconv.conv2d: expected stride to have 2 elements, but got {len(stride)}")
    if len(dilation) != 2:
        raise RuntimeError(f"pyconv.conv2d: expected dilation to have 2 elements, but got {len(dilation)}")
    top, bottom, left, right = _pads(padding)
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"pyconv.conv2d: non-positive stride is not supported (got stride={list(stride)})")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"pyconv.conv2d: non-positive dilation is not supported (got dilation={list(dilation)})")
    if min(top, bottom, left, right) < 0:
        raise RuntimeError(f"pyconv.conv2d: negative padding is not supported (got padding={list(padding)})")
    if groups <= 0:
        raise RuntimeError(f"pyconv.conv2d: non-positive groups is not supported (got groups={groups})")
    if len(input_size) != 4:
        raise RuntimeError(f"pyconv.conv2d: expected 4-D input (N, C, H, W), but got input of size {list(input_size)}")
    if len(weight_size) != 4:
        raise RuntimeError(
            f"pyconv.conv2d: expected 4-D weight (K, C/groups, R, S), but got weight of size {list(weight_size)}")
    N, C, H, W = input_size
    K, Cg, R, S = weight_size
    if K % groups != 0:
        raise RuntimeError(
            f"pyconv.conv2d: Given groups={groups}, expected weight to be divisible by {groups} at dimension 0, "
            f"but got weight of size {list(weight_size)} instead")
    if C != Cg * groups:
        raise RuntimeError(
            f"pyconv.conv2d: Given groups={groups}, weight of size {list(weight_size)}, expected "
            f"input{list(input_size)} to have {Cg * groups} channels, but got {C} channels instead")
    ph, pw = H + top + bottom, W + left + right
    er, es = dilation[0] * (R - 1) + 1, dilation[1] * (S - 1) + 1
    if ph < er or pw < es:
        raise RuntimeError(
            f"pyconv.conv2d: Calculated padded input size per channel: ({ph} x {pw}). Kernel size: ({er} x {es}). "
            f"Kernel size can't be greater than actual input size")
    return N, K, (ph - er) // stride[0] + 1, (pw - es) // stride[1] + 1


_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _check_dtype(t, name, op="conv2d"):
    """The C++ check_float_dtype (csrc/common/torch_glue.h), same message; shared by every op's fake kernel."""
    if t.dtype not in _DTYPES:
        raise RuntimeError(f"pyconv.{op}: {name} has unsupported dtype {t.dtype}; expected float32, float64, "
                           f"float16 or bfloat16")


def _check_same(a, an, b, bn):
    if a.dtype != b.dtype:
        raise RuntimeError(f"pyconv.conv2d: expected {an} and {bn} to have the same dtype, but got {an} of dtype "
                           f"{a.dtype} and {bn} of dtype {b.dtype}")
    if a.device != b.device:
        raise RuntimeError(f"pyconv.conv2d: expected {an} and {bn} to be on the same device, but got {an} on "
                           f"{a.device} and {bn} on {b.device}")


def output_memory_format(t):
    """The C++ rule (csrc/conv2d/conv2d_glue.h): channels_last iff t is channels_last- but not NCHW-contiguous."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _check_grad_output(grad_output, expected):
    if grad_output.dim() != 4 or tuple(grad_output.shape) != tuple(expected):
        raise RuntimeError(f"pyconv.conv2d: expected grad_output of size {list(expected)} for this convolution, "
                           f"but got {list(grad_output.shape)}")


def _fprop_fake(input, weight, bias, stride, padding, dilation, groups, algo="auto"):
    _check_dtype(input, "input")
    _check_same(input, "input", weight, "weight")
    shape = conv2d_output_size(input.shape, weight.shape, stride, padding, dilation, groups)
    if bias is not None:
        _check_same(input, "input", bias, "bias")
        if bias.dim() != 1 or bias.shape[0] != shape[1]:
            raise RuntimeError(f"pyconv.conv2d: expected bias of size [{shape[1]}], but got bias of size "
                               f"{list(bias.shape)}")
    return torch.empty(shape, dtype=input.dtype, device=input.device, memory_format=output_memory_format(input))


def _fprop_fused_fake(input, weight, bias, residual, stride, padding, dilation, groups, activation="none", param=0.0,
                      algo="auto"):
    out = _fprop_fake(input, weight, bias, stride, padding, dilation, groups, algo)
    if residual is not None:
        _check_same(input, "input", residual, "residual")
        if tuple(residual.shape) != tuple(out.shape):
            raise RuntimeError(f"pyconv.conv2d: expected residual of size {list(out.shape)} (the output's), but got "
                               f"{list(residual.shape)}")
    if activation != "none" and activation not in ACTIVATION_KINDS:
        raise RuntimeError(f"pyconv.activation: unknown kind '{activation}'; expected one of "
                           f"{', '.join(ACTIVATION_KINDS)}")
    return out


def _dgrad_fake(grad_output, weight, input_size, stride, padding, dilation, groups, algo="auto"):
    _check_dtype(grad_output, "grad_output")
    _check_same(grad_output, "grad_output", weight, "weight")
    _check_grad_output(grad_output, conv2d_output_size(input_size, weight.shape, stride, padding, dilation, groups))
    return torch.empty(tuple(input_size), dtype=grad_output.dtype, device=grad_output.device,
                       memory_format=output_memory_format(grad_output))


def _wgrad_fake(grad_output, input, weight_size, stride, padding, dilation, groups, algo="auto"):
    _check_dtype(grad_output, "grad_output")
    _check_same(grad_output, "grad_output", input, "input")
    _check_grad_output(grad_output, conv2d_output_size(input.shape, weight_size, stride, padding, dilation, groups))
    # dw in the input's layout (csrc/conv2d/conv2d_glue.h: wgrad_format)
    return torch.empty(tuple(weight_size), dtype=grad_output.dtype, device=grad_output.device,
                       memory_format=output_memory_format(input))


def _bgrad_fake(grad_output):
    _check_dtype(grad_output, "grad_output")
    if grad_output.dim() != 4:
        raise RuntimeError(f"pyconv.conv2d: expected 4-D grad_output, but got size {list(grad_output.shape)}")
    return grad_output.new_empty((grad_output.shape[1],))


# ---- autograd -------------------------------------------------------------------------------------------------------
# y = conv(x, w) + b is linear in each of x, w, b, so its backward is three more convolutions-shaped ops:
#   dx = dgrad(dy, w)      dw = wgrad(dy, x)      db = Σ_{n,p,q} dy
# and, because dgrad and wgrad are themselves linear in both their tensor arguments, their own derivatives are again
# fprop/dgrad/wgrad; registering those makes double backward (gradgradcheck, Hessian-vector products) work too.


def _register(ns):
    """Fake kernels and autograd for the conv2d ops of library `ns` ("pyconv" or "pyconv_emu"). Backward formulas call
    the ops of the same library, so an emulated forward has an emulated backward."""
    ops = getattr(torch.ops, ns)

    def _fprop_setup(ctx, inputs, output):
        input, weight, bias, stride, padding, dilation, groups, algo = inputs
        ctx.save_for_backward(input, weight)
        ctx.geometry = (stride, padding, dilation, groups, algo)
        ctx.has_bias = bias is not None


    def _tune_backward(algo, grad, input, weight, stride, padding, dilation, groups, needs):
        # algo="auto" with the autotuner on: time the gradient rungs on first use, as the forward did.
        if ns == "pyconv" and algo == "auto" and tuning._enabled:
            for direction, needed in (("dgrad", needs[0]), ("wgrad", needs[1])):
                if needed:
                    tuning.tune(direction, grad, input.shape, weight.shape, stride, padding, dilation, groups)

    def _fprop_backward(ctx, grad):
        input, weight = ctx.saved_tensors
        stride, padding, dilation, groups, algo = ctx.geometry
        _tune_backward(algo, grad, input, weight, stride, padding, dilation, groups, ctx.needs_input_grad)
        gi = gw = gb = None
        if ctx.needs_input_grad[0]:
            gi = ops.conv2d_dgrad(grad, weight, input.shape, stride, padding, dilation, groups, algo)
        if ctx.needs_input_grad[1]:
            gw = ops.conv2d_wgrad(grad, input, weight.shape, stride, padding, dilation, groups, algo)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = ops.conv2d_bgrad(grad)
        return gi, gw, gb, None, None, None, None, None


    def _fused_setup(ctx, inputs, output):
        input, weight, bias, residual, stride, padding, dilation, groups, activation, param, algo = inputs
        ctx.save_for_backward(input, weight, bias, residual)
        ctx.geometry = (stride, padding, dilation, groups, algo)
        ctx.act = (activation, param)

    def _fused_backward(ctx, grad):
        # y = act(z), z = conv(x, w) + b + r. The kernel keeps no z (that is the point of fusing), so the backward
        # recomputes it with one more forward convolution, then: gz = act'(z)·gy, and the conv's three gradients of
        # gz; the residual's gradient is gz itself.
        input, weight, bias, residual = ctx.saved_tensors
        stride, padding, dilation, groups, algo = ctx.geometry
        activation, param = ctx.act
        gz = grad
        if activation != "none":
            z = ops.conv2d_fprop_fused(input, weight, bias, residual, stride, padding, dilation, groups, "none", 0.0,
                                       algo)
            gz = ops.activation_backward(grad, z, activation, param)
        _tune_backward(algo, gz, input, weight, stride, padding, dilation, groups, ctx.needs_input_grad)
        gi = gw = gb = None
        if ctx.needs_input_grad[0]:
            gi = ops.conv2d_dgrad(gz, weight, input.shape, stride, padding, dilation, groups, algo)
        if ctx.needs_input_grad[1]:
            gw = ops.conv2d_wgrad(gz, input, weight.shape, stride, padding, dilation, groups, algo)
        if bias is not None and ctx.needs_input_grad[2]:
            gb = ops.conv2d_bgrad(gz)
        gr = gz if residual is not None and ctx.needs_input_grad[3] else None
        return gi, gw, gb, gr, None, None, None, None, None, None, None

    def _dgrad_setup(ctx, inputs, output):
        grad_output, weight, input_size, stride, padding, dilation, groups, algo = inputs
        ctx.save_for_backward(grad_output, weight)
        ctx.geometry = (stride, padding, dilation, groups, algo)


    def _dgrad_backward(ctx, ggi):
        # dgrad(dy, w) = (∂fprop/∂x)ᵀ dy; its adjoint w.r.t. dy is fprop(ggi, w) and w.r.t. w is wgrad(dy, ggi).
        grad_output, weight = ctx.saved_tensors
        stride, padding, dilation, groups, algo = ctx.geometry
        g_go = g_w = None
        if ctx.needs_input_grad[0]:
            g_go = ops.conv2d_fprop(ggi, weight, None, stride, padding, dilation, groups, algo)
        if ctx.needs_input_grad[1]:
            g_w = ops.conv2d_wgrad(grad_output, ggi, weight.shape, stride, padding, dilation, groups, algo)
        return g_go, g_w, None, None, None, None, None, None


    def _wgrad_setup(ctx, inputs, output):
        grad_output, input, weight_size, stride, padding, dilation, groups, algo = inputs
        ctx.save_for_backward(grad_output, input)
        ctx.geometry = (stride, padding, dilation, groups, algo)


    def _wgrad_backward(ctx, ggw):
        # wgrad(dy, x) is bilinear: w.r.t. dy its adjoint is fprop(x, ggw); w.r.t. x it is dgrad(dy, ggw).
        grad_output, input = ctx.saved_tensors
        stride, padding, dilation, groups, algo = ctx.geometry
        g_go = g_in = None
        if ctx.needs_input_grad[0]:
            g_go = ops.conv2d_fprop(input, ggw, None, stride, padding, dilation, groups, algo)
        if ctx.needs_input_grad[1]:
            g_in = ops.conv2d_dgrad(grad_output, ggw, input.shape, stride, padding, dilation, groups, algo)
        return g_go, g_in, None, None, None, None, None, None


    def _bgrad_setup(ctx, inputs, output):
        ctx.grad_output_shape = inputs[0].shape


    def _bgrad_backward(ctx, ggb):
        # db = Σ_{n,p,q} dy  ⇒  its adjoint broadcasts ggb back over (N, P, Q).
        return ggb.view(1, -1, 1, 1).expand(ctx.grad_output_shape)

    for name, fake in (("conv2d_fprop", _fprop_fake), ("conv2d_fprop_fused", _fprop_fused_fake),
                       ("conv2d_dgrad", _dgrad_fake), ("conv2d_wgrad", _wgrad_fake),
                       ("conv2d_bgrad", _bgrad_fake)):
        torch.library.register_fake(f"{ns}::{name}", fake)
    torch.library.register_autograd(f"{ns}::conv2d_fprop", _fprop_backward, setup_context=_fprop_setup)
    torch.library.register_autograd(f"{ns}::conv2d_fprop_fused", _fused_backward, setup_context=_fused_setup)
    torch.library.register_autograd(f"{ns}::conv2d_dgrad", _dgrad_backward, setup_context=_dgrad_setup)
    torch.library.register_autograd(f"{ns}::conv2d_wgrad", _wgrad_backward, setup_context=_wgrad_setup)
    torch.library.register_autograd(f"{ns}::conv2d_bgrad", _bgrad_backward, setup_context=_bgrad_setup)


def _register_all(ns):
    from . import _pool_act_ops

    _register(ns)
    _pool_act_ops.register(ns)


_register_all("pyconv")
try:
    from . import _C_emu  # noqa: F401  declares the pyconv_emu:: library
except ImportError:  # built without the emulator (no CUDA headers, or PYCONV_EMU=0)
    _C_emu = None
else:
    _register_all("pyconv_emu")
