// CUDA host wrappers for conv2d, in torchvision's order: check inputs → device guard → allocate → current stream →
// return early when empty → dtype dispatch → launch → check the launch. Kernels see raw pointers, element strides
// (so any memory layout works without a copy) and the current stream, which keeps the ops correct under
// torch.cuda.stream(...) and inside CUDA graphs.
//
// The same file is also compiled by the host compiler into the emulated backend (conv2d_emu.cpp includes it after
// csrc/emu/cuda_emu.h): then the ops are `pyconv_emu::*` on CPU tensors, and every launch below runs the unchanged
// kernels on the CPU emulator, so this host code (checks, grid math, algorithm choice) is exercised too.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../common/cuda_glue.h"
#include "conv2d_glue.h"
#include "cuda_direct.cuh"
#include "cuda_implicit_gemm.cuh"

namespace pyconv {
namespace {

void check_cuda(const at::Tensor& t, const char* name) { check_device(t, "conv2d", name); }

at::Tensor fprop_fused_cuda(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            const std::optional<at::Tensor>& residual, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                            c10::string_view activation, double param, c10::string_view algo_name) {
  check_floating(input, "input");
  check_same(input, "input", weight, "weight");
  check_cuda(input, "input");
  const Conv2dShape s = make_shape(input.sizes(), weight.sizes(), check_geometry(stride, padding, dilation, groups));
  if (bias) {
    check_same(input, "input", *bias, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == s.K, "pyconv.conv2d: expected bias of size [", s.K,
                "], but got bias of size ", bias->sizes());
  }
  const int act = check_epilogue(input, s, residual, activation);
  const std::string algo = check_algo(algo_name, conv2d_cuda_algos(), "CUDA");

  const DeviceGuard guard(input.device());
  at::Tensor y = at::empty({s.N, s.K, s.P, s.Q}, input.options().memory_format(conv_output_format(input)));
  const cudaStream_t stream = current_stream();
  if (y.numel() == 0) return y;
  at::Tensor b = bias ? bias->contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "pyconv_conv2d_fprop_cuda", [&] {
    using KT = typename KernelType<scalar_t>::type;
    const KT* bp = b.defined() ? kptr<scalar_t>(b) : nullptr;
    ConvEpilogue<KT> epi;
    epi.act = act;
    epi.param = static_cast<acc_t<KT>>(param);
    if (residual) {
      epi.residual = kptr<scalar_t>(*residual);  // read through its strides: any layout
      epi.rs = strides4(*residual);
    }
    if (algo == "direct")
      check_launch(cuda::launch_fprop_direct<KT>(s, kptr<scalar_t>(input), strides4(input), kptr<scalar_t>(weight),
                                                 strides4(weight), bp, kptr<scalar_t>(y), strides4(y), stream, epi),
                   "conv2d_fprop direct");
    else
      check_launch(cuda::launch_fprop_implicit_gemm<KT>(s, kptr<scalar_t>(input), strides4(input),
                                                        kptr<scalar_t>(weight), strides4(weight), bp,
                                                        kptr<scalar_t>(y), strides4(y), stream, epi),
                   "conv2d_fprop implicit_gemm");
  });
  return y;
}

at::Tensor fprop_cuda(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                      c10::string_view algo_name) {
  return fprop_fused_cuda(input, weight, bias, std::nullopt, stride, padding, dilation, groups, "none", 0.0,
                          algo_name);
}

at::Tensor dgrad_cuda(const at::Tensor& grad_output, const at::Tensor& weight, at::IntArrayRef input_size,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                      c10::string_view algo_name) {
  check_floating(grad_output, "grad_output");
  check_same(grad_output, "grad_output", weight, "weight");
  check_cuda(grad_output, "grad_output");
  const Conv2dShape s = make_shape(input_size, weight.sizes(), check_geometry(stride, padding, dilation, groups));
  check_grad_output(grad_output, s);
  const std::string algo = check_algo(algo_name, conv2d_cuda_algos(), "CUDA");

  const DeviceGuard guard(grad_output.device());
  at::Tensor dx = at::empty(input_size, grad_output.options().memory_format(conv_output_format(grad_output)));
  const cudaStream_t stream = current_stream();
  if (dx.numel() == 0) return dx;
  if (grad_output.numel() == 0 || s.Kg() == 0) return dx.zero_();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "pyconv_conv2d_dgrad_cuda", [&] {
    using KT = typename KernelType<scalar_t>::type;
    if (algo == "direct")
      check_launch(cuda::launch_dgrad_direct<KT>(s, kptr<scalar_t>(grad_output), strides4(grad_output),
                                                 kptr<scalar_t>(weight), strides4(weight), kptr<scalar_t>(dx),
                                                 strides4(dx), stream),
                   "conv2d_dgrad direct");
    else
      check_launch(cuda::launch_dgrad_implicit_gemm<KT>(s, kptr<scalar_t>(grad_output), strides4(grad_output),
                                                        kptr<scalar_t>(weight), strides4(weight), kptr<scalar_t>(dx),
                                                        strides4(dx), stream),
                   "conv2d_dgrad implicit_gemm");
  });
  return dx;
}

