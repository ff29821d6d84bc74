// conv2d on CUDA, rung 1: "implicit_gemm". Each direction is a GEMM (CUTLASS's view) whose operands are never
// materialised: a tile of the A or B operand is gathered from the activation / filter / gradient tensors straight into
// shared memory (no im2col buffer in global memory), then multiplied from shared memory with register blocking.
//
//   direction  GEMM_M       GEMM_N         GEMM_K          A(m, kk)                 B(kk, n)               C(m, n)
//   fprop      N·P·Q        Kg             Cg·R·S          x[n, c, h(p,r), w(q,s)]  w[k, c, r, s]          y[n, k, p, q]
//   dgrad      N·H·W        Cg             Kg·R·S          dy[n, k, p, q]¹          w[k, c, r, s]          dx[n, c, h, w]
//   wgrad      Kg           Cg·R·S         N·P·Q           dy[n, k, p, q]           x[n, c, h(p,r), w(q,s)] dw[k, c, r, s]
//   (one GEMM per group g: channel indices above are within the group; blockIdx.z walks the groups)
//   ¹ p = (h + pad − r·dil)/stride when exact and in range, else 0 (taps that never touched (h, w)).
//
// Block tile 64×64, reduction step 8, 256 threads; each thread owns a 4×4 block of C in registers:
//
//            n →  (64 = 16 threads × 4)
//        ┌──────────────────┐        As[kk][m]: 8 × 64   (A tile, stored k-major so the
//   m ↓  │ thread (ty, tx)  │                              compute loop reads 4 consecutive m)
//  (64 = │ owns rows 4ty..  │        Bs[kk][n]: 8 × 64
//   16×4)│ cols 4tx..       │
//        └──────────────────┘
//
// This is the first, plain SIMT rung (no tensor cores, no cp.async, no double buffering): the tensor-core ladder
// builds on it. Every operand access is bounds-checked, so it is correct for every shape.
#pragma once
#include "../common/conv_params.h"
#include "../common/cuda_common.cuh"
#include "conv_epilogue.h"

namespace pyconv {
namespace cuda {

constexpr int kBM = 64, kBN = 64, kBK = 8;  // block tile and reduction step
constexpr int kTM = 4, kTN = 4;             // per-thread register tile
constexpr int kGemmThreads = (kBM / kTM) * (kBN / kTN);  // 256
static_assert(kBM * kBK % kGemmThreads == 0 && kBN * kBK % kGemmThreads == 0, "loads must divide evenly");

// ---- the three GEMM views: gemm sizes plus element accessors that return 0 outside the operand -------------------

template <typename T>
struct FpropGemm {
  Conv2dShape s;
  const T* x; Strides4 xs;
  const T* w; Strides4 ws;
  const T* bias;
  T* y; Strides4 ys;
  ConvEpilogue<T> epi;

  __device__ int64_t gemm_m() const { return s.N * s.P * s.Q; }
  __device__ int64_t gemm_n() const { return s.Kg(); }
  __device__ int64_t gemm_k() const { return s.crs(); }
  __device__ acc_t<T> a(int64_t g, int64_t m, int64_t kk) const {
    const int64_t q = m % s.Q, p = (m / s.Q) % s.P, n = m / (s.Q * s.P);    // m → output pixel (n, p, q)
    const int64_t t = kk % s.S, r = (kk / s.S) % s.R, c = kk / (s.S * s.R);  // kk → filter tap (c, r, s)
    const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h, ww = q * s.stride_w - s.pad_w + t * s.dil_w;
    if (h < 0 || h >= s.H || ww < 0 || ww >= s.W) return 0;  // zero padding
    return to_acc(x[xs.at(n, g * s.Cg() + c, h, ww)]);
  }
  __device__ acc_t<T> b(int64_t g, int64_t kk, int64_t n) const {
    const int64_t t = kk % s.S, r = (kk / s.S) % s.R, c = kk / (s.S * s.R);
    return to_acc(w[ws.at(g * s.Kg() + n, c, r, t)]);
  }
  __device__ void store(int64_t g, int64_t m, int64_t n, acc_t<T> v) const {
    const int64_t q = m % s.Q, p = (m / s.Q) % s.P, nn = m / (s.Q * s.P), k = g * s.Kg() + n;
    y[ys.at(nn, k, p, q)] = from_acc<T>(bias ? v + to_acc(bias[k]) : v);
  }
  // The fused epilogue, as a second pass by the thread that just stored the element (so no other thread touches it
  // in between). Applying it inside store() would inline the run-time activation switch into all 16 unrolled stores
  // of the register tile; this pass is a rolled loop with one copy, reading back values still in L1. For half and
  // bfloat16 the pre-activation value is rounded to T first — what the unfused conv → activation sequence does too.
  __device__ bool has_epilogue() const { return !epi.trivial(); }
  __device__ void epilogue(int64_t g, int64_t m, int64_t n) const {
    const int64_t q = m % s.Q, p = (m / s.Q) % s.P, nn = m / (s.Q * s.P), k = g * s.Kg() + n;
    T& out = y[ys.at(nn, k, p, q)];
    out = from_acc<T>(epi(to_acc(out), nn, k, p, q));
  }
};

template <typename T>
struct DgradGemm {
  Conv2dShape s;
  const T* dy; Strides4 dys;
  const T* w; Strides4 ws;
  T* dx; Strides4 dxs;

