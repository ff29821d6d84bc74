// Torch-side helpers shared by every op's host wrappers (glue, never included by kernel files): dtype checks, the
// output memory-format rule, tensor → Strides4, and at::parallel_for in the shape the CPU loops take.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "conv_params.h"

namespace pyconv {

// Output memory format: channels_last when the tensor that determines the output is channels_last-contiguous and not
// also NCHW-contiguous (the ambiguous C == 1 or H·W == 1 cases stay NCHW). pyconv/_ops.py's fake kernels apply the
// same rule, so real and fake outputs have identical strides.
inline at::MemoryFormat output_format(const at::Tensor& t) {
  if (t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast))
    return at::MemoryFormat::ChannelsLast;
  return at::MemoryFormat::Contiguous;
}

inline Strides4 strides4(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)}; }

inline void check_float_dtype(const at::Tensor& t, const char* op, const char* name) {
  const auto st = t.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kDouble || st == at::kHalf || st == at::kBFloat16, "pyconv.", op, ": ",
              name, " has unsupported dtype ", st, "; expected float32, float64, float16 or bfloat16");
}

// cpu:: loops take `pfor(begin, end, fn(b, e))`; this is at::parallel_for with grain 1 (tasks are whole planes).
struct TorchParallelFor {
  template <typename F>
  void operator()(int64_t begin, int64_t end, F&& fn) const {
    at::parallel_for(begin, end, 1, [&](int64_t b, int64_t e) { fn(b, e); });
  }
};

}  // namespace pyconv
