// Warpgroup-level tensor-core operations of Hopper (sm_90a): wgmma.mma_async and its fences, the shared-memory matrix
// descriptor it reads its operands through, and the async-proxy fence. Inline PTX on an sm_90a GPU, the emulator's
// model (csrc/emu/cuda_emu.h: same descriptor decoding, same accumulator layout) in the emulated build, a trap on
// other GPUs (the host selects these kernels only on compute capability 9.0 with an sm_90a build: wgmma_available()).
//
// Why wgmma on Hopper: mma.sync (warp_mma.cuh) feeds the tensor cores from registers that every warp first fills from
// shared memory by ldmatrix, so a 128×128 block tile reads its A and B operands once per warp: on an H200 the
// mma.sync kernels reached 100-200 TFLOP/s where cuDNN (wgmma) reaches 250-440 on ResNet-50's layers. wgmma reads
// both operands straight from shared memory once per warpgroup (4 warps, 64 rows of the output), asynchronously, so
// the issuing warps are free for the next tile's copies while the tensor cores work.
//
// Operand layouts, both with the 128-byte swizzle (PTX ISA, "canonical layouts"; T = 8 16-bit elements = 16 bytes):
//   K-major (fprop, dgrad): a tile of rows (M or N) × 64 reduction elements, each row 128 contiguous bytes; rows
//     8 apart are SBO = 1024 bytes apart. CuTe form ((8, m), (T, 2)) : ((8T, SBO), (1, T)).
//   MN-major (wgrad, whose operands are contiguous along M and N: dy[npq][k], x[npq][c]): a tile of 64 reduction
//     rows × 64 M (or N) elements, each reduction row 128 contiguous bytes of 64 M elements; reduction rows 8 apart
//     are SBO = 1024 bytes apart and the next 64 M elements (another such tile) LBO bytes further.
//     CuTe form ((T, 8, m), (8, k)) : ((1, T, LBO), (8T, SBO)). The instruction's imm-trans-a/b = 1 selects it.
// Either way the tile's base is 1024-byte aligned and the 16-byte chunk c of a 128-byte row r lives at chunk position
// c ^ (r mod 8) of that row: the hardware applies that XOR to the *address* bits [4, 7) from bits [7, 10), which is
// why the base must be 1024-byte aligned (8 rows = one swizzle pattern).
#pragma once
#include <cstdint>
#include <type_traits>

#include "cuda_common.cuh"
#include "warp_mma.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PYCONV_WGMMA_DEVICE 1  // compiling device code for sm_90a: wgmma exists
#endif

