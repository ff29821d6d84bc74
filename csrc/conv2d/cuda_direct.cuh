// conv2d on CUDA, rung 0: "direct". One thread per output element of the direction being computed, looping over
// the taps that feed it, exactly as the definition in conv_params.h reads. It is the always-right reference rung: no
// shared memory, no tiling, every tensor indexed through its strides (any layout), 64-bit indices throughout.
// Grid-stride loops, so any element count fits any grid (see grid_1d in cuda_common.cuh).
#pragma once
#include "../common/conv_params.h"
#include "../common/cuda_common.cuh"
#include "conv_epilogue.h"

namespace pyconv {
namespace cuda {

constexpr int kDirectThreads = 256;

template <typename T>
__global__ void __launch_bounds__(kDirectThreads)
    fprop_direct_kernel(Conv2dShape s, const T* __restrict__ x, Strides4 xs, const T* __restrict__ w, Strides4 ws,
                        const T* __restrict__ bias, T* __restrict__ y, Strides4 ys, ConvEpilogue<T> epi) {
  const int64_t total = s.N * s.K * s.P * s.Q;
  const int64_t Cg = s.Cg(), Kg = s.Kg();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    // (n, k, p, q) is an element of y; q fastest so neighbouring threads read neighbouring x columns.
    const int64_t q = i % s.Q, p = (i / s.Q) % s.P, k = (i / (s.Q * s.P)) % s.K, n = i / (s.Q * s.P * s.K);
    const int64_t c0 = (k / Kg) * Cg;  // first input channel of k's group
    acc_t<T> acc = bias ? to_acc(bias[k]) : acc_t<T>(0);
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t r = 0; r < s.R; ++r) {
        const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
        if (h < 0 || h >= s.H) continue;  // padding rows contribute zero
        for (int64_t t = 0; t < s.S; ++t) {
          const int64_t ww = q * s.stride_w - s.pad_w + t * s.dil_w;
          if (ww < 0 || ww >= s.W) continue;
          acc += to_acc(x[xs.at(n, c0 + c, h, ww)]) * to_acc(w[ws.at(k, c, r, t)]);
        }
      }
    y[ys.at(n, k, p, q)] = from_acc<T>(epi.trivial() ? acc : epi(acc, n, k, p, q));
  }
}

// dx[n, c, h, w] gathers from every (k, r, s) whose tap lands on (h, w): p = (h + pad_h − r·dil_h) / stride_h must be
// an exact, in-range division (likewise q). Gathering instead of scattering means no atomics and a deterministic sum.
template <typename T>
__global__ void __launch_bounds__(kDirectThreads)
    dgrad_direct_kernel(Conv2dShape s, const T* __restrict__ dy, Strides4 dys, const T* __restrict__ w, Strides4 ws,
                        T* __restrict__ dx, Strides4 dxs) {
  const int64_t total = s.N * s.C * s.H * s.W;
  const int64_t Cg = s.Cg(), Kg = s.Kg();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t ww = i % s.W, h = (i / s.W) % s.H, c = (i / (s.W * s.H)) % s.C, n = i / (s.W * s.H * s.C);
    const int64_t g = c / Cg, cg = c % Cg;
    acc_t<T> acc = 0;
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t ph = h + s.pad_h - r * s.dil_h;
      if (ph < 0 || ph % s.stride_h != 0) continue;
      const int64_t p = ph / s.stride_h;
      if (p >= s.P) continue;
      for (int64_t t = 0; t < s.S; ++t) {
        const int64_t qw = ww + s.pad_w - t * s.dil_w;
        if (qw < 0 || qw % s.stride_w != 0) continue;
        const int64_t q = qw / s.stride_w;
        if (q >= s.Q) continue;
        for (int64_t kk = 0; kk < Kg; ++kk) {
          const int64_t k = g * Kg + kk;
          acc += to_acc(dy[dys.at(n, k, p, q)]) * to_acc(w[ws.at(k, cg, r, t)]);
        }
      }
    }
    dx[dxs.at(n, c, h, ww)] = from_acc<T>(acc);
  }
}

