// Torch glue for the pooling ops, written once for every backend: argument checks with torch's wording, output
// shapes, allocation in the input's memory format, dtype dispatch. A Backend supplies the device check, the device
// guard, the kernel element type, how to run a per-element functor over an N×C×A×B index space (`channels_last`:
// walk it channels-innermost), and the max-pooling backward (CPU: parallel loops and a per-plane scatter,
// pooling_cpu.cpp; CUDA and the emulator: kernel launches and a gather, pooling_cuda.cu).
#pragma once
#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>

#include "../common/torch_glue.h"
#include "pool_params.h"

namespace pyconv {

inline void check_pool_input(const at::Tensor& input, const char* op) {
  check_float_dtype(input, op, "input");
  TORCH_CHECK(input.dim() == 4, "pyconv.", op, ": expected a 4-D input (N, C, H, W), but got size ", input.sizes());
  TORCH_CHECK(input.size(1) > 0 && input.size(2) > 0 && input.size(3) > 0,
              "Expected 3D or 4D (batch mode) tensor with optional 0 dim batch size for input, but got:",
              input.sizes());
}

inline std::pair<int64_t, int64_t> pair_of(at::IntArrayRef v, const char* op, const char* what) {
  TORCH_CHECK(v.size() == 2, "pyconv.", op, ": ", what, " must have 2 elements, but got ", v.size());
  return {v[0], v[1]};
}

// Checks (torch's rules and messages) and the output size of max/avg pooling.
inline Pool2dShape pool_shape(const at::Tensor& input, at::IntArrayRef kernel, at::IntArrayRef stride,
                              at::IntArrayRef padding, at::IntArrayRef dilation, bool ceil_mode, const char* op) {
  const auto [kH, kW] = pair_of(kernel, op, "kernel_size");
  const auto [dH, dW] = pair_of(stride, op, "stride");
  const auto [pH, pW] = pair_of(padding, op, "padding");
  const auto [lH, lW] = pair_of(dilation, op, "dilation");
  TORCH_CHECK(kH > 0 && kW > 0, "kernel size should be greater than zero, but got kH: ", kH, " kW: ", kW);
  TORCH_CHECK(dH > 0 && dW > 0, "stride should be greater than zero, but got dH: ", dH, " dW: ", dW);
  TORCH_CHECK(lH > 0 && lW > 0, "dilation should be greater than zero, but got dilationH: ", lH, " dilationW: ", lW);
  TORCH_CHECK(pH >= 0 && pW >= 0, "pad must be non-negative, but got pad: ", pH < 0 ? pH : pW);
  TORCH_CHECK(kW / 2 >= pW && kH / 2 >= pH, "pad should be smaller than or equal to half of kernel size, but got padW = ",
              pW, ", padH = ", pH, ", kW = ", kW, ", kH = ", kH);
  Pool2dShape s{};
  s.N = input.size(0); s.C = input.size(1); s.H = input.size(2); s.W = input.size(3);
  s.R = kH; s.S = kW; s.stride_h = dH; s.stride_w = dW; s.pad_h = pH; s.pad_w = pW; s.dil_h = lH; s.dil_w = lW;
  s.P = pool_output_size(s.H, kH, pH, dH, lH, ceil_mode);
  s.Q = pool_output_size(s.W, kW, pW, dW, lW, ceil_mode);
  TORCH_CHECK(s.P >= 1 && s.Q >= 1, "Given input size: (", s.C, "x", s.H, "x", s.W, "). Calculated output size: (",
              s.C, "x", s.P, "x", s.Q, "). Output size is too small");
  return s;
}

inline Pool2dShape adaptive_shape(const at::Tensor& input, at::IntArrayRef output_size, const char* op) {
  TORCH_CHECK(output_size.size() == 2, op, ": output_size must be 2");
  TORCH_CHECK(output_size[0] >= 0 && output_size[1] >= 0, op,
              ": elements of output_size must be greater than or equal to 0 but received {", output_size[0], ", ",
              output_size[1], "}");
  Pool2dShape s{};
  s.N = input.size(0); s.C = input.size(1); s.H = input.size(2); s.W = input.size(3);
  s.P = output_size[0]; s.Q = output_size[1];
  s.R = s.S = s.stride_h = s.stride_w = s.dil_h = s.dil_w = 1;
  return s;
}

inline void check_grad(const at::Tensor& grad_output, const at::Tensor& input, const Pool2dShape& s, const char* op) {
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type() && grad_output.device() == input.device(), "pyconv.",
              op, ": grad_output must have the input's dtype and device");
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == s.N && grad_output.size(1) == s.C &&
                  grad_output.size(2) == s.P && grad_output.size(3) == s.Q,
              "pyconv.", op, ": expected grad_output of size [", s.N, ", ", s.C, ", ", s.P, ", ", s.Q, "], but got ",
              grad_output.sizes());
}

