// Standalone driver for the CUDA emulator, without Python or torch, so that it can be built with sanitizers:
//   g++ -std=c++17 -O1 -g -fsanitize=address,undefined -I<cuda include> harness.cpp -o harness -pthread
//   g++ -std=c++17 -O1 -g -fsanitize=thread ...
// (tests/test_emu_sanitizers.py builds and runs every flavour.)
//
//   harness conv [--quick]   every CUDA conv2d kernel (direct and implicit GEMM; fprop, dgrad, wgrad, bgrad) on tiny
//                            shapes, float and double, against the CPU direct loops, under every block/thread order
//                            and with 1 and 2 worker threads; the depthwise kernels on depthwise shapes (and their
//                            channels-last vector path); the
//                            tensor-core kernels (cp.async pipeline, ldmatrix, mma; fprop, dgrad, split-K wgrad)
//                            in float16 on NHWC operands
//   harness pool             every pooling kernel (max/avg/adaptive, forward and gather backward, global-average
//                            reduction) against the same per-element functors run by serial CPU loops
//   harness act              every activation kernel (10 functions × forward/backward × float/double, vector and
//                            tail paths, aligned and misaligned) against the scalar formulas
//   harness selftests        the emulator's own feature and seeded-bug tests (csrc/emu/selftests.h)
//   harness bug NAME         run one seeded bug and print what came back (a sanitizer report, for sanitizer_bug)
//   harness list             names of the self-tests
#include "../../csrc/emu/cuda_emu.h"
// The kernels and their launchers, unchanged; then the CPU reference loops.
#include "../../csrc/conv2d/cuda_direct.cuh"
#include "../../csrc/conv2d/cuda_implicit_gemm.cuh"
#include "../../csrc/conv2d/cuda_depthwise.cuh"
#include "../../csrc/conv2d/cuda_tensor_core.cuh"
#include "../../csrc/activation/cuda_activation.cuh"
#include "../../csrc/conv2d/cpu_direct.h"
#include "../../csrc/emu/selftests.h"
#include "../../csrc/pooling/cpu_pool.h"
#include "../../csrc/pooling/cuda_pool.cuh"

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using pyconv::Conv2dShape;
using pyconv::Strides4;

namespace {

struct Geometry {
  const char* name;
  int64_t N, C, H, W, K, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups;
};

// Tiny, but each one crosses a boundary: partial 64-wide GEMM tiles, groups, stride > kernel, dilation, padding.
const Geometry kGeometries[] = {
    {"3x3_pad1", 2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},
    {"strided_dilated", 1, 2, 7, 6, 3, 2, 3, 2, 1, 1, 2, 2, 1, 1},
    {"groups", 2, 4, 4, 5, 6, 3, 1, 1, 2, 0, 1, 1, 1, 2},
    {"stride_gt_kernel", 1, 2, 8, 7, 2, 1, 2, 3, 3, 0, 0, 1, 1, 1},
    {"wide_k", 1, 2, 5, 5, 70, 1, 1, 1, 1, 0, 0, 1, 1, 1},  // K = 70 > 64: two GEMM-N tiles
};

Conv2dShape make_shape(const Geometry& g) {
  Conv2dShape s{};
  s.N = g.N; s.C = g.C; s.H = g.H; s.W = g.W; s.K = g.K; s.R = g.R; s.S = g.S;
  s.stride_h = g.stride_h; s.stride_w = g.stride_w; s.pad_h = g.pad_h; s.pad_w = g.pad_w;
  s.dil_h = g.dil_h; s.dil_w = g.dil_w; s.groups = g.groups;
  s.P = (s.H + 2 * s.pad_h - s.dil_h * (s.R - 1) - 1) / s.stride_h + 1;
  s.Q = (s.W + 2 * s.pad_w - s.dil_w * (s.S - 1) - 1) / s.stride_w + 1;
  return s;
}

Strides4 contiguous(int64_t, int64_t d1, int64_t d2, int64_t d3) { return Strides4{d1 * d2 * d3, d2 * d3, d3, 1}; }

struct Serial {
  template <typename F>
  void operator()(int64_t b, int64_t e, F&& f) const { f(b, e); }
};

template <typename T>
std::vector<T> random_vec(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  std::vector<T> v(n);
  for (T& x : v) x = T(d(rng));
  return v;
}

template <typename T>
bool close(const std::vector<T>& a, const std::vector<T>& b, double tol, std::string* why) {
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double(a[i]) - double(b[i]));
    if (!(d <= tol * (1.0 + std::fabs(double(b[i]))))) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "element %zu: got %.9g, expected %.9g", i, double(a[i]), double(b[i]));
      *why = buf;
      return false;
    }
  }
  return true;
}

int failures = 0;

