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

// The same index space walked channels-innermost, for channels_last tensors: (n, a) rows in parallel, then b, then c,
// so consecutive calls touch consecutive addresses (walking NCHW order over an NHWC tensor strides by C each step).
template <typename Fn, typename ParallelFor>
void for_each_nhwc(int64_t N, int64_t C, int64_t A, int64_t B, const Fn& fn, ParallelFor&& pfor) {
  pfor(0, N * A, [&](int64_t begin, int64_t end) {
    for (int64_t na = begin; na < end; ++na) {
      const int64_t n = na / A, a = na % A;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) fn(n, c, a, b);
    }
  });
}

// Max-pooling backward on the CPU as a scatter, one (n, c) plane per task: zero the plane's gradient, then add each
// output's gradient at the index it chose, in output order. O(P·Q) per plane instead of the gather's O(H·W·R·S), and
// still deterministic because one task owns the whole plane (the GPU kernels gather instead: they have no such owner).
template <typename T, typename ParallelFor>
void max_pool_backward_scatter(const Pool2dShape& s, const T* dy, Strides4 dys, const int64_t* ind, Strides4 is, T* dx,
                               Strides4 dxs, ParallelFor&& pfor) {
  pfor(0, s.N * s.C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const int64_t n = nc / s.C, c = nc % s.C;
      for (int64_t h = 0; h < s.H; ++h)
        for (int64_t w = 0; w < s.W; ++w) dx[dxs.at(n, c, h, w)] = T(0);
      for (int64_t p = 0; p < s.P; ++p)
        for (int64_t q = 0; q < s.Q; ++q) {
          const int64_t i = ind[is.at(n, c, p, q)];
          T& d = dx[dxs.at(n, c, i / s.W, i % s.W)];
          d = from_acc<T>(to_acc(d) + to_acc(dy[dys.at(n, c, p, q)]));
        }
    }
  });
}

}  // namespace cpu
}  // namespace pyconv
