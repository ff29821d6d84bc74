// The pooling op schemas, declared in `pyconv` (ops.cpp) and `pyconv_emu` (csrc/emu/module_emu.cpp).
//  * max pooling always returns the indices (flat h·W + w per plane, int64), which the backward needs and which
//    max_unpool2d accepts; pyconv.functional returns them only when asked (return_indices=True).
//  * adaptive output sizes are concrete here (None entries are resolved in Python).
#pragma once
#include <torch/library.h>

namespace pyconv {

inline void define_pooling_ops(torch::Library& m) {
  m.def("max_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, int[2] dilation, "
        "bool ceil_mode) -> (Tensor, Tensor)");
  m.def("max_pool2d_backward(Tensor grad_output, Tensor input, Tensor indices, int[2] kernel_size, int[2] stride, "
        "int[2] padding, int[2] dilation, bool ceil_mode) -> Tensor");
  m.def("avg_pool2d(Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, bool ceil_mode, "
        "bool count_include_pad, int? divisor_override) -> Tensor");
  m.def("avg_pool2d_backward(Tensor grad_output, Tensor input, int[2] kernel_size, int[2] stride, int[2] padding, "
        "bool ceil_mode, bool count_include_pad, int? divisor_override) -> Tensor");
  m.def("adaptive_avg_pool2d(Tensor input, int[2] output_size) -> Tensor");
  m.def("adaptive_avg_pool2d_backward(Tensor grad_output, Tensor input) -> Tensor");
  m.def("adaptive_max_pool2d(Tensor input, int[2] output_size) -> (Tensor, Tensor)");
  m.def("adaptive_max_pool2d_backward(Tensor grad_output, Tensor input, Tensor indices) -> Tensor");
}

}  // namespace pyconv
