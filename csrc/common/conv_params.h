// Shape of one 2-D convolution, in CUTLASS's names.
//
//   activation x : N × C × H × W        filter w : K × (C/groups) × R × S        output y : N × K × P × Q
//
//   y[n, k, p, q] = bias[k] + Σ_{c<C/groups, r<R, s<S} x[n, g·Cg + c, h, w] · w[k, c, r, s]
//      with g = k / Kg,  h = p·stride_h − pad_h + r·dil_h,  w = q·stride_w − pad_w + s·dil_w
//      (taps with h or w outside the image read zero padding).
//
// pad_h / pad_w are the *leading* (top / left) paddings; the trailing padding is implied by P and Q, which is how
// padding='same' with an even kernel (torch pads one more at the bottom/right) fits the same kernels.
// Every size is int64_t: N·C·H·W and N·P·Q can exceed 2^31.
#pragma once
#include <cstdint>

#include "macros.h"

namespace pyconv {

struct Conv2dShape {
  int64_t N, C, H, W;  // activation
  int64_t K, R, S;     // filter (each filter has C/groups input channels)
  int64_t P, Q;        // output spatial size
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;  // leading padding
  int64_t dil_h, dil_w;
  int64_t groups;

  PYCONV_HD int64_t Cg() const { return C / groups; }  // input channels per group
  PYCONV_HD int64_t Kg() const { return K / groups; }  // output channels per group
  PYCONV_HD int64_t crs() const { return Cg() * R * S; }
  PYCONV_HD int64_t npq() const { return N * P * Q; }
  // 2·N·K·P·Q·(C/groups)·R·S: one multiply and one add per filter tap per output element.
  double flops() const { return 2.0 * double(N) * double(K) * double(P) * double(Q) * double(crs()); }
};

// umulhi: the high 32 bits of a 32 × 32-bit product (one IMAD.HI on the GPU).
PYCONV_HD uint32_t umulhi32(uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __umulhi(a, b);
#else
  return uint32_t((uint64_t(a) * b) >> 32);
#endif
}

// Division by a run-time divisor d ≥ 1 of any n < 2^31 as a multiply-high and a shift (Granlund and Montgomery;
// CUTLASS's FastDivmod): with l = ceil(log2 d), mul = ceil(2^(31 + l) / d) < 2^32 and shr = l − 1,
// n / d = umulhi(n, mul) >> shr (d = 1 is n itself). Made on the host, used where a kernel decodes an index per row
// and tile (a hardware division is a ~20-instruction sequence; 64-bit, a subroutine call).
struct FastDiv {
  uint32_t d = 1, mul = 0, shr = 0;
  static FastDiv make(uint32_t d) {
    FastDiv f;
    f.d = d;
    if (d > 1) {
      uint32_t l = 0;
      while ((uint64_t(1) << l) < d) ++l;
      f.mul = uint32_t(((uint64_t(1) << (31 + l)) + d - 1) / d);
      f.shr = l - 1;
    }
    return f;
  }
  PYCONV_HD uint32_t div(uint32_t n) const { return d == 1 ? n : umulhi32(n, mul) >> shr; }
};

// Element strides of a 4-D tensor, in its logical (NCHW / KCRS) dimension order. Kernels index through these, so
// NCHW, channels_last and non-contiguous views all go through the same code.
struct Strides4 {
  int64_t s0, s1, s2, s3;
  PYCONV_HD int64_t at(int64_t i0, int64_t i1, int64_t i2, int64_t i3) const {
    return i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3;
  }
};

// Whether the NCHW-indexed tensor at `p` with strides `st` moves in whole 16-byte vectors of `vec` channels (one
// pixel's channels c … c + vec − 1 for c a multiple of vec): channels-last (channel stride 1), a 16-byte aligned start
// and every pixel stride a multiple of the vector. The kernels' vector fast paths test this.
inline bool nhwc_vectors_ok(const void* p, const Strides4& st, int64_t vec) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0 && st.s1 == 1 && st.s0 % vec == 0 && st.s2 % vec == 0 &&
         st.s3 % vec == 0;
}

}  // namespace pyconv
