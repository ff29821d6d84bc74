// Torch-side helpers shared by the CPU and CUDA host wrappers of conv2d: argument checks (with torch's wording where
// torch raises), shape derivation, memory-format policy, and tensor → (pointer, Strides4) conversion.
// This is glue, not kernel code: kernel files never include it.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "../activation/activation_glue.h"
#include "../common/conv_params.h"
#include "../common/torch_glue.h"
#include "algos.h"
#include "conv_epilogue.h"

namespace pyconv {

inline at::MemoryFormat conv_output_format(const at::Tensor& t) { return output_format(t); }
// wgrad's dw: channels_last when the input is (output_format's rule), NCHW-contiguous otherwise — what cuDNN gives a
// channels_last model (torch's rule also looks at the weight, which wgrad does not take), so autograd's gradient
// accumulation finds dw in the layout of a channels_last model's weight and keeps it without a copy. pyconv/_ops.py's
// fake kernel applies the same rule.
inline at::MemoryFormat wgrad_format(const at::Tensor& input) { return output_format(input); }

inline void check_floating(const at::Tensor& t, const char* name) { check_float_dtype(t, "conv2d", name); }

inline void check_same(const at::Tensor& a, const char* an, const at::Tensor& b, const char* bn) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "pyconv.conv2d: expected ", an, " and ", bn,
              " to have the same dtype, but got ", an, " of dtype ", a.scalar_type(), " and ", bn, " of dtype ",
              b.scalar_type());
  TORCH_CHECK(a.device() == b.device(), "pyconv.conv2d: expected ", an, " and ", bn,
              " to be on the same device, but got ", an, " on ", a.device(), " and ", bn, " on ", b.device());
}

// stride, dilation: 2 entries; padding: 2 (symmetric) or 4 (top, bottom, left, right) entries.
struct ConvGeometry {
  int64_t stride_h, stride_w, dil_h, dil_w, pad_top, pad_bottom, pad_left, pad_right, groups;
};

inline ConvGeometry check_geometry(at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                                   int64_t groups) {
  TORCH_CHECK(stride.size() == 2, "pyconv.conv2d: expected stride to have 2 elements, but got ", stride.size());
  TORCH_CHECK(dilation.size() == 2, "pyconv.conv2d: expected dilation to have 2 elements, but got ",
              dilation.size());
  TORCH_CHECK(padding.size() == 2 || padding.size() == 4,
              "pyconv.conv2d: expected padding to have 2 (symmetric) or 4 (top, bottom, left, right) elements, but "
              "got ", padding.size());
  for (auto v : stride) TORCH_CHECK(v > 0, "pyconv.conv2d: non-positive stride is not supported (got stride=", stride, ")");
  for (auto v : dilation)
    TORCH_CHECK(v > 0, "pyconv.conv2d: non-positive dilation is not supported (got dilation=", dilation, ")");
  for (auto v : padding)
    TORCH_CHECK(v >= 0, "pyconv.conv2d: negative padding is not supported (got padding=", padding, ")");
  TORCH_CHECK(groups > 0, "pyconv.conv2d: non-positive groups is not supported (got groups=", groups, ")");
  ConvGeometry g{stride[0], stride[1], dilation[0], dilation[1], 0, 0, 0, 0, groups};
  if (padding.size() == 2) {
    g.pad_top = g.pad_bottom = padding[0];
    g.pad_left = g.pad_right = padding[1];
  } else {
    g.pad_top = padding[0], g.pad_bottom = padding[1], g.pad_left = padding[2], g.pad_right = padding[3];
  }
  return g;
}

// Validates an (input size, weight size) pair and derives the full shape; used by all three directions so that
// fprop, dgrad and wgrad agree on P and Q.
inline Conv2dShape make_shape(at::IntArrayRef in, at::IntArrayRef wt, const ConvGeometry& g) {
  TORCH_CHECK(in.size() == 4, "pyconv.conv2d: expected 4-D input (N, C, H, W), but got input of size ", in);
  TORCH_CHECK(wt.size() == 4, "pyconv.conv2d: expected 4-D weight (K, C/groups, R, S), but got weight of size ", wt);
  TORCH_CHECK(wt[0] % g.groups == 0, "pyconv.conv2d: Given groups=", g.groups,
              ", expected weight to be divisible by ", g.groups, " at dimension 0, but got weight of size ", wt,
              " instead");
  TORCH_CHECK(in[1] == wt[1] * g.groups, "pyconv.conv2d: Given groups=", g.groups, ", weight of size ", wt,
              ", expected input", in, " to have ", wt[1] * g.groups, " channels, but got ", in[1],
              " channels instead");
  Conv2dShape s{};
  s.N = in[0], s.C = in[1], s.H = in[2], s.W = in[3];
  s.K = wt[0], s.R = wt[2], s.S = wt[3];
  s.stride_h = g.stride_h, s.stride_w = g.stride_w, s.dil_h = g.dil_h, s.dil_w = g.dil_w;
  s.pad_h = g.pad_top, s.pad_w = g.pad_left, s.groups = g.groups;
  const int64_t padded_h = s.H + g.pad_top + g.pad_bottom, padded_w = s.W + g.pad_left + g.pad_right;
  const int64_t eff_r = s.dil_h * (s.R - 1) + 1, eff_s = s.dil_w * (s.S - 1) + 1;  // dilated kernel extent
  TORCH_CHECK(padded_h >= eff_r && padded_w >= eff_s, "pyconv.conv2d: Calculated padded input size per channel: (",
              padded_h, " x ", padded_w, "). Kernel size: (", eff_r, " x ", eff_s,
              "). Kernel size can't be greater than actual input size");
  s.P = (padded_h - eff_r) / s.stride_h + 1;
  s.Q = (padded_w - eff_s) / s.stride_w + 1;
  return s;
}

inline void check_grad_output(const at::Tensor& grad_output, const Conv2dShape& s) {
  TORCH_CHECK(grad_output.dim() == 4 && grad_output.size(0) == s.N && grad_output.size(1) == s.K &&
                  grad_output.size(2) == s.P && grad_output.size(3) == s.Q,
              "pyconv.conv2d: expected grad_output of size [", s.N, ", ", s.K, ", ", s.P, ", ", s.Q,
              "] for this convolution, but got ", grad_output.sizes());
}

// The fused-epilogue arguments of conv2d_fprop_fused, checked: the activation kind (-1 for "none") and the residual,
// which must have the output's shape, dtype and device (any strides).
inline int check_epilogue(const at::Tensor& input, const Conv2dShape& s, const std::optional<at::Tensor>& residual,
                          c10::string_view activation) {
  if (residual) {
    check_same(input, "input", *residual, "residual");
    TORCH_CHECK(residual->dim() == 4 && residual->size(0) == s.N && residual->size(1) == s.K &&
                    residual->size(2) == s.P && residual->size(3) == s.Q,
                "pyconv.conv2d: expected residual of size [", s.N, ", ", s.K, ", ", s.P, ", ", s.Q,
                "] (the output's), but got ", residual->sizes());
  }
  return activation == "none" ? -1 : static_cast<int>(parse_act(activation));
}

inline std::string check_algo(c10::string_view algo, const std::vector<std::string>& available, const char* backend) {
  std::string a(algo);
  if (a == "auto") return available.back();
  for (const auto& v : available)
    if (v == a) return a;
  std::string list;
  for (const auto& v : available) list += (list.empty() ? "" : ", ") + v;
  TORCH_CHECK(false, "pyconv.conv2d: unknown algo '", a, "' for ", backend, "; available: auto, ", list);
  return a;
}

}  // namespace pyconv
