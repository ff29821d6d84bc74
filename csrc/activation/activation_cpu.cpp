// Activations on the CPU: the shared glue (activation_glue.h) with a backend running cpu_activation.h's loops on
// torch's intra-op thread pool. at::Half / at::BFloat16 run natively (computed in float per element).
#include <torch/library.h>

#include "activation_glue.h"
#include "cpu_activation.h"

namespace pyconv {
namespace {

struct CpuBackend {
  template <typename T> using Kernel = T;
  struct Guard {
    explicit Guard(c10::Device) {}
  };
  static void check_device(const at::Tensor& t, const char* op, const char* name) {
    TORCH_CHECK(t.device().is_cpu(), "pyconv.", op, ": CPU kernel called with ", name, " on ", t.device());
  }
  template <typename scalar_t> static scalar_t* ptr(const at::Tensor& t) { return t.data_ptr<scalar_t>(); }
  template <typename T, Act A> static void forward(const T* x, T* y, int64_t n, acc_t<T> p) {
    cpu::activation_forward<T, A>(x, y, n, p, TorchParallelFor{});
  }
  template <typename T, Act A> static void backward(const T* g, const T* x, T* dx, int64_t n, acc_t<T> p) {
    cpu::activation_backward<T, A>(g, x, dx, n, p, TorchParallelFor{});
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pyconv, CPU, m) { ActivationOps<CpuBackend>::register_impls(m); }

}  // namespace pyconv
