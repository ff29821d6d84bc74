// The Tensor Memory Accelerator (TMA, Hopper: compute capability 9.0) as the conv kernels use it: one thread asks the
// copy engine for a whole tile — an im2col gather of output pixels × 64 channels, or a box of a dense tensor — and the
// engine writes it into shared memory, 128-byte swizzled, and counts its bytes on an mbarrier. What it replaces: the
// gather loader (cuda_tensor_core.cuh, TcGatherLoader), whose 128 producer threads compute addresses and tap
// validity and issue 16-byte cp.async per row and tile (153 SASS instructions a thread per 128×128×64 tile after the
// session-9 cut): the address generation, the bounds checks and the zero fill of the padding move into hardware.
//
// Two descriptor kinds (cuTensorMapEncodeIm2col / cuTensorMapEncodeTiled, made on the host, passed to the kernel as a
// __grid_constant__ parameter: the instruction takes the parameter's generic address):
//
//   im2col, rank 4 (an NHWC tensor: dims innermost first {C, W, H, N}): one load brings pixelsPerColumn pixels ×
//     channelsPerPixel channels. The instruction names the first pixel (c, w, h, n) and the filter tap's offsets
//     (off_w, off_h) ≥ 0; the pixels are then walked like the GEMM rows of an implicit-GEMM convolution: w advances by
//     the traversal stride (elementStrides[1]) while it stays below the bounding box's end, then wraps to the box's
//     start and h advances (elementStrides[2]); past the box's end in h, the walk wraps to the next image n. The
//     bounding box, for tap offset o, is [lower + o, extent + upper + o) in each spatial dimension (half-open):
//     lower = −pad and upper chosen so that the box holds exactly the output's rows or columns, so the walk visits
//     the output pixels in order, image after image. Pixels and channels outside the tensor read as zero (the
//     convolution's padding; the channel tail past C; the rows past the last image).
//   tiled, rank 3: a box of boxDim elements of a dense tensor, zero outside it (the filter: {C, R·S, K} per group).
//
// Shared-memory side: rows of channelsPerPixel (or boxDim[0]) elements, 128 bytes each, with the 128-byte swizzle
// (16-byte chunk c of row r at chunk position c ^ (r mod 8), from the address bits, hence 1024-byte aligned stages):
// exactly the K-major layout the wgmma descriptors read (warpgroup_mma.cuh).
//
// Completion: the issuing thread first posts the bytes it expects on the stage's mbarrier (mbarrier.arrive.expect_tx:
// one arrival plus a transaction count); each load's bytes count down as they land (complete_tx); the phase completes
// when both reach zero. Out-of-bounds elements are written (as zeros) and counted, so a tile always brings its full box.
//
// The emulator (csrc/emu/cuda_emu.h) keeps its own descriptor (TmaEmuMap, filled by the same host encoders here) and
// performs the loads with the semantics above, as late as it can (when nothing else in the block can run).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

#include "cuda_common.cuh"
#include "warpgroup_mma.cuh"

#if !defined(PYCONV_EMULATION)
#include <cuda.h>  // CUtensorMap and the encode functions' types (the functions come from the driver at run time)
#endif

namespace pyconv {

// A tensor map: CUtensorMap's 128 bytes, 64-byte aligned (the instruction's requirement for a parameter-space map).
// Opaque on a GPU; under the emulator the bytes hold a TmaEmuMap.
struct alignas(64) TmaDesc {
  uint64_t opaque[16];
};

// mbarrier.arrive.expect_tx: one arrival on `bar` and `bytes` more transaction bytes to wait for in its current phase.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(uint64_t* bar, uint32_t bytes PYCONV_CALL_SITE) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::mbarrier_arrive_expect_tx(bar, bytes, call_file, call_line);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(
                   smem_window_addr(bar)),
               "r"(bytes)
               : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// cp.async.bulk.tensor.4d im2col: the pixels from (c, w, h, n) on (tap offsets off_w, off_h) into `dst_addr`
// (a shared-window address, 1024-byte aligned for the swizzle), its bytes counted on `bar`.
__device__ __forceinline__ void tma_load_im2col_4d(uint32_t dst_addr, const TmaDesc* map, uint64_t* bar, int c, int w,
                                                   int h, int n, uint16_t off_w, uint16_t off_h PYCONV_CALL_SITE) {
#if defined(PYCONV_EMULATION)
  const int32_t coords[4] = {c, w, h, n};
  const uint16_t offs[2] = {off_w, off_h};
  ::pyconv_emu::detail::tma_load(dst_addr, map, bar, coords, 4, offs, call_file, call_line);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4, %5}], [%6], {%7, %8};\n" ::"r"(dst_addr),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c), "r"(w), "r"(h), "r"(n), "r"(smem_window_addr(bar)), "h"(off_w),
      "h"(off_h)
      : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// cp.async.bulk.tensor.3d tile: the box at (c0, c1, c2) into `dst_addr`, its bytes counted on `bar`.
