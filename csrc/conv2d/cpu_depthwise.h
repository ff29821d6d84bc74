// conv2d on the CPU, rung "depthwise": one input channel per group (C/groups == 1). A depthwise layer has no channel
// reduction, so the GEMM rung wastes its packing on 1-row panels; here each (n, channel) plane is a small 2-D
// stencil, computed tap by tap over whole output rows: for a fixed tap (r, s) an output row reads one input row at a
// fixed offset, so the innermost loop is a unit-stride multiply-add over q (vectorised by the compiler) when the
// planes are contiguous and the stride is 1. Planes are copied into contiguous scratch rows first when the tensor is
// channels_last (one gather per plane instead of a strided access per tap).
//
// Parallel over planes (fprop, dgrad) or output channels (wgrad): each task writes disjoint outputs, and every sum is
// taken in a fixed order, so results do not depend on the thread count. No torch header: `pfor` comes from the glue.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common/conv_params.h"
#include "conv_epilogue.h"

namespace pyconv {
namespace cpu {

namespace dw_detail {
// Plane (n, c) of a 4-D tensor into a contiguous rows × cols buffer.
template <typename T>
void load_plane(const T* t, Strides4 ts, int64_t n, int64_t c, int64_t rows, int64_t cols, T* out) {
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) out[i * cols + j] = t[ts.at(n, c, i, j)];
}
// The q range [lo, hi) whose input column q·stride − pad + s·dil lies inside [0, W).
inline void valid_cols(int64_t Q, int64_t W, int64_t stride, int64_t off, int64_t* lo, int64_t* hi) {
  // q·stride + off ≥ 0  ⇔  q ≥ ceil(−off / stride);   q·stride + off < W  ⇔  q < ceil((W − off) / stride)
  *lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  *hi = W - off <= 0 ? 0 : std::min<int64_t>(Q, (W - off + stride - 1) / stride);
}
}  // namespace dw_detail

template <typename T, typename ParallelFor>
void conv2d_fprop_depthwise(const Conv2dShape& s, const T* x, Strides4 xs, const T* w, Strides4 ws, const T* bias,
                            T* y, Strides4 ys, const ConvEpilogue<T>& epi, ParallelFor&& pfor) {
  const int64_t mult = s.K / s.C;
  pfor(0, s.N * s.K, [&](int64_t begin, int64_t end) {
    std::vector<T> in(size_t(s.H * s.W)), out(size_t(s.P * s.Q));
    int64_t loaded = -1;  // the (n, c) plane in `in`: consecutive k of one c share it
    for (int64_t nk = begin; nk < end; ++nk) {
      const int64_t n = nk / s.K, k = nk % s.K, c = k / mult;
      if (loaded != n * s.C + c) dw_detail::load_plane(x, xs, n, c, s.H, s.W, in.data()), loaded = n * s.C + c;
      std::fill(out.begin(), out.end(), bias ? bias[k] : T(0));
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t t = 0; t < s.S; ++t) {
          const T wv = w[ws.at(k, 0, r, t)];
          const int64_t off = t * s.dil_w - s.pad_w;
          int64_t lo, hi;
          dw_detail::valid_cols(s.Q, s.W, s.stride_w, off, &lo, &hi);
          for (int64_t p = 0; p < s.P; ++p) {
            const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
            if (h < 0 || h >= s.H) continue;
            const T* src = in.data() + h * s.W;  // input column of output q: q·stride + off
            T* dst = out.data() + p * s.Q;
            if (s.stride_w == 1) {
              for (int64_t q = lo; q < hi; ++q) dst[q] += src[q + off] * wv;  // unit stride: vectorised
            } else {
              for (int64_t q = lo; q < hi; ++q) dst[q] += src[q * s.stride_w + off] * wv;
            }
          }
        }
      for (int64_t p = 0; p < s.P; ++p)
        for (int64_t q = 0; q < s.Q; ++q) {
          const T v = out[size_t(p * s.Q + q)];
          y[ys.at(n, k, p, q)] = epi.trivial() ? v : epi(v, n, k, p, q);
        }
    }
  });
}

