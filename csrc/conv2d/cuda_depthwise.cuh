// conv2d on CUDA, rung "depthwise": convolutions with one input channel per group (C/groups == 1: MobileNet's
// depthwise layers, K = C·mult). Each output channel reads one input plane, so there is no reduction over channels to
// feed a GEMM: 2·R·S FLOPs per output element against ~2 elements of traffic. These kernels are memory-bound and aim
// at the bandwidth roofline: coalesced loads in either layout, filter taps in registers, float accumulation.
//
//   fprop  y[n, k, p, q]  = bias[k] + Σ_{r,s} x[n, k/mult, h(p,r), w(q,s)] · w[k, 0, r, s]
//   dgrad  dx[n, c, h, w] = Σ_{m<mult} Σ_{r,s} dy[n, c·mult + m, p(h,r), q(w,s)] · w[c·mult + m, 0, r, s]
//   wgrad  dw[k, 0, r, s] = Σ_{n,p,q} dy[n, k, p, q] · x[n, k/mult, h(p,r), w(q,s)]
//
// fprop / dgrad: each thread computes kStrip = 4 horizontally adjacent outputs of one channel (register blocking: a
// filter tap is loaded once for 4 outputs, and with stride 1 the 4 inputs of a tap are adjacent). Which index runs
// fastest across threads follows the memory layout: the channel in channels_last tensors (adjacent threads read
// adjacent channels of one pixel), the strip in NCHW tensors (adjacent threads read adjacent columns).
// wgrad: a block reduces one channel's N·P·Q products for up to kTaps taps at once (one dy load feeds kTaps
// products); split over the batch when there are too few channels to fill the GPU, with a deterministic final sum.
#pragma once
#include "../common/conv_params.h"
#include "../common/cuda_common.cuh"
#include "conv_epilogue.h"

