// The activation op schemas, declared in `pyconv` (ops.cpp) and `pyconv_emu` (csrc/emu/module_emu.cpp). One op per
// direction, the function chosen by `kind` ("relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "sigmoid",
// "tanh", "hardswish", "mish", "relu6"); `param` is negative_slope for leaky_relu and alpha for elu.
#pragma once
#include <torch/library.h>

namespace pyconv {

inline void define_activation_ops(torch::Library& m) {
  m.def("activation(Tensor input, str kind, float param=0.0) -> Tensor");
  m.def("activation_(Tensor(a!) self, str kind, float param=0.0) -> ()");  // returns nothing: functionalisable
  m.def("activation_backward(Tensor grad_output, Tensor input, str kind, float param=0.0) -> Tensor");
}

}  // namespace pyconv