// dgrad: dx plane (n, c) = Σ_m Σ_{r,s} (dy plane (n, c·mult + m) scattered by tap (r, s)) · w. Scattering output rows
// into input rows keeps the unit-stride inner loop (stride 1) and needs no divisibility test.
template <typename T, typename ParallelFor>
void conv2d_dgrad_depthwise(const Conv2dShape& s, const T* dy, Strides4 dys, const T* w, Strides4 ws, T* dx,
                            Strides4 dxs, ParallelFor&& pfor) {
  const int64_t mult = s.K / s.C;
  pfor(0, s.N * s.C, [&](int64_t begin, int64_t end) {
    std::vector<T> g(size_t(s.P * s.Q)), acc(size_t(s.H * s.W));
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / s.C, c = nc % s.C;
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t k = c * mult + m;
        dw_detail::load_plane(dy, dys, n, k, s.P, s.Q, g.data());
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t t = 0; t < s.S; ++t) {
            const T wv = w[ws.at(k, 0, r, t)];
            const int64_t off = t * s.dil_w - s.pad_w;
            int64_t lo, hi;
            dw_detail::valid_cols(s.Q, s.W, s.stride_w, off, &lo, &hi);
            for (int64_t p = 0; p < s.P; ++p) {
              const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
              if (h < 0 || h >= s.H) continue;
              T* dst = acc.data() + h * s.W;
              const T* src = g.data() + p * s.Q;
              if (s.stride_w == 1) {
                for (int64_t q = lo; q < hi; ++q) dst[q + off] += src[q] * wv;
              } else {
                for (int64_t q = lo; q < hi; ++q) dst[q * s.stride_w + off] += src[q] * wv;
              }
            }
          }
      }
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t ww = 0; ww < s.W; ++ww) dx[dxs.at(n, c, h, ww)] = acc[size_t(h * s.W + ww)];
    }
  });
}

// wgrad: dw[k, 0, r, s] = Σ_n Σ_p Σ_q dy[n, k, p, q] · x[n, c, h, w]; one task per output channel, taps in order.
template <typename T, typename ParallelFor>
void conv2d_wgrad_depthwise(const Conv2dShape& s, const T* dy, Strides4 dys, const T* x, Strides4 xs, T* dw,
                            Strides4 dws, ParallelFor&& pfor) {
  const int64_t mult = s.K / s.C;
  pfor(0, s.K, [&](int64_t begin, int64_t end) {
    std::vector<T> in(size_t(s.H * s.W)), g(size_t(s.P * s.Q)), sum(size_t(s.R * s.S));
    for (int64_t k = begin; k < end; ++k) {
      const int64_t c = k / mult;
      std::fill(sum.begin(), sum.end(), T(0));
      for (int64_t n = 0; n < s.N; ++n) {
        dw_detail::load_plane(x, xs, n, c, s.H, s.W, in.data());
        dw_detail::load_plane(dy, dys, n, k, s.P, s.Q, g.data());
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t t = 0; t < s.S; ++t) {
            const int64_t off = t * s.dil_w - s.pad_w;
            int64_t lo, hi;
            dw_detail::valid_cols(s.Q, s.W, s.stride_w, off, &lo, &hi);
            T a = T(0);
            for (int64_t p = 0; p < s.P; ++p) {
              const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
              if (h < 0 || h >= s.H) continue;
              const T* src = in.data() + h * s.W;
              const T* gr = g.data() + p * s.Q;
              if (s.stride_w == 1) {
                for (int64_t q = lo; q < hi; ++q) a += gr[q] * src[q + off];
              } else {
                for (int64_t q = lo; q < hi; ++q) a += gr[q] * src[q * s.stride_w + off];
              }
            }
            sum[size_t(r * s.S + t)] += a;
          }
      }
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t t = 0; t < s.S; ++t) dw[dws.at(k, 0, r, t)] = sum[size_t(r * s.S + t)];
    }
  });
}

}  // namespace cpu
}  // namespace pyconv
