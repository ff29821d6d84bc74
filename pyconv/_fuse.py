"""``pyconv.fuse(model)``: fold inference-mode BatchNorm into the convolutions and fuse conv → BN → activation (→ add)
chains into single fused-epilogue convolutions (:class:`FusedConv2d`, running ``pyconv::conv2d_fprop_fused``).

The model is traced with ``torch.fx`` (pyconv and torch.nn layers are kept as leaves, pyconv.functional calls as
single nodes), and these chains are rewritten, each into one FusedConv2d call:

    Conv2d → [BatchNorm2d] → [add(·, other)] → [activation]          (at least one of the bracketed parts)

where the add is a ResNet / MobileNetV2 shortcut (``x + identity``, ``out += identity``, ``torch.add``) whose other
operand becomes the fused kernel's residual, and the activation is any pyconv activation (module or ``F.relu``-style
call). BatchNorm folds exactly: w' = w·γ/√(σ²+ε) per output channel, b' = (b − μ)·γ/√(σ²+ε) + β, so it needs running
statistics and eval mode. Every intermediate of a chain must have no other user (else it is left alone).
"""
from __future__ import annotations

import collections
import copy
import dataclasses
import math
import operator
from typing import Dict, Optional

import torch
import torch.fx

from . import functional as PF

# activation module class → (kind, how to read its parameter)
_ACT_MODULES = [
    (torch.nn.ReLU6, "relu6", None), (torch.nn.ReLU, "relu", None),
    (torch.nn.LeakyReLU, "leaky_relu", lambda m: m.negative_slope), (torch.nn.ELU, "elu", lambda m: m.alpha),
    (torch.nn.GELU, None, None), (torch.nn.SiLU, "silu", None), (torch.nn.Sigmoid, "sigmoid", None),
    (torch.nn.Tanh, "tanh", None), (torch.nn.Hardswish, "hardswish", None), (torch.nn.Mish, "mish", None),
]
_ACT_FUNCTIONS = {torch.relu: "relu", torch.nn.functional.relu: "relu", PF.relu: "relu",
                  torch.nn.functional.relu6: "relu6", PF.relu6: "relu6", torch.sigmoid: "sigmoid",
                  torch.tanh: "tanh", torch.nn.functional.silu: "silu", PF.silu: "silu",
                  torch.nn.functional.hardswish: "hardswish", PF.hardswish: "hardswish",
                  torch.nn.functional.mish: "mish", PF.mish: "mish"}
_ADDS = (operator.add, operator.iadd, torch.add)


class FusedConv2d(torch.nn.Module):
    """A convolution with a fused epilogue: ``activation(conv(x) + bias + residual)`` in one pyconv kernel. Made by
    :func:`fuse`; ``forward(x, residual=None)``."""

    def __init__(self, conv: torch.nn.Conv2d, weight: torch.Tensor, bias: Optional[torch.Tensor],
                 activation: Optional[str], activation_param: Optional[float], has_residual: bool):
        super().__init__()
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        self.activation, self.activation_param, self.has_residual = activation, activation_param, has_residual
        self.algo = getattr(conv, "algo", "auto")
        self.backend = getattr(conv, "backend", "auto")
        self.weight = torch.nn.Parameter(weight.detach().clone(), requires_grad=conv.weight.requires_grad)
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().clone(),
                                                                 requires_grad=conv.weight.requires_grad)

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        return PF.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                         activation=self.activation, activation_param=self.activation_param, residual=residual,
                         algo=self.algo, backend=self.backend)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}")
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        s += f", bias={self.bias is not None}"
        if self.has_residual:
            s += ", residual=True"
        if self.activation:
            s += f", activation={self.activation}" + (
                f"({self.activation_param})" if self.activation_param is not None else "")
        return s


@dataclasses.dataclass
class FuseReport:
    """What :func:`fuse` did: ``fused`` counts the chains by pattern (e.g. ``"conv+bn+add+relu"``)."""

    fused: Dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def num_fused(self) -> int:
        return sum(self.fused.values())

    def __str__(self) -> str:
        lines = [f"pyconv.fuse: {self.num_fused} chain(s) fused into FusedConv2d"]
        lines += [f"  {pattern:<28} {n:>4}" for pattern, n in sorted(self.fused.items())]
        return "\n".join(lines)


class _Tracer(torch.fx.Tracer):
    """torch.nn and pyconv.nn layers stay leaves (their forward has Python checks a Proxy cannot pass)."""

    def __init__(self):
        super().__init__(autowrap_modules=(math, PF))

    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        return type(m).__module__ in ("pyconv.nn", "pyconv._fuse") or super().is_leaf_module(m, qualname)