namespace pyconv {
namespace cuda {

constexpr int kDwStrip = 4;      // outputs per thread along w (fprop: q, dgrad: w)
constexpr int kDwThreads = 256;  // fprop/dgrad ask for 3 / 4 resident blocks (≤ 80 / 64 registers): a
                                  // memory-bound kernel needs many warps in flight to cover DRAM latency
                                  // (fprop's fused-epilogue pass needs the extra registers to stay spill-free)
constexpr int kDwTaps = 8;       // wgrad taps per block

// Decodes a linear thread index into (n, channel, row, strip): channel-fastest for channels_last, strip-fastest else.
struct DwIndex {
  int64_t n, c, row, col0;
};
PYCONV_HD DwIndex dw_decode(int64_t i, int64_t C, int64_t rows, int64_t strips, bool channels_fastest) {
  DwIndex d;
  if (channels_fastest) {
    d.c = i % C;
    i /= C;
    d.col0 = (i % strips) * kDwStrip;
    i /= strips;
  } else {
    d.col0 = (i % strips) * kDwStrip;
    i /= strips;
    d.c = i % C;
    i /= C;
  }
  d.row = i % rows;
  d.n = i / rows;
  return d;
}

template <typename T>
__global__ void __launch_bounds__(kDwThreads, 3)
    dw_fprop_kernel(Conv2dShape s, const T* x, Strides4 xs, const T* w, Strides4 ws, const T* bias, T* y, Strides4 ys,
                    bool channels_fastest, ConvEpilogue<T> epi) {
  using Acc = acc_t<T>;
  const int64_t strips = ceil_div(s.Q, kDwStrip), total = s.N * s.K * s.P * strips;
  const int64_t mult = s.K / s.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const DwIndex d = dw_decode(i, s.K, s.P, strips, channels_fastest);
    const int64_t k = d.c, c = k / mult, p = d.row, q0 = d.col0;
    Acc acc[kDwStrip];
    const Acc b = bias ? to_acc(bias[k]) : Acc(0);
#pragma unroll
    for (int j = 0; j < kDwStrip; ++j) acc[j] = b;
    const T* xp = x + d.n * xs.s0 + c * xs.s1;
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
      if (h < 0 || h >= s.H) continue;  // a padding row: contributes zero to all 4 outputs
      for (int64_t t = 0; t < s.S; ++t) {
        const Acc wv = to_acc(w[ws.at(k, 0, r, t)]);  // one tap, reused for the strip
#pragma unroll
        for (int j = 0; j < kDwStrip; ++j) {
          const int64_t ww = (q0 + j) * s.stride_w - s.pad_w + t * s.dil_w;
          if (q0 + j < s.Q && ww >= 0 && ww < s.W) acc[j] += to_acc(xp[h * xs.s2 + ww * xs.s3]) * wv;
        }
      }
    }
#pragma unroll
    for (int j = 0; j < kDwStrip; ++j)
      if (q0 + j < s.Q) y[ys.at(d.n, k, p, q0 + j)] = from_acc<T>(acc[j]);
    // The fused epilogue as a rolled second pass over the values just stored (still in L1): inlining the run-time
    // activation switch into the unrolled stores would cost 4 copies and raise register pressure (occupancy) for
    // every launch, fused or not.
    if (!epi.trivial()) {
#pragma unroll 1
      for (int j = 0; j < kDwStrip && q0 + j < s.Q; ++j) {
        T& out = y[ys.at(d.n, k, p, q0 + j)];
        out = from_acc<T>(epi(to_acc(out), d.n, k, p, q0 + j));
      }
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kDwThreads, 4)
    dw_dgrad_kernel(Conv2dShape s, const T* dy, Strides4 dys, const T* w, Strides4 ws, T* dx, Strides4 dxs,
                    bool channels_fastest) {
  using Acc = acc_t<T>;
  const int64_t strips = ceil_div(s.W, kDwStrip), total = s.N * s.C * s.H * strips;
  const int64_t mult = s.K / s.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const DwIndex d = dw_decode(i, s.C, s.H, strips, channels_fastest);
    const int64_t c = d.c, h = d.row, w0 = d.col0;
    Acc acc[kDwStrip];
#pragma unroll
    for (int j = 0; j < kDwStrip; ++j) acc[j] = Acc(0);
    for (int64_t m = 0; m < mult; ++m) {
      const int64_t k = c * mult + m;
      const T* dyp = dy + d.n * dys.s0 + k * dys.s1;
      for (int64_t r = 0; r < s.R; ++r) {
        // Output row p whose tap r lands on input row h: exact division only.
        const int64_t ph = h + s.pad_h - r * s.dil_h;
        if (ph < 0) continue;
        const int64_t p = ph / s.stride_h;
        if (p * s.stride_h != ph || p >= s.P) continue;
        for (int64_t t = 0; t < s.S; ++t) {
          const Acc wv = to_acc(w[ws.at(k, 0, r, t)]);
#pragma unroll
          for (int j = 0; j < kDwStrip; ++j) {
            const int64_t qw = w0 + j + s.pad_w - t * s.dil_w;
            if (qw < 0) continue;
            const int64_t q = qw / s.stride_w;
            if (w0 + j < s.W && q * s.stride_w == qw && q < s.Q) acc[j] += to_acc(dyp[p * dys.s2 + q * dys.s3]) * wv;
          }
        }
      }
    }
#pragma unroll
    for (int j = 0; j < kDwStrip; ++j)
      if (w0 + j < s.W) dx[dxs.at(d.n, c, h, w0 + j)] = from_acc<T>(acc[j]);
  }
}

// Block (k, tap chunk, split): threads stride over this split's pixels (n, p, q), each accumulating kDwTaps products
// per pixel; then a shared-memory tree adds the 256 partial sums of each tap. ws[split][k][tap] receives the result
// (in the accumulator type: float, or double for double).
template <typename T>
__global__ void __launch_bounds__(kDwThreads)
    dw_wgrad_kernel(Conv2dShape s, const T* dy, Strides4 dys, const T* x, Strides4 xs, acc_t<T>* ws, int64_t splits) {
  using Acc = acc_t<T>;
  __shared__ Acc red[kDwThreads];
  const int64_t k = blockIdx.x, split = blockIdx.z, mult = s.K / s.C, c = k / mult;
  const int64_t taps = s.R * s.S, t0 = int64_t(blockIdx.y) * kDwTaps;
  const int64_t npq = s.N * s.P * s.Q, per = ceil_div(npq, splits);
  const int64_t e0 = split * per, e1 = e0 + per < npq ? e0 + per : npq;
  int tr[kDwTaps], tt[kDwTaps];
#pragma unroll
  for (int j = 0; j < kDwTaps; ++j) {
    const int64_t tap = t0 + j < taps ? t0 + j : taps - 1;  // past the end: a duplicate, never written
    tr[j] = int(tap / s.S), tt[j] = int(tap % s.S);
  }
  Acc acc[kDwTaps];
#pragma unroll
  for (int j = 0; j < kDwTaps; ++j) acc[j] = Acc(0);
  for (int64_t e = e0 + threadIdx.x; e < e1; e += kDwThreads) {
    const int64_t q = e % s.Q, p = (e / s.Q) % s.P, n = e / (s.Q * s.P);
    const Acc g = to_acc(dy[dys.at(n, k, p, q)]);
    const T* xp = x + n * xs.s0 + c * xs.s1;
#pragma unroll
    for (int j = 0; j < kDwTaps; ++j) {
      const int64_t h = p * s.stride_h - s.pad_h + tr[j] * s.dil_h, ww = q * s.stride_w - s.pad_w + tt[j] * s.dil_w;
      if (h >= 0 && h < s.H && ww >= 0 && ww < s.W) acc[j] += g * to_acc(xp[h * xs.s2 + ww * xs.s3]);
    }
  }
  for (int j = 0; j < kDwTaps; ++j) {
    red[threadIdx.x] = acc[j];
    __syncthreads();  // all partial sums of tap j are in shared memory
    for (int half = kDwThreads / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) red[threadIdx.x] += red[threadIdx.x + half];
      __syncthreads();  // this level's sums are complete before the next level (or the next tap) reads red
    }
    if (threadIdx.x == 0 && t0 + j < taps) ws[(split * s.K + k) * taps + t0 + j] = red[0];
    __syncthreads();  // thread 0 has read red[0] before the next tap overwrites red
  }
}

