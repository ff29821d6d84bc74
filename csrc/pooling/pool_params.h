// 2-D pooling: shape, output-size rule, and the value of one output / one input gradient element, written once for
// the CPU loops, the CUDA kernels and the emulator (PYCONV_HD functions, no torch header).
//
//   input x : N × C × H × W   →   output y : N × C × P × Q
//   window of output (p, q): rows h = p·stride_h − pad_h + r·dil_h (r < R), cols w = q·stride_w − pad_w + s·dil_w
//   (taps outside the image are padding: −∞ for max, 0 for average).
//   adaptive pooling: rows [⌊p·H/P⌋, ⌈(p+1)·H/P⌉), cols likewise.
//
// Every backward is a *gather*: each input element sums the gradients of the outputs whose window holds it (and, for
// max pooling, chose it). No atomics, so gradients are bitwise reproducible; the price is that each input element
// visits R·S candidate outputs (cheap for the usual 2×2 and 3×3 windows).
#pragma once
#include <cstdint>

#include "../common/acc_type.h"
#include "../common/conv_params.h"
#include "../common/macros.h"

namespace pyconv {

struct Pool2dShape {
  int64_t N, C, H, W;  // input
  int64_t P, Q;        // output
  int64_t R, S;        // window (kernel_size); for adaptive pooling, unused
  int64_t stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
};

// torch's pooling_output_shape: with ceil_mode the last window may hang over the bottom/right edge, but must start
// inside the input or the left/top padding.
inline int64_t pool_output_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, bool ceil_mode) {
  const int64_t span = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;  // floor division
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

PYCONV_HD int64_t adaptive_start(int64_t i, int64_t out, int64_t in) { return (i * in) / out; }
PYCONV_HD int64_t adaptive_end(int64_t i, int64_t out, int64_t in) { return ((i + 1) * in + out - 1) / out; }

template <typename F> PYCONV_HD bool is_nan(F v) { return v != v; }

namespace pool {

// Max over the window of output (n, c, p, q), and the flat index h·W + w of the element chosen. Same rule as torch:
// start from −∞ at the first in-image tap, take a value if it is greater or NaN (so a NaN wins, the last NaN in scan
// order), ties keep the first.
template <typename T, typename F>
PYCONV_HD void max_at(const Pool2dShape& s, const T* x, Strides4 xs, int64_t n, int64_t c, int64_t p, int64_t q,
                      F* best, int64_t* best_idx) {
  int64_t h0 = p * s.stride_h - s.pad_h, w0 = q * s.stride_w - s.pad_w;
  const int64_t h_end = h0 + (s.R - 1) * s.dil_h + 1 < s.H ? h0 + (s.R - 1) * s.dil_h + 1 : s.H;
  const int64_t w_end = w0 + (s.S - 1) * s.dil_w + 1 < s.W ? w0 + (s.S - 1) * s.dil_w + 1 : s.W;
  while (h0 < 0) h0 += s.dil_h;  // first tap inside the image
  while (w0 < 0) w0 += s.dil_w;
  F m = -F(INFINITY);
  int64_t idx = h0 * s.W + w0;
  for (int64_t h = h0; h < h_end; h += s.dil_h)
    for (int64_t w = w0; w < w_end; w += s.dil_w) {
      const F v = F(to_acc(x[xs.at(n, c, h, w)]));
      if (v > m || is_nan(v)) {
        m = v;
        idx = h * s.W + w;
      }
    }
  *best = m;
  *best_idx = idx;
}

// Average over the window of output (n, c, p, q), torch's avg_pool2d rule: the divisor is divisor_override if given
// (≠ 0), else the window size clipped to the padded input (count_include_pad) or to the image.
template <typename T, typename F>
PYCONV_HD F avg_at(const Pool2dShape& s, const T* x, Strides4 xs, int64_t n, int64_t c, int64_t p, int64_t q,
                   bool count_include_pad, int64_t divisor_override) {
  int64_t h0 = p * s.stride_h - s.pad_h, w0 = q * s.stride_w - s.pad_w;
  int64_t h1 = h0 + s.R < s.H + s.pad_h ? h0 + s.R : s.H + s.pad_h;
  int64_t w1 = w0 + s.S < s.W + s.pad_w ? w0 + s.S : s.W + s.pad_w;
  const int64_t padded_size = (h1 - h0) * (w1 - w0);
  if (h0 < 0) h0 = 0;
  if (w0 < 0) w0 = 0;
  if (h1 > s.H) h1 = s.H;
  if (w1 > s.W) w1 = s.W;
  if (h0 >= h1 || w0 >= w1) return F(0);
  F sum = 0;
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) sum += F(to_acc(x[xs.at(n, c, h, w)]));
  const int64_t div = divisor_override ? divisor_override : (count_include_pad ? padded_size : (h1 - h0) * (w1 - w0));
  return sum / F(div);
}

// The divisor avg_at used for output (p, q): the backward pass needs it per output.
PYCONV_HD int64_t avg_divisor(const Pool2dShape& s, int64_t p, int64_t q, bool count_include_pad,
                              int64_t divisor_override) {
  if (divisor_override) return divisor_override;
  int64_t h0 = p * s.stride_h - s.pad_h, w0 = q * s.stride_w - s.pad_w;
  int64_t h1 = h0 + s.R < s.H + s.pad_h ? h0 + s.R : s.H + s.pad_h;
  int64_t w1 = w0 + s.S < s.W + s.pad_w ? w0 + s.S : s.W + s.pad_w;
  if (count_include_pad) return (h1 - h0) * (w1 - w0);
  if (h0 < 0) h0 = 0;
  if (w0 < 0) w0 = 0;
  if (h1 > s.H) h1 = s.H;
  if (w1 > s.W) w1 = s.W;
  return (h1 - h0) * (w1 - w0);
}

// Calls fn(p, q) for every output whose window has a tap on input (h, w): p = (h + pad − r·dil)/stride when exact.
template <typename Fn>
PYCONV_HD void for_each_window_on(const Pool2dShape& s, int64_t h, int64_t w, Fn&& fn) {
  for (int64_t r = 0; r < s.R; ++r) {
    const int64_t ph = h + s.pad_h - r * s.dil_h;
    if (ph < 0) break;  // larger r only lowers ph further
    const int64_t p = ph / s.stride_h;
    if (p * s.stride_h != ph || p >= s.P) continue;
    for (int64_t t = 0; t < s.S; ++t) {
      const int64_t qw = w + s.pad_w - t * s.dil_w;
      if (qw < 0) break;
      const int64_t q = qw / s.stride_w;
      if (q * s.stride_w != qw || q >= s.Q) continue;
      fn(p, q);
    }
  }
}

// dx[n, c, h, w] for max pooling: the gradients of the outputs that chose (h, w).
template <typename T, typename F>
PYCONV_HD F max_grad_at(const Pool2dShape& s, const T* dy, Strides4 dys, const int64_t* ind, Strides4 is, int64_t n,
                        int64_t c, int64_t h, int64_t w) {
  F acc = 0;
  const int64_t me = h * s.W + w;
  for_each_window_on(s, h, w, [&](int64_t p, int64_t q) {
    if (ind[is.at(n, c, p, q)] == me) acc += F(to_acc(dy[dys.at(n, c, p, q)]));
  });
  return acc;
}

template <typename T, typename F>
PYCONV_HD F avg_grad_at(const Pool2dShape& s, const T* dy, Strides4 dys, int64_t n, int64_t c, int64_t h, int64_t w,
                        bool count_include_pad, int64_t divisor_override) {
  F acc = 0;
  for_each_window_on(s, h, w, [&](int64_t p, int64_t q) {
    acc += F(to_acc(dy[dys.at(n, c, p, q)])) / F(avg_divisor(s, p, q, count_include_pad, divisor_override));
  });
  return acc;
}

// ---- adaptive pooling -------------------------------------------------------------------------------------------

template <typename T, typename F>
PYCONV_HD F adaptive_avg_at(const Pool2dShape& s, const T* x, Strides4 xs, int64_t n, int64_t c, int64_t p, int64_t q) {
  const int64_t h0 = adaptive_start(p, s.P, s.H), h1 = adaptive_end(p, s.P, s.H);
  const int64_t w0 = adaptive_start(q, s.Q, s.W), w1 = adaptive_end(q, s.Q, s.W);
  F sum = 0;
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) sum += F(to_acc(x[xs.at(n, c, h, w)]));
  return sum / F((h1 - h0) * (w1 - w0));
}

