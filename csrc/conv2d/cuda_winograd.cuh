// conv2d on CUDA, the "winograd" rung: Winograd's minimal filtering F(2×2, 3×3) for 3×3 convolutions with stride 1
// and dilation 1 (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016). Each 2×2 block of outputs
// ("tile") of one channel pair is
//
//   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        d: the 4×4 input patch under the tile, g: the 3×3 filter
//
//   Bᵀ = | 1  0 -1  0 |     G = | 1    0    0  |     Aᵀ = | 1  1  1  0 |
//        | 0  1  1  0 |         | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
//        | 0 -1  1  0 |         | 1/2 -1/2  1/2 |
//        | 0  1  0 -1 |         | 0    0    1  |
//
// so the sum over input channels becomes 16 independent GEMMs, one per transformed position ξ = (i, j) of the 4×4
// grid: M[ξ][tile][o] = Σ_c V[ξ][tile][c] · U[ξ][o][c], 16 multiplies per tile and channel pair where direct
// convolution needs 36 (2.25× fewer). Three kernels around one GEMM:
//   wino_input_kernel    V = Bᵀ d B per (tile, input channel)            x → V  [tile][ξ][g][c]
//   wino_filter_kernel   U = G g Gᵀ per (output, input channel)           w → U  [ξ][g][o][c]
//   (the 16·groups GEMMs) run by the glue as ONE grouped 1×1 convolution: V is an NHWC tensor of T pixels and
//   16·groups·C channels, U its [16·groups·O][C] weight, groups = 16·groups — so they go through the project's own
//   tensor-core (or SIMT) GEMM rungs, with everything those rungs already do (tiles, split-K, wgmma on Hopper)
//   wino_output_kernel   Y = Aᵀ M A per (tile, output channel), + bias, the fused epilogue, clipped to the output
// dgrad of a stride-1 3×3 convolution is itself one: dx = conv(dy, flipped and transposed w, padding 2 − pad), so
// the same kernels serve it (wino_filter_kernel's `dgrad` flag flips and transposes the filter).
// Arithmetic: the transforms run in the accumulator type (float for 16-bit types); V, U and M are stored in the
// tensor's own type (the GEMM's inputs and output), so a 16-bit Winograd result carries two more roundings than the
// implicit GEMM's: tests/test_winograd.py states the tolerances.
#pragma once
#include "../common/conv_params.h"
#include "../common/cuda_common.cuh"
#include "conv_epilogue.h"

namespace pyconv {
namespace cuda {

constexpr int kWinoThreads = 256;

// One Winograd convolution: `in` (N × G·ci × IH × IW) → `out` (N × G·co × OH × OW), 3×3 taps, stride 1, top/left
// padding pad_h/pad_w (any value: dgrad's 2 − pad may be negative), TH × TW tiles of 2×2 outputs per image.
struct WinogradParams {
  int64_t N;
  int G, ci, co, IH, IW, OH, OW, pad_h, pad_w, TH, TW;
};

// Thread per (tile, input channel), channel fastest: reads of an NHWC `in` and writes of V are coalesced. (The
// launch bounds' 4 blocks per SM, up to 64 registers: with no minimum, ptxas held the bfloat16 sm_80 build to 40
// registers and spilled 8 bytes.)
template <typename T>
__global__ void __launch_bounds__(kWinoThreads, 4)
    wino_input_kernel(WinogradParams p, const T* __restrict__ in, Strides4 is, T* __restrict__ V) {
  using F = acc_t<T>;
  const int64_t GC = int64_t(p.G) * p.ci, total = p.N * p.TH * p.TW * GC;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t gc = e % GC, t = e / GC;
    const int64_t tw = t % p.TW, th = (t / p.TW) % p.TH, n = t / (int64_t(p.TW) * p.TH);
    // the patch under output rows 2·th, 2·th + 1 (columns likewise): input rows 2·th − pad … + 3; zeros outside
    const int64_t h0 = 2 * th - p.pad_h, w0 = 2 * tw - p.pad_w;
    const T* src = in + n * is.s0 + gc * is.s1 + h0 * is.s2 + w0 * is.s3;  // patch origin (maybe outside: not read)
    F d[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const bool h_ok = h0 + i >= 0 && h0 + i < p.IH;
#pragma unroll
      for (int j = 0; j < 4; ++j)
        d[i][j] = h_ok && w0 + j >= 0 && w0 + j < p.IW ? to_acc(src[i * is.s2 + j * is.s3]) : F(0);
    }
    F b[4][4];  // Bᵀ d: rows
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      b[0][j] = d[0][j] - d[2][j];
      b[1][j] = d[1][j] + d[2][j];
      b[2][j] = d[2][j] - d[1][j];
      b[3][j] = d[1][j] - d[3][j];
    }
    // (Bᵀ d) B: columns; position ξ = 4·i + j goes to channel ξ·G·ci + gc of this tile's row of V
    T* v = V + t * 16 * GC + gc;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      v[0] = from_acc<T>(b[i][0] - b[i][2]);
      v[GC] = from_acc<T>(b[i][1] + b[i][2]);
      v[2 * GC] = from_acc<T>(b[i][2] - b[i][1]);
      v[3 * GC] = from_acc<T>(b[i][1] - b[i][3]);
      v += 4 * GC;
    }
  }
}