// dw[k, 0, r, s] = Σ_split ws[split][k][r·S + s], splits in order.
template <typename T>
__global__ void dw_wgrad_finish_kernel(Conv2dShape s, const acc_t<T>* ws, int64_t splits, T* dw, Strides4 dws) {
  const int64_t taps = s.R * s.S, total = s.K * taps;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    acc_t<T> v = 0;
    for (int64_t sp = 0; sp < splits; ++sp) v += ws[sp * total + i];
    dw[dws.at(i / taps, 0, (i % taps) / s.S, i % s.S)] = from_acc<T>(v);
  }
}

template <typename T>
cudaError_t launch_dw_fprop(const Conv2dShape& s, const T* x, Strides4 xs, const T* w, Strides4 ws, const T* bias,
                            T* y, Strides4 ys, bool channels_fastest, cudaStream_t stream, ConvEpilogue<T> epi) {
  const int64_t total = s.N * s.K * s.P * ceil_div(s.Q, kDwStrip);
  return launch(dw_fprop_kernel<T>, dim3(grid_1d(total, kDwThreads)), dim3(kDwThreads), 0, stream, s, x, xs, w, ws,
                bias, y, ys, channels_fastest, epi);
}

template <typename T>
cudaError_t launch_dw_dgrad(const Conv2dShape& s, const T* dy, Strides4 dys, const T* w, Strides4 ws, T* dx,
                            Strides4 dxs, bool channels_fastest, cudaStream_t stream) {
  const int64_t total = s.N * s.C * s.H * ceil_div(s.W, kDwStrip);
  return launch(dw_dgrad_kernel<T>, dim3(grid_1d(total, kDwThreads)), dim3(kDwThreads), 0, stream, s, dy, dys, w, ws,
                dx, dxs, channels_fastest);
}

// `work` holds splits · K · R·S accumulators (float; double for double).
template <typename T>
cudaError_t launch_dw_wgrad(const Conv2dShape& s, const T* dy, Strides4 dys, const T* x, Strides4 xs, T* dw,
                            Strides4 dws, acc_t<T>* work, int64_t splits, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(s.K), static_cast<unsigned>(ceil_div(s.R * s.S, kDwTaps)),
                  static_cast<unsigned>(splits));
  cudaError_t e = launch(dw_wgrad_kernel<T>, grid, dim3(kDwThreads), 0, stream, s, dy, dys, x, xs, work, splits);
  if (e != cudaSuccess) return e;
  return launch(dw_wgrad_finish_kernel<T>, dim3(grid_1d(s.K * s.R * s.S, 256)), dim3(256), 0, stream, s,
                static_cast<const acc_t<T>*>(work), splits, dw, dws);
}

}  // namespace cuda
}  // namespace pyconv
