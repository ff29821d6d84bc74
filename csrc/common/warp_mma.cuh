// Warp-level tensor-core operations behind small helpers: inline PTX on the GPU, the emulator's warp collective
// (csrc/emu/cuda_emu.h, same per-lane fragment layouts) in the emulated build. Kernels call only these helpers, so
// tensor-core kernels run under emulation too.
#pragma once
#include <cstdint>

#include "cuda_common.cuh"

namespace pyconv {

// Two halves in one 32-bit register, `lo` in the low 16 bits (the element with the smaller column/row index).
__device__ __forceinline__ uint32_t pack_half2(__half lo, __half hi) {
  const uint16_t l = __half_as_ushort(lo), h = __half_as_ushort(hi);
  return uint32_t(l) | (uint32_t(h) << 16);
}

// D = A·B + C for one 16×8×16 tile per warp, fp16 inputs, fp32 accumulate:
// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32. Fragments per lane (groupID g = lane/4, tig = lane%4):
//   a[0..3]: A rows {g, g+8, g, g+8}, cols 2·tig + {0, 0, 8, 8} (+0 low half, +1 high half)
//   b[0..1]: B rows (k) 2·tig + {0, 8} (+0 low, +1 high), col g
//   c/d[0..3]: rows {g, g, g+8, g+8}, cols 2·tig + {0, 1, 0, 1}
// Needs sm_80+ on a GPU; every lane of the warp must call it (it is a warp collective).
__device__ __forceinline__ void mma_m16n8k16_f16_f32(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                     const float c[4]) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::mma_m16n8k16_f16_f32(d, a, b, c, __FILE__, __LINE__);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#elif defined(__CUDA_ARCH__)
  // Older GPUs have no m16n8k16 tensor-core instruction; pyconv only selects tensor-core kernels on sm_80+.
  __trap();
#endif
}

}  // namespace pyconv
