"""``pyconv.summary(model, input_shape)``: a per-layer table of output shapes, parameters, FLOPs and bytes.

How each layer is counted (forward pass, whole batch):

* parameters: the layer's own; ``weights`` are those named ``*weight``, ``biases`` those named ``*bias``. A layer
  called twice (ResNet's shared ``relu``) is counted once.
* FLOPs: a multiply-add is 2 FLOPs. Conv2d: 2·N·K·P·Q·(C/groups)·R·S (+ N·K·P·Q for the bias); ConvTranspose2d:
  2·N·C·H·W·(K/groups)·R·S (+ bias); Linear: 2·batch·in·out (+ bias); BatchNorm: 2 per element (folded scale and
  shift); pooling: one operation per window element and output; an activation: 1 per element (transcendentals
  included; a convention, as hardware does not count them as one). Layers it cannot count show ``-``.
* bytes: input + output + parameters, each moved once: the least traffic a layer can cause, the denominator of its
  arithmetic intensity (FLOPs / byte) for a roofline.

Work done outside modules (``x + identity`` in a ResNet block, ``torch.flatten``) is not a layer and is not counted.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Optional, Sequence

import torch

_ACTIVATIONS = (torch.nn.ReLU, torch.nn.ReLU6, torch.nn.LeakyReLU, torch.nn.ELU, torch.nn.GELU, torch.nn.SiLU,
                torch.nn.Sigmoid, torch.nn.Tanh, torch.nn.Hardswish, torch.nn.Mish, torch.nn.Hardtanh,
                torch.nn.Softmax, torch.nn.LogSoftmax)
_FREE = (torch.nn.Dropout, torch.nn.Identity, torch.nn.Flatten, torch.nn.Unflatten)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def layer_flops(module: torch.nn.Module, inputs: Sequence[torch.Tensor], output: torch.Tensor) -> Optional[int]:
    """Forward FLOPs of one call of `module` (see the module docstring for the conventions); None if unknown."""
    x = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
    out = output.numel()
    has_bias = getattr(module, "bias", None) is not None
    if isinstance(module, torch.nn.Conv2d):
        c_per_group = module.in_channels // module.groups
        r, s = module.kernel_size
        return 2 * out * c_per_group * r * s + (out if has_bias else 0)
    if isinstance(module, torch.nn.ConvTranspose2d):
        k_per_group = module.out_channels // module.groups
        r, s = module.kernel_size
        return 2 * x.numel() * k_per_group * r * s + (out if has_bias else 0)
    if isinstance(module, torch.nn.Linear):
        return 2 * out * module.in_features + (out if has_bias else 0)
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
        return 2 * out
    if isinstance(module, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
        kh, kw = _pair(module.kernel_size)
        return out * kh * kw
    if isinstance(module, (torch.nn.AdaptiveAvgPool2d, torch.nn.AdaptiveMaxPool2d)):
        return max(out, x.numel())  # every input element enters one window (some, when upsampling, several)
    if isinstance(module, _ACTIVATIONS):
        return out
    if isinstance(module, _FREE):
        return 0
    return None


@dataclasses.dataclass
class LayerRow:
    name: str
    type: str
    output_shape: List[int]
    weights: int
    biases: int
    params: int
    flops: Optional[int]
    bytes: int


@dataclasses.dataclass
class ModelSummary:
    """The result of :func:`summary`: ``rows`` (one :class:`LayerRow` per layer call), totals, and ``str()`` as a
    table."""

    rows: List[LayerRow]
    input_shape: List[int]
    total_params: int
    trainable_params: int

    @property
    def total_weights(self) -> int:
        return sum(r.weights for r in self.rows)

    @property
    def total_biases(self) -> int:
        return sum(r.biases for r in self.rows)

    @property
    def total_flops(self) -> int:
        return sum(r.flops or 0 for r in self.rows)

    @property
    def total_bytes(self) -> int:
        return sum(r.bytes for r in self.rows)

    def to_dict(self) -> Dict[str, Any]:
        return {"input_shape": self.input_shape, "total_params": self.total_params,
                "trainable_params": self.trainable_params, "total_flops": self.total_flops,
                "total_bytes": self.total_bytes, "layers": [dataclasses.asdict(r) for r in self.rows]}

    def __str__(self) -> str:
        head = ["layer", "type", "output shape", "weights", "biases", "params", "FLOPs", "bytes"]
        body = [[r.name, r.type, "×".join(map(str, r.output_shape)), f"{r.weights:,}", f"{r.biases:,}",
                 f"{r.params:,}", "-" if r.flops is None else _si(r.flops), _si(r.bytes)] for r in self.rows]
        total = ["total", "", "", f"{self.total_weights:,}", f"{self.total_biases:,}", f"{self.total_params:,}",
                 _si(self.total_flops), _si(self.total_bytes)]
        widths = [max(len(row[i]) for row in [head, total] + body) for i in range(len(head))]
        right = {3, 4, 5, 6, 7}

        def fmt(row):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))

        rule = "-" * len(fmt(head))
        lines = [f"input {'×'.join(map(str, self.input_shape))}", fmt(head), rule] + [fmt(r) for r in body]
        lines += [rule, fmt(total),
                  f"{self.total_params:,} parameters ({self.trainable_params:,} trainable) = "
                  f"{self.total_weights:,} weights + {self.total_biases:,} biases"
                  + (f" + {self.total_params - self.total_weights - self.total_biases:,} other"
                     if self.total_params != self.total_weights + self.total_biases else "")
                  + f"; forward {_si(self.total_flops)}FLOP, ≥ {_si(self.total_bytes)}B moved"]
        return "\n".join(lines)


def _si(v: float) -> str:
    if v == 0:
        return "0"
    exp = min(int(math.log10(abs(v)) // 3), 4)
    return f"{v / 1000 ** exp:.3g}{' kMGT'[exp].strip()}" if exp > 0 else f"{v:g}"


def summary(model: torch.nn.Module, input_shape: Sequence[int], *, dtype: torch.dtype = torch.float32,
            device: Optional[torch.device] = None) -> ModelSummary:
    """Runs ``model`` once (eval mode, no grad) on a random input of ``input_shape`` (batch dimension included) and
    returns a :class:`ModelSummary`: per layer (every module without children, in call order) the output shape,
    weights, biases, parameters, forward FLOPs and bytes; ``print()`` it for the table.

    The input is made on ``device`` (default: where the model's first parameter is) with ``dtype``; the model's
    training flag is restored afterwards. Works for torch.nn and pyconv.nn layers alike.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"pyconv.summary: expected a torch.nn.Module, got {type(model).__name__}")
    input_shape = [int(s) for s in input_shape]
    if not input_shape or any(s <= 0 for s in input_shape):
        raise ValueError(f"pyconv.summary: input_shape must be a non-empty list of positive sizes, got {input_shape}")
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    names = {m: n for n, m in model.named_modules()}
    rows: List[LayerRow] = []
    seen = set()

    def hook(module, inputs, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        if not isinstance(out, torch.Tensor):
            return
        params = dict(module.named_parameters(recurse=False)) if module not in seen else {}
        seen.add(module)
        weights = sum(p.numel() for n, p in params.items() if n.endswith("weight"))
        biases = sum(p.numel() for n, p in params.items() if n.endswith("bias"))
        n_params = sum(p.numel() for p in params.values())
        moved = sum(t.numel() * t.element_size() for t in inputs if isinstance(t, torch.Tensor))
        moved += out.numel() * out.element_size() + sum(p.numel() * p.element_size() for p in params.values())
        rows.append(LayerRow(names.get(module, "?"), type(module).__name__, list(out.shape), weights, biases,
                             n_params, layer_flops(module, inputs, out), moved))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.randn(input_shape, dtype=dtype, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelSummary(rows, input_shape, total, trainable)