void report(bool ok, const std::string& what, const std::string& why) {
  if (!ok) {
    ++failures;
    std::printf("FAIL %s: %s\n", what.c_str(), why.c_str());
  }
}

template <typename T>
void check_conv(const Geometry& g, const char* algo, double tol, const std::string& tag) {
  namespace cu = pyconv::cuda;
  namespace cpu = pyconv::cpu;
  const Conv2dShape s = make_shape(g);
  std::mt19937 rng(1234);
  const auto xs = contiguous(s.N, s.C, s.H, s.W), ws = contiguous(s.K, s.Cg(), s.R, s.S),
             ys = contiguous(s.N, s.K, s.P, s.Q);
  std::vector<T> x = random_vec<T>(size_t(s.N * s.C * s.H * s.W), rng), w = random_vec<T>(size_t(s.K * s.crs()), rng),
                 b = random_vec<T>(size_t(s.K), rng), dy = random_vec<T>(size_t(s.N * s.K * s.P * s.Q), rng);
  const bool direct = std::strcmp(algo, "direct") == 0;
  const std::string what = tag + " " + g.name + " " + algo + (sizeof(T) == 8 ? " double" : " float");
  std::string why;

  std::vector<T> y(dy.size(), T(-7)), y_ref(dy.size());
  cpu::conv2d_fprop_direct(s, x.data(), xs, w.data(), ws, b.data(), y_ref.data(), ys, Serial{});
  cudaError_t e = direct ? cu::launch_fprop_direct<T>(s, x.data(), xs, w.data(), ws, b.data(), y.data(), ys, nullptr)
                         : cu::launch_fprop_implicit_gemm<T>(s, x.data(), xs, w.data(), ws, b.data(), y.data(), ys,
                                                             nullptr);
  report(e == cudaSuccess && close(y, y_ref, tol, &why), what + " fprop", e == cudaSuccess ? why : cudaGetErrorString(e));

  // The fused epilogue (residual + silu), against the CPU direct loop with the same epilogue.
  std::vector<T> res = random_vec<T>(dy.size(), rng);
  pyconv::ConvEpilogue<T> epi;
  epi.act = static_cast<int>(pyconv::Act::silu);
  epi.residual = res.data();
  epi.rs = ys;
  std::fill(y.begin(), y.end(), T(-7));
  cpu::conv2d_fprop_direct(s, x.data(), xs, w.data(), ws, b.data(), y_ref.data(), ys, epi, Serial{});
  e = direct ? cu::launch_fprop_direct<T>(s, x.data(), xs, w.data(), ws, b.data(), y.data(), ys, nullptr, epi)
             : cu::launch_fprop_implicit_gemm<T>(s, x.data(), xs, w.data(), ws, b.data(), y.data(), ys, nullptr, epi);
  report(e == cudaSuccess && close(y, y_ref, tol, &why), what + " fprop+epilogue",
         e == cudaSuccess ? why : cudaGetErrorString(e));

  std::vector<T> dx(x.size(), T(-7)), dx_ref(x.size());
  cpu::conv2d_dgrad_direct(s, dy.data(), ys, w.data(), ws, dx_ref.data(), xs, Serial{});
  e = direct ? cu::launch_dgrad_direct<T>(s, dy.data(), ys, w.data(), ws, dx.data(), xs, nullptr)
             : cu::launch_dgrad_implicit_gemm<T>(s, dy.data(), ys, w.data(), ws, dx.data(), xs, nullptr);
  report(e == cudaSuccess && close(dx, dx_ref, tol, &why), what + " dgrad", e == cudaSuccess ? why : cudaGetErrorString(e));

  std::vector<T> dw(w.size(), T(-7)), dw_ref(w.size());
  cpu::conv2d_wgrad_direct(s, dy.data(), ys, x.data(), xs, dw_ref.data(), ws, Serial{});
  e = direct ? cu::launch_wgrad_direct<T>(s, dy.data(), ys, x.data(), xs, dw.data(), ws, nullptr)
             : cu::launch_wgrad_implicit_gemm<T>(s, dy.data(), ys, x.data(), xs, dw.data(), ws, nullptr);
  report(e == cudaSuccess && close(dw, dw_ref, tol, &why), what + " wgrad", e == cudaSuccess ? why : cudaGetErrorString(e));

  if (direct) {  // bgrad has one kernel
    std::vector<T> db(b.size(), T(-7)), db_ref(b.size());
    cpu::conv2d_bgrad(s.N, s.K, s.P, s.Q, dy.data(), ys, db_ref.data(), Serial{});
    e = cu::launch_bgrad<T>(s.N, s.K, s.P, s.Q, dy.data(), ys, db.data(), nullptr);
    report(e == cudaSuccess && close(db, db_ref, tol, &why), what + " bgrad", e == cudaSuccess ? why : cudaGetErrorString(e));
  }
}