template <typename T, typename F>
PYCONV_HD void adaptive_max_at(const Pool2dShape& s, const T* x, Strides4 xs, int64_t n, int64_t c, int64_t p,
                               int64_t q, F* best, int64_t* best_idx) {
  const int64_t h0 = adaptive_start(p, s.P, s.H), h1 = adaptive_end(p, s.P, s.H);
  const int64_t w0 = adaptive_start(q, s.Q, s.W), w1 = adaptive_end(q, s.Q, s.W);
  F m = -F(INFINITY);
  int64_t idx = h0 * s.W + w0;
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) {
      const F v = F(to_acc(x[xs.at(n, c, h, w)]));
      if (v > m || is_nan(v)) {
        m = v;
        idx = h * s.W + w;
      }
    }
  *best = m;
  *best_idx = idx;
}

// Outputs p whose adaptive window holds row h: end(p) > h ⇔ p ≥ ⌊h·P/H⌋, start(p) ≤ h ⇔ p ≤ ⌈(h+1)·P/H⌉ − 1.
template <typename Fn>
PYCONV_HD void for_each_adaptive_window_on(const Pool2dShape& s, int64_t h, int64_t w, Fn&& fn) {
  const int64_t p0 = (h * s.P) / s.H, p1 = ((h + 1) * s.P + s.H - 1) / s.H;
  const int64_t q0 = (w * s.Q) / s.W, q1 = ((w + 1) * s.Q + s.W - 1) / s.W;
  for (int64_t p = p0; p < p1 && p < s.P; ++p)
    for (int64_t q = q0; q < q1 && q < s.Q; ++q) fn(p, q);
}

