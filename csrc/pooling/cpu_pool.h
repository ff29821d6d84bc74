// Pooling on the CPU: parallel loops over (n, c) planes that call the per-element functors of pool_params.h, the
// same ones the CUDA kernels call. `pfor(begin, end, fn(b, e))` is at::parallel_for, supplied by the torch glue.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "pool_params.h"

namespace pyconv {
namespace cpu {

// fn(n, c, a, b) for every (n, c) plane and every (a, b) in it. Each task owns whole planes: tasks write disjoint
// outputs, so the result does not depend on the thread count.
template <typename Fn, typename ParallelFor>
void for_each_nchw(int64_t N, int64_t C, int64_t A, int64_t B, const Fn& fn, ParallelFor&& pfor) {
  pfor(0, N * C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      for (int64_t a = 0; a < A; ++a)
        for (int64_t b = 0; b < B; ++b) fn(n, c, a, b);
    }
  });
}

// The same index space walked channels-innermost, for channels_last tensors: (n, a) rows in parallel, then b, then c,
// so consecutive calls touch consecutive addresses (walking NCHW order over an NHWC tensor strides by C each step).
template <typename Fn, typename ParallelFor>
void for_each_nhwc(int64_t N, int64_t C, int64_t A, int64_t B, const Fn& fn, ParallelFor&& pfor) {
  pfor(0, N * A, [&](int64_t begin, int64_t end) {
    for (int64_t na = begin; na < end; ++na) {
      const int64_t n = na / A, a = na % A;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) fn(n, c, a, b);
    }
  });
}

// Max-pooling backward on the CPU as a scatter, one (n, c) plane per task: zero the plane's gradient, then add each
// output's gradient at the index it chose, in output order. O(P·Q) per plane instead of the gather's O(H·W·R·S), and
// still deterministic because one task owns the whole plane (the GPU kernels gather instead: they have no such owner).
template <typename T, typename ParallelFor>
void max_pool_backward_scatter(const Pool2dShape& s, const T* dy, Strides4 dys, const int64_t* ind, Strides4 is, T* dx,
                               Strides4 dxs, ParallelFor&& pfor) {
  pfor(0, s.N * s.C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / s.C, c = nc % s.C;
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t w = 0; w < s.W; ++w) dx[dxs.at(n, c, h, w)] = T(0);
      for (int64_t p = 0; p < s.P; ++p)
        for (int64_t q = 0; q < s.Q; ++q) {
          const int64_t i = ind[is.at(n, c, p, q)];
          T& d = dx[dxs.at(n, c, i / s.W, i % s.W)];
          d = from_acc<T>(to_acc(d) + to_acc(dy[dys.at(n, c, p, q)]));
        }
    }
  });
}

// Global average pooling (output 1×1) on the CPU without the per-element functor: NCHW planes are summed as flat
// arrays (8 partial sums, so the loop vectorises without reassociating one accumulator), channels_last rows are
// added across channels (contiguous, vectorises as it is). Fixed orders: deterministic for any thread count.
template <typename T, typename ParallelFor>
bool global_avg_fast(int64_t N, int64_t C, int64_t H, int64_t W, const T* x, Strides4 xs, T* y, Strides4 ys,
                     ParallelFor&& pfor) {
  using F = acc_t<T>;
  const int64_t hw = H * W;
  if (xs.s3 == 1 && xs.s2 == W) {  // each plane is one contiguous run of H·W elements
    pfor(0, N * C, [&](int64_t begin, int64_t end) {
      for (int64_t nc = begin; nc < end; ++nc) {
        const int64_t n = nc / C, c = nc % C;
        const T* p = x + n * xs.s0 + c * xs.s1;
        F part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = 0;
        for (; i + 8 <= hw; i += 8)
          for (int j = 0; j < 8; ++j) part[j] += to_acc(p[i + j]);
        F sum = 0;
        for (; i < hw; ++i) sum += to_acc(p[i]);
        for (int j = 0; j < 8; ++j) sum += part[j];
        y[ys.at(n, c, 0, 0)] = from_acc<T>(sum / F(hw));
      }
    });
    return true;
  }
  if (xs.s1 == 1 && xs.s3 == C && xs.s2 == W * C && ys.s1 == 1) {  // channels_last: rows of C contiguous channels
    pfor(0, N, [&](int64_t begin, int64_t end) {
      std::vector<F> acc(static_cast<size_t>(C));
      for (int64_t n = begin; n < end; ++n) {
        std::fill(acc.begin(), acc.end(), F(0));
        const T* p = x + n * xs.s0;
        for (int64_t i = 0; i < hw; ++i, p += C)
          for (int64_t c = 0; c < C; ++c) acc[size_t(c)] += to_acc(p[c]);
        T* out = y + n * ys.s0;
        for (int64_t c = 0; c < C; ++c) out[c] = from_acc<T>(acc[size_t(c)] / F(hw));
      }
    });
    return true;
  }
  return false;
}