inline void check_indices(const at::Tensor& ind, const at::Tensor& grad_output, const char* op) {
  TORCH_CHECK(ind.scalar_type() == at::kLong && ind.sizes() == grad_output.sizes() &&
                  ind.device() == grad_output.device(),
              "pyconv.", op, ": indices must be int64 with the size and device of grad_output, but got ",
              ind.scalar_type(), " of size ", ind.sizes(), " on ", ind.device());
}

template <class B>
std::tuple<at::Tensor, at::Tensor> max_pool_impl(const at::Tensor& input, const Pool2dShape& s, bool adaptive,
                                                 const char* op) {
  typename B::Guard guard(input.device());
  const auto fmt = output_format(input);
  const bool cl = fmt == at::MemoryFormat::ChannelsLast;
  at::Tensor y = at::empty({s.N, s.C, s.P, s.Q}, input.options().memory_format(fmt));
  at::Tensor ind = at::empty({s.N, s.C, s.P, s.Q}, input.options().dtype(at::kLong).memory_format(fmt));
  if (y.numel() == 0) return {y, ind};
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "pyconv_max_pool2d", [&] {
    using KT = typename B::template Kernel<scalar_t>;
    const pool::MaxFwd<KT> f{s, B::template ptr<scalar_t>(input), strides4(input), B::template ptr<scalar_t>(y),
                             strides4(y), ind.data_ptr<int64_t>(), strides4(ind), adaptive};
    if (!B::max_forward_fast(cl, f)) B::run(op, cl, s.N, s.C, s.P, s.Q, f);
  });
  return {y, ind};
}

template <class B>
at::Tensor max_pool_backward_impl(const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& ind,
                                  const Pool2dShape& s, bool adaptive, const char* op) {
  check_grad(grad_output, input, s, op);
  check_indices(ind, grad_output, op);
  typename B::Guard guard(input.device());
  const auto fmt = output_format(input);
  at::Tensor dx = at::empty(input.sizes(), input.options().memory_format(fmt));
  if (dx.numel() == 0) return dx;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "pyconv_max_pool2d_backward", [&] {
    using KT = typename B::template Kernel<scalar_t>;
    B::max_backward(op, fmt == at::MemoryFormat::ChannelsLast,
                    pool::MaxBwd<KT>{s, B::template ptr<scalar_t>(grad_output), strides4(grad_output),
                                     ind.data_ptr<int64_t>(), strides4(ind), B::template ptr<scalar_t>(dx),
                                     strides4(dx), adaptive});
  });
  return dx;
}

