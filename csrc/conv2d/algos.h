// The conv2d ladder: algorithm names per backend, in rung order. "auto" picks per shape and dtype (conv2d_cpu.cpp:
// resolve_cpu_algo, conv2d_cuda.cu: choose_cuda_algo), or the autotuner's measured choice (tuning.h, pyconv.tuning).
// "depthwise" takes only convolutions with one input channel per group.
// "tensor_core" chooses its tile by a heuristic; the tensor_core_BMxBN names fix the tile. "tensor_core_wgmma*" is the
// Hopper rung (compute capability 9.0, sm_90a build), same naming; "tensor_core_wgmma_ws*" its warp-specialised
// kernels (a producer warpgroup, consumer warpgroups, mbarriers); "tensor_core_wgmma_tma*" the same with the TMA unit
// as producer (fprop/dgrad; wgrad runs the _ws kernels under these names). "winograd" (F(2×2, 3×3)) takes only 3×3 stride-1
// dilation-1 convolutions (fprop/dgrad; wgrad runs auto's rung under that name).
// Shared by the torch glue (to validate `algo`) and by build_info() (to report what exists).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace pyconv {

inline const std::vector<std::string>& conv2d_cpu_algos() {
  static const std::vector<std::string> v{"direct", "im2col_gemm", "depthwise"};
  return v;
}
inline const std::vector<std::string>& conv2d_cuda_algos() {
  static const std::vector<std::string> v{"direct",
                                          "implicit_gemm",
                                          "depthwise",
                                          "tensor_core",
                                          "tensor_core_128x128",
                                          "tensor_core_128x64",
                                          "tensor_core_64x64",
                                          "tensor_core_wgmma",
                                          "tensor_core_wgmma_128x256",
                                          "tensor_core_wgmma_128x128",
                                          "tensor_core_wgmma_128x128_s3",
                                          "tensor_core_wgmma_128x64",
                                          "tensor_core_wgmma_64x64",
                                          "tensor_core_wgmma_64x16",
                                          "tensor_core_wgmma_ws",
                                          "tensor_core_wgmma_ws_128x128",
                                          "tensor_core_wgmma_ws_128x256",
                                          "tensor_core_wgmma_ws_64x128",
                                          "tensor_core_wgmma_ws_128x64",
                                          "tensor_core_wgmma_tma",
                                          "tensor_core_wgmma_tma_128x128",
                                          "tensor_core_wgmma_tma_128x256",
                                          "tensor_core_wgmma_tma_128x64",
                                          "winograd"};
  return v;
}

// Rungs that accept only some dtypes (every other rung takes float16, bfloat16, float32 and float64).
inline const std::map<std::string, std::vector<std::string>>& conv2d_algo_dtypes() {
  static const std::map<std::string, std::vector<std::string>> m{
      // float32 = TF32 tensor-core inputs for fprop/dgrad (wgrad stays float32 SIMT)
      {"tensor_core", {"float16", "bfloat16", "float32"}},
      {"tensor_core_128x128", {"float16", "bfloat16", "float32"}},
      {"tensor_core_128x64", {"float16", "bfloat16", "float32"}},
      {"tensor_core_64x64", {"float16", "bfloat16", "float32"}},
      // Hopper's wgmma (sm_90a): 16-bit inputs only
      {"tensor_core_wgmma", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_128x256", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_128x128", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_128x128_s3", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_128x64", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_64x64", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_64x16", {"float16", "bfloat16"}},  // (fprop/dgrad; wgrad named with it takes the rung's tile)
      {"tensor_core_wgmma_ws", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_ws_128x128", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_ws_128x256", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_ws_64x128", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_ws_128x64", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_tma", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_tma_128x128", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_tma_128x256", {"float16", "bfloat16"}},
      {"tensor_core_wgmma_tma_128x64", {"float16", "bfloat16"}},
  };
  return m;
}

}  // namespace pyconv