__device__ __forceinline__ void tma_load_tiled_3d(uint32_t dst_addr, const TmaDesc* map, uint64_t* bar, int c0, int c1,
                                                  int c2 PYCONV_CALL_SITE) {
#if defined(PYCONV_EMULATION)
  const int32_t coords[3] = {c0, c1, c2};
  ::pyconv_emu::detail::tma_load(dst_addr, map, bar, coords, 3, nullptr, call_file, call_line);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst_addr),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_window_addr(bar))
      : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// cp.async.bulk.tensor.3d tile store: the box at (c0, c1, c2) from the 128-byte-swizzled rows at `src_addr` (a
// shared-window address, 1024-byte aligned), elements outside the tensor left alone, in this thread's current bulk
// group. The source must stay untouched until a cp.async.bulk.wait_group(.read) covering the group returns, and the
// generic-proxy writes that filled it must be fenced into the async proxy first (fence_proxy_async_smem, by each
// writing thread, before the barrier that hands the tile to the issuing thread).
__device__ __forceinline__ void tma_store_tiled_3d(const TmaDesc* map, uint32_t src_addr, int c0, int c1,
                                                   int c2 PYCONV_CALL_SITE) {
#if defined(PYCONV_EMULATION)
  const int32_t coords[3] = {c0, c1, c2};
  ::pyconv_emu::detail::tma_store(src_addr, map, coords, 3, call_file, call_line);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.tensor.3d.global.shared::cta.bulk_group [%0, {%1, %2, %3}], [%4];\n" ::"l"(
                   reinterpret_cast<uint64_t>(map)),
               "r"(c0), "r"(c1), "r"(c2), "r"(src_addr)
               : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// cp.async.bulk.commit_group: this thread's bulk stores issued since the last commit become one bulk group.
