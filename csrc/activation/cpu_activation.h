// Activations on the CPU: chunks of the flat array in parallel, one formula per element (activation_math.h, the same
// as the CUDA kernels). Simple loops the compiler vectorises where the formula allows (relu, leaky_relu, hardswish);
// the transcendental ones call libm per element.
#pragma once
#include <cstdint>

#include "../common/acc_type.h"
#include "activation_math.h"

namespace pyconv {
namespace cpu {

constexpr int64_t kActGrain = 1 << 15;  // elements per parallel task: enough work to amortise the task start

template <typename T, Act A, typename ParallelFor>
void activation_forward(const T* x, T* y, int64_t n, acc_t<T> p, ParallelFor&& pfor) {
  pfor(0, (n + kActGrain - 1) / kActGrain, [&](int64_t b, int64_t e) {
    const int64_t end = e * kActGrain < n ? e * kActGrain : n;
    for (int64_t i = b * kActGrain; i < end; ++i) y[i] = from_acc<T>(act::forward<A>(to_acc(x[i]), p));
  });
}

template <typename T, Act A, typename ParallelFor>
void activation_backward(const T* g, const T* x, T* dx, int64_t n, acc_t<T> p, ParallelFor&& pfor) {
  pfor(0, (n + kActGrain - 1) / kActGrain, [&](int64_t b, int64_t e) {
    const int64_t end = e * kActGrain < n ? e * kActGrain : n;
    for (int64_t i = b * kActGrain; i < end; ++i) dx[i] = from_acc<T>(act::backward<A>(to_acc(g[i]), to_acc(x[i]), p));
  });
}

}  // namespace cpu
}  // namespace pyconv