// dw[k, c, r, s] = Σ_{n,p,q} dy[n, k, p, q] · x[n, g·Cg + c, h, w]: one thread per filter tap, summing N·P·Q
// products serially. Correct for any size but slow when N·P·Q is large; the implicit-GEMM rung is the fast one.
template <typename T>
__global__ void __launch_bounds__(kDirectThreads)
    wgrad_direct_kernel(Conv2dShape s, const T* __restrict__ dy, Strides4 dys, const T* __restrict__ x, Strides4 xs,
                        T* __restrict__ dw, Strides4 dws) {
  const int64_t Cg = s.Cg(), Kg = s.Kg();
  const int64_t total = s.K * Cg * s.R * s.S;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = i % s.S, r = (i / s.S) % s.R, c = (i / (s.S * s.R)) % Cg, k = i / (s.S * s.R * Cg);
    const int64_t cin = (k / Kg) * Cg + c;
    acc_t<T> acc = 0;
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t p = 0; p < s.P; ++p) {
        const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
        if (h < 0 || h >= s.H) continue;
        for (int64_t q = 0; q < s.Q; ++q) {
          const int64_t ww = q * s.stride_w - s.pad_w + t * s.dil_w;
          if (ww < 0 || ww >= s.W) continue;
          acc += to_acc(dy[dys.at(n, k, p, q)]) * to_acc(x[xs.at(n, cin, h, ww)]);
        }
      }
    dw[dws.at(k, c, r, t)] = from_acc<T>(acc);
  }
}

// db[k] = Σ_{n,p,q} dy[n, k, p, q]. One block per k (grid-stride over k); each thread sums a strided subset in a
// fixed order, then a shared-memory tree adds the partial sums. No atomics: the result is bitwise reproducible.
constexpr int kBgradThreads = 256;  // a power of two, for the tree below

template <typename T>
__global__ void __launch_bounds__(kBgradThreads)
    bgrad_kernel(int64_t N, int64_t K, int64_t P, int64_t Q, const T* __restrict__ dy, Strides4 dys,
                 T* __restrict__ db) {
  __shared__ acc_t<T> partial[kBgradThreads];
  const int64_t npq = N * P * Q;
  for (int64_t k = blockIdx.x; k < K; k += gridDim.x) {
    acc_t<T> acc = 0;
    for (int64_t i = threadIdx.x; i < npq; i += kBgradThreads) {
      const int64_t q = i % Q, p = (i / Q) % P, n = i / (Q * P);
      acc += to_acc(dy[dys.at(n, k, p, q)]);
    }
    partial[threadIdx.x] = acc;
    __syncthreads();  // every partial sum is written before any thread reads its neighbour's
    for (int half = kBgradThreads / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();  // this level is complete before the next level reads it
    }
    if (threadIdx.x == 0) db[k] = from_acc<T>(partial[0]);
    __syncthreads();  // partial[0] is read before the next k overwrites partial[]
  }
}

// ---- launchers: grid math lives next to the kernels, so it is exercised wherever the kernels are -----------------

template <typename T>
cudaError_t launch_fprop_direct(const Conv2dShape& s, const T* x, Strides4 xs, const T* w, Strides4 ws,
                                const T* bias, T* y, Strides4 ys, cudaStream_t stream,
                                ConvEpilogue<T> epi = ConvEpilogue<T>{}) {
  const unsigned blocks = grid_1d(s.N * s.K * s.P * s.Q, kDirectThreads);
  return launch(fprop_direct_kernel<T>, dim3(blocks), dim3(kDirectThreads), 0, stream, s, x, xs, w, ws, bias, y, ys,
                epi);
}

template <typename T>
cudaError_t launch_dgrad_direct(const Conv2dShape& s, const T* dy, Strides4 dys, const T* w, Strides4 ws, T* dx,
                                Strides4 dxs, cudaStream_t stream) {
  const unsigned blocks = grid_1d(s.N * s.C * s.H * s.W, kDirectThreads);
  return launch(dgrad_direct_kernel<T>, dim3(blocks), dim3(kDirectThreads), 0, stream, s, dy, dys, w, ws, dx, dxs);
}

template <typename T>
cudaError_t launch_wgrad_direct(const Conv2dShape& s, const T* dy, Strides4 dys, const T* x, Strides4 xs, T* dw,
                                Strides4 dws, cudaStream_t stream) {
  const unsigned blocks = grid_1d(s.K * s.Cg() * s.R * s.S, kDirectThreads);
  return launch(wgrad_direct_kernel<T>, dim3(blocks), dim3(kDirectThreads), 0, stream, s, dy, dys, x, xs, dw, dws);
}

template <typename T>
cudaError_t launch_bgrad(int64_t N, int64_t K, int64_t P, int64_t Q, const T* dy, Strides4 dys, T* db,
                         cudaStream_t stream) {
  const unsigned blocks = static_cast<unsigned>(K < 65535 ? K : 65535);
  return launch(bgrad_kernel<T>, dim3(blocks), dim3(kBgradThreads), 0, stream, N, K, P, Q, dy, dys, db);
}

}  // namespace cuda
}  // namespace pyconv
