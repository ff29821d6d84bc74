// float32 activation formulas for the CPU loops, written without libm calls so that the compiler vectorises them.
//
// Calling expf/erff/tanhf per element keeps a loop scalar (the call cannot be inlined or vectorised), which costs
// 5–20× against torch's SIMD math. These versions use only +, ×, ÷, comparisons, int↔float conversions and bit
// casts, and are templates on the value type V: `float`, or `vf16`, a GCC vector of 16 floats on which every operator
// (the ?: selects included) acts lane by lane. cpu_activation.h runs them on vf16, compiled per ISA (one AVX-512
// register, two AVX2 registers or four SSE registers per vf16) and picked at run time; the scalar instantiation covers
// the tail and half/bfloat16. Accuracy, float32: exp within 2 ulp (Cephes' polynomial after
// ln 2 range reduction); erfc within 1.2e-7 relative (Numerical Recipes' Chebyshev fit); tanh and the functions built
// on exp within a few ulp. double keeps libm (activation_math.h), where pyconv matches torch to 1e-10.
#pragma once
#include <cstdint>
#include <cstring>

#include "activation_math.h"

// Every function here is always inlined: the loops that call them are compiled for several ISAs (target attributes),
// and an out-of-line vf16 function would be one shared copy with one calling convention (a 64-byte vector travels in
// a zmm register under AVX-512, in memory otherwise), so a call across the two would pass garbage.
#define PYCONV_VM inline __attribute__((always_inline))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"  // the ABI note about 64-byte vector arguments: nothing is ever called

namespace pyconv {
namespace vm {

// Vectors of 4, 8 and 16 floats: one SSE, AVX2 or AVX-512 register each (cpu_activation.h uses the native width of
// the ISA a loop is compiled for; a wider vector than the ISA's would be split into pieces the compiler handles badly).
typedef float vf4 __attribute__((vector_size(16)));
typedef int32_t vi4 __attribute__((vector_size(16)));
typedef float vf8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef float vf16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));

template <typename V> struct Lanes;
template <> struct Lanes<float> {
  using I = int32_t;
  static PYCONV_VM float splat(float v) { return v; }
  static PYCONV_VM I to_int(float v) { return int32_t(v); }  // truncation, like cvttps2dq
  static PYCONV_VM float to_float(I v) { return float(v); }
};
#define PYCONV_VM_LANES(VF, VI)                                                     \
  template <> struct Lanes<VF> {                                                    \
    using I = VI;                                                                   \
    static PYCONV_VM VF splat(float v) { return VF{} + v; }                         \
    static PYCONV_VM I to_int(VF v) { return __builtin_convertvector(v, VI); }      \
    static PYCONV_VM VF to_float(I v) { return __builtin_convertvector(v, VF); }    \
  };
PYCONV_VM_LANES(vf4, vi4)
PYCONV_VM_LANES(vf8, vi8)
PYCONV_VM_LANES(vf16, vi16)
#undef PYCONV_VM_LANES
template <typename V> PYCONV_VM V splat(float v) { return Lanes<V>::splat(v); }

template <typename V, typename I>
PYCONV_VM V bits_to_float(I i) {
  V f;
  std::memcpy(&f, &i, sizeof(V));
  return f;
}

