// The conv2d ladder: algorithm names per backend, in rung order. "auto" picks the last (fastest) rung.
// Shared by the torch glue (to validate `algo`) and by build_info() (to report what exists).
#pragma once
#include <string>
#include <vector>

namespace pyconv {

inline const std::vector<std::string>& conv2d_cpu_algos() {
  static const std::vector<std::string> v{"direct", "im2col_gemm"};
  return v;
}
inline const std::vector<std::string>& conv2d_cuda_algos() {
  static const std::vector<std::string> v{"direct", "implicit_gemm"};
  return v;
}

}  // namespace pyconv