template <class B>
at::Tensor avg_pool_impl(const at::Tensor& input, const Pool2dShape& s, bool adaptive, bool count_include_pad,
                         int64_t divisor, const char* op) {
  typename B::Guard guard(input.device());
  const auto fmt = output_format(input);
  const bool cl = fmt == at::MemoryFormat::ChannelsLast;
  at::Tensor y = at::empty({s.N, s.C, s.P, s.Q}, input.options().memory_format(fmt));
  if (y.numel() == 0) return y;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "pyconv_avg_pool2d", [&] {
    using KT = typename B::template Kernel<scalar_t>;
    const KT* x = B::template ptr<scalar_t>(input);
    KT* yp = B::template ptr<scalar_t>(y);
    if (adaptive && s.P == 1 && s.Q == 1)  // global average pooling: the reduction fast path
      B::global_avg(op, s.N, s.C, s.H, s.W, x, strides4(input), yp, strides4(y));
    else
      B::run(op, cl, s.N, s.C, s.P, s.Q,
             pool::AvgFwd<KT>{s, x, strides4(input), yp, strides4(y), adaptive, count_include_pad, divisor});
  });
  return y;
}

template <class B>
at::Tensor avg_pool_backward_impl(const at::Tensor& grad_output, const at::Tensor& input, const Pool2dShape& s,
                                  bool adaptive, bool count_include_pad, int64_t divisor, const char* op) {
  check_grad(grad_output, input, s, op);
  typename B::Guard guard(input.device());
  const auto fmt = output_format(input);
  at::Tensor dx = at::empty(input.sizes(), input.options().memory_format(fmt));
  if (dx.numel() == 0) return dx;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "pyconv_avg_pool2d_backward", [&] {
    using KT = typename B::template Kernel<scalar_t>;
    const bool cl = fmt == at::MemoryFormat::ChannelsLast;
    const pool::AvgBwd<KT> b{s, B::template ptr<scalar_t>(grad_output), strides4(grad_output),
                             B::template ptr<scalar_t>(dx), strides4(dx), adaptive, count_include_pad, divisor};
    if (!B::avg_backward_fast(cl, b)) B::run(op, cl, s.N, s.C, s.H, s.W, b);
  });
  return dx;
}

