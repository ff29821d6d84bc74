"""Drop-in ``torch.nn`` layers that run pyconv's kernels.

Each class *is* its ``torch.nn`` counterpart (a subclass) with only the computation replaced, so it has the same
constructor arguments and defaults, the same parameter names and initialisation, the same ``repr`` and the same
``state_dict`` keys: ``load_state_dict`` works in both directions, optimizers see the same parameters, and code that
checks ``isinstance(m, torch.nn.Conv2d)`` (weight init loops, for instance) keeps working.

Two attributes, not saved in the state_dict, pick how a layer runs:

* ``backend`` (every layer, default ``"auto"``): ``"emulator"`` runs the *CUDA* kernels on CPU tensors through the
  CPU emulator (:mod:`pyconv.emulator`), forward and backward;
* ``algo`` (Conv2d, ConvTranspose2d, default ``"auto"``): the convolution rung, as in :func:`pyconv.functional.conv2d`.

``pyconv.convert(model)`` swaps the torch.nn layers of an existing model for these.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from . import functional as F

__all__ = ["Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "ReLU",
           "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Sigmoid", "Tanh", "Hardswish", "Mish"]


class Conv2d(torch.nn.Conv2d):
    __doc__ = ("pyconv's :class:`torch.nn.Conv2d`: same arguments, parameters and state_dict; runs "
               ":func:`pyconv.functional.conv2d`. ``padding_mode`` other than ``'zeros'`` pads explicitly first "
               "(torch.nn.functional.pad), exactly as torch does.")
    backend = "auto"
    algo = "auto"

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        # torch.nn.Conv2d.forward calls this with the (possibly hooked / parametrized) weight and bias.
        if self.padding_mode != "zeros":
            input = torch.nn.functional.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding = (0, 0)
        else:
            padding = self.padding
        return F.conv2d(input, weight, bias, self.stride, padding, self.dilation, self.groups, algo=self.algo,
                        backend=self.backend)


class ConvTranspose2d(torch.nn.ConvTranspose2d):
    __doc__ = ("pyconv's :class:`torch.nn.ConvTranspose2d` (weight (C_in, C_out/groups, R, S)): runs "
               ":func:`pyconv.functional.conv_transpose2d`, i.e. the convolution's dgrad kernels. "
               "``forward(input, output_size=None)`` as in torch.")
    backend = "auto"
    algo = "auto"

    def forward(self, input: Tensor, output_size: Optional[List[int]] = None) -> Tensor:
        if self.padding_mode != "zeros":
            raise ValueError('Only "zeros" padding mode is supported for ConvTranspose2d')
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation, output_size=output_size, algo=self.algo,
                                  backend=self.backend)


class MaxPool2d(torch.nn.MaxPool2d):
    __doc__ = "pyconv's :class:`torch.nn.MaxPool2d`; runs :func:`pyconv.functional.max_pool2d`."
    backend = "auto"

    def forward(self, input: Tensor):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode,
                            return_indices=self.return_indices, backend=self.backend)


class AvgPool2d(torch.nn.AvgPool2d):
    __doc__ = "pyconv's :class:`torch.nn.AvgPool2d`; runs :func:`pyconv.functional.avg_pool2d`."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override, backend=self.backend)


class AdaptiveAvgPool2d(torch.nn.AdaptiveAvgPool2d):
    __doc__ = "pyconv's :class:`torch.nn.AdaptiveAvgPool2d`; runs :func:`pyconv.functional.adaptive_avg_pool2d`."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size, backend=self.backend)


class AdaptiveMaxPool2d(torch.nn.AdaptiveMaxPool2d):
    __doc__ = "pyconv's :class:`torch.nn.AdaptiveMaxPool2d`; runs :func:`pyconv.functional.adaptive_max_pool2d`."
    backend = "auto"

    def forward(self, input: Tensor):
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices, backend=self.backend)


# ---- activations: each forwards its torch attributes to the pyconv.functional twin -----------------------------------


class ReLU(torch.nn.ReLU):
    __doc__ = "pyconv's :class:`torch.nn.ReLU`."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input, inplace=self.inplace, backend=self.backend)


class ReLU6(torch.nn.ReLU6):
    __doc__ = "pyconv's :class:`torch.nn.ReLU6` (MobileNetV2's activation)."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.relu6(input, inplace=self.inplace, backend=self.backend)


class LeakyReLU(torch.nn.LeakyReLU):
    __doc__ = "pyconv's :class:`torch.nn.LeakyReLU`."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.leaky_relu(input, self.negative_slope, inplace=self.inplace, backend=self.backend)


class ELU(torch.nn.ELU):
    __doc__ = "pyconv's :class:`torch.nn.ELU`."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.elu(input, self.alpha, inplace=self.inplace, backend=self.backend)


class GELU(torch.nn.GELU):
    __doc__ = "pyconv's :class:`torch.nn.GELU` (``approximate='none'`` or ``'tanh'``)."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.gelu(input, approximate=self.approximate, backend=self.backend)


class SiLU(torch.nn.SiLU):
    __doc__ = "pyconv's :class:`torch.nn.SiLU`."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.silu(input, inplace=self.inplace, backend=self.backend)


class Sigmoid(torch.nn.Sigmoid):
    __doc__ = "pyconv's :class:`torch.nn.Sigmoid`."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input, backend=self.backend)


class Tanh(torch.nn.Tanh):
    __doc__ = "pyconv's :class:`torch.nn.Tanh`."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.tanh(input, backend=self.backend)


class Hardswish(torch.nn.Hardswish):
    __doc__ = "pyconv's :class:`torch.nn.Hardswish`."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.hardswish(input, inplace=self.inplace, backend=self.backend)


class Mish(torch.nn.Mish):
    __doc__ = "pyconv's :class:`torch.nn.Mish`."
    backend = "auto"

    def forward(self, input: Tensor) -> Tensor:
        return F.mish(input, inplace=self.inplace, backend=self.backend)


#: torch.nn class → its pyconv twin (what :func:`pyconv.convert` swaps).
TWINS = {getattr(torch.nn, name): globals()[name] for name in __all__}