  __device__ int64_t gemm_m() const { return s.N * s.H * s.W; }
  __device__ int64_t gemm_n() const { return s.Cg(); }
  __device__ int64_t gemm_k() const { return s.Kg() * s.R * s.S; }
  __device__ acc_t<T> a(int64_t g, int64_t m, int64_t kk) const {
    const int64_t ww = m % s.W, h = (m / s.W) % s.H, n = m / (s.W * s.H);    // m → input pixel (n, h, w)
    const int64_t t = kk % s.S, r = (kk / s.S) % s.R, k = kk / (s.S * s.R);  // kk → (k, r, s)
    const int64_t ph = h + s.pad_h - r * s.dil_h, qw = ww + s.pad_w - t * s.dil_w;
    if (ph < 0 || qw < 0) return 0;
    // One division per axis (a 64-bit divide is a long subroutine on the GPU): the tap reaches (h, w) only when the
    // quotient is exact and inside the output.
    const int64_t p = ph / s.stride_h, q = qw / s.stride_w;
    if (p * s.stride_h != ph || q * s.stride_w != qw || p >= s.P || q >= s.Q) return 0;
    return to_acc(dy[dys.at(n, g * s.Kg() + k, p, q)]);
  }
  __device__ acc_t<T> b(int64_t g, int64_t kk, int64_t c) const {
    const int64_t t = kk % s.S, r = (kk / s.S) % s.R, k = kk / (s.S * s.R);
    return to_acc(w[ws.at(g * s.Kg() + k, c, r, t)]);
  }
  __device__ void store(int64_t g, int64_t m, int64_t c, acc_t<T> v) const {
    const int64_t ww = m % s.W, h = (m / s.W) % s.H, n = m / (s.W * s.H);
    dx[dxs.at(n, g * s.Cg() + c, h, ww)] = from_acc<T>(v);
  }
  __device__ bool has_epilogue() const { return false; }
  __device__ void epilogue(int64_t, int64_t, int64_t) const {}
};

template <typename T>
struct WgradGemm {
  Conv2dShape s;
  const T* dy; Strides4 dys;
  const T* x; Strides4 xs;
  T* dw; Strides4 dws;