namespace pyconv {

// The 32-bit shared-window address of a shared-memory pointer (what descriptors and .shared operands hold). The
// emulator has its own window (see cuda_emu.h: it starts 16 bytes past a 1024-byte boundary, so code that forgets to
// align its swizzled tiles fails there too).
__device__ __forceinline__ uint32_t smem_window_addr(const void* p) {
#if defined(PYCONV_EMULATION)
  return ::pyconv_emu::detail::smem_window(p);
#elif defined(__CUDA_ARCH__)
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
#else
  return 0;
#endif
}

// The 64-bit shared-memory matrix descriptor of a K-major, 128-byte-swizzled tile starting at window address `addr`
// (PTX ISA, "Matrix Descriptor Format"): bits 0-13 start address >> 4; 16-29 leading-dimension byte offset >> 4
// (unused for swizzled K-major tiles whose K extent is one swizzle row; 1 by convention); 32-45 stride-dimension byte
// offset >> 4 = 1024 bytes between consecutive 8-row groups; 49-51 base offset 0 (the tile is pattern-aligned);
// 62-63 swizzle mode 1 = 128-byte. One k16 step further along K is 32 bytes further: desc + 2.
__device__ __forceinline__ uint64_t wgmma_desc_sw128(uint32_t addr) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

// The descriptor of an MN-major, 128-byte-swizzled tile at window address `addr`: LBO = `lbo` bytes between the
// 64-element blocks along M (or N), SBO = 1024 bytes between consecutive groups of 8 reduction rows. One k16 step
// further along the reduction is 16 rows = 2048 bytes further: desc + 128.
__device__ __forceinline__ uint64_t wgmma_desc_sw128_mn(uint32_t addr, uint32_t lbo) {
  return uint64_t((addr & 0x3FFFF) >> 4) | (uint64_t((lbo & 0x3FFFF) >> 4) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

// `desc` with its start address `units` 16-byte units further. Window addresses stay below 256 KiB, so the 14-bit
// start-address field never carries into the rest: the low word alone changes (a 32-bit add, where a 64-bit one
// costs the main loops two instructions and a register pair per descriptor).
__device__ __forceinline__ uint64_t wgmma_desc_add(uint64_t desc, uint32_t units) {
  return (desc & ~uint64_t(0xFFFFFFFFu)) | uint32_t(uint32_t(desc) + units);
}

// wgmma.fence: orders this warpgroup's earlier register accesses to the accumulators (the zero fill, a previous
// epilogue) before the next wgmma reads them. Needed before the first wgmma and whenever ordinary code touched them.
__device__ __forceinline__ void wgmma_fence() {
#if defined(PYCONV_WGMMA_DEVICE)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}

// Closes the batch of wgmma.mma_async issued since the last commit into one group.
__device__ __forceinline__ void wgmma_commit() {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::wgmma_commit();
#elif defined(PYCONV_WGMMA_DEVICE)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}

// Waits until at most N of this warpgroup's committed groups are pending: the older groups' accumulators are final
// and their shared-memory operands may be overwritten (after a barrier, for other warpgroups' copies).
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::wgmma_wait(N);
#elif defined(PYCONV_WGMMA_DEVICE)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}

// fence.proxy.async.shared::cta: shared memory written through the generic proxy (ordinary stores, cp.async) must be
// fenced by each writing thread before the barrier after which the async proxy (wgmma's operand reads) uses it.
__device__ __forceinline__ void fence_proxy_async_smem() {
#if !defined(PYCONV_EMULATION) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

#if defined(PYCONV_WGMMA_DEVICE)
// The instructions: one macro per shape, the input type ("f16" or "bf16") and the transpose immediates
// ("imm-trans-a, imm-trans-b": 0 K-major, 1 MN-major) spliced into the instruction string; N/2 accumulator operands;
// scale-d = 1 (D += A·B: the kernels zero their accumulators).
// The accumulator operands: d[j][0..3] for 8 consecutive column tiles j0 .. j0+7 (32 registers) at a time.
#define PYCONV_WGMMA_D4(d, j) "+f"(d[j][0]), "+f"(d[j][1]), "+f"(d[j][2]), "+f"(d[j][3])
#define PYCONV_WGMMA_D32(d, j0)                                                                            \
  PYCONV_WGMMA_D4(d, j0), PYCONV_WGMMA_D4(d, j0 + 1), PYCONV_WGMMA_D4(d, j0 + 2), PYCONV_WGMMA_D4(d, j0 + 3), \
      PYCONV_WGMMA_D4(d, j0 + 4), PYCONV_WGMMA_D4(d, j0 + 5), PYCONV_WGMMA_D4(d, j0 + 6), PYCONV_WGMMA_D4(d, j0 + 7)
// The accumulator operand numbers, 16 at a time.
#define PYCONV_WGMMA_R0 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
#define PYCONV_WGMMA_R1 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define PYCONV_WGMMA_R2 "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47"
#define PYCONV_WGMMA_R3 "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define PYCONV_WGMMA_R4 "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79"
#define PYCONV_WGMMA_R5 "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95"
#define PYCONV_WGMMA_R6 "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111"
#define PYCONV_WGMMA_R7 "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
// n16: 8 accumulators a thread (column tiles 0 and 1).
#define PYCONV_WGMMA_M64N16K16(AB, TN, d, desc_a, desc_b) \
  asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n16k16.f32." AB "." AB " {" \
      "%0, %1, %2, %3, %4, %5, %6, %7" \
      "}, %8, %9, p, 1, 1, " TN ";\n}\n" \
      : PYCONV_WGMMA_D4(d, 0), PYCONV_WGMMA_D4(d, 1) \
      : "l"(desc_a), "l"(desc_b), "r"(1))
#define PYCONV_WGMMA_M64N64K16(AB, TN, d, desc_a, desc_b) \
  asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." AB "." AB " {" \
      PYCONV_WGMMA_R0 ", " PYCONV_WGMMA_R1 \
      "}, %32, %33, p, 1, 1, " TN ";\n}\n" \
      : PYCONV_WGMMA_D32(d, 0) \
      : "l"(desc_a), "l"(desc_b), "r"(1))
#define PYCONV_WGMMA_M64N128K16(AB, TN, d, desc_a, desc_b) \
  asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." AB "." AB " {" \
      PYCONV_WGMMA_R0 ", " PYCONV_WGMMA_R1 ", " PYCONV_WGMMA_R2 ", " PYCONV_WGMMA_R3 \
      "}, %64, %65, p, 1, 1, " TN ";\n}\n" \
      : PYCONV_WGMMA_D32(d, 0), PYCONV_WGMMA_D32(d, 8) \
      : "l"(desc_a), "l"(desc_b), "r"(1))
#define PYCONV_WGMMA_M64N256K16(AB, TN, d, desc_a, desc_b) \
  asm volatile( \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n" \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." AB "." AB " {" \
      PYCONV_WGMMA_R0 ", " PYCONV_WGMMA_R1 ", " PYCONV_WGMMA_R2 ", " PYCONV_WGMMA_R3 ", " \
      PYCONV_WGMMA_R4 ", " PYCONV_WGMMA_R5 ", " PYCONV_WGMMA_R6 ", " PYCONV_WGMMA_R7 \
      "}, %128, %129, p, 1, 1, " TN ";\n}\n" \
      : PYCONV_WGMMA_D32(d, 0), PYCONV_WGMMA_D32(d, 8), PYCONV_WGMMA_D32(d, 16), PYCONV_WGMMA_D32(d, 24) \
      : "l"(desc_a), "l"(desc_b), "r"(1))
#endif

// D (64 × N, float) += A (64 × 16) · B (16 × N) for the warpgroup, both operands 128-byte-swizzled tiles in shared
// memory (descriptors above), each K-major or MN-major: kMnA for A, kMnB for B (wgrad: both MN-major; the TMA
// dgrad kernel: A K-major, B MN-major — the filter read in place, c contiguous); N = 16, 64, 128 or 256. Accumulator
// layout, thread t of the warpgroup (warp w = t/32, lane l, g = l/4, t4 = l%4): d[j][i] holds D(16w + g + 8·(i ≥ 2),
// 8j + 2·t4 + (i mod 2)) — the mma.sync m16n8 C fragment, repeated over the N/8 column tiles. Asynchronous: d must
// not be touched until a wgmma_wait covers this group. A warpgroup collective: all 128 threads issue it.
template <typename T, int N, bool kMnA = false, bool kMnB = kMnA>
__device__ __forceinline__ void wgmma_m64k16(float (&d)[N / 8][4], uint64_t desc_a, uint64_t desc_b PYCONV_CALL_SITE) {
  static_assert(N == 16 || N == 64 || N == 128 || N == 256, "wgmma tiles are 16, 64, 128 or 256 columns wide here");
  constexpr bool kBf16 = std::is_same<T, __nv_bfloat16>::value;
  static_assert(kBf16 || std::is_same<T, __half>::value, "wgmma kernels take float16 or bfloat16");
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::wgmma_m64k16(&d[0][0], N, desc_a, desc_b, kBf16, kMnA, kMnB, call_file, call_line);
#elif defined(PYCONV_WGMMA_DEVICE)
#define PYCONV_WGMMA_BY_TYPE(SHAPE, TN)                              \
  do {                                                               \
    if constexpr (kBf16) PYCONV_WGMMA_##SHAPE("bf16", TN, d, desc_a, desc_b); \
    else PYCONV_WGMMA_##SHAPE("f16", TN, d, desc_a, desc_b);                  \
  } while (0)
  // the transpose immediates as one string: "imm-trans-a, imm-trans-b"
#define PYCONV_WGMMA_BY_TRANS(SHAPE)                                          \
  do {                                                                        \
    if constexpr (kMnA && kMnB) PYCONV_WGMMA_BY_TYPE(SHAPE, "1, 1");          \
    else if constexpr (kMnA) PYCONV_WGMMA_BY_TYPE(SHAPE, "1, 0");             \
    else if constexpr (kMnB) PYCONV_WGMMA_BY_TYPE(SHAPE, "0, 1");             \
    else PYCONV_WGMMA_BY_TYPE(SHAPE, "0, 0");                                 \
  } while (0)
  if constexpr (N == 16) PYCONV_WGMMA_BY_TRANS(M64N16K16);
  else if constexpr (N == 64) PYCONV_WGMMA_BY_TRANS(M64N64K16);
  else if constexpr (N == 128) PYCONV_WGMMA_BY_TRANS(M64N128K16);
  else PYCONV_WGMMA_BY_TRANS(M64N256K16);
#undef PYCONV_WGMMA_BY_TRANS
#undef PYCONV_WGMMA_BY_TYPE
#elif defined(__CUDA_ARCH__)
  __trap();  // not an sm_90a build: the host never launches a wgmma kernel here
#endif
}

}  // namespace pyconv