// The depthwise rung (C/groups == 1), fprop (with the fused epilogue), dgrad and split wgrad, vs the CPU loops.
template <typename T>
void check_depthwise(bool channels_last_threads, const std::string& tag) {
  namespace cu = pyconv::cuda;
  namespace cpu = pyconv::cpu;
  const Geometry g{"depthwise", 2, 3, 9, 7, 6, 3, 3, 2, 1, 1, 1, 1, 2, 3};  // mult 2, stride (2, 1), dilation (1, 2)
  const Conv2dShape s = make_shape(g);
  std::mt19937 rng(77);
  const auto xs = contiguous(s.N, s.C, s.H, s.W), ws = contiguous(s.K, 1, s.R, s.S), ys = contiguous(s.N, s.K, s.P, s.Q);
  std::vector<T> x = random_vec<T>(size_t(s.N * s.C * s.H * s.W), rng), w = random_vec<T>(size_t(s.K * s.R * s.S), rng),
                 b = random_vec<T>(size_t(s.K), rng), dy = random_vec<T>(size_t(s.N * s.K * s.P * s.Q), rng),
                 res = random_vec<T>(dy.size(), rng);
  const double tol = sizeof(T) == 8 ? 1e-12 : 1e-5;
  const std::string what = tag + " depthwise" + (channels_last_threads ? " c-fastest" : " q-fastest") +
                           (sizeof(T) == 8 ? " double" : " float");
  std::string why;
  pyconv::ConvEpilogue<T> epi;
  epi.act = static_cast<int>(pyconv::Act::relu6);
  epi.residual = res.data();
  epi.rs = ys;
  std::vector<T> y(dy.size(), T(-7)), y_ref(dy.size());
  cpu::conv2d_fprop_direct(s, x.data(), xs, w.data(), ws, b.data(), y_ref.data(), ys, epi, Serial{});
  cudaError_t e = cu::launch_dw_fprop<T>(s, x.data(), xs, w.data(), ws, b.data(), y.data(), ys, channels_last_threads,
                                         nullptr, epi);
  report(e == cudaSuccess && close(y, y_ref, tol, &why), what + " fprop+epilogue",
         e == cudaSuccess ? why : cudaGetErrorString(e));
  std::vector<T> dx(x.size(), T(-7)), dx_ref(x.size());
  cpu::conv2d_dgrad_direct(s, dy.data(), ys, w.data(), ws, dx_ref.data(), xs, Serial{});
  e = cu::launch_dw_dgrad<T>(s, dy.data(), ys, w.data(), ws, dx.data(), xs, channels_last_threads, nullptr);
  report(e == cudaSuccess && close(dx, dx_ref, tol, &why), what + " dgrad", e == cudaSuccess ? why : cudaGetErrorString(e));
  std::vector<T> dw(w.size(), T(-7)), dw_ref(w.size());
  cpu::conv2d_wgrad_direct(s, dy.data(), ys, x.data(), xs, dw_ref.data(), ws, Serial{});
  const int64_t splits = 3;
  std::vector<pyconv::acc_t<T>> work(size_t(splits * s.K * s.R * s.S));
  e = cu::launch_dw_wgrad<T>(s, dy.data(), ys, x.data(), xs, dw.data(), ws, work.data(), splits, nullptr);
  report(e == cudaSuccess && close(dw, dw_ref, tol, &why), what + " wgrad (3 splits)",
         e == cudaSuccess ? why : cudaGetErrorString(e));
}

// The depthwise rung's channels-last fast path (K == C, 16-byte channel vectors): fprop with the fused epilogue and
// dgrad on NHWC tensors, wgrad split 3 ways, against the CPU loops on the same strides. Six problems: stride (2, 1)
// and dilation (1, 2), the generic kernels (fprop/dgrad on the packed [R·S][C] taps); 3×3 and 5×5, each at stride 1
// and at stride 2 (dgrad's sub-pixel taps, odd padding), the windowed kernels: fprop/dgrad stage their taps in shared
// memory from the filter itself (several blocks, channel slots wrapping around: the barrier pair is what TSan
// checks), wgrad takes one filter row a block (the 5-tap rows end on a short reduction round); 7×7 (ConvNeXt):
// fprop/dgrad on the generic kernel, wgrad on the row kernel's 1-pixel strips.
const Geometry kDwVecGeometries[] = {{"depthwise_vec", 2, 16, 9, 11, 16, 3, 3, 2, 1, 1, 2, 1, 2, 16},
                                     {"depthwise_window", 2, 24, 9, 11, 24, 3, 3, 1, 1, 1, 1, 1, 1, 24},
                                     {"depthwise_window_s2", 2, 24, 10, 13, 24, 3, 3, 2, 2, 1, 1, 1, 1, 24},
                                     {"depthwise_window_5x5", 1, 16, 9, 10, 16, 5, 5, 1, 1, 2, 2, 1, 1, 16},
                                     {"depthwise_window_5x5_s2", 2, 16, 11, 9, 16, 5, 5, 2, 2, 1, 1, 1, 1, 16},
                                     {"depthwise_7x7", 1, 16, 9, 10, 16, 7, 7, 1, 1, 3, 3, 1, 1, 16}};