template <typename T, typename F>
PYCONV_HD F adaptive_avg_grad_at(const Pool2dShape& s, const T* dy, Strides4 dys, int64_t n, int64_t c, int64_t h,
                                 int64_t w) {
  F acc = 0;
  for_each_adaptive_window_on(s, h, w, [&](int64_t p, int64_t q) {
    const int64_t area = (adaptive_end(p, s.P, s.H) - adaptive_start(p, s.P, s.H)) *
                         (adaptive_end(q, s.Q, s.W) - adaptive_start(q, s.Q, s.W));
    acc += F(to_acc(dy[dys.at(n, c, p, q)])) / F(area);
  });
  return acc;
}

template <typename T, typename F>
PYCONV_HD F adaptive_max_grad_at(const Pool2dShape& s, const T* dy, Strides4 dys, const int64_t* ind, Strides4 is,
                                 int64_t n, int64_t c, int64_t h, int64_t w) {
  F acc = 0;
  const int64_t me = h * s.W + w;
  for_each_adaptive_window_on(s, h, w, [&](int64_t p, int64_t q) {
    if (ind[is.at(n, c, p, q)] == me) acc += F(to_acc(dy[dys.at(n, c, p, q)]));
  });
  return acc;
}

// ---- one element of each op, as functors the CPU loops (cpu_pool.h) and the CUDA kernels (cuda_pool.cuh) call ----
// Forward functors are called per output (n, c, p, q); backward functors per input element (n, c, h, w).

template <typename T>
struct MaxFwd {
  Pool2dShape s;
  const T* x; Strides4 xs;
  T* y; Strides4 ys;
  int64_t* ind; Strides4 is;
  bool adaptive;
  PYCONV_HD void operator()(int64_t n, int64_t c, int64_t p, int64_t q) const {
    acc_t<T> m;
    int64_t idx;
    if (adaptive) adaptive_max_at(s, x, xs, n, c, p, q, &m, &idx);
    else max_at(s, x, xs, n, c, p, q, &m, &idx);
    y[ys.at(n, c, p, q)] = from_acc<T>(m);
    ind[is.at(n, c, p, q)] = idx;
  }
};

template <typename T>
struct MaxBwd {
  Pool2dShape s;
  const T* dy; Strides4 dys;
  const int64_t* ind; Strides4 is;
  T* dx; Strides4 dxs;
  bool adaptive;
  PYCONV_HD void operator()(int64_t n, int64_t c, int64_t h, int64_t w) const {
    dx[dxs.at(n, c, h, w)] = from_acc<T>(adaptive ? adaptive_max_grad_at<T, acc_t<T>>(s, dy, dys, ind, is, n, c, h, w)
                                                  : max_grad_at<T, acc_t<T>>(s, dy, dys, ind, is, n, c, h, w));
  }
};

template <typename T>
struct AvgFwd {
  Pool2dShape s;
  const T* x; Strides4 xs;
  T* y; Strides4 ys;
  bool adaptive, count_include_pad;
  int64_t divisor_override;
  PYCONV_HD void operator()(int64_t n, int64_t c, int64_t p, int64_t q) const {
    y[ys.at(n, c, p, q)] = from_acc<T>(
        adaptive ? adaptive_avg_at<T, acc_t<T>>(s, x, xs, n, c, p, q)
                 : avg_at<T, acc_t<T>>(s, x, xs, n, c, p, q, count_include_pad, divisor_override));
  }
};

template <typename T>
struct AvgBwd {
  Pool2dShape s;
  const T* dy; Strides4 dys;
  T* dx; Strides4 dxs;
  bool adaptive, count_include_pad;
  int64_t divisor_override;
  PYCONV_HD void operator()(int64_t n, int64_t c, int64_t h, int64_t w) const {
    dx[dxs.at(n, c, h, w)] = from_acc<T>(
        adaptive ? adaptive_avg_grad_at<T, acc_t<T>>(s, dy, dys, n, c, h, w)
                 : avg_grad_at<T, acc_t<T>>(s, dy, dys, n, c, h, w, count_include_pad, divisor_override));
  }
};

}  // namespace pool
}  // namespace pyconv