def _activation_of(node: torch.fx.Node, modules) -> Optional[tuple]:
    """(kind, param) when `node` applies a fusable activation to exactly its first argument, else None."""
    if node.op == "call_module":
        m = modules[node.target]
        for cls, kind, param in _ACT_MODULES:
            if isinstance(m, cls) and type(m).forward in (cls.forward, getattr(_twin(cls), "forward", None)):
                if cls is torch.nn.GELU:
                    return ("gelu" if m.approximate == "none" else "gelu_tanh"), None
                return kind, (param(m) if param else None)
        return None
    if node.op == "call_function" and node.target in _ACT_FUNCTIONS and len(node.args) == 1 \
            and set(node.kwargs) <= {"inplace"}:
        return _ACT_FUNCTIONS[node.target], None
    return None


def _twin(cls):
    from .nn import TWINS

    return TWINS.get(cls)


def _fold_bn(conv: torch.nn.Conv2d, bn: Optional[torch.nn.BatchNorm2d]):
    w = conv.weight.detach()
    b = None if conv.bias is None else conv.bias.detach()
    if bn is None:
        return w, b
    scale = torch.rsqrt(bn.running_var.to(torch.float64) + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().to(torch.float64)
    shift = -bn.running_mean.to(torch.float64) * scale
    if b is not None:
        shift = shift + b.to(torch.float64) * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().to(torch.float64)
    w = (w.to(torch.float64) * scale.view(-1, 1, 1, 1)).to(w.dtype)
    return w, shift.to(conv.weight.dtype)


def fuse(model: torch.nn.Module, inplace: bool = False):
    """Fold BatchNorm and fuse conv → BN → (add) → activation chains of an eval-mode ``model`` into
    :class:`FusedConv2d` layers. Returns ``(graph_module, report)``: a ``torch.fx.GraphModule`` computing the same
    function (up to rounding) with fewer kernels, and a :class:`FuseReport`. ``inplace=False`` leaves ``model``
    untouched. For inference: the folded weights are new parameters, so train the original, then fuse."""
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"pyconv.fuse: expected a torch.nn.Module, got {type(model).__name__}")
    if model.training:
        raise RuntimeError("pyconv.fuse: the model is in training mode; BatchNorm folds only with its running "
                           "statistics, so call model.eval() first")
    if not inplace:
        model = copy.deepcopy(model)
    graph = _Tracer().trace(model)
    gm = torch.fx.GraphModule(model, graph, class_name=type(model).__name__ + "Fused")
    modules = dict(gm.named_modules())
    report = collections.Counter()

    def only_user(node):
        users = list(node.users)
        return users[0] if len(users) == 1 else None

    for node in list(gm.graph.nodes):
        if node.op != "call_module" or node.target not in modules:
            continue
        conv = modules[node.target]
        if not isinstance(conv, torch.nn.Conv2d) or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            continue
        if type(conv)._conv_forward not in (torch.nn.Conv2d._conv_forward, _twin(torch.nn.Conv2d)._conv_forward):
            continue  # a subclass with its own computation
        if len(node.args) != 1 or node.kwargs:
            continue
        chain, last, pattern = [node], node, ["conv"]
        bn = None
        nxt = only_user(last)
        if nxt is not None and nxt.op == "call_module" and isinstance(modules.get(nxt.target), torch.nn.BatchNorm2d):
            cand = modules[nxt.target]
            if cand.track_running_stats and cand.running_mean is not None and type(cand) is torch.nn.BatchNorm2d:
                bn, last = cand, nxt
                chain.append(nxt)
                pattern.append("bn")
                nxt = only_user(last)
        residual = None
        if (nxt is not None and nxt.op == "call_function" and nxt.target in _ADDS and len(nxt.args) == 2
                and not nxt.kwargs and all(isinstance(a, torch.fx.Node) for a in nxt.args)):
            other = nxt.args[1] if nxt.args[0] is last else nxt.args[0]
            if other is not last:
                residual, last = other, nxt
                chain.append(nxt)
                pattern.append("add")
                nxt = only_user(last)
        act = _activation_of(nxt, modules) if nxt is not None else None
        if act is not None and nxt.args[0] is last:
            last = nxt
            chain.append(nxt)
            pattern.append(act[0])
        if len(chain) == 1 or (len(chain) == 2 and bn is None and residual is None and act is None):
            continue
        weight, bias = _fold_bn(conv, bn)
        fused = FusedConv2d(conv, weight, bias, act[0] if act else None, act[1] if act else None,
                            residual is not None)
        name = node.target.replace(".", "_") + "_fused"
        gm.add_submodule(name, fused)
        modules[name] = fused
        with gm.graph.inserting_after(last):
            args = (node.args[0],) if residual is None else (node.args[0], residual)
            new = gm.graph.call_module(name, args)
        last.replace_all_uses_with(new)
        for n in reversed(chain):
            gm.graph.erase_node(n)
        report["+".join(pattern)] += 1
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm, FuseReport(dict(report))