  __device__ int64_t gemm_m() const { return s.Kg(); }
  __device__ int64_t gemm_n() const { return s.crs(); }
  __device__ int64_t gemm_k() const { return s.N * s.P * s.Q; }
  __device__ acc_t<T> a(int64_t g, int64_t k, int64_t kk) const {
    const int64_t q = kk % s.Q, p = (kk / s.Q) % s.P, n = kk / (s.Q * s.P);  // kk → output pixel (n, p, q)
    return to_acc(dy[dys.at(n, g * s.Kg() + k, p, q)]);
  }
  __device__ acc_t<T> b(int64_t g, int64_t kk, int64_t crs) const {
    const int64_t q = kk % s.Q, p = (kk / s.Q) % s.P, n = kk / (s.Q * s.P);
    const int64_t t = crs % s.S, r = (crs / s.S) % s.R, c = crs / (s.S * s.R);
    const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h, ww = q * s.stride_w - s.pad_w + t * s.dil_w;
    if (h < 0 || h >= s.H || ww < 0 || ww >= s.W) return 0;
    return to_acc(x[xs.at(n, g * s.Cg() + c, h, ww)]);
  }
  __device__ void store(int64_t g, int64_t k, int64_t crs, acc_t<T> v) const {
    const int64_t t = crs % s.S, r = (crs / s.S) % s.R, c = crs / (s.S * s.R);
    dw[dws.at(g * s.Kg() + k, c, r, t)] = from_acc<T>(v);
  }
  __device__ bool has_epilogue() const { return false; }
  __device__ void epilogue(int64_t, int64_t, int64_t) const {}
};

// ---- the shared tiled GEMM ------------------------------------------------------------------------------------

template <typename T, typename Gemm>
__global__ void __launch_bounds__(kGemmThreads) implicit_gemm_kernel(Gemm op, int64_t groups) {
  using Acc = acc_t<T>;
  __shared__ Acc As[kBK][kBM];
  __shared__ Acc Bs[kBK][kBN];
  const int tid = threadIdx.x;
  const int ty = tid / (kBN / kTN), tx = tid % (kBN / kTN);  // this thread's 4×4 block: rows 4ty.., cols 4tx..
  const int64_t M = op.gemm_m(), Nn = op.gemm_n(), Kk = op.gemm_k();
  const int64_t m_tiles = ceil_div(M, kBM), n_tiles = ceil_div(Nn, kBN);
  // Grid-stride over (m tile, n tile, group): the grid is capped at launch, so any problem size fits. All loop
  // bounds depend only on blockIdx, so every thread of a block reaches every __syncthreads below.
  for (int64_t g = blockIdx.z; g < groups; g += gridDim.z)
    for (int64_t mt = blockIdx.x; mt < m_tiles; mt += gridDim.x)
      for (int64_t nt = blockIdx.y; nt < n_tiles; nt += gridDim.y) {
        const int64_t m0 = mt * kBM, n0 = nt * kBN;
        Acc acc[kTM][kTN];
        for (int i = 0; i < kTM; ++i)
          for (int j = 0; j < kTN; ++j) acc[i][j] = 0;
        for (int64_t k0 = 0; k0 < Kk; k0 += kBK) {
          // Stage the A tile (64 m × 8 kk): consecutive threads take consecutive m, i.e. consecutive output pixels,
          // which are consecutive addresses in NCHW activations (coalesced loads).
          for (int e = tid; e < kBM * kBK; e += kGemmThreads) {
            const int mm = e % kBM, kk = e / kBM;
            const int64_t m = m0 + mm, k = k0 + kk;
            As[kk][mm] = (m < M && k < Kk) ? op.a(g, m, k) : Acc(0);
          }
          // Stage the B tile (8 kk × 64 n).
          for (int e = tid; e < kBN * kBK; e += kGemmThreads) {
            const int nn = e % kBN, kk = e / kBN;
            const int64_t n = n0 + nn, k = k0 + kk;
            Bs[kk][nn] = (n < Nn && k < Kk) ? op.b(g, k, n) : Acc(0);
          }
          __syncthreads();  // the whole tile is in shared memory before anyone multiplies from it
          for (int kk = 0; kk < kBK; ++kk) {
            Acc av[kTM], bv[kTN];
            for (int i = 0; i < kTM; ++i) av[i] = As[kk][ty * kTM + i];
            for (int j = 0; j < kTN; ++j) bv[j] = Bs[kk][tx * kTN + j];
            for (int i = 0; i < kTM; ++i)
              for (int j = 0; j < kTN; ++j) acc[i][j] += av[i] * bv[j];
          }
          __syncthreads();  // everyone is done reading this tile before the next iteration overwrites it
        }
        for (int i = 0; i < kTM; ++i)
          for (int j = 0; j < kTN; ++j) {
            const int64_t m = m0 + ty * kTM + i, n = n0 + tx * kTN + j;
            if (m < M && n < Nn) op.store(g, m, n, acc[i][j]);
          }
        if (op.has_epilogue()) {  // uniform across the block: a fused conv2d_fprop_fused launch, or not
#pragma unroll 1
          for (int e = 0; e < kTM * kTN; ++e) {
            const int64_t m = m0 + ty * kTM + e / kTN, n = n0 + tx * kTN + e % kTN;
            if (m < M && n < Nn) op.epilogue(g, m, n);
          }
        }
      }
}

template <typename T, typename Gemm>
cudaError_t launch_implicit_gemm(const Gemm& op, int64_t M, int64_t Nn, int64_t groups, cudaStream_t stream) {
  // grid.x up to 2^31−1, grid.y/z up to 65535: cap each, the kernel's grid-stride loops cover the rest.
  const int64_t mx = ceil_div(M, kBM), ny = ceil_div(Nn, kBN);
  const dim3 grid(static_cast<unsigned>(mx < kMaxGridX ? mx : kMaxGridX), static_cast<unsigned>(ny < 65535 ? ny : 65535),
                  static_cast<unsigned>(groups < 65535 ? groups : 65535));
  return launch(implicit_gemm_kernel<T, Gemm>, grid, dim3(kGemmThreads), 0, stream, op, groups);
}

template <typename T>
cudaError_t launch_fprop_implicit_gemm(const Conv2dShape& s, const T* x, Strides4 xs, const T* w, Strides4 ws,
                                       const T* bias, T* y, Strides4 ys, cudaStream_t stream,
                                       ConvEpilogue<T> epi = ConvEpilogue<T>{}) {
  return launch_implicit_gemm<T>(FpropGemm<T>{s, x, xs, w, ws, bias, y, ys, epi}, s.N * s.P * s.Q, s.Kg(),
                                 s.groups, stream);
}

template <typename T>
cudaError_t launch_dgrad_implicit_gemm(const Conv2dShape& s, const T* dy, Strides4 dys, const T* w, Strides4 ws,
                                       T* dx, Strides4 dxs, cudaStream_t stream) {
  return launch_implicit_gemm<T>(DgradGemm<T>{s, dy, dys, w, ws, dx, dxs}, s.N * s.H * s.W, s.Cg(), s.groups,
                                 stream);
}

template <typename T>
cudaError_t launch_wgrad_implicit_gemm(const Conv2dShape& s, const T* dy, Strides4 dys, const T* x, Strides4 xs,
                                       T* dw, Strides4 dws, cudaStream_t stream) {
  return launch_implicit_gemm<T>(WgradGemm<T>{s, dy, dys, x, xs, dw, dws}, s.Kg(), s.crs(), s.groups, stream);
}

}  // namespace cuda
}  // namespace pyconv