__device__ __forceinline__ void tma_store_commit() {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::bulk_commit();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// cp.async.bulk.wait_group.read N: every bulk group but the N most recent has finished reading its shared-memory
// source (which may then be rewritten); kFull: has completed altogether (its global writes done).
template <int N, bool kFull = false>
__device__ __forceinline__ void tma_store_wait() {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::bulk_wait(N);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (kFull)
    asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(N) : "memory");
  else
    asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// ---- host: encoding the descriptors -----------------------------------------------------------------------------
// The driver's encoders reached through the runtime (cudaGetDriverEntryPointByVersion): no link against libcuda.
// Each returns "" or why the map cannot be made; the checks the driver documents for these maps are repeated here,
// so that the emulated build rejects what a GPU would (and the message names the limit).

// im2col map of a 16-bit NHWC tensor: dims {C, W, H, N} (elements), strides of W, H, N in bytes; the bounding box
// corners (lower, upper) per spatial dimension in {W, H} order; traversal strides {stride_w, stride_h}; loads of
// `pixels` pixels × 64 channels (128 bytes: one swizzle row).
struct TmaIm2colSpec {
  const void* base;
  uint64_t dims[4];
  uint64_t strides[3];
  int lower[2], upper[2];
  uint32_t elem_strides[2];
  uint32_t pixels;
  bool bf16;
};
// tiled map of a 16-bit rank-3 tensor: dims {d0, d1, d2}, strides of d1, d2 in bytes, box {64, 1, rows}.
struct TmaTiledSpec {
  const void* base;
  uint64_t dims[3];
  uint64_t strides[2];
  uint32_t box[3];
  bool bf16;
};

inline std::string tma_check_common(const void* base, const uint64_t* dims, int rank, const uint64_t* strides) {
  if (reinterpret_cast<uintptr_t>(base) % 16 != 0) return "needs a 16-byte aligned tensor base for TMA";
  for (int i = 0; i < rank; ++i)
    if (dims[i] == 0 || dims[i] > (uint64_t(1) << 32)) return "needs every TMA dimension in [1, 2^32]";
  for (int i = 0; i < rank - 1; ++i)
    if (strides[i] % 16 != 0 || strides[i] >= (uint64_t(1) << 40))
      return "needs TMA strides that are multiples of 16 bytes and below 2^40";
  return "";
}

inline std::string tma_check_im2col(const TmaIm2colSpec& s) {
  std::string why = tma_check_common(s.base, s.dims, 4, s.strides);
  if (!why.empty()) return why;
  for (int i = 0; i < 2; ++i) {
    if (s.lower[i] < -128 || s.lower[i] > 127 || s.upper[i] < -128 || s.upper[i] > 127)
      return "needs the im2col bounding-box corners (padding, filter extent) within [-128, 127]";
    if (s.elem_strides[i] < 1 || s.elem_strides[i] > 8) return "needs convolution strides of at most 8 for TMA";
    if (int64_t(s.dims[1 + i]) + s.upper[i] - s.lower[i] <= 0) return "needs a non-empty im2col bounding box";
  }
  if (s.pixels < 1 || s.pixels > 1024) return "needs 1-1024 pixels per im2col load";
  return "";
}

#if defined(PYCONV_EMULATION)
inline std::string tma_encode_im2col(TmaDesc* map, const TmaIm2colSpec& s) {
  std::string why = tma_check_im2col(s);
  if (!why.empty()) return why;
  ::pyconv_emu::TmaEmuMap m{};
  m.magic = ::pyconv_emu::TmaEmuMap::kMagic;
  m.im2col = 1, m.rank = 4, m.elem_bytes = 2;
  m.base = s.base;
  for (int i = 0; i < 4; ++i) m.dims[i] = s.dims[i];
  m.strides[0] = 2;
  for (int i = 0; i < 3; ++i) m.strides[1 + i] = s.strides[i];
  m.box[0] = 64, m.box[1] = s.pixels;
  for (int i = 0; i < 2; ++i) m.lower[i] = s.lower[i], m.upper[i] = s.upper[i], m.estride[i] = s.elem_strides[i];
  static_assert(sizeof(m) <= sizeof(TmaDesc), "the emulator's map fits CUtensorMap's bytes");
  std::memset(map, 0, sizeof(TmaDesc));
  std::memcpy(map, &m, sizeof(m));
  return "";
}
inline std::string tma_encode_tiled(TmaDesc* map, const TmaTiledSpec& s) {
  std::string why = tma_check_common(s.base, s.dims, 3, s.strides);
  if (!why.empty()) return why;
  ::pyconv_emu::TmaEmuMap m{};
  m.magic = ::pyconv_emu::TmaEmuMap::kMagic;
  m.im2col = 0, m.rank = 3, m.elem_bytes = 2;
  m.base = s.base;
  for (int i = 0; i < 3; ++i) m.dims[i] = s.dims[i], m.box[i] = s.box[i];
  m.strides[0] = 2;
  for (int i = 0; i < 2; ++i) m.strides[1 + i] = s.strides[i];
  std::memset(map, 0, sizeof(TmaDesc));
  std::memcpy(map, &m, sizeof(m));
  return "";
}
#else
// The driver entry point `name` (cached per name by the caller), or null.
inline void* tma_driver_fn(const char* name) {
  void* fn = nullptr;
  cudaDriverEntryPointQueryResult q{};
  if (cudaGetDriverEntryPointByVersion(name, &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
      q != cudaDriverEntryPointSuccess)
    return nullptr;
  return fn;
}

inline std::string tma_encode_im2col(TmaDesc* map, const TmaIm2colSpec& s) {
  std::string why = tma_check_im2col(s);
  if (!why.empty()) return why;
  using Fn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                          const int*, const int*, cuuint32_t, cuuint32_t, const cuuint32_t*, CUtensorMapInterleave,
                          CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  static Fn fn = reinterpret_cast<Fn>(tma_driver_fn("cuTensorMapEncodeIm2col"));
  if (fn == nullptr) return "needs the CUDA driver's cuTensorMapEncodeIm2col (driver for CUDA 12.0 or newer)";
  static_assert(sizeof(TmaDesc) == sizeof(CUtensorMap), "TmaDesc mirrors CUtensorMap");
  const cuuint64_t dims[4] = {s.dims[0], s.dims[1], s.dims[2], s.dims[3]};
  const cuuint64_t strides[3] = {s.strides[0], s.strides[1], s.strides[2]};
  const cuuint32_t estr[4] = {1, s.elem_strides[0], s.elem_strides[1], 1};
  const CUresult r = fn(reinterpret_cast<CUtensorMap*>(map),
                        s.bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4,
                        const_cast<void*>(s.base), dims, strides, s.lower, s.upper, 64, s.pixels, estr,
                        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? "" : "was refused by cuTensorMapEncodeIm2col (error " + std::to_string(int(r)) + ")";
}

inline std::string tma_encode_tiled(TmaDesc* map, const TmaTiledSpec& s) {
  std::string why = tma_check_common(s.base, s.dims, 3, s.strides);
  if (!why.empty()) return why;
  using Fn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*, const cuuint64_t*,
                          const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                          CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  static Fn fn = reinterpret_cast<Fn>(tma_driver_fn("cuTensorMapEncodeTiled"));
  if (fn == nullptr) return "needs the CUDA driver's cuTensorMapEncodeTiled (driver for CUDA 12.0 or newer)";
  const cuuint64_t dims[3] = {s.dims[0], s.dims[1], s.dims[2]};
  const cuuint64_t strides[2] = {s.strides[0], s.strides[1]};
  const cuuint32_t box[3] = {s.box[0], s.box[1], s.box[2]}, estr[3] = {1, 1, 1};
  const CUresult r = fn(reinterpret_cast<CUtensorMap*>(map),
                        s.bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 3,
                        const_cast<void*>(s.base), dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                        CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  return r == CUDA_SUCCESS ? "" : "was refused by cuTensorMapEncodeTiled (error " + std::to_string(int(r)) + ")";
}
#endif

}  // namespace pyconv