template <typename T>
void check_depthwise_vec(const std::string& tag, const Geometry& g) {
  namespace cu = pyconv::cuda;
  namespace cpu = pyconv::cpu;
  const Conv2dShape s = make_shape(g);
  const bool staged = cu::dw_window_k(s) != 0;
  std::mt19937 rng(78);
  auto nhwc = [](int64_t N, int64_t C, int64_t H, int64_t W) { return Strides4{H * W * C, 1, W * C, C}; };
  const auto xs = nhwc(s.N, s.C, s.H, s.W), ys = nhwc(s.N, s.K, s.P, s.Q), ws = contiguous(s.K, 1, s.R, s.S);
  std::vector<T> x = random_vec<T>(size_t(s.N * s.C * s.H * s.W), rng), w = random_vec<T>(size_t(s.K * s.R * s.S), rng),
                 b = random_vec<T>(size_t(s.K), rng), dy = random_vec<T>(size_t(s.N * s.K * s.P * s.Q), rng),
                 res = random_vec<T>(dy.size(), rng);
  std::vector<T> wt(w.size());  // [r·S + s][k]
  for (int64_t k = 0; k < s.K; ++k)
    for (int64_t t = 0; t < s.R * s.S; ++t) wt[size_t(t * s.K + k)] = w[size_t(k * s.R * s.S + t)];
  const double tol = sizeof(T) == 8 ? 1e-12 : 1e-5;
  const std::string what = tag + " " + g.name + (sizeof(T) == 8 ? " double" : " float");
  std::string why;
  if (!cu::dw_vec_eligible<T>(s, x.data(), xs, dy.data(), ys) || cu::dw_window_stages<T>(s, w.data()) != staged) {
    report(false, what, "the fast path (or its tap staging) does not take its own test shape");
    return;
  }
  const T* w_staged = staged ? w.data() : nullptr;  // std::vector's storage: 16-byte aligned (checked just above)
  const T* w_packed = staged ? nullptr : wt.data();
  pyconv::ConvEpilogue<T> epi;
  epi.act = static_cast<int>(pyconv::Act::silu);
  epi.residual = res.data();
  epi.rs = ys;
  std::vector<T> y(dy.size(), T(-7)), y_ref(dy.size());
  cpu::conv2d_fprop_direct(s, x.data(), xs, w.data(), ws, b.data(), y_ref.data(), ys, epi, Serial{});
  cudaError_t e = cu::launch_dw_nhwc_vec<T, false>(s, x.data(), xs, w_staged, w_packed, b.data(), y.data(), ys, epi,
                                                    nullptr);
  report(e == cudaSuccess && close(y, y_ref, tol, &why), what + " fprop+epilogue",
         e == cudaSuccess ? why : cudaGetErrorString(e));
  std::vector<T> dx(x.size(), T(-7)), dx_ref(x.size());
  cpu::conv2d_dgrad_direct(s, dy.data(), ys, w.data(), ws, dx_ref.data(), xs, Serial{});
  e = cu::launch_dw_nhwc_vec<T, true>(s, dy.data(), ys, w_staged, w_packed, nullptr, dx.data(), xs,
                                      pyconv::ConvEpilogue<T>{}, nullptr);
  report(e == cudaSuccess && close(dx, dx_ref, tol, &why), what + " dgrad", e == cudaSuccess ? why : cudaGetErrorString(e));
  std::vector<T> dw(w.size(), T(-7)), dw_ref(w.size());
  cpu::conv2d_wgrad_direct(s, dy.data(), ys, x.data(), xs, dw_ref.data(), ws, Serial{});
  const int64_t splits = 3;
  std::vector<pyconv::acc_t<T>> work(size_t(splits * s.K * s.R * s.S));
  e = cu::launch_dw_wgrad_nhwc_vec<T>(s, dy.data(), ys, x.data(), xs, dw.data(), ws, work.data(), splits, nullptr);
  report(e == cudaSuccess && close(dw, dw_ref, tol, &why), what + " wgrad (3 splits)",
         e == cudaSuccess ? why : cudaGetErrorString(e));
}

