// Pooling on CUDA: grid-stride kernels that call the per-element functors of pool_params.h (shared with the CPU),
// one thread per output (forward) or per input element (backward, a gather: no atomics, deterministic), with the
// fastest-varying index last so that neighbouring threads touch neighbouring NCHW addresses. Plus a fast path for
// global average pooling (output 1×1): one block per (n, c) plane and a shared-memory tree, instead of one thread
// walking the whole plane.
#pragma once
#include "../common/cuda_common.cuh"
#include "pool_params.h"

namespace pyconv {
namespace cuda {

constexpr int kPoolThreads = 256;

// fn(n, c, a, b) over the whole index space. Neighbouring threads take neighbouring elements of the tensor's memory
// order — b fastest for NCHW, c fastest for channels_last — so their loads and stores coalesce.
template <typename Fn>
__global__ void __launch_bounds__(kPoolThreads)
    nchw_kernel(int64_t N, int64_t C, int64_t A, int64_t B, bool channels_last, Fn fn) {
  const int64_t total = N * C * A * B;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    if (channels_last) {
      const int64_t c = i % C, b = (i / C) % B, a = (i / (C * B)) % A, n = i / (C * B * A);
      fn(n, c, a, b);
    } else {
      const int64_t b = i % B, a = (i / B) % A, c = (i / (A * B)) % C, n = i / (A * B * C);
      fn(n, c, a, b);
    }
  }
}

template <typename Fn>
cudaError_t launch_nchw(int64_t N, int64_t C, int64_t A, int64_t B, const Fn& fn, bool channels_last,
                        cudaStream_t stream) {
  return launch(nchw_kernel<Fn>, dim3(grid_1d(N * C * A * B, kPoolThreads)), dim3(kPoolThreads), 0, stream, N, C, A,
                B, channels_last, fn);
}

// y[n, c] = mean over the H×W plane, one block per plane (grid-stride over planes). Each thread sums a strided
// subset in a fixed order, then a tree in shared memory adds the partial sums: bitwise reproducible.
template <typename T>
__global__ void __launch_bounds__(kPoolThreads)
    global_avg_kernel(int64_t N, int64_t C, int64_t H, int64_t W, const T* __restrict__ x, Strides4 xs,
                      T* __restrict__ y, Strides4 ys) {
  __shared__ acc_t<T> partial[kPoolThreads];
  const int64_t hw = H * W;
  for (int64_t nc = blockIdx.x; nc < N * C; nc += gridDim.x) {
    const int64_t n = nc / C, c = nc % C;
    acc_t<T> acc = 0;
    for (int64_t i = threadIdx.x; i < hw; i += kPoolThreads) acc += to_acc(x[xs.at(n, c, i / W, i % W)]);
    partial[threadIdx.x] = acc;
    __syncthreads();  // every partial sum is written before the tree reads it
    for (int half = kPoolThreads / 2; half > 0; half /= 2) {
      if (int(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();  // this level is complete before the next one reads it
    }
    if (threadIdx.x == 0) y[ys.at(n, c, 0, 0)] = from_acc<T>(partial[0] / acc_t<T>(hw));
    __syncthreads();  // partial[0] is read before the next plane overwrites partial[]
  }
}

template <typename T>
cudaError_t launch_global_avg(int64_t N, int64_t C, int64_t H, int64_t W, const T* x, Strides4 xs, T* y, Strides4 ys,
                              cudaStream_t stream) {
  const int64_t planes = N * C;
  const unsigned blocks = static_cast<unsigned>(planes < kMaxGridX ? planes : kMaxGridX);
  return launch(global_avg_kernel<T>, dim3(blocks), dim3(kPoolThreads), 0, stream, N, C, H, W, x, xs, y, ys);
}

}  // namespace cuda
}  // namespace pyconv
