// Pooling on the CPU: the shared glue (pooling_glue.h) with a backend that runs the per-element functors in parallel
// loops over (n, c) planes (cpu_pool.h). Every dtype runs natively, at::Half / at::BFloat16 included (accumulated in
// float by acc_t).
#include <torch/library.h>

#include "cpu_pool.h"
#include "pooling_glue.h"

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
  template <typename Fn>
  static void run(const char*, bool channels_last, int64_t N, int64_t C, int64_t A, int64_t B, const Fn& fn) {
    if (channels_last) cpu::for_each_nhwc(N, C, A, B, fn, TorchParallelFor{});
    else cpu::for_each_nchw(N, C, A, B, fn, TorchParallelFor{});
  }
  template <typename T> static void max_backward(const char*, bool, const pool::MaxBwd<T>& b) {
    cpu::max_pool_backward_scatter(b.s, b.dy, b.dys, b.ind, b.is, b.dx, b.dxs, TorchParallelFor{});
  }
  template <typename T> static bool avg_backward_fast(bool, const pool::AvgBwd<T>& b) {
    if (!b.adaptive || b.s.P != 1 || b.s.Q != 1) return false;
    cpu::global_avg_backward(b.s.N, b.s.C, b.s.H, b.s.W, b.dy, b.dys, b.dx, b.dxs, TorchParallelFor{});
    return true;
  }
  template <typename T> static bool max_forward_fast(bool channels_last, const pool::MaxFwd<T>& f) {
    return channels_last && !f.adaptive &&
           cpu::max_pool_nhwc_fast(f.s, f.x, f.xs, f.y, f.ys, f.ind, f.is, TorchParallelFor{});
  }
  template <typename T>
  static void global_avg(const char* op, int64_t N, int64_t C, int64_t H, int64_t W, const T* x, Strides4 xs, T* y,
                         Strides4 ys) {
    if (cpu::global_avg_fast(N, C, H, W, x, xs, y, ys, TorchParallelFor{})) return;
    Pool2dShape s{};
    s.N = N; s.C = C; s.H = H; s.W = W; s.P = s.Q = 1;
    run(op, false, N, C, 1, 1, pool::AvgFwd<T>{s, x, xs, y, ys, true, false, 0});
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(pyconv, CPU, m) { PoolingOps<CpuBackend>::register_impls(m); }

}  // namespace pyconv