// The tensor-core kernels in float16: NHWC activations with 16 channels (two 8-channel chunks), B as [k][r][s][c],
// 64×64 tiles (several M tiles, a partial N tile), and wgrad split 3 ways. Checked against the CPU direct loops in
// double on the same half-rounded inputs. Under TSan this is the race check of the cp.async pipeline's barriers.
void check_tensor_core(const std::string& tag) {
  namespace cu = pyconv::cuda;
  namespace cpu = pyconv::cpu;
  const Geometry g{"tc", 2, 16, 9, 8, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1};
  const Conv2dShape s = make_shape(g);
  std::mt19937 rng(5);
  std::vector<double> x = random_vec<double>(size_t(s.N * s.C * s.H * s.W), rng),
                      w = random_vec<double>(size_t(s.K * s.C * s.R * s.S), rng),
                      dy = random_vec<double>(size_t(s.N * s.K * s.P * s.Q), rng);
  auto half = [](const std::vector<double>& v) {
    std::vector<__half> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = __float2half(float(v[i]));
    return h;
  };
  auto back = [](const std::vector<__half>& h) {
    std::vector<double> v(h.size());
    for (size_t i = 0; i < h.size(); ++i) v[i] = double(__half2float(h[i]));
    return v;
  };
  std::vector<__half> xh = half(x), wh = half(w), dyh = half(dy);
  x = back(xh), w = back(wh), dy = back(dyh);  // the references see the same rounded inputs
  // NHWC strides (logical NCHW order for Strides4) and the B matrices.
  const Strides4 xs{s.H * s.W * s.C, 1, s.W * s.C, s.C}, ys{s.P * s.Q * s.K, 1, s.Q * s.K, s.K},
      ws_krsc{s.R * s.S * s.C, 1, s.S * s.C, s.C};
  std::vector<__half> w_crsk(wh.size());  // dgrad's B: [c][r][s][k]
  for (int64_t k = 0; k < s.K; ++k)
    for (int64_t c = 0; c < s.C; ++c)
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t t = 0; t < s.S; ++t)
          w_crsk[size_t(((c * s.R + r) * s.S + t) * s.K + k)] = wh[size_t(ws_krsc.at(k, c, r, t))];
  const std::string what = tag + " tensor_core f16";
  std::string why;

  cu::TcConvParams<__half> pr{};
  pr.a = xh.data(), pr.a_sn = xs.s0, pr.a_sh = xs.s2, pr.a_sw = xs.s3, pr.AH = int(s.H), pr.AW = int(s.W);
  pr.ca = int(s.C), pr.N = s.N, pr.R = int(s.R), pr.S = int(s.S);
  pr.set_out_grid(s.P, s.Q);
  pr.stride_h = pr.stride_w = 1, pr.pad_h = pr.pad_w = 1, pr.dil_h = pr.dil_w = 1;
  pr.b = wh.data(), pr.gemm_n = int(s.K), pr.groups = 1;
  std::vector<__half> y(dy.size());
  pr.y = y.data(), pr.ys = ys, pr.bias = nullptr;
  std::vector<double> y_ref(dy.size());
  cpu::conv2d_fprop_direct(s, x.data(), xs, w.data(), ws_krsc, static_cast<const double*>(nullptr), y_ref.data(), ys,
                           Serial{});
  cudaError_t e = cu::launch_tc_conv<__half, cu::TcTile64x64>(pr, false, nullptr);
  report(e == cudaSuccess && close(back(y), y_ref, 4e-3, &why), what + " fprop", e == cudaSuccess ? why : cudaGetErrorString(e));

  cu::TcConvParams<__half> pd = pr;
  pd.a = dyh.data(), pd.a_sn = ys.s0, pd.a_sh = ys.s2, pd.a_sw = ys.s3, pd.AH = int(s.P), pd.AW = int(s.Q);
  pd.ca = int(s.K), pd.b = w_crsk.data(), pd.gemm_n = int(s.C);
  pd.set_out_grid(s.H, s.W);
  std::vector<__half> dx(x.size());
  pd.y = dx.data(), pd.ys = xs;
  std::vector<double> dx_ref(x.size());
  cpu::conv2d_dgrad_direct(s, dy.data(), ys, w.data(), ws_krsc, dx_ref.data(), xs, Serial{});
  e = cu::launch_tc_conv<__half, cu::TcTile64x64>(pd, true, nullptr);
  report(e == cudaSuccess && close(back(dx), dx_ref, 4e-3, &why), what + " dgrad", e == cudaSuccess ? why : cudaGetErrorString(e));

  // Split-K fprop and dgrad: the same GEMMs cut into 2 reduction slices whose float partial sums
  // tc_splitk_reduce_kernel adds (uneven slices: 5 → 3 + 2 tiles for fprop, 7 → 4 + 3 for dgrad).
  for (const bool dgrad : {false, true}) {
    cu::TcConvParams<__half> ps = dgrad ? pd : pr;
    const int64_t kt = (int64_t(ps.R) * ps.S * ps.ca + 31) / 32;
    std::vector<float> partial(size_t(2 * ps.N * ps.OH * ps.OW * ps.gemm_n));
    std::vector<__half> out(dgrad ? x.size() : dy.size());
    ps.ws = partial.data(), ps.splits = 2, ps.tiles_per_split = int((kt + 1) / 2), ps.y = out.data();
    e = cu::launch_tc_conv<__half, cu::TcTile64x64>(ps, dgrad, nullptr);
    report(e == cudaSuccess && close(back(out), dgrad ? dx_ref : y_ref, 4e-3, &why),
           what + (dgrad ? " dgrad" : " fprop") + " (2 split-K slices)", e == cudaSuccess ? why : cudaGetErrorString(e));
  }

  cu::TcWgradParams<__half> pw{};
  pw.dy = dyh.data(), pw.x = xh.data(), pw.x_sn = xs.s0, pw.x_sh = xs.s2, pw.x_sw = xs.s3;
  pw.H = int(s.H), pw.W = int(s.W), pw.P = int(s.P), pw.Q = int(s.Q), pw.R = int(s.R), pw.S = int(s.S);
  pw.stride_h = pw.stride_w = 1, pw.pad_h = pw.pad_w = 1, pw.dil_h = pw.dil_w = 1;
  pw.kp = int(s.K), pw.cp = int(s.C), pw.kg = int(s.K), pw.cg = int(s.C), pw.N = s.N, pw.groups = 1;
  pw.pq_div = pyconv::FastDiv::make(uint32_t(s.P * s.Q)), pw.q_div = pyconv::FastDiv::make(uint32_t(s.Q));
  const int64_t kt_all = (s.N * s.P * s.Q + cu::kTcBK - 1) / cu::kTcBK;
  pw.splits = 3, pw.tiles_per_split = int((kt_all + 2) / 3);
  std::vector<float> work(size_t(3 * s.K * s.R * s.S * s.C));
  pw.ws = work.data();
  std::vector<__half> dw(wh.size());
  std::vector<double> dw_ref(w.size());
  cpu::conv2d_wgrad_direct(s, dy.data(), ys, x.data(), xs, dw_ref.data(), ws_krsc, Serial{});
  e = cu::launch_tc_wgrad<__half, cu::TcTile64x64>(pw, dw.data(), ws_krsc, nullptr);
  report(e == cudaSuccess && close(back(dw), dw_ref, 4e-3, &why), what + " wgrad (3 splits)",
         e == cudaSuccess ? why : cudaGetErrorString(e));
}

