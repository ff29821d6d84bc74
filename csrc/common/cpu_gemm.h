// A small packed-panel GEMM for the CPU backend:  C[M×N] (+)= A[M×Kd] · B[Kd×N].
//
// Why packed panels: the micro-kernel keeps an MR×NR block of C in vector registers and, for every step of the
// reduction, needs MR scalars of A and NR contiguous values of B. Packing both operands so that those values are
// adjacent in memory makes every load unit-stride and every cache line fully used:
//
//   A panel ip (rows ip·MR .. ip·MR+MR-1):  Ap[ip][kd][0..MR)     (zero-padded past M)
//   B panel jp (cols jp·NR .. jp·NR+NR-1):  Bp[jp][kd][0..NR)     (zero-padded past N)
//
// The callers (im2col and friends in csrc/conv2d/cpu_gemm.h) write straight into these layouts, so no separate
// packing pass is needed for the activation operand.
//
// The micro-kernel is written once with GCC/Clang vector extensions and compiled for three instruction sets (AVX-512,
// AVX2+FMA, and the baseline, which is SSE2 on x86-64 or NEON-width vectors elsewhere); the widest one the running CPU
// supports is picked once at start-up. NR is two vectors wide and MR is chosen so the 2·MR accumulators plus operands
// fit the register file (32 zmm for AVX-512, 16 ymm/xmm otherwise).
#pragma once
#include "cpu_isa.h"
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace pyconv {
namespace cpu {

template <typename T>
using MicroKernelFn = void (*)(int64_t kd, const T* a, const T* b, T* c, int64_t ldc, int m, int n);

template <typename T>
struct MicroKernel {
  int mr, nr;
  MicroKernelFn<T> fn;  // c[0..m)×[0..n) += (A panel)·(B panel); m ≤ mr, n ≤ nr
  const char* isa;
};

namespace detail {

// One MR×NR block: acc += a_panel · b_panel over kd steps, then add into C (only the m×n valid part on edges).
template <typename T, int VB, int MR>
static inline __attribute__((always_inline)) void micro_kernel_body(int64_t kd, const T* __restrict__ a,
                                                                     const T* __restrict__ b, T* __restrict__ c,
                                                                     int64_t ldc, int m, int n) {
  constexpr int VL = VB / int(sizeof(T));  // lanes per vector
  constexpr int NR = 2 * VL;
  typedef T vec __attribute__((vector_size(VB)));
  vec acc0[MR], acc1[MR];
  for (int i = 0; i < MR; ++i) acc0[i] = acc1[i] = vec{};
  for (int64_t p = 0; p < kd; ++p) {
    vec b0, b1;
    std::memcpy(&b0, b + p * NR, VB);  // memcpy: unaligned vector load, compiles to one instruction
    std::memcpy(&b1, b + p * NR + VL, VB);
    const T* ap = a + p * MR;
    for (int i = 0; i < MR; ++i) {
      acc0[i] += ap[i] * b0;  // scalar·vector broadcasts: one FMA per accumulator
      acc1[i] += ap[i] * b1;
    }
  }
  if (m == MR && n == NR) {
    for (int i = 0; i < MR; ++i) {
      vec c0, c1;
      std::memcpy(&c0, c + i * ldc, VB);
      std::memcpy(&c1, c + i * ldc + VL, VB);
      c0 += acc0[i];
      c1 += acc1[i];
      std::memcpy(c + i * ldc, &c0, VB);
      std::memcpy(c + i * ldc + VL, &c1, VB);
    }
  } else {
    T tmp[MR][NR];
    for (int i = 0; i < MR; ++i) {
      std::memcpy(&tmp[i][0], &acc0[i], VB);
      std::memcpy(&tmp[i][VL], &acc1[i], VB);
    }
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) c[i * ldc + j] += tmp[i][j];
  }
}

#if defined(PYCONV_X86_DISPATCH)
template <typename T>
__attribute__((target("avx512f,fma"))) void micro_kernel_avx512(int64_t kd, const T* a, const T* b, T* c,
                                                                 int64_t ldc, int m, int n) {
  micro_kernel_body<T, 64, 12>(kd, a, b, c, ldc, m, n);
}
template <typename T>
__attribute__((target("avx2,fma"))) void micro_kernel_avx2(int64_t kd, const T* a, const T* b, T* c, int64_t ldc,
                                                           int m, int n) {
  micro_kernel_body<T, 32, 6>(kd, a, b, c, ldc, m, n);
}
#endif
template <typename T>
void micro_kernel_base(int64_t kd, const T* a, const T* b, T* c, int64_t ldc, int m, int n) {
  micro_kernel_body<T, 16, 4>(kd, a, b, c, ldc, m, n);
}

}  // namespace detail

// The widest micro-kernel this CPU runs (cpu_isa(): capped by PYCONV_CPU_ISA).
template <typename T>
inline MicroKernel<T> select_micro_kernel(const char* forced = nullptr) {
  constexpr int s = int(sizeof(T));
  switch (cpu_isa(forced)) {
#if defined(PYCONV_X86_DISPATCH)
    case Isa::avx512: return {12, 2 * 64 / s, &detail::micro_kernel_avx512<T>, "avx512"};
    case Isa::avx2: return {6, 2 * 32 / s, &detail::micro_kernel_avx2<T>, "avx2"};
#endif
    default: return {4, 2 * 16 / s, &detail::micro_kernel_base<T>, "base"};
  }
}

}  // namespace cpu
}  // namespace pyconv
