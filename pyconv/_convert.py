"""``pyconv.convert(model)``: swap a model's torch.nn layers for their pyconv twins, sharing the weights."""
from __future__ import annotations

import collections
import copy
import dataclasses
from typing import Dict, List, Tuple

import torch

from .nn import TWINS

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


@dataclasses.dataclass
class ConvertReport:
    """What :func:`convert` did: ``swapped`` counts the layers replaced, per torch.nn class name; ``kept`` lists the
    supported-class layers left as they were, as (qualified name, class name, reason)."""

    swapped: Dict[str, int] = dataclasses.field(default_factory=dict)
    kept: List[Tuple[str, str, str]] = dataclasses.field(default_factory=list)

    @property
    def num_swapped(self) -> int:
        return sum(self.swapped.values())

    def __str__(self) -> str:
        kept_by_class = collections.Counter(cls for _, cls, _ in self.kept)
        names = sorted(set(self.swapped) | set(kept_by_class))
        lines = [f"pyconv.convert: {self.num_swapped} layer(s) swapped, {len(self.kept)} kept"]
        if names:
            width = max(len(n) for n in names)
            lines.append(f"  {'layer':<{width}}  swapped  kept")
            lines += [f"  {n:<{width}}  {self.swapped.get(n, 0):>7}  {kept_by_class.get(n, 0):>4}" for n in names]
        lines += [f"  kept {name or '(root)'} ({cls}): {why}" for name, cls, why in self.kept]
        return "\n".join(lines)


def _device_supported(device: torch.device) -> bool:
    if device.type in ("cpu", "meta"):
        return True
    if device.type == "cuda":
        from . import _C

        return bool(_C.build_info()["cuda"])
    return False


def _why_unsupported(module: torch.nn.Module, base: type) -> str:
    """'' when `module` (an instance of torch.nn class `base`) can be swapped, else why not."""
    tensors = list(module.parameters(recurse=False)) + list(module.buffers(recurse=False))
    if any(isinstance(t, torch.nn.parameter.UninitializedParameter) for t in tensors):
        return "lazy parameters not initialised yet (run one forward first)"
    if type(module) is not base:
        # A subclass (QAT module, torch.nn.utils.parametrize's Parametrized*, a user's own) may compute something
        # else in forward; swapping it would silently change the model.
        return f"subclass {type(module).__qualname__} of torch.nn.{base.__name__}: its forward may differ"
    for t in tensors:
        if t.dtype not in _FLOAT_DTYPES:
            return f"dtype {t.dtype} (pyconv computes float32, float64, float16 and bfloat16)"
        if not _device_supported(t.device):
            return f"device {t.device} (this pyconv build has no kernels for it)"
    return ""


def _twin(module: torch.nn.Module, cls: type) -> torch.nn.Module:
    """A `cls` instance holding the very same Parameter/buffer objects, hooks and flags as `module`."""
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    # Own containers, so a later register_parameter on one does not show up in the other; the tensors are shared.
    for key in ("_parameters", "_buffers", "_modules"):
        new.__dict__[key] = copy.copy(module.__dict__[key])
    return new


def convert(model: torch.nn.Module, inplace: bool = False):
    """Replace every supported torch.nn layer anywhere in ``model`` by its :mod:`pyconv.nn` twin.

    Supported: Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, ReLU, ReLU6,
    LeakyReLU, ELU, GELU, SiLU, Sigmoid, Tanh, Hardswish, Mish. A twin shares the original layer's parameters and
    buffers (the same tensor objects), hooks, training flag and attributes, so outputs, gradients and the state_dict
    are unchanged. Layers of a supported class are *kept* (and reported) when pyconv cannot run them faithfully: a
    subclass (its forward may differ), uninitialised lazy parameters, a non-float dtype or a device this build has no
    kernels for. Every other module (BatchNorm, Linear, ...) is left alone and not reported.

    ``inplace=False`` converts a deep copy and leaves ``model`` untouched; ``inplace=True`` swaps inside ``model``
    (the root itself cannot be swapped in place: a bare supported layer is returned as a new twin either way).

    Returns ``(converted_model, report)``: see :class:`ConvertReport` (``print(report)`` gives a table).
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"pyconv.convert: expected a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError("pyconv.convert: TorchScript modules cannot be converted; convert the Python model first")
    if not inplace:
        model = copy.deepcopy(model)
    report = ConvertReport()

    # A module reachable twice (a shared layer) is converted once, so it stays shared.
    memo: Dict[int, torch.nn.Module] = {}

    def visit(module: torch.nn.Module, name: str) -> torch.nn.Module:
        if id(module) in memo:
            return memo[id(module)]
        result = module
        for base, twin in TWINS.items():
            if isinstance(module, base) and not isinstance(module, twin):
                why = _why_unsupported(module, base)
                if why:
                    report.kept.append((name, base.__name__, why))
                else:
                    report.swapped[base.__name__] = report.swapped.get(base.__name__, 0) + 1
                    result = _twin(module, twin)
                break
        else:
            for child_name, child in list(module._modules.items()):
                if child is not None:
                    new = visit(child, f"{name}.{child_name}" if name else child_name)
                    if new is not child:
                        module._modules[child_name] = new
        memo[id(module)] = result
        return result

    model = visit(model, "")
    return model, report