int run_conv(bool quick) {
  const pyconv_emu::Order orders[] = {pyconv_emu::Order::forward, pyconv_emu::Order::reverse,
                                      pyconv_emu::Order::random};
  int runs = 0;
  for (pyconv_emu::Order order : orders)
    for (int workers : {1, 2}) {
      if (quick && !(order == pyconv_emu::Order::random && workers == 2)) continue;
      pyconv_emu::Config c = pyconv_emu::get_config();
      c.order = order;
      c.workers = workers;
      c.seed = 7;
      pyconv_emu::set_config(c);
      const std::string tag = std::string(pyconv_emu::order_name(order)) + "/w" + std::to_string(workers);
      check_depthwise<double>(workers == 1, tag);
      if (!quick) check_depthwise<float>(workers != 1, tag);
      for (const Geometry& g : kDwVecGeometries) {
        check_depthwise_vec<float>(tag, g);
        if (!quick) check_depthwise_vec<double>(tag, g);
      }
      check_tensor_core(tag);
      for (const Geometry& g : kGeometries) {
        if (quick && std::strcmp(g.name, "wide_k") == 0) continue;
        for (const char* algo : {"direct", "implicit_gemm"}) {
          check_conv<double>(g, algo, 1e-12, tag);
          if (!quick) check_conv<float>(g, algo, 1e-5, tag);
          ++runs;
        }
      }
    }
  std::printf("conv: %d configurations, %d failure(s)\n", runs, failures);
  return failures ? 1 : 0;
}

void set_order(pyconv_emu::Order order, int workers) {
  pyconv_emu::Config c = pyconv_emu::get_config();
  c.order = order;
  c.workers = workers;
  c.seed = 11;
  pyconv_emu::set_config(c);
}

