// Activations on CUDA: the shared glue (activation_glue.h) with a backend that launches cuda_activation.cuh's kernels
// on the current stream. Also compiled for the CPU emulator (activation_emu.cpp): pyconv_emu::* on CPU tensors.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../common/cuda_glue.h"
#include "activation_glue.h"
#include "cuda_activation.cuh"

namespace pyconv {
namespace {

struct CudaBackend {
  template <typename T> using Kernel = typename KernelType<T>::type;
  using Guard = DeviceGuard;
  static void check_device(const at::Tensor& t, const char* op, const char* name) {
    pyconv::check_device(t, op, name);
  }
  template <typename scalar_t> static auto ptr(const at::Tensor& t) { return kptr<scalar_t>(t); }
  template <typename T, Act A> static void forward(const T* x, T* y, int64_t n, acc_t<T> p) {
    check_launch(cuda::launch_activation_fwd<T, A>(x, y, n, p, current_stream()), "activation");
  }
  template <typename T, Act A> static void backward(const T* g, const T* x, T* dx, int64_t n, acc_t<T> p) {
    check_launch(cuda::launch_activation_bwd<T, A>(g, x, dx, n, p, current_stream()), "activation_backward");
  }
};

}  // namespace

#ifdef PYCONV_EMULATION
TORCH_LIBRARY_IMPL(pyconv_emu, CPU, m) { ActivationOps<CudaBackend>::register_impls(m); }
#else
TORCH_LIBRARY_IMPL(pyconv, CUDA, m) { ActivationOps<CudaBackend>::register_impls(m); }
#endif

}  // namespace pyconv
