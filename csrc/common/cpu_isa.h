// Which x86 vector ISA the CPU loops may use: the widest this CPU has, capped by PYCONV_CPU_ISA=avx512|avx2|base
// (environment, read on every call, so tests and benchmarks can run every variant on one machine; a variant the CPU
// lacks falls back to the next narrower one). Shared by the GEMM micro-kernels and the activation loops.
#pragma once
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PYCONV_X86_DISPATCH 1
#endif

namespace pyconv {
namespace cpu {

enum class Isa { base = 0, avx2 = 1, avx512 = 2 };

inline Isa cpu_isa(const char* forced = nullptr) {
  const char* want = forced ? forced : std::getenv("PYCONV_CPU_ISA");
#if defined(PYCONV_X86_DISPATCH)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if ((!want || !std::strcmp(want, "avx512")) && avx512) return Isa::avx512;
  if ((!want || !std::strcmp(want, "avx512") || !std::strcmp(want, "avx2")) && avx2) return Isa::avx2;
#endif
  (void)want;
  return Isa::base;
}

inline const char* isa_name(Isa i) { return i == Isa::avx512 ? "avx512" : i == Isa::avx2 ? "avx2" : "base"; }

}  // namespace cpu
}  // namespace pyconv
