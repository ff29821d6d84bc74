// Pooling on the CPU: parallel loops over (n, c) planes that call the per-element functors of pool_params.h, the
// same ones the CUDA kernels call. `pfor(begin, end, fn(b, e))` is at::parallel_for, supplied by the torch glue.
#pragma once
#include <cstdint>

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

}  // namespace cpu
}  // namespace pyconv
