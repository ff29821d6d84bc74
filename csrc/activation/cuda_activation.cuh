// Activations on CUDA: memory-bound elementwise kernels. Each thread moves 16 bytes per load/store (4 floats, 2
// doubles, 8 halves) when every pointer is 16-byte aligned — the widest transaction a thread can issue — in a
// grid-stride loop; a scalar loop covers the tail and misaligned pointers. The formula is activation_math.h's, shared
// with the CPU.
#pragma once
#include <cstdint>

#include "../common/cuda_common.cuh"
#include "activation_math.h"

namespace pyconv {
namespace cuda {

constexpr int kActThreads = 256;

template <typename T>
struct alignas(16) Vec16 {
  static constexpr int kN = 16 / sizeof(T);
  T v[kN];
};

PYCONV_HD bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

template <typename T, Act A>
__global__ void __launch_bounds__(kActThreads)
    activation_fwd_kernel(const T* __restrict__ x, T* y, int64_t n, acc_t<T> p) {
  // y may alias x (in-place): no __restrict__ on y, and each element is read before it is written by one thread.
  using V = Vec16<T>;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (aligned16(x) && aligned16(y)) {
    const int64_t nv = n / V::kN;
    for (int64_t i = tid; i < nv; i += step) {
      V in = reinterpret_cast<const V*>(x)[i], out;
      for (int j = 0; j < V::kN; ++j) out.v[j] = from_acc<T>(act::forward<A>(to_acc(in.v[j]), p));
      reinterpret_cast<V*>(y)[i] = out;
    }
    done = nv * V::kN;
  }
  for (int64_t i = done + tid; i < n; i += step) y[i] = from_acc<T>(act::forward<A>(to_acc(x[i]), p));
}

template <typename T, Act A>
__global__ void __launch_bounds__(kActThreads)
    activation_bwd_kernel(const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx, int64_t n,
                          acc_t<T> p) {
  using V = Vec16<T>;
  const int64_t tid = blockIdx.x * int64_t(blockDim.x) + threadIdx.x, step = int64_t(gridDim.x) * blockDim.x;
  int64_t done = 0;
  if (aligned16(g) && aligned16(x) && aligned16(dx)) {
    const int64_t nv = n / V::kN;
    for (int64_t i = tid; i < nv; i += step) {
      V gv = reinterpret_cast<const V*>(g)[i], xv = reinterpret_cast<const V*>(x)[i], out;
      for (int j = 0; j < V::kN; ++j) out.v[j] = from_acc<T>(act::backward<A>(to_acc(gv.v[j]), to_acc(xv.v[j]), p));
      reinterpret_cast<V*>(dx)[i] = out;
    }
    done = nv * V::kN;
  }
  for (int64_t i = done + tid; i < n; i += step)
    dx[i] = from_acc<T>(act::backward<A>(to_acc(g[i]), to_acc(x[i]), p));
}

// Enough blocks to fill the GPU several times (the grid-stride loop does the rest); one thread per 16-byte vector.
inline unsigned activation_grid(int64_t n, int elems_per_thread) {
  return grid_1d(ceil_div(n, elems_per_thread), kActThreads);
}

template <typename T, Act A>
cudaError_t launch_activation_fwd(const T* x, T* y, int64_t n, acc_t<T> p, cudaStream_t stream) {
  return launch(activation_fwd_kernel<T, A>, dim3(activation_grid(n, Vec16<T>::kN)), dim3(kActThreads), 0, stream, x,
                y, n, p);
}

template <typename T, Act A>
cudaError_t launch_activation_bwd(const T* g, const T* x, T* dx, int64_t n, acc_t<T> p, cudaStream_t stream) {
  return launch(activation_bwd_kernel<T, A>, dim3(activation_grid(n, Vec16<T>::kN)), dim3(kActThreads), 0, stream, g,
                x, dx, n, p);
}

}  // namespace cuda
}  // namespace pyconv
