// Activation functions and their derivatives, written once for the CPU loops, the CUDA kernels and the emulator.
// Each formula is torch's own (aten/src/ATen/native/*Activation*), so results agree to rounding, NaN included: a NaN
// input gives a NaN output and a NaN gradient, never a silent 0. `F` is the computation type (float for
// float/half/bfloat16, double for double); `p` is the one parameter some functions take (negative_slope, alpha).
// Where torch's own CPU kernels disagree among dtypes about the gradient at a NaN input (its vectorised float32 elu
// and hardswish return the incoming gradient, float64 returns NaN), pyconv always returns NaN.
#pragma once
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "../common/macros.h"

namespace pyconv {

enum class Act : int { relu, leaky_relu, elu, gelu, gelu_tanh, silu, sigmoid, tanh, hardswish, mish, relu6 };
constexpr int kNumActs = 11;

namespace act {

// std:: math functions are callable from CUDA device code too (CUDA's headers provide the overloads).
template <typename F> PYCONV_HD F sigmoid(F x) { return F(1) / (F(1) + std::exp(-x)); }

template <Act A, typename F>
PYCONV_HD F forward(F x, F p) {
  (void)p;
  if constexpr (A == Act::relu) {
    return x < F(0) ? F(0) : x;  // NaN < 0 is false: NaN passes through, as torch.relu does
  } else if constexpr (A == Act::leaky_relu) {
    return x > F(0) ? x : x * p;
  } else if constexpr (A == Act::elu) {
    return x <= F(0) ? std::expm1(x) * p : x;  // p = alpha
  } else if constexpr (A == Act::gelu) {
    return F(0.5) * x * (F(1) + std::erf(x * F(0.70710678118654752440)));
  } else if constexpr (A == Act::gelu_tanh) {
    const F inner = F(0.79788456080286535588) * (x + F(0.044715) * x * x * x);  // √(2/π)·(x + 0.044715x³)
    return F(0.5) * x * (F(1) + std::tanh(inner));
  } else if constexpr (A == Act::silu) {
    return x * sigmoid(x);
  } else if constexpr (A == Act::sigmoid) {
    return sigmoid(x);
  } else if constexpr (A == Act::tanh) {
    return std::tanh(x);
  } else if constexpr (A == Act::hardswish) {
    const F r6 = x + F(3) < F(0) ? F(0) : (x + F(3) > F(6) ? F(6) : x + F(3));  // relu6(x + 3)
    return x * r6 * F(1.0 / 6.0);  // × 1/6, not ÷ 6: a division is an out-of-line subroutine on the GPU
  } else if constexpr (A == Act::relu6) {
    return x < F(0) ? F(0) : (x > F(6) ? F(6) : x);  // torch's hardtanh(x, 0, 6): NaN passes through
  } else {  // mish: x·tanh(softplus(x)), softplus = log1p(exp(x))
    return x * std::tanh(std::log1p(std::exp(x)));
  }
}

// d forward / dx, times the incoming gradient g.
template <Act A, typename F>
PYCONV_HD F backward(F g, F x, F p) {
  (void)p;
  if constexpr (A == Act::relu) {
    return x <= F(0) ? F(0) : g;  // torch's threshold_backward: NaN <= 0 is false, so a NaN input passes g
  } else if constexpr (A == Act::leaky_relu) {
    return x > F(0) ? g : g * p;
  } else if constexpr (A == Act::elu) {
    return x > F(0) ? g : g * p * std::exp(x);  // a NaN input gives a NaN gradient (torch's float64 result)
  } else if constexpr (A == Act::gelu) {
    const F cdf = F(0.5) * (F(1) + std::erf(x * F(0.70710678118654752440)));
    const F pdf = std::exp(F(-0.5) * x * x) * F(0.39894228040143267794);  // φ(x) = e^{−x²/2}/√(2π)
    return g * (cdf + x * pdf);
  } else if constexpr (A == Act::gelu_tanh) {
    const F kBeta = F(0.79788456080286535588), kKappa = F(0.044715);
    const F t = std::tanh(kBeta * (x + kKappa * x * x * x));
    const F left = F(0.5) * x, right = F(1) + t;
    const F dright = left * (F(1) - t * t) * kBeta * (F(1) + F(3) * kKappa * x * x);
    return g * (F(0.5) * right + dright);
  } else if constexpr (A == Act::silu) {
    const F s = sigmoid(x);
    return g * s * (F(1) + x * (F(1) - s));
  } else if constexpr (A == Act::sigmoid) {
    const F s = sigmoid(x);
    return g * s * (F(1) - s);
  } else if constexpr (A == Act::tanh) {
    const F t = std::tanh(x);
    return g * (F(1) - t * t);
  } else if constexpr (A == Act::hardswish) {
    // torch's one-sided choice at the kinks: slope 1 at x = 3, 0 at x = −3; a NaN input falls through to NaN.
    if (x >= F(3)) return g;
    if (x <= F(-3)) return F(0);
    return g * (x * F(1.0 / 3.0) + F(0.5));
  } else if constexpr (A == Act::relu6) {
    // torch's hardtanh_backward: 0 at and beyond the kinks (0, 6), else g. A NaN input passes g, like relu's
    // threshold_backward and torch's scalar path (its vectorised float path returns 0 there; pyconv picks one rule).
    return (x <= F(0) || x >= F(6)) ? F(0) : g;
  } else {  // mish
    const F t = std::tanh(std::log1p(std::exp(x)));
    const F s = sigmoid(x);
    return g * (t + x * s * (F(1) - t * t));
  }
}

// forward<A> for a kind known only at run time: one switch per element. Convolution epilogues use it so that an
// activation does not multiply the (large) GEMM kernel instantiations by the number of kinds; the branch is uniform
// across a warp (every thread applies the same kind), so it costs no divergence.
template <typename F>
PYCONV_HD F forward_rt(Act a, F x, F p) {
  switch (a) {
    case Act::relu: return forward<Act::relu>(x, p);
    case Act::leaky_relu: return forward<Act::leaky_relu>(x, p);
    case Act::elu: return forward<Act::elu>(x, p);
    case Act::gelu: return forward<Act::gelu>(x, p);
    case Act::gelu_tanh: return forward<Act::gelu_tanh>(x, p);
    case Act::silu: return forward<Act::silu>(x, p);
    case Act::sigmoid: return forward<Act::sigmoid>(x, p);
    case Act::tanh: return forward<Act::tanh>(x, p);
    case Act::hardswish: return forward<Act::hardswish>(x, p);
    case Act::mish: return forward<Act::mish>(x, p);
    case Act::relu6: return forward<Act::relu6>(x, p);
  }
  return x;
}

}  // namespace act

// Calls fn(std::integral_constant<Act, A>{}) for the runtime value `a`: one switch, so kernels get A at compile time.
template <typename Fn>
inline void dispatch_act(Act a, Fn&& fn) {
  switch (a) {
#define PYCONV_ACT_CASE(name) \
  case Act::name: fn(std::integral_constant<Act, Act::name>{}); break;
    PYCONV_ACT_CASE(relu)
    PYCONV_ACT_CASE(leaky_relu)
    PYCONV_ACT_CASE(elu)
    PYCONV_ACT_CASE(gelu)
    PYCONV_ACT_CASE(gelu_tanh)
    PYCONV_ACT_CASE(silu)
    PYCONV_ACT_CASE(sigmoid)
    PYCONV_ACT_CASE(tanh)
    PYCONV_ACT_CASE(hardswish)
    PYCONV_ACT_CASE(mish)
    PYCONV_ACT_CASE(relu6)
#undef PYCONV_ACT_CASE
  }
}

}  // namespace pyconv
