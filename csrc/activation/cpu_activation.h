// Activations on the CPU: chunks of the flat array in parallel, one formula per element. float (and half/bfloat16,
// computed in float) use cpu_vec_math.h's libm-free formulas so the loops vectorise; double uses activation_math.h's
// (libm, to match torch to 1e-10). Each loop is compiled three times — baseline, AVX2+FMA, AVX-512 — and the widest
// the CPU supports (cpu_isa(), capped by PYCONV_CPU_ISA) runs: the same source, 4, 8 or 16 floats per instruction.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../common/acc_type.h"
#include "../common/cpu_isa.h"
#include "activation_math.h"
#include "cpu_vec_math.h"

namespace pyconv {
namespace cpu {

constexpr int64_t kActGrain = 1 << 15;  // elements per parallel task: enough work to amortise the task start

namespace detail {

template <typename T, Act A>
inline acc_t<T> act_fwd(acc_t<T> x, acc_t<T> p) {
  if constexpr (std::is_same<acc_t<T>, float>::value) return vm::forward<A>(x, float(p));
  else return act::forward<A>(x, p);
}
template <typename T, Act A>
inline acc_t<T> act_bwd(acc_t<T> g, acc_t<T> x, acc_t<T> p) {
  if constexpr (std::is_same<acc_t<T>, float>::value) return vm::backward<A>(g, x, float(p));
  else return act::backward<A>(g, x, p);
}

// The loop bodies, stamped out once per instruction set (the inline formulas are inlined into each clone). float
// goes one native vector (4, 8 or 16 lanes) at a time through vm::'s vector formulas (loads and stores by memcpy: no alignment needed; in place is
// fine, a chunk is read whole before it is written), then the scalar formula for the tail.
#define PYCONV_ACT_LOOPS(SUFFIX, TARGET, VF)                                                                        \
  template <typename T, Act A>                                                                                    \
  TARGET void fwd_loop_##SUFFIX(const T* x, T* y, int64_t b, int64_t e, acc_t<T> p) {                             \
    int64_t i = b;                                                                                                \
    if constexpr (std::is_same<T, float>::value) {                                                                \
      constexpr int64_t kW = sizeof(VF) / sizeof(float);                                                          \
      for (; i + kW <= e; i += kW) {                                                                              \
        VF v;                                                                                                     \
        std::memcpy(&v, x + i, sizeof v);                                                                         \
        const VF r = vm::forward<A>(v, p);                                                                        \
        std::memcpy(y + i, &r, sizeof r);                                                                         \
      }                                                                                                           \
    }                                                                                                             \
    for (; i < e; ++i) y[i] = from_acc<T>(act_fwd<T, A>(to_acc(x[i]), p));                                        \
  }                                                                                                               \
  template <typename T, Act A>                                                                                    \
  TARGET void bwd_loop_##SUFFIX(const T* g, const T* x, T* dx, int64_t b, int64_t e, acc_t<T> p) {                \
    int64_t i = b;                                                                                                \
    if constexpr (std::is_same<T, float>::value) {                                                                \
      constexpr int64_t kW = sizeof(VF) / sizeof(float);                                                          \
      for (; i + kW <= e; i += kW) {                                                                              \
        VF gv, xv;                                                                                                \
        std::memcpy(&gv, g + i, sizeof gv);                                                                       \
        std::memcpy(&xv, x + i, sizeof xv);                                                                       \
        const VF r = vm::backward<A>(gv, xv, p);                                                                  \
        std::memcpy(dx + i, &r, sizeof r);                                                                        \
      }                                                                                                           \
    }                                                                                                             \
    for (; i < e; ++i) dx[i] = from_acc<T>(act_bwd<T, A>(to_acc(g[i]), to_acc(x[i]), p));                         \
  }

PYCONV_ACT_LOOPS(base, , vm::vf4)
#if defined(PYCONV_X86_DISPATCH)
PYCONV_ACT_LOOPS(avx2, __attribute__((target("avx2,fma"))), vm::vf8)
PYCONV_ACT_LOOPS(avx512, __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,fma"))), vm::vf16)
#endif
#undef PYCONV_ACT_LOOPS

}  // namespace detail

// y may be x (in place); partial overlap never happens (the glue passes the same dense tensor or two distinct ones).
template <typename T, Act A, typename ParallelFor>
void activation_forward(const T* x, T* y, int64_t n, acc_t<T> p, ParallelFor&& pfor) {
  auto loop = &detail::fwd_loop_base<T, A>;
#if defined(PYCONV_X86_DISPATCH)
  const Isa isa = cpu_isa();
  if (isa == Isa::avx512) loop = &detail::fwd_loop_avx512<T, A>;
  else if (isa == Isa::avx2) loop = &detail::fwd_loop_avx2<T, A>;
#endif
  pfor(0, (n + kActGrain - 1) / kActGrain, [&](int64_t b, int64_t e) {
    loop(x, y, b * kActGrain, e * kActGrain < n ? e * kActGrain : n, p);
  });
}

template <typename T, Act A, typename ParallelFor>
void activation_backward(const T* g, const T* x, T* dx, int64_t n, acc_t<T> p, ParallelFor&& pfor) {
  auto loop = &detail::bwd_loop_base<T, A>;
#if defined(PYCONV_X86_DISPATCH)
  const Isa isa = cpu_isa();
  if (isa == Isa::avx512) loop = &detail::bwd_loop_avx512<T, A>;
  else if (isa == Isa::avx2) loop = &detail::bwd_loop_avx2<T, A>;
#endif
  pfor(0, (n + kActGrain - 1) / kActGrain, [&](int64_t b, int64_t e) {
    loop(g, x, dx, b * kActGrain, e * kActGrain < n ? e * kActGrain : n, p);
  });
}

}  // namespace cpu
}  // namespace pyconv