// e^x. Range reduction x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n put into the exponent bits.
template <typename V>
PYCONV_VM V exp(V x) {
  using L = Lanes<V>;
  const float hi = 88.3762626647949f, lo = -87.3365478515625f;  // e^hi near FLT_MAX; below lo the result is < FLT_MIN
  V xc = x > hi ? splat<V>(hi) : x;
  xc = xc < lo ? splat<V>(lo) : xc;  // NaN passes both clamps (comparisons are false) and poisons the result
  const V fx = xc * 1.44269504088896341f + 0.5f;
  V n = L::to_float(L::to_int(fx));
  n = n > fx ? n - 1.0f : n;  // floor
  const V r = xc - n * 0.693359375f + n * 2.12194440e-4f;
  V p = splat<V>(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const V y = (p * r * r + r + 1.0f) * bits_to_float<V>((L::to_int(n) + 127) << 23);
  const V big = x > hi ? splat<V>(__builtin_inff()) : y;
  return x < lo ? splat<V>(0.0f) : big;
}

// erfc(z) for z ≥ 0 (Numerical Recipes' erfcc): t·e^{−z² + P(t)}, t = 1/(1 + z/2).
template <typename V>
PYCONV_VM V erfc_pos(V z) {
  const V t = 1.0f / (1.0f + 0.5f * z);
  V p = splat<V>(0.17087277f);
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * vm::exp(-z * z + p);
}

// Φ(x) = ½·erfc(−x/√2), computed from the side where erfc is accurate.
template <typename V>
PYCONV_VM V normal_cdf(V x) {
  const V z = x * 0.70710678118654752f;
  const V e = 0.5f * erfc_pos(z < 0.0f ? -z : z);
  return z < 0.0f ? e : 1.0f - e;
}

template <typename V> PYCONV_VM V sigmoid(V x) { return 1.0f / (1.0f + vm::exp(-x)); }

template <typename V>
PYCONV_VM V tanh(V x) {
  const V ax = x < 0.0f ? -x : x;
  const V t = vm::exp(-2.0f * ax);  // tanh|x| = (1 − e^{−2|x|}) / (1 + e^{−2|x|}), no overflow for any x
  const V r = (1.0f - t) / (1.0f + t);
  return x < 0.0f ? -r : r;
}

// tanh(softplus(x)) = ((1+eˣ)² − 1) / ((1+eˣ)² + 1) = n / (n + 2) with n = eˣ(eˣ + 2); 1 once eˣ would overflow.
template <typename V>
PYCONV_VM V tanh_softplus(V x) {
  const V e = vm::exp(x < 20.0f ? x : splat<V>(20.0f));
  const V n = e * (e + 2.0f);
  return x < 20.0f ? n / (n + 2.0f) : splat<V>(1.0f);
}

template <Act A, typename V>
PYCONV_VM V forward(V x, float p) {
  if constexpr (A == Act::relu) {
    return x < 0.0f ? splat<V>(0.0f) : x;
  } else if constexpr (A == Act::leaky_relu) {
    return x > 0.0f ? x : x * p;
  } else if constexpr (A == Act::elu) {
    return x <= 0.0f ? (vm::exp(x) - 1.0f) * p : x;
  } else if constexpr (A == Act::gelu) {
    return x * normal_cdf(x);
  } else if constexpr (A == Act::gelu_tanh) {
    return 0.5f * x * (1.0f + vm::tanh(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
  } else if constexpr (A == Act::silu) {
    return x * sigmoid(x);
  } else if constexpr (A == Act::sigmoid) {
    return sigmoid(x);
  } else if constexpr (A == Act::tanh) {
    return vm::tanh(x);
  } else if constexpr (A == Act::hardswish) {
    const V s = x + 3.0f;
    const V r6 = s < 0.0f ? splat<V>(0.0f) : (s > 6.0f ? splat<V>(6.0f) : s);
    return x * r6 * (1.0f / 6.0f);
  } else if constexpr (A == Act::relu6) {
    return x < 0.0f ? splat<V>(0.0f) : (x > 6.0f ? splat<V>(6.0f) : x);
  } else {  // mish
    return x * tanh_softplus(x);
  }
}

template <Act A, typename V>
PYCONV_VM V backward(V g, V x, float p) {
  if constexpr (A == Act::relu) {
    return x <= 0.0f ? splat<V>(0.0f) : g;
  } else if constexpr (A == Act::leaky_relu) {
    return x > 0.0f ? g : g * p;
  } else if constexpr (A == Act::elu) {
    return x > 0.0f ? g : g * p * vm::exp(x);
  } else if constexpr (A == Act::gelu) {
    return g * (normal_cdf(x) + x * vm::exp(-0.5f * x * x) * 0.39894228040143267794f);
  } else if constexpr (A == Act::gelu_tanh) {
    const float kBeta = 0.79788456080286535588f, kKappa = 0.044715f;
    const V t = vm::tanh(kBeta * (x + kKappa * x * x * x));
    return g * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kBeta * (1.0f + 3.0f * kKappa * x * x));
  } else if constexpr (A == Act::silu) {
    const V s = sigmoid(x);
    return g * s * (1.0f + x * (1.0f - s));
  } else if constexpr (A == Act::sigmoid) {
    const V s = sigmoid(x);
    return g * s * (1.0f - s);
  } else if constexpr (A == Act::tanh) {
    const V t = vm::tanh(x);
    return g * (1.0f - t * t);
  } else if constexpr (A == Act::hardswish) {
    const V mid = g * (x * (1.0f / 3.0f) + 0.5f);  // torch's one-sided kinks; NaN falls through to NaN
    const V lowpart = x <= -3.0f ? splat<V>(0.0f) : mid;
    return x >= 3.0f ? g : lowpart;
  } else if constexpr (A == Act::relu6) {
    return (x <= 0.0f) | (x >= 6.0f) ? splat<V>(0.0f) : g;  // a NaN input passes g (activation_math.h)
  } else {  // mish
    const V t = tanh_softplus(x), s = sigmoid(x);
    return g * (t + x * s * (1.0f - t * t));
  }
}

}  // namespace vm
}  // namespace pyconv

#pragma GCC diagnostic pop
#undef PYCONV_VM
