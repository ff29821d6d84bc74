// CPU host wrappers for conv2d: checks → allocate → early return when empty → dtype dispatch → kernel.
// float32/float64 run natively; float16/bfloat16 are computed in float32 and rounded once at the end.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "conv2d_glue.h"
#include "tuning.h"
#include "cpu_depthwise.h"
#include "cpu_direct.h"
#include "cpu_gemm.h"

namespace pyconv {
namespace {

// "auto": the autotuner's entry for this call when pyconv.tuning installed one, else "depthwise" for true depthwise
// layers (groups == C > 1) and "im2col_gemm" otherwise. A single-channel input with groups == 1 (a grayscale stem) is
// one GEMM with K rows, which im2col_gemm does 2-4x faster than K separate stencils.
std::string resolve_cpu_algo(c10::string_view algo_name, const Conv2dShape& s, const at::Tensor& t, const char* dir) {
  if (algo_name == "auto") {
    const std::string tuned = tuned_for(dir, s, t);
    if (!tuned.empty()) return tuned;
    return s.Cg() == 1 && s.groups > 1 ? "depthwise" : "im2col_gemm";
  }
  const std::string algo = check_algo(algo_name, conv2d_cpu_algos(), "CPU");
  TORCH_CHECK(algo != "depthwise" || s.Cg() == 1, "pyconv.conv2d: algo 'depthwise' needs one input channel per group ",
              "(groups == C), but got C=", s.C, " with groups=", s.groups, "; use algo='auto' or 'im2col_gemm'");
  return algo;
}


// The kernels' ParallelFor is TorchParallelFor (common/torch_glue.h): torch's intra-op pool, so
// torch.set_num_threads() governs pyconv too.

at::ScalarType compute_type(at::ScalarType st) {
  return (st == at::kHalf || st == at::kBFloat16) ? at::kFloat : st;
}

// Writes `result` into `out` if they are different tensors (dtype or layout conversion), else nothing.
void finish(at::Tensor& out, const at::Tensor& result) {
  if (!result.is_same(out)) out.copy_(result);
}

at::Tensor fprop_fused_cpu(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                           const std::optional<at::Tensor>& residual, at::IntArrayRef stride, at::IntArrayRef padding,
                           at::IntArrayRef dilation, int64_t groups, c10::string_view activation, double param,
                           c10::string_view algo_name) {
  check_floating(input, "input");
  check_same(input, "input", weight, "weight");
  const auto geo = check_geometry(stride, padding, dilation, groups);
  const Conv2dShape s = make_shape(input.sizes(), weight.sizes(), geo);
  if (bias) {
    check_same(input, "input", *bias, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == s.K, "pyconv.conv2d: expected bias of size [", s.K,
                "], but got bias of size ", bias->sizes());
  }
  const int act = check_epilogue(input, s, residual, activation);
  TORCH_CHECK(input.device().is_cpu(), "pyconv.conv2d: CPU kernel called with input on ", input.device());
  const std::string algo = resolve_cpu_algo(algo_name, s, input, "fprop");

  at::Tensor y = at::empty({s.N, s.K, s.P, s.Q}, input.options().memory_format(conv_output_format(input)));
  if (y.numel() == 0) return y;
  const auto ct = compute_type(input.scalar_type());
  at::Tensor b = bias ? bias->to(ct).contiguous() : at::Tensor();
  at::Tensor res = residual ? residual->to(ct) : at::Tensor();  // read through its strides: any layout

  AT_DISPATCH_FLOATING_TYPES(ct, "pyconv_conv2d_fprop_cpu", [&] {
    const scalar_t* bp = b.defined() ? b.data_ptr<scalar_t>() : nullptr;
    ConvEpilogue<scalar_t> epi;
    epi.act = act;
    epi.param = static_cast<scalar_t>(param);
    if (res.defined()) {
      epi.residual = res.data_ptr<scalar_t>();
      epi.rs = strides4(res);
    }
    if (algo == "depthwise") {
      at::Tensor x = input.to(ct), w = weight.to(ct);
      at::Tensor yc = y.scalar_type() == ct ? y : at::empty_like(y, y.options().dtype(ct));
      cpu::conv2d_fprop_depthwise<scalar_t>(s, x.data_ptr<scalar_t>(), strides4(x), w.data_ptr<scalar_t>(),
                                            strides4(w), bp, yc.data_ptr<scalar_t>(), strides4(yc), epi,
                                            TorchParallelFor{});
      finish(y, yc);
    } else if (algo == "direct") {
      at::Tensor x = input.to(ct), w = weight.to(ct);
      at::Tensor yc = y.scalar_type() == ct ? y : at::empty_like(y, y.options().dtype(ct));
      cpu::conv2d_fprop_direct<scalar_t>(s, x.data_ptr<scalar_t>(), strides4(x), w.data_ptr<scalar_t>(),
                                         strides4(w), bp, yc.data_ptr<scalar_t>(), strides4(yc), epi,
                                         TorchParallelFor{});
      finish(y, yc);
    } else {  // im2col_gemm: contiguous NCHW operands
      at::Tensor x = input.to(ct).contiguous(), w = weight.to(ct).contiguous();
      at::Tensor yc = (y.scalar_type() == ct && y.is_contiguous()) ? y : at::empty({s.N, s.K, s.P, s.Q}, y.options().dtype(ct));
      cpu::conv2d_fprop_im2col_gemm<scalar_t>(s, x.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), bp,
                                              yc.data_ptr<scalar_t>(), epi, at::get_num_threads(),
                                              TorchParallelFor{});
      finish(y, yc);
    }
  });
  return y;
}

at::Tensor fprop_cpu(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                     at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                     c10::string_view algo_name) {
  return fprop_fused_cpu(input, weight, bias, std::nullopt, stride, padding, dilation, groups, "none", 0.0,
                         algo_name);
}

at::Tensor dgrad_cpu(const at::Tensor& grad_output, const at::Tensor& weight, at::IntArrayRef input_size,
                     at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                     c10::string_view algo_name) {
  check_floating(grad_output, "grad_output");
  check_same(grad_output, "grad_output", weight, "weight");
  const Conv2dShape s = make_shape(input_size, weight.sizes(), check_geometry(stride, padding, dilation, groups));
  check_grad_output(grad_output, s);
  const std::string algo = resolve_cpu_algo(algo_name, s, grad_output, "dgrad");

  at::Tensor dx = at::empty(input_size, grad_output.options().memory_format(conv_output_format(grad_output)));
  if (dx.numel() == 0) return dx;
  if (grad_output.numel() == 0 || s.Kg() == 0) return dx.zero_();
  const auto ct = compute_type(grad_output.scalar_type());
  AT_DISPATCH_FLOATING_TYPES(ct, "pyconv_conv2d_dgrad_cpu", [&] {
    if (algo == "depthwise") {
      at::Tensor dy = grad_output.to(ct), w = weight.to(ct);
      at::Tensor dxc = dx.scalar_type() == ct ? dx : at::empty_like(dx, dx.options().dtype(ct));
      cpu::conv2d_dgrad_depthwise<scalar_t>(s, dy.data_ptr<scalar_t>(), strides4(dy), w.data_ptr<scalar_t>(),
                                            strides4(w), dxc.data_ptr<scalar_t>(), strides4(dxc), TorchParallelFor{});
      finish(dx, dxc);
    } else if (algo == "direct") {
      at::Tensor dy = grad_output.to(ct), w = weight.to(ct);
      at::Tensor dxc = dx.scalar_type() == ct ? dx : at::empty_like(dx, dx.options().dtype(ct));
      cpu::conv2d_dgrad_direct<scalar_t>(s, dy.data_ptr<scalar_t>(), strides4(dy), w.data_ptr<scalar_t>(),
                                         strides4(w), dxc.data_ptr<scalar_t>(), strides4(dxc), TorchParallelFor{});
      finish(dx, dxc);
    } else {
      at::Tensor dy = grad_output.to(ct).contiguous(), w = weight.to(ct).contiguous();
      at::Tensor dxc = (dx.scalar_type() == ct && dx.is_contiguous()) ? dx : at::empty(input_size, dx.options().dtype(ct));
      cpu::conv2d_dgrad_im2col_gemm<scalar_t>(s, dy.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(),
                                              dxc.data_ptr<scalar_t>(), TorchParallelFor{});
      finish(dx, dxc);
    }
  });
  return dx;
}

at::Tensor wgrad_cpu(const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef weight_size,
                     at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                     c10::string_view algo_name) {
  check_floating(grad_output, "grad_output");
  check_same(grad_output, "grad_output", input, "input");
  const Conv2dShape s = make_shape(input.sizes(), weight_size, check_geometry(stride, padding, dilation, groups));
  check_grad_output(grad_output, s);
  const std::string algo = resolve_cpu_algo(algo_name, s, grad_output, "wgrad");

  at::Tensor dw = at::empty(weight_size, grad_output.options().memory_format(wgrad_format(input)));
  if (dw.numel() == 0) return dw;
  if (grad_output.numel() == 0) return dw.zero_();
  const auto ct = compute_type(grad_output.scalar_type());
  AT_DISPATCH_FLOATING_TYPES(ct, "pyconv_conv2d_wgrad_cpu", [&] {
    // depthwise and direct write through dwc's strides; im2col_gemm writes a contiguous [K][C/g][R][S]: a scratch
    // (contiguous, compute type) where dw is neither, copied into dw by finish
    const bool contiguous_only = algo != "depthwise" && algo != "direct";
    at::Tensor dwc = dw;
    if (dw.scalar_type() != ct || (contiguous_only && !dw.is_contiguous()))
      dwc = at::empty(weight_size, dw.options().dtype(ct));
    if (algo == "depthwise") {
      at::Tensor dy = grad_output.to(ct), x = input.to(ct);
      cpu::conv2d_wgrad_depthwise<scalar_t>(s, dy.data_ptr<scalar_t>(), strides4(dy), x.data_ptr<scalar_t>(),
                                            strides4(x), dwc.data_ptr<scalar_t>(), strides4(dwc), TorchParallelFor{});
    } else if (algo == "direct") {
      at::Tensor dy = grad_output.to(ct), x = input.to(ct);
      cpu::conv2d_wgrad_direct<scalar_t>(s, dy.data_ptr<scalar_t>(), strides4(dy), x.data_ptr<scalar_t>(),
                                         strides4(x), dwc.data_ptr<scalar_t>(), strides4(dwc), TorchParallelFor{});
    } else {
      at::Tensor dy = grad_output.to(ct).contiguous(), x = input.to(ct).contiguous();
      cpu::conv2d_wgrad_im2col_gemm<scalar_t>(s, dy.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(),
                                              dwc.data_ptr<scalar_t>(), at::get_num_threads(), TorchParallelFor{});
    }
    finish(dw, dwc);
  });
  return dw;
}

at::Tensor bgrad_cpu(const at::Tensor& grad_output) {
  check_floating(grad_output, "grad_output");
  TORCH_CHECK(grad_output.dim() == 4, "pyconv.conv2d: expected 4-D grad_output, but got size ", grad_output.sizes());
  const int64_t N = grad_output.size(0), K = grad_output.size(1), P = grad_output.size(2), Q = grad_output.size(3);
  at::Tensor db = at::empty({K}, grad_output.options());
  if (K == 0) return db;
  const auto ct = compute_type(grad_output.scalar_type());
  AT_DISPATCH_FLOATING_TYPES(ct, "pyconv_conv2d_bgrad_cpu", [&] {
    at::Tensor dy = grad_output.to(ct);
    at::Tensor dbc = db.scalar_type() == ct ? db : at::empty({K}, db.options().dtype(ct));
    cpu::conv2d_bgrad<scalar_t>(N, K, P, Q, dy.data_ptr<scalar_t>(), strides4(dy), dbc.data_ptr<scalar_t>(),
                                TorchParallelFor{});
    finish(db, dbc);
  });
  return db;
}

}  // namespace

TORCH_LIBRARY_IMPL(pyconv, CPU, m) {
  m.impl("conv2d_fprop", &fprop_cpu);
  m.impl("conv2d_fprop_fused", &fprop_fused_cpu);
  m.impl("conv2d_dgrad", &dgrad_cpu);
  m.impl("conv2d_wgrad", &wgrad_cpu);
  m.impl("conv2d_bgrad", &bgrad_cpu);
}

}  // namespace pyconv
