// Pooling on CUDA: the shared glue (pooling_glue.h) with a backend that launches the grid-stride kernels of
// cuda_pool.cuh on the current stream. Also compiled for the CPU emulator (pooling_emu.cpp), where the same
// launches run on csrc/emu/cuda_emu.h and the ops are pyconv_emu::* on CPU tensors.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../common/cuda_glue.h"
#include "cuda_pool.cuh"
#include "pooling_glue.h"

namespace pyconv {
namespace {

struct CudaBackend {
  template <typename T> using Kernel = typename KernelType<T>::type;
  using Guard = DeviceGuard;
  static void check_device(const at::Tensor& t, const char* op, const char* name) {
    pyconv::check_device(t, op, name);
  }
  template <typename scalar_t> static auto ptr(const at::Tensor& t) { return kptr<scalar_t>(t); }
  template <typename Fn>
  static void run(const char* op, bool channels_last, int64_t N, int64_t C, int64_t A, int64_t B, const Fn& fn) {
    check_launch(cuda::launch_nchw(N, C, A, B, fn, channels_last, current_stream()), op);
  }
  template <typename T> static bool max_forward_fast(bool, const pool::MaxFwd<T>&) { return false; }
  template <typename T> static bool avg_backward_fast(bool, const pool::AvgBwd<T>&) { return false; }
  template <typename T> static void max_backward(const char* op, bool channels_last, const pool::MaxBwd<T>& b) {
    run(op, channels_last, b.s.N, b.s.C, b.s.H, b.s.W, b);  // a gather: one thread per input element
  }
  template <typename T>
  static void global_avg(const char* op, int64_t N, int64_t C, int64_t H, int64_t W, const T* x, Strides4 xs, T* y,
                         Strides4 ys) {
    check_launch(cuda::launch_global_avg(N, C, H, W, x, xs, y, ys, current_stream()), op);
  }
};

}  // namespace

#ifdef PYCONV_EMULATION
TORCH_LIBRARY_IMPL(pyconv_emu, CPU, m) { PoolingOps<CudaBackend>::register_impls(m); }
#else
TORCH_LIBRARY_IMPL(pyconv, CUDA, m) { PoolingOps<CudaBackend>::register_impls(m); }
#endif

}  // namespace pyconv
