// Torch glue shared by every CUDA op file (conv2d_cuda.cu, pooling_cuda.cu, activation_cuda.cu): kernel element
// types, pointers, device guard, current stream, launch checks. Compiled by nvcc for the real backend, and by the host
// compiler for the emulated one (PYCONV_EMULATION: ops on CPU tensors, kernels on csrc/emu/cuda_emu.h).
#pragma once
#include <ATen/ATen.h>
#ifndef PYCONV_EMULATION
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "cuda_common.cuh"
#if !defined(PYCONV_EMULATION) && __has_include("../build_config.h")
#include "../build_config.h"
#endif
#include <string>
#include <vector>

namespace pyconv {

// at::Half / at::BFloat16 are layout-identical to CUDA's __half / __nv_bfloat16; kernels use CUDA's own types so that
// they compile with no torch header.
template <typename T> struct KernelType { using type = T; };
template <> struct KernelType<at::Half> { using type = __half; };
template <> struct KernelType<at::BFloat16> { using type = __nv_bfloat16; };

template <typename scalar_t>
auto kptr(const at::Tensor& t) {
  return reinterpret_cast<typename KernelType<scalar_t>::type*>(t.data_ptr<scalar_t>());
}

inline void check_launch(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "pyconv: CUDA kernel launch failed in ", what, ": ", cudaGetErrorString(err));
}

#ifdef PYCONV_EMULATION
// Emulated: kernels read host memory, there is no device to guard and no stream to order on.
struct DeviceGuard {
  explicit DeviceGuard(c10::Device) {}
};
inline cudaStream_t current_stream() { return nullptr; }
// Emulated launches run one after another: every "side stream" is the (null) current one.
class StreamFork {
 public:
  explicit StreamFork(int) {}
  cudaStream_t stream(int) const { return nullptr; }
  void join() {}
};
// The emulated device: a small SM count, so that split-K and grid heuristics take their multi-block paths on the small
// shapes the tests use; tensor-core instructions are available (the emulator models them).
inline int sm_count() { return 4; }
inline bool has_tensor_cores() { return true; }
inline bool has_wgmma() { return true; }  // the emulator models wgmma too
inline void check_device(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "pyconv.", op, ": the CUDA emulator runs on CPU tensors, but got ", name, " on ",
              t.device());
}
#else
using DeviceGuard = c10::cuda::CUDAGuard;
inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream(); }
// Independent launches side by side: stream(i), i < n, are streams of torch's pool that first wait for the current
// stream's work so far; join() (also run by the destructor) makes the current stream wait for all of them, so the op
// stays ordered on the caller's stream, under torch.cuda.stream(...) and in CUDA-graph capture (an event fork/join
// is captured as graph edges). With n ≤ 1 everything runs on the current stream. Allocate on the current stream only
// and keep every temporary a side stream reads alive until join(): the caching allocator hands a freed block to the
// current stream's next allocation, which join() orders after the side streams' work.
class StreamFork {
 public:
  explicit StreamFork(int n) : main_(c10::cuda::getCurrentCUDAStream()) {
    if (n <= 1) return;
    const cudaEvent_t ready = record(main_.stream());
    for (int i = 0; i < n; ++i) {
      side_.push_back(c10::cuda::getStreamFromPool(false, main_.device_index()));
      wait(side_.back().stream(), ready);
    }
    cudaEventDestroy(ready);  // released once the device has passed it; the waits are already enqueued
  }
  StreamFork(const StreamFork&) = delete;
  StreamFork& operator=(const StreamFork&) = delete;
  cudaStream_t stream(int i) const { return side_.empty() ? main_.stream() : side_.at(size_t(i)).stream(); }
  void join() {
    for (const c10::cuda::CUDAStream& s : side_) {
      const cudaEvent_t done = record(s.stream());
      wait(main_.stream(), done);
      cudaEventDestroy(done);
    }
    side_.clear();
  }
  ~StreamFork() {
    try {
      join();
    } catch (...) {  // a failed join already raised once; a destructor must not throw
    }
  }

 private:
  static cudaEvent_t record(cudaStream_t s) {
    cudaEvent_t e = nullptr;
    cudaError_t err = cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
    if (err == cudaSuccess) err = cudaEventRecord(e, s);
    TORCH_CHECK(err == cudaSuccess, "pyconv: CUDA event record failed: ", cudaGetErrorString(err));
    return e;
  }
  static void wait(cudaStream_t s, cudaEvent_t e) {
    const cudaError_t err = cudaStreamWaitEvent(s, e, 0);
    TORCH_CHECK(err == cudaSuccess, "pyconv: CUDA stream wait failed: ", cudaGetErrorString(err));
  }
  c10::cuda::CUDAStream main_;
  std::vector<c10::cuda::CUDAStream> side_;
};
// An attribute of the current device (ATen's device-properties header pulls in cuSPARSE/cuBLAS headers this build
// does not need, so ask the runtime directly).
inline int device_attribute(cudaDeviceAttr attr) {
  int v = 0;
  const cudaError_t e = cudaDeviceGetAttribute(&v, attr, c10::cuda::current_device());
  TORCH_CHECK(e == cudaSuccess, "pyconv: cudaDeviceGetAttribute failed: ", cudaGetErrorString(e));
  return v;
}
inline int sm_count() { return device_attribute(cudaDevAttrMultiProcessorCount); }
// mma.sync m16n8k16, ldmatrix and cp.async need sm_80 or newer.
inline bool has_tensor_cores() { return device_attribute(cudaDevAttrComputeCapabilityMajor) >= 8; }
// wgmma needs an sm_90a binary (build_config.h: the architectures this pyconv was compiled for) on a compute
// capability 9.0 GPU (sm_90a code runs on 9.0 only).
inline bool has_wgmma() {
#if __has_include("../build_config.h")
  static const bool built = std::string(PYCONV_ARCH_LIST).find("9.0a") != std::string::npos;
#else
  static const bool built = false;
#endif
  return built && device_attribute(cudaDevAttrComputeCapabilityMajor) == 9 &&
         device_attribute(cudaDevAttrComputeCapabilityMinor) == 0;
}
inline void check_device(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.is_cuda(), "pyconv.", op, ": CUDA kernel called with ", name, " on ", t.device());
}
#endif

}  // namespace pyconv