// The eight ops, for a backend B; each backend file registers these with TORCH_LIBRARY_IMPL.
template <class B>
struct PoolingOps {
  static std::tuple<at::Tensor, at::Tensor> max_pool2d(const at::Tensor& input, at::IntArrayRef k,
                                                       at::IntArrayRef st, at::IntArrayRef pad, at::IntArrayRef dil,
                                                       bool ceil_mode) {
    check_pool_input(input, "max_pool2d");
    B::check_device(input, "max_pool2d", "input");
    return max_pool_impl<B>(input, pool_shape(input, k, st, pad, dil, ceil_mode, "max_pool2d"), false, "max_pool2d");
  }
  static at::Tensor max_pool2d_backward(const at::Tensor& go, const at::Tensor& input, const at::Tensor& ind,
                                        at::IntArrayRef k, at::IntArrayRef st, at::IntArrayRef pad,
                                        at::IntArrayRef dil, bool ceil_mode) {
    check_pool_input(input, "max_pool2d_backward");
    B::check_device(input, "max_pool2d_backward", "input");
    return max_pool_backward_impl<B>(go, input, ind, pool_shape(input, k, st, pad, dil, ceil_mode, "max_pool2d"),
                                     false, "max_pool2d_backward");
  }
  static at::Tensor avg_pool2d(const at::Tensor& input, at::IntArrayRef k, at::IntArrayRef st, at::IntArrayRef pad,
                               bool ceil_mode, bool count_include_pad, std::optional<int64_t> divisor) {
    check_pool_input(input, "avg_pool2d");
    B::check_device(input, "avg_pool2d", "input");
    TORCH_CHECK(!divisor || *divisor != 0, "divisor must be not zero");
    const int64_t one[2] = {1, 1};
    return avg_pool_impl<B>(input, pool_shape(input, k, st, pad, one, ceil_mode, "avg_pool2d"), false,
                            count_include_pad, divisor.value_or(0), "avg_pool2d");
  }
  static at::Tensor avg_pool2d_backward(const at::Tensor& go, const at::Tensor& input, at::IntArrayRef k,
                                        at::IntArrayRef st, at::IntArrayRef pad, bool ceil_mode,
                                        bool count_include_pad, std::optional<int64_t> divisor) {
    check_pool_input(input, "avg_pool2d_backward");
    B::check_device(input, "avg_pool2d_backward", "input");
    TORCH_CHECK(!divisor || *divisor != 0, "divisor must be not zero");
    const int64_t one[2] = {1, 1};
    return avg_pool_backward_impl<B>(go, input, pool_shape(input, k, st, pad, one, ceil_mode, "avg_pool2d"), false,
                                     count_include_pad, divisor.value_or(0), "avg_pool2d_backward");
  }
  static at::Tensor adaptive_avg_pool2d(const at::Tensor& input, at::IntArrayRef out) {
    check_adaptive_input(input, "adaptive_avg_pool2d");
    B::check_device(input, "adaptive_avg_pool2d", "input");
    return avg_pool_impl<B>(input, adaptive_shape(input, out, "adaptive_avg_pool2d"), true, false, 0,
                            "adaptive_avg_pool2d");
  }
  static at::Tensor adaptive_avg_pool2d_backward(const at::Tensor& go, const at::Tensor& input) {
    check_adaptive_input(input, "adaptive_avg_pool2d_backward");
    B::check_device(input, "adaptive_avg_pool2d_backward", "input");
    TORCH_CHECK(go.dim() == 4, "pyconv.adaptive_avg_pool2d_backward: expected 4-D grad_output");
    const int64_t out[2] = {go.size(2), go.size(3)};
    return avg_pool_backward_impl<B>(go, input, adaptive_shape(input, out, "adaptive_avg_pool2d"), true, false, 0,
                                     "adaptive_avg_pool2d_backward");
  }
  static std::tuple<at::Tensor, at::Tensor> adaptive_max_pool2d(const at::Tensor& input, at::IntArrayRef out) {
    check_adaptive_input(input, "adaptive_max_pool2d");
    B::check_device(input, "adaptive_max_pool2d", "input");
    return max_pool_impl<B>(input, adaptive_shape(input, out, "adaptive_max_pool2d"), true, "adaptive_max_pool2d");
  }
  static at::Tensor adaptive_max_pool2d_backward(const at::Tensor& go, const at::Tensor& input,
                                                 const at::Tensor& ind) {
    check_adaptive_input(input, "adaptive_max_pool2d_backward");
    B::check_device(input, "adaptive_max_pool2d_backward", "input");
    TORCH_CHECK(go.dim() == 4, "pyconv.adaptive_max_pool2d_backward: expected 4-D grad_output");
    const int64_t out[2] = {go.size(2), go.size(3)};
    return max_pool_backward_impl<B>(go, input, ind, adaptive_shape(input, out, "adaptive_max_pool2d"), true,
                                     "adaptive_max_pool2d_backward");
  }

  static void check_adaptive_input(const at::Tensor& input, const char* op) {
    check_float_dtype(input, op, "input");
    TORCH_CHECK(input.dim() == 4, "pyconv.", op, ": expected a 4-D input (N, C, H, W), but got size ", input.sizes());
    for (int64_t d = 1; d < 4; ++d)
      TORCH_CHECK(input.size(d) > 0, op, "(): Expected input to have non-zero size for non-batch dimensions, but "
                  "input has sizes ", input.sizes(), " with dimension ", d, " being empty");
  }

  static void register_impls(torch::Library& m) {
    m.impl("max_pool2d", &max_pool2d);
    m.impl("max_pool2d_backward", &max_pool2d_backward);
    m.impl("avg_pool2d", &avg_pool2d);
    m.impl("avg_pool2d_backward", &avg_pool2d_backward);
    m.impl("adaptive_avg_pool2d", &adaptive_avg_pool2d);
    m.impl("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward);
    m.impl("adaptive_max_pool2d", &adaptive_max_pool2d);
    m.impl("adaptive_max_pool2d_backward", &adaptive_max_pool2d_backward);
  }
};

}  // namespace pyconv