// The backward of global average pooling: every input element of plane (n, c) receives dy[n, c] / (H·W). The
// per-element functor would find that one window with integer divisions per element (30× slower than this fill);
// here one value per plane is broadcast along the plane (NCHW) or across each row of channels (channels_last).
// Same value as the functor: dy / area, computed once in the accumulation type.
template <typename T, typename ParallelFor>
void global_avg_backward(int64_t N, int64_t C, int64_t H, int64_t W, const T* dy, Strides4 dys, T* dx, Strides4 dxs,
                         ParallelFor&& pfor) {
  using F = acc_t<T>;
  const int64_t hw = H * W;
  if (dxs.s1 == 1 && dxs.s3 == C && dxs.s2 == W * C) {  // channels_last: rows of C channels, one value per channel
    pfor(0, N, [&](int64_t begin, int64_t end) {
      std::vector<T> row(static_cast<size_t>(C));
      for (int64_t n = begin; n < end; ++n) {
        for (int64_t c = 0; c < C; ++c) row[size_t(c)] = from_acc<T>(F(to_acc(dy[dys.at(n, c, 0, 0)])) / F(hw));
        T* out = dx + n * dxs.s0;
        for (int64_t i = 0; i < hw; ++i, out += C) std::copy(row.begin(), row.end(), out);
      }
    });
    return;
  }
  pfor(0, N * C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      const T v = from_acc<T>(F(to_acc(dy[dys.at(n, c, 0, 0)])) / F(hw));
      for (int64_t h = 0; h < H; ++h) {
        T* out = dx + n * dxs.s0 + c * dxs.s1 + h * dxs.s2;
        for (int64_t w = 0; w < W; ++w) out[w * dxs.s3] = v;
      }
    }
  });
}

// Max pooling over channels_last input on the CPU: for each output pixel, the window bounds are worked out once and
// the taps are scanned with channels innermost (contiguous), keeping torch's rule per channel (greater or NaN
// replaces; ties keep the first).
template <typename T, typename ParallelFor>
bool max_pool_nhwc_fast(const Pool2dShape& s, const T* x, Strides4 xs, T* y, Strides4 ys, int64_t* ind, Strides4 is,
                        ParallelFor&& pfor) {
  using F = acc_t<T>;
  const int64_t C = s.C;
  if (!(xs.s1 == 1 && xs.s3 == C && ys.s1 == 1 && ys.s3 == C && is.s1 == 1 && is.s3 == C)) return false;
  if (s.H * s.W >= (int64_t(1) << 31)) return false;  // the running indices below are int32
  pfor(0, s.N * s.P, [&](int64_t begin, int64_t end) {
    std::vector<F> m(static_cast<size_t>(C));
    // int32 running indices: the same width as a float lane, so the select loop vectorises even on baseline SSE2
    // (an int64 select next to a float compare does not); widened once per output pixel.
    std::vector<int32_t> tap(static_cast<size_t>(C));
    for (int64_t np = begin; np < end; ++np) {
      const int64_t n = np / s.P, p = np % s.P;
      for (int64_t q = 0; q < s.Q; ++q) {
        int64_t h0 = p * s.stride_h - s.pad_h, w0 = q * s.stride_w - s.pad_w;
        const int64_t h1 = std::min(h0 + (s.R - 1) * s.dil_h + 1, s.H), w1 = std::min(w0 + (s.S - 1) * s.dil_w + 1, s.W);
        while (h0 < 0) h0 += s.dil_h;
        while (w0 < 0) w0 += s.dil_w;
        int64_t* idx = ind + n * is.s0 + p * is.s2 + q * is.s3;
        std::fill(m.begin(), m.end(), -F(INFINITY));
        std::fill(tap.begin(), tap.end(), int32_t(h0 * s.W + w0));
        F* __restrict__ mm = m.data();  // restrict: the running maxima alias neither x nor the indices
        int32_t* __restrict__ id = tap.data();
        for (int64_t h = h0; h < h1; h += s.dil_h)
          for (int64_t w = w0; w < w1; w += s.dil_w) {
            const T* __restrict__ px = x + n * xs.s0 + h * xs.s2 + w * xs.s3;
            const int32_t here = int32_t(h * s.W + w);
            for (int64_t c = 0; c < C; ++c) {  // contiguous channels: a vector loop of selects
              const F v = to_acc(px[c]);
              const F cur = mm[c];
              const bool take = (v > cur) | (v != v);
              mm[c] = take ? v : cur;
              id[c] = take ? here : id[c];
            }
          }
        for (int64_t c = 0; c < C; ++c) idx[c] = id[c];
        T* out = y + n * ys.s0 + p * ys.s2 + q * ys.s3;
        for (int64_t c = 0; c < C; ++c) out[c] = from_acc<T>(m[size_t(c)]);
      }
    }
  });
  return true;
}

}  // namespace cpu
}  // namespace pyconv