template <typename T>
void check_pool(const pyconv::Pool2dShape& s0, bool adaptive, const std::string& tag) {
  namespace pool = pyconv::pool;
  pyconv::Pool2dShape s = s0;
  std::mt19937 rng(99);
  const auto xs = contiguous(s.N, s.C, s.H, s.W), ys = contiguous(s.N, s.C, s.P, s.Q);
  const size_t nx = size_t(s.N * s.C * s.H * s.W), ny = size_t(s.N * s.C * s.P * s.Q);
  std::vector<T> x = random_vec<T>(nx, rng), dy = random_vec<T>(ny, rng);
  std::string why;
  const std::string what = tag + (adaptive ? " adaptive" : " window") + (sizeof(T) == 8 ? " double" : " float");
  // max: values and indices, then the gather backward
  std::vector<T> y(ny, T(-7)), y_ref(ny);
  std::vector<int64_t> ind(ny, -1), ind_ref(ny);
  pool::MaxFwd<T> ref{s, x.data(), xs, y_ref.data(), ys, ind_ref.data(), ys, adaptive};
  pyconv::cpu::for_each_nchw(s.N, s.C, s.P, s.Q, ref, Serial{});
  cudaError_t e = pyconv::cuda::launch_nchw(s.N, s.C, s.P, s.Q,
                                            pool::MaxFwd<T>{s, x.data(), xs, y.data(), ys, ind.data(), ys, adaptive},
                                            false, nullptr);
  report(e == cudaSuccess && close(y, y_ref, 0, &why) && ind == ind_ref, what + " max fwd",
         e == cudaSuccess ? why : cudaGetErrorString(e));
  std::vector<T> dx(nx, T(-7)), dx_ref(nx);
  pyconv::cpu::for_each_nchw(s.N, s.C, s.H, s.W,
                             pool::MaxBwd<T>{s, dy.data(), ys, ind_ref.data(), ys, dx_ref.data(), xs, adaptive},
                             Serial{});
  e = pyconv::cuda::launch_nchw(s.N, s.C, s.H, s.W,
                                pool::MaxBwd<T>{s, dy.data(), ys, ind_ref.data(), ys, dx.data(), xs, adaptive},
                                true, nullptr);
  report(e == cudaSuccess && close(dx, dx_ref, 0, &why), what + " max bwd", e == cudaSuccess ? why : cudaGetErrorString(e));
  // average (count_include_pad = false, no divisor override), forward and backward
  pyconv::cpu::for_each_nchw(s.N, s.C, s.P, s.Q, pool::AvgFwd<T>{s, x.data(), xs, y_ref.data(), ys, adaptive, false, 0},
                             Serial{});
  e = pyconv::cuda::launch_nchw(s.N, s.C, s.P, s.Q, pool::AvgFwd<T>{s, x.data(), xs, y.data(), ys, adaptive, false, 0},
                                true, nullptr);
  report(e == cudaSuccess && close(y, y_ref, 0, &why), what + " avg fwd", e == cudaSuccess ? why : cudaGetErrorString(e));
  pyconv::cpu::for_each_nchw(s.N, s.C, s.H, s.W,
                             pool::AvgBwd<T>{s, dy.data(), ys, dx_ref.data(), xs, adaptive, false, 0}, Serial{});
  e = pyconv::cuda::launch_nchw(s.N, s.C, s.H, s.W, pool::AvgBwd<T>{s, dy.data(), ys, dx.data(), xs, adaptive, false, 0},
                                false, nullptr);
  report(e == cudaSuccess && close(dx, dx_ref, 0, &why), what + " avg bwd", e == cudaSuccess ? why : cudaGetErrorString(e));
  if (adaptive && s.P == 1 && s.Q == 1) {  // the global-average reduction kernel: a different summation order
    e = pyconv::cuda::launch_global_avg(s.N, s.C, s.H, s.W, x.data(), xs, y.data(), ys, nullptr);
    report(e == cudaSuccess && close(y, y_ref, sizeof(T) == 8 ? 1e-12 : 1e-5, &why), what + " global avg",
           e == cudaSuccess ? why : cudaGetErrorString(e));
  }
}

int run_pool() {
  int runs = 0;
  for (pyconv_emu::Order order : {pyconv_emu::Order::forward, pyconv_emu::Order::random})
    for (int workers : {1, 2}) {
      set_order(order, workers);
      const std::string tag = std::string(pyconv_emu::order_name(order)) + "/w" + std::to_string(workers);
      // window pooling: 3×3 stride 2 pad 1, with dilation and a ceil-mode output size
      pyconv::Pool2dShape s{2, 3, 9, 8, 0, 0, 3, 3, 2, 2, 1, 1, 1, 2};
      s.P = pyconv::pool_output_size(s.H, s.R, s.pad_h, s.stride_h, s.dil_h, true);
      s.Q = pyconv::pool_output_size(s.W, s.S, s.pad_w, s.stride_w, s.dil_w, true);
      check_pool<double>(s, false, tag);
      check_pool<float>(s, false, tag);
      // adaptive: non-divisible sizes, then global (1×1) over a plane bigger than one block
      pyconv::Pool2dShape a{2, 3, 7, 9, 3, 4, 1, 1, 1, 1, 0, 0, 1, 1};
      check_pool<double>(a, true, tag);
      pyconv::Pool2dShape g{2, 3, 23, 19, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1};
      check_pool<double>(g, true, tag);
      check_pool<float>(g, true, tag);
      runs += 5;
    }
  std::printf("pool: %d configurations, %d failure(s)\n", runs, failures);
  return failures ? 1 : 0;
}