// Thread per (group, output channel o, input channel c), c fastest. fprop: g = w[g·co + o][c]; dgrad (output
// channels are w's input channels): g[r][s] = w[g·ci + c][o][2 − r][2 − s]. U is the grouped 1×1 convolution's
// weight: row (ξ·G + g)·co + o, column c, contiguous.
template <typename T>
__global__ void __launch_bounds__(kWinoThreads)
    wino_filter_kernel(WinogradParams p, bool dgrad, const T* __restrict__ w, Strides4 ws, T* __restrict__ U) {
  using F = acc_t<T>;
  const int64_t total = int64_t(p.G) * p.co * p.ci;
  const F half = F(0.5);
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = e % p.ci, o = (e / p.ci) % p.co, g = e / (int64_t(p.ci) * p.co);
    F f[3][3];
#pragma unroll
    for (int r = 0; r < 3; ++r)
#pragma unroll
      for (int s = 0; s < 3; ++s)
        f[r][s] = to_acc(dgrad ? w[ws.at(g * p.ci + c, o, 2 - r, 2 - s)] : w[ws.at(g * p.co + o, c, r, s)]);
    F a[4][3];  // G g: rows
#pragma unroll
    for (int s = 0; s < 3; ++s) {
      a[0][s] = f[0][s];
      a[1][s] = half * (f[0][s] + f[1][s] + f[2][s]);
      a[2][s] = half * (f[0][s] - f[1][s] + f[2][s]);
      a[3][s] = f[2][s];
    }
    const int64_t row_step = int64_t(p.G) * p.co * p.ci;  // one ξ further
    T* u = U + (g * p.co + o) * p.ci + c;
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // (G g) Gᵀ: columns
      u[(4 * i + 0) * row_step] = from_acc<T>(a[i][0]);
      u[(4 * i + 1) * row_step] = from_acc<T>(half * (a[i][0] + a[i][1] + a[i][2]));
      u[(4 * i + 2) * row_step] = from_acc<T>(half * (a[i][0] - a[i][1] + a[i][2]));
      u[(4 * i + 3) * row_step] = from_acc<T>(a[i][2]);
    }
  }
}

// Thread per (tile, output channel), channel fastest. M (the GEMM's output, N = 1, H = 1) holds position ξ of tile
// t for output channel (g, o) at m[((ξ·G + g)·co + o)·m_sc + t·m_st].
template <typename T>
__global__ void __launch_bounds__(kWinoThreads)
    wino_output_kernel(WinogradParams p, const T* __restrict__ m, int64_t m_sc, int64_t m_st,
                       const T* __restrict__ bias, T* __restrict__ out, Strides4 os, ConvEpilogue<T> epi) {
  using F = acc_t<T>;
  const int64_t GO = int64_t(p.G) * p.co, total = p.N * p.TH * p.TW * GO;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t go = e % GO, t = e / GO;
    const int64_t tw = t % p.TW, th = (t / p.TW) % p.TH, n = t / (int64_t(p.TW) * p.TH);
    const T* src = m + go * m_sc + t * m_st;
    F v[4][4];
#pragma unroll
    for (int xi = 0; xi < 16; ++xi) v[xi / 4][xi % 4] = to_acc(src[xi * GO * m_sc]);
    F r[2][4];  // Aᵀ M: rows
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      r[0][j] = v[0][j] + v[1][j] + v[2][j];
      r[1][j] = v[1][j] - v[2][j] - v[3][j];
    }
    const F b = bias != nullptr ? to_acc(bias[go]) : F(0);
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int64_t oh = 2 * th + i;
      if (oh >= p.OH) continue;  // the last tile row of an odd output height
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        const int64_t ow = 2 * tw + j;
        if (ow >= p.OW) continue;
        // (Aᵀ M) A: columns
        F y = (j == 0 ? r[i][0] + r[i][1] + r[i][2] : r[i][1] - r[i][2] - r[i][3]) + b;
        if (!epi.trivial()) y = epi(y, n, go, oh, ow);
        out[os.at(n, go, oh, ow)] = from_acc<T>(y);
      }
    }
  }
}

template <typename T>
cudaError_t launch_wino_input(const WinogradParams& p, const T* in, Strides4 is, T* V, cudaStream_t stream) {
  return launch(wino_input_kernel<T>, dim3(grid_1d(p.N * p.TH * p.TW * p.G * p.ci, kWinoThreads)), dim3(kWinoThreads),
                0, stream, p, in, is, V);
}
template <typename T>
cudaError_t launch_wino_filter(const WinogradParams& p, bool dgrad, const T* w, Strides4 ws, T* U,
                               cudaStream_t stream) {
  return launch(wino_filter_kernel<T>, dim3(grid_1d(int64_t(p.G) * p.co * p.ci, kWinoThreads)), dim3(kWinoThreads),
                0, stream, p, dgrad, w, ws, U);
}
template <typename T>
cudaError_t launch_wino_output(const WinogradParams& p, const T* m, int64_t m_sc, int64_t m_st, const T* bias, T* out,
                               Strides4 os, const ConvEpilogue<T>& epi, cudaStream_t stream) {
  return launch(wino_output_kernel<T>, dim3(grid_1d(p.N * p.TH * p.TW * p.G * p.co, kWinoThreads)),
                dim3(kWinoThreads), 0, stream, p, m, m_sc, m_st, bias, out, os, epi);
}

}  // namespace cuda
}  // namespace pyconv
