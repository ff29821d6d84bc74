// Helpers shared by every CUDA kernel: accumulator types, ceil_div, and the one launch helper.
// No torch header: kernels take raw pointers, a shape struct and a cudaStream_t.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "acc_type.h"
#include "macros.h"

namespace pyconv {

// __half / __nv_bfloat16 need their explicit conversion functions in device code on every toolkit.
template <> PYCONV_HD float to_acc<__half>(__half v) { return __half2float(v); }
template <> PYCONV_HD __half from_acc<__half>(float v) { return __float2half_rn(v); }
template <> PYCONV_HD float to_acc<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> PYCONV_HD __nv_bfloat16 from_acc<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Dynamic shared memory (the launch's `smem` bytes) as a T array named `name`. Kernels use this instead of writing
// `extern __shared__ T name[];`, which has no host-compiler equivalent for the emulator.
#if defined(PYCONV_EMULATION)
#define PYCONV_EXTERN_SHARED(T, name) T* name = reinterpret_cast<T*>(::pyconv_emu::detail::dynamic_smem())
#else
#define PYCONV_EXTERN_SHARED(T, name) extern __shared__ __align__(16) unsigned char name##_raw_[]; \
  T* name = reinterpret_cast<T*>(name##_raw_)
#endif

PYCONV_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Largest grid.x a 1-D grid-stride kernel needs: enough blocks to fill any current GPU several times over;
// the loops inside the kernels cover the rest, so no element count can overflow the grid limit.
constexpr int64_t kMaxGridX = 65535LL * 32;

inline unsigned grid_1d(int64_t n, int threads) {
  int64_t b = ceil_div(n, threads);
  if (b < 1) b = 1;
  return static_cast<unsigned>(b < kMaxGridX ? b : kMaxGridX);
}

// Every kernel launch in pyconv goes through here, so one place decides how a kernel is started: with <<<>>> under
// nvcc, and by the CPU emulator (csrc/emu/cuda_emu.h) in the emulated build. Returns the launch error; the torch glue
// turns a non-success into a Python exception.
template <typename... KArgs, typename... Args>
inline cudaError_t launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          Args&&... args) {
#if defined(PYCONV_EMULATION)
  return ::pyconv_emu::launch(kernel, grid, block, smem, stream, std::forward<Args>(args)...);
#else
  kernel<<<grid, block, smem, stream>>>(static_cast<KArgs>(args)...);
  return cudaGetLastError();
#endif
}

// Programmatic dependent launch (Hopper, compute capability 9.0+): a kernel started by launch_dependent may begin
// while the kernel before it on the stream is still finishing — its blocks become resident as that grid's blocks
// retire — and waits inside, at grid_dependency_wait(), until that grid has completed and its writes are visible.
// What it saves is the gap between two dependent kernels, the second one's launch latency: pyconv's second passes
// (the split-K and wgrad reduce kernels, the depthwise wgrad finish) follow their main kernel on small layers where
// a few microseconds count. A dependent kernel calls grid_dependency_wait() before it reads or writes anything the
// kernel before it touches. Elsewhere (older GPUs, the emulator, PYCONV_PDL=0 for A/B timing) a plain launch; on
// them grid_dependency_wait() is nothing (griddepcontrol.wait also returns at once in a kernel launched without it).
inline bool pdl_enabled() {
#if defined(PYCONV_EMULATION)
  return false;
#else
  static const bool env_on = [] {
    const char* v = std::getenv("PYCONV_PDL");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  static std::atomic<uint64_t> known{0}, capable{0};  // one bit per device (devices ≥ 64 query every time)
  int dev = 0;
  if (!env_on || cudaGetDevice(&dev) != cudaSuccess) return false;
  const uint64_t bit = dev < 64 ? uint64_t(1) << dev : 0;
  if (known.load(std::memory_order_relaxed) & bit) return (capable.load(std::memory_order_relaxed) & bit) != 0;
  int major = 0;
  const bool yes = cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9;
  if (yes) capable.fetch_or(bit, std::memory_order_relaxed);
  known.fetch_or(bit, std::memory_order_relaxed);
  return yes;
#endif
}

template <typename... KArgs, typename... Args>
inline cudaError_t launch_dependent(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                    Args&&... args) {
#if !defined(PYCONV_EMULATION)
  if (pdl_enabled()) {
    cudaLaunchAttribute attr[1] = {};
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = stream;
    cfg.attrs = attr, cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
  }
#endif
  return launch(kernel, grid, block, smem, stream, std::forward<Args>(args)...);
}

__device__ __forceinline__ void grid_dependency_wait() {
#if !defined(PYCONV_EMULATION) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes): a kernel may use more than 48 KiB
// of dynamic shared memory only after this opt-in (the emulator keeps the same per-kernel limit).
template <typename... KArgs>
inline cudaError_t set_max_dynamic_smem(void (*kernel)(KArgs...), size_t bytes) {
#if defined(PYCONV_EMULATION)
  return ::pyconv_emu::func_set_max_dynamic_smem(kernel, bytes);
#else
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
#endif
}

}  // namespace pyconv