template <typename T>
void check_act(const std::string& tag) {
  using pyconv::Act;
  std::mt19937 rng(5);
  const int64_t n = 37;  // several 16-byte vectors and a tail
  std::vector<T> buf = random_vec<T>(size_t(n + 1), rng), g = random_vec<T>(size_t(n + 1), rng);
  for (T& v : buf) v *= T(4);
  for (int offset : {0, 1}) {  // offset 1: misaligned pointers, the scalar path
    const T* x = buf.data() + offset;
    for (int k = 0; k < pyconv::kNumActs; ++k)
      pyconv::dispatch_act(static_cast<Act>(k), [&](auto tag_a) {
        constexpr Act A = decltype(tag_a)::value;
        const T p = T(0.3);
        const size_t un = static_cast<size_t>(n);
        std::vector<T> y(un, T(-7)), y_ref(un), dx(un, T(-7)), dx_ref(un);
        for (int64_t i = 0; i < n; ++i) {
          y_ref[size_t(i)] = pyconv::act::forward<A>(x[i], p);
          dx_ref[size_t(i)] = pyconv::act::backward<A>(g[size_t(i)], x[i], p);
        }
        std::string why;
        const std::string what = tag + " act " + std::to_string(k) + (offset ? " misaligned" : "") +
                                 (sizeof(T) == 8 ? " double" : " float");
        cudaError_t e = pyconv::cuda::launch_activation_fwd<T, A>(x, y.data(), n, p, nullptr);
        report(e == cudaSuccess && close(y, y_ref, 0, &why), what + " fwd", e == cudaSuccess ? why : cudaGetErrorString(e));
        e = pyconv::cuda::launch_activation_bwd<T, A>(g.data(), x, dx.data(), n, p, nullptr);
        report(e == cudaSuccess && close(dx, dx_ref, 0, &why), what + " bwd", e == cudaSuccess ? why : cudaGetErrorString(e));
      });
  }
}

int run_act() {
  for (int workers : {1, 2}) {
    set_order(pyconv_emu::Order::random, workers);
    check_act<float>("w" + std::to_string(workers));
    check_act<double>("w" + std::to_string(workers));
  }
  std::printf("act: %d failure(s)\n", failures);
  return failures ? 1 : 0;
}

int run_selftests() {
  int n = 0;
  for (const auto& t : pyconv::emu_selftest::selftests()) {
    if (std::strcmp(t.kind, "sanitizer_bug") == 0) continue;
    const std::string r = t.run();
    ++n;
    if (std::strcmp(t.kind, "feature") == 0) {
      report(r.empty(), std::string("selftest ") + t.name, r);
    } else {
      report(r.find(t.expect) != std::string::npos, std::string("seeded bug ") + t.name,
             r.empty() ? "the emulator did not report it" : "unexpected message: " + r);
    }
    if (std::getenv("HARNESS_VERBOSE")) std::printf("%-24s %s\n", t.name, r.empty() ? "ok" : r.c_str());
  }
  std::printf("selftests: %d run, %d failure(s)\n", n, failures);
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "conv") return run_conv(argc > 2 && std::strcmp(argv[2], "--quick") == 0);
  if (mode == "selftests") return run_selftests();
  if (mode == "pool") return run_pool();
  if (mode == "act") return run_act();
  if (mode == "list") {
    for (const auto& t : pyconv::emu_selftest::selftests()) std::printf("%s %s\n", t.name, t.kind);
    return 0;
  }
  if (mode == "bug" && argc > 2) {
    for (const auto& t : pyconv::emu_selftest::selftests())
      if (argv[2] == std::string(t.name)) {
        const std::string r = t.run();
        std::printf("%s: %s\n", t.name, r.empty() ? "launch returned success" : r.c_str());
        return 0;
      }
    std::fprintf(stderr, "unknown self-test %s\n", argv[2]);
    return 2;
  }
  std::fprintf(stderr, "usage: harness conv [--quick] | pool | act | selftests | bug NAME | list\n");
  return 2;
}