at::Tensor wgrad_cuda(const at::Tensor& grad_output, const at::Tensor& input, at::IntArrayRef weight_size,
                      at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                      c10::string_view algo_name) {
  check_floating(grad_output, "grad_output");
  check_same(grad_output, "grad_output", input, "input");
  check_cuda(grad_output, "grad_output");
  const Conv2dShape s = make_shape(input.sizes(), weight_size, check_geometry(stride, padding, dilation, groups));
  check_grad_output(grad_output, s);
  const std::string algo = check_algo(algo_name, conv2d_cuda_algos(), "CUDA");

  const DeviceGuard guard(grad_output.device());
  at::Tensor dw = at::empty(weight_size, grad_output.options());
  const cudaStream_t stream = current_stream();
  if (dw.numel() == 0) return dw;
  if (grad_output.numel() == 0) return dw.zero_();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "pyconv_conv2d_wgrad_cuda", [&] {
    using KT = typename KernelType<scalar_t>::type;
    if (algo == "direct")
      check_launch(cuda::launch_wgrad_direct<KT>(s, kptr<scalar_t>(grad_output), strides4(grad_output),
                                                 kptr<scalar_t>(input), strides4(input), kptr<scalar_t>(dw),
                                                 strides4(dw), stream),
                   "conv2d_wgrad direct");
    else
      check_launch(cuda::launch_wgrad_implicit_gemm<KT>(s, kptr<scalar_t>(grad_output), strides4(grad_output),
                                                        kptr<scalar_t>(input), strides4(input), kptr<scalar_t>(dw),
                                                        strides4(dw), stream),
                   "conv2d_wgrad implicit_gemm");
  });
  return dw;
}

at::Tensor bgrad_cuda(const at::Tensor& grad_output) {
  check_floating(grad_output, "grad_output");
  check_cuda(grad_output, "grad_output");
  TORCH_CHECK(grad_output.dim() == 4, "pyconv.conv2d: expected 4-D grad_output, but got size ", grad_output.sizes());
  const int64_t N = grad_output.size(0), K = grad_output.size(1), P = grad_output.size(2), Q = grad_output.size(3);
  const DeviceGuard guard(grad_output.device());
  at::Tensor db = at::empty({K}, grad_output.options());
  const cudaStream_t stream = current_stream();
  if (K == 0) return db;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "pyconv_conv2d_bgrad_cuda", [&] {
    using KT = typename KernelType<scalar_t>::type;
    check_launch(cuda::launch_bgrad<KT>(N, K, P, Q, kptr<scalar_t>(grad_output), strides4(grad_output),
                                        kptr<scalar_t>(db), stream),
                 "conv2d_bgrad");
  });
  return db;
}

}  // namespace

void register_conv2d(torch::Library& m) {
  m.impl("conv2d_fprop", &fprop_cuda);
  m.impl("conv2d_fprop_fused", &fprop_fused_cuda);
  m.impl("conv2d_dgrad", &dgrad_cuda);
  m.impl("conv2d_wgrad", &wgrad_cuda);
  m.impl("conv2d_bgrad", &bgrad_cuda);
}

#ifdef PYCONV_EMULATION
TORCH_LIBRARY_IMPL(pyconv_emu, CPU, m) { register_conv2d(m); }
#else
TORCH_LIBRARY_IMPL(pyconv, CUDA, m) { register_conv2d(m); }
#endif

}  // namespace pyconv
