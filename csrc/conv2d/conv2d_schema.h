// The conv2d op schemas, written once and declared in two libraries: `pyconv` (CPU and CUDA kernels, ops.cpp) and
// `pyconv_emu` (the CUDA kernels run by the CPU emulator, csrc/emu/module_emu.cpp).
//
// Schema notes:
//  * padding is 2 ints (symmetric) or 4 ints (top, bottom, left, right): padding='same' with an even kernel pads one
//    more at the bottom/right, exactly like torch.
//  * input_size / weight_size are SymInt[] so torch.compile can keep batch and spatial sizes dynamic.
//  * algo selects the rung of the ladder ("auto" = the fastest available for the device).
#pragma once
#include <torch/library.h>

namespace pyconv {

inline void define_conv2d_ops(torch::Library& m) {
  m.def("conv2d_fprop(Tensor input, Tensor weight, Tensor? bias, int[] stride, int[] padding, int[] dilation, "
        "int groups, str algo=\"auto\") -> Tensor");
  // conv2d_fprop with a fused epilogue: y = activation(conv(input, weight) + bias + residual). activation is "none"
  // or an activation kind of pyconv::activation (param: negative_slope / alpha); residual has the output's shape.
  m.def("conv2d_fprop_fused(Tensor input, Tensor weight, Tensor? bias, Tensor? residual, int[] stride, "
        "int[] padding, int[] dilation, int groups, str activation=\"none\", float param=0.0, "
        "str algo=\"auto\") -> Tensor");
  m.def("conv2d_dgrad(Tensor grad_output, Tensor weight, SymInt[] input_size, int[] stride, int[] padding, "
        "int[] dilation, int groups, str algo=\"auto\") -> Tensor");
  m.def("conv2d_wgrad(Tensor grad_output, Tensor input, SymInt[] weight_size, int[] stride, int[] padding, "
        "int[] dilation, int groups, str algo=\"auto\") -> Tensor");
  m.def("conv2d_bgrad(Tensor grad_output) -> Tensor");
}

}  // namespace pyconv
