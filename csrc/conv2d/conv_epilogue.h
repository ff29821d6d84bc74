// The fused epilogue of a forward convolution: what happens to an output element between the accumulator and memory.
//
//   y[n, k, p, q] = act( Σ x·w  +  bias[k]  +  residual[n, k, p, q] )
//
// The bias is added by every fprop kernel already; this adds the residual (a ResNet shortcut) and an activation, so
// conv → bias → add → activation costs one pass over y instead of three. Written once for the CPU loops, the CUDA
// kernels and the emulator (no torch header). The activation is chosen at run time (act::forward_rt), the residual
// is read through its own strides (any layout). A default-constructed epilogue does nothing: the plain fprop.
#pragma once
#include <cstdint>

#include "../activation/activation_math.h"
#include "../common/acc_type.h"
#include "../common/conv_params.h"

namespace pyconv {

template <typename T>
struct ConvEpilogue {
  using F = acc_t<T>;
  int act = -1;                // -1: no activation; otherwise an Act
  F param = F(0);              // negative_slope (leaky_relu) / alpha (elu)
  const T* residual = nullptr;  // added before the activation, when given
  Strides4 rs{0, 0, 0, 0};

  PYCONV_HD bool trivial() const { return act < 0 && residual == nullptr; }

  // `v` already holds Σ x·w + bias.
  PYCONV_HD F operator()(F v, int64_t n, int64_t k, int64_t p, int64_t q) const {
    if (residual != nullptr) v += F(to_acc(residual[rs.at(n, k, p, q)]));
    if (act >= 0) v = act::forward_rt<F>(static_cast<Act>(act), v, param);
    return v;
  }
};

}  // namespace pyconv
