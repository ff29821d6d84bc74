// Torch glue for the activation ops, written once for every backend: the kind string → Act, dtype/device checks,
// layout handling, dtype and kind dispatch. Elementwise ops are layout-agnostic, so a non-overlapping and dense tensor
// (NCHW, channels_last, any permutation) is processed as the flat array it is and the output gets the same strides
// (at::empty_like); other views are made contiguous first. A Backend supplies run_forward / run_backward over n
// elements (CPU loops in activation_cpu.cpp; kernels in activation_cuda.cu, also built for the emulator).
#pragma once
#include <ATen/ATen.h>
#include <torch/library.h>

#include <string>

#include "../common/acc_type.h"
#include "../common/torch_glue.h"
#include "activation_math.h"

namespace pyconv {

inline Act parse_act(c10::string_view kind) {
  static const char* names[kNumActs] = {"relu",    "leaky_relu", "elu",  "gelu",      "gelu_tanh",
                                        "silu",    "sigmoid",    "tanh", "hardswish", "mish",
                                        "relu6"};
  for (int i = 0; i < kNumActs; ++i)
    if (kind == names[i]) return static_cast<Act>(i);
  TORCH_CHECK(false, "pyconv.activation: unknown kind '", std::string(kind), "'; expected one of relu, leaky_relu, "
              "elu, gelu, gelu_tanh, silu, sigmoid, tanh, hardswish, mish, relu6");
}

template <class B>
struct ActivationOps {
  static void run_fwd(const at::Tensor& x, const at::Tensor& y, Act a, double param) {
    if (x.numel() == 0) return;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pyconv_activation", [&] {
      using KT = typename B::template Kernel<scalar_t>;
      dispatch_act(a, [&](auto tag) {
        B::template forward<KT, decltype(tag)::value>(B::template ptr<scalar_t>(x), B::template ptr<scalar_t>(y),
                                                      x.numel(), static_cast<acc_t<KT>>(param));
      });
    });
  }

  static at::Tensor activation(const at::Tensor& input, c10::string_view kind, double param) {
    const Act a = parse_act(kind);
    check_float_dtype(input, "activation", "input");
    B::check_device(input, "activation", "input");
    typename B::Guard guard(input.device());
    const at::Tensor x = input.is_non_overlapping_and_dense() ? input : input.contiguous();
    at::Tensor y = at::empty_like(x);  // same strides as the dense x: element i of one is element i of the other
    run_fwd(x, y, a, param);
    return y;
  }

  static void activation_(at::Tensor self, c10::string_view kind, double param) {
    const Act a = parse_act(kind);
    check_float_dtype(self, "activation_", "self");
    B::check_device(self, "activation_", "self");
    typename B::Guard guard(self.device());
    if (self.is_non_overlapping_and_dense()) {
      run_fwd(self, self, a, param);  // each element is read, then written, by the same thread
    } else {
      const at::Tensor x = self.contiguous();
      run_fwd(x, x, a, param);
      self.copy_(x);
    }
  }

  static at::Tensor activation_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                        c10::string_view kind, double param) {
    const Act a = parse_act(kind);
    check_float_dtype(input, "activation_backward", "input");
    B::check_device(input, "activation_backward", "input");
    TORCH_CHECK(grad_output.sizes() == input.sizes() && grad_output.scalar_type() == input.scalar_type() &&
                    grad_output.device() == input.device(),
                "pyconv.activation_backward: grad_output must match input in size, dtype and device, but got ",
                grad_output.sizes(), " ", grad_output.scalar_type(), " vs ", input.sizes(), " ",
                input.scalar_type());
    typename B::Guard guard(input.device());
    // Both operands must walk the same element order: share the input's dense layout, else both go contiguous.
    const bool same = input.is_non_overlapping_and_dense() && grad_output.strides() == input.strides();
    const at::Tensor x = same ? input : input.contiguous();
    const at::Tensor g = same ? grad_output : grad_output.contiguous();
    at::Tensor dx = at::empty_like(x);
    if (x.numel() == 0) return dx;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "pyconv_activation_backward", [&] {
      using KT = typename B::template Kernel<scalar_t>;
      dispatch_act(a, [&](auto tag) {
        B::template backward<KT, decltype(tag)::value>(B::template ptr<scalar_t>(g), B::template ptr<scalar_t>(x),
                                                       B::template ptr<scalar_t>(dx), x.numel(),
                                                       static_cast<acc_t<KT>>(param));
      });
    });
    return dx;
  }

  static void register_impls(torch::Library& m) {
    m.impl("activation", &activation);
    m.impl("activation_", &activation_);
    m.impl("activation_backward", &activation_backward);
  }
};

}  // namespace pyconv
