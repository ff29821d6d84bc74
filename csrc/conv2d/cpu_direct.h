// conv2d on the CPU, rung 0: "direct" loop nests, straight from the definition in conv_params.h.
//
// Slow but obviously right; it indexes every tensor through its strides, so it accepts any layout (NCHW,
// channels_last, non-contiguous views) without a copy. Each function is templated on the element type and on a
// `ParallelFor` callable `pfor(begin, end, fn(b, e))` supplied by the torch glue (at::parallel_for), so this file needs
// no torch header. Work is split so that each parallel task writes a disjoint set of outputs: no atomics, and the
// result does not depend on the number of threads.
#pragma once
#include <cstdint>

#include "../common/conv_params.h"
#include "conv_epilogue.h"

namespace pyconv {
namespace cpu {

// fprop: one task per (n, k) output plane. `epi` adds the residual and applies the activation (conv_epilogue.h).
template <typename T, typename ParallelFor>
void conv2d_fprop_direct(const Conv2dShape& s, const T* x, Strides4 xs, const T* w, Strides4 ws, const T* bias,
                         T* y, Strides4 ys, const ConvEpilogue<T>& epi, ParallelFor&& pfor) {
  const int64_t Cg = s.Cg(), Kg = s.Kg();
  pfor(0, s.N * s.K, [&](int64_t begin, int64_t end) {
    for (int64_t nk = begin; nk < end; ++nk) {
      const int64_t n = nk / s.K, k = nk % s.K;
      const int64_t c0 = (k / Kg) * Cg;  // first input channel of k's group
      for (int64_t p = 0; p < s.P; ++p)
        for (int64_t q = 0; q < s.Q; ++q) {
          T acc = bias ? bias[k] : T(0);
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < s.R; ++r) {
              const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
              if (h < 0 || h >= s.H) continue;  // zero padding contributes nothing
              for (int64_t t = 0; t < s.S; ++t) {
                const int64_t ww = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (ww < 0 || ww >= s.W) continue;
                acc += x[xs.at(n, c0 + c, h, ww)] * w[ws.at(k, c, r, t)];
              }
            }
          y[ys.at(n, k, p, q)] = epi.trivial() ? acc : epi(acc, n, k, p, q);
        }
    }
  });
}

template <typename T, typename ParallelFor>
void conv2d_fprop_direct(const Conv2dShape& s, const T* x, Strides4 xs, const T* w, Strides4 ws, const T* bias,
                         T* y, Strides4 ys, ParallelFor&& pfor) {
  conv2d_fprop_direct(s, x, xs, w, ws, bias, y, ys, ConvEpilogue<T>{}, pfor);
}

// dgrad: dx[n, c, h, w] = Σ_{k in c's group, r, s} dy[n, k, p, q] · w[k, c', r, s], where (p, q) is the output that
// tap (r, s) maps onto (h, w):  h = p·stride − pad + r·dil  ⇔  p = (h + pad − r·dil) / stride, valid only when the
// division is exact and 0 ≤ p < P. One task per (n, c) input plane.
template <typename T, typename ParallelFor>
void conv2d_dgrad_direct(const Conv2dShape& s, const T* dy, Strides4 dys, const T* w, Strides4 ws, T* dx,
                         Strides4 dxs, ParallelFor&& pfor) {
  const int64_t Cg = s.Cg(), Kg = s.Kg();
  pfor(0, s.N * s.C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / s.C, c = nc % s.C;
      const int64_t g = c / Cg, cg = c % Cg;
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t ww = 0; ww < s.W; ++ww) {
          T acc = T(0);
          for (int64_t r = 0; r < s.R; ++r) {
            const int64_t ph = h + s.pad_h - r * s.dil_h;
            if (ph < 0 || ph % s.stride_h) continue;
            const int64_t p = ph / s.stride_h;
            if (p >= s.P) continue;
            for (int64_t t = 0; t < s.S; ++t) {
              const int64_t qw = ww + s.pad_w - t * s.dil_w;
              if (qw < 0 || qw % s.stride_w) continue;
              const int64_t q = qw / s.stride_w;
              if (q >= s.Q) continue;
              for (int64_t kk = 0; kk < Kg; ++kk) {
                const int64_t k = g * Kg + kk;
                acc += dy[dys.at(n, k, p, q)] * w[ws.at(k, cg, r, t)];
              }
            }
          }
          dx[dxs.at(n, c, h, ww)] = acc;
        }
    }
  });
}

// wgrad: dw[k, c, r, s] = Σ_{n, p, q} dy[n, k, p, q] · x[n, g·Cg + c, h, w]. One task per filter k.
template <typename T, typename ParallelFor>
void conv2d_wgrad_direct(const Conv2dShape& s, const T* dy, Strides4 dys, const T* x, Strides4 xs, T* dw,
                         Strides4 dws, ParallelFor&& pfor) {
  const int64_t Cg = s.Cg(), Kg = s.Kg();
  pfor(0, s.K, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const int64_t c0 = (k / Kg) * Cg;
      for (int64_t c = 0; c < Cg; ++c)
        for (int64_t r = 0; r < s.R; ++r)
          for (int64_t t = 0; t < s.S; ++t) {
            T acc = T(0);
            for (int64_t n = 0; n < s.N; ++n)
              for (int64_t p = 0; p < s.P; ++p) {
                const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
                if (h < 0 || h >= s.H) continue;
                for (int64_t q = 0; q < s.Q; ++q) {
                  const int64_t ww = q * s.stride_w - s.pad_w + t * s.dil_w;
                  if (ww < 0 || ww >= s.W) continue;
                  acc += dy[dys.at(n, k, p, q)] * x[xs.at(n, c0 + c, h, ww)];
                }
              }
            dw[dws.at(k, c, r, t)] = acc;
          }
    }
  });
}

// bgrad: db[k] = Σ_{n, p, q} dy[n, k, p, q]. One task per k, summed in a fixed order (deterministic).
template <typename T, typename ParallelFor>
void conv2d_bgrad(int64_t N, int64_t K, int64_t P, int64_t Q, const T* dy, Strides4 dys, T* db, ParallelFor&& pfor) {
  pfor(0, K, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      double acc = 0;  // N·P·Q terms: a double sum keeps float32 rounding error at one final rounding
      for (int64_t n = 0; n < N; ++n)
        for (int64_t p = 0; p < P; ++p)
          for (int64_t q = 0; q < Q; ++q) acc += double(dy[dys.at(n, k, p, q)]);
      db[k] = T(acc);
    }
  });
}

}  // namespace cpu
}  // namespace pyconv
