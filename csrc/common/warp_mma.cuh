// Warp-level tensor-core operations (mma, ldmatrix) and cp.async behind small helpers: inline PTX on the GPU, the emulator's warp collective
// (csrc/emu/cuda_emu.h, same per-lane fragment layouts) in the emulated build. Kernels call only these helpers, so
// tensor-core kernels run under emulation too.
#pragma once
#include <cstdint>

#include "cuda_common.cuh"

// In the emulated build the cp.async / wgmma helpers take their caller's file and line (default arguments evaluated
// at the call site), so an emulator error points at the kernel line, not at the helper.
#if defined(PYCONV_EMULATION)
#define PYCONV_CALL_SITE , const char *call_file = __builtin_FILE(), int call_line = __builtin_LINE()
#else
#define PYCONV_CALL_SITE
#endif

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

// The bfloat16 twin: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, same fragment layouts.
__device__ __forceinline__ void mma_m16n8k16_bf16_f32(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                      const float c[4]) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::mma_m16n8k16_f32(d, a, b, c, true, __FILE__, __LINE__);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// float → TF32 (round to nearest, ties away from zero: cvt.rna.tf32.f32), as the bit pattern the .tf32 mma reads
// (the low 13 mantissa bits zero). Takes and returns raw float bits, as ldmatrix delivers them.
__device__ __forceinline__ uint32_t to_tf32(uint32_t f32_bits) {
#if defined(PYCONV_EMULATION) || !defined(__CUDA_ARCH__) || __CUDA_ARCH__ < 800
  const uint32_t exp = (f32_bits >> 23) & 0xffu;
  if (exp == 0xffu) return f32_bits;  // inf / nan unchanged
  return (f32_bits + 0x1000u) & ~0x1fffu;
#else
  uint32_t r;
  float f;
  memcpy(&f, &f32_bits, 4);
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(f));
  return r;
#endif
}

// D = A·B + C, 16×8×8, TF32 inputs (raw bits from to_tf32), float accumulate: mma.sync.aligned.m16n8k8.row.col.f32
// .tf32.tf32.f32. Fragments (g = lane/4, t = lane%4): a[0..3] = A (g, t), (g+8, t), (g, t+4), (g+8, t+4);
// b[0..1] = B (k t, n g), (k t+4, n g); c/d as for m16n8k16.
__device__ __forceinline__ void mma_m16n8k8_tf32(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                 const float c[4]) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::mma_m16n8k8_tf32(d, a, b, c, __FILE__, __LINE__);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%10, %11, %12, %13};\n"
      : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), "f"(c[1]), "f"(c[2]),
        "f"(c[3]));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// One name for kernels templated on the element type.
template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4]);
template <>
__device__ __forceinline__ void mma_m16n8k16<__half>(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                     const float c[4]) {
  mma_m16n8k16_f16_f32(d, a, b, c);
}
template <>
__device__ __forceinline__ void mma_m16n8k16<__nv_bfloat16>(float d[4], const uint32_t a[4], const uint32_t b[2],
                                                            const float c[4]) {
  mma_m16n8k16_bf16_f32(d, a, b, c);
}

#if !defined(PYCONV_EMULATION) && defined(__CUDA_ARCH__)
// A generic pointer into shared memory as the 32-bit shared-window address PTX's .shared operands take.
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
#endif

// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: the warp loads four 8×8 16-bit matrices from shared memory in one
// instruction (LDSM), already in mma fragment order. Lane l gives the address of row l%8 of matrix l/8 (16 contiguous
// bytes, 16-byte aligned); r[i] receives this lane's pair of matrix i: (row l/4, cols 2·(l%4) + {0,1}), or with
// `trans` the pair (rows 2·(l%4) + {0,1}, col l/4). A warp collective: every lane calls it.
template <bool Trans = false>
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], const void* row_addr) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::ldmatrix_x4(r, row_addr, Trans, __FILE__, __LINE__);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if (Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row_addr)));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row_addr)));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// cp.async.cg.shared.global: a 16-byte global → shared copy that bypasses registers and L1 (LDGSTS), into the
// shared-window address `dst` (the loaders compute a stage's address once and add constant offsets). With `valid`
// false nothing is read and the 16 bytes are zero-filled (src-size 0), which is how out-of-image taps and the ragged
// edges of a tile become the zeros of implicit padding without a branch around the copy. `src` must still be a
// mapped address, so callers pass the tensor's base pointer for invalid copies.
__device__ __forceinline__ void cp_async_16_to(uint32_t dst, const void* src, bool valid PYCONV_CALL_SITE) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::cp_async(::pyconv_emu::detail::smem_window_ptr(dst), src, 16, valid ? 16 : 0, call_file,
                                 call_line);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// The same copy to a shared-memory pointer (the emulator also takes static shared memory here).
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid PYCONV_CALL_SITE) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::cp_async(dst, src, 16, valid ? 16 : 0, call_file, call_line);
#elif defined(__CUDA_ARCH__)
  cp_async_16_to(smem_addr(dst), src, valid);
#endif
}

// Closes the group of cp.async copies issued since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::cp_async_commit();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}

// Waits until at most N of this thread's committed groups are still in flight. Only this thread's copies: a
// __syncthreads must follow before other threads read what landed.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::cp_async_wait(N);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

}  // namespace pyconv
