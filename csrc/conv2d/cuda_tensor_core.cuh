// conv2d on CUDA, rung 3: "tensor_core". Implicit GEMM on the tensor cores for float16 / bfloat16 (float32
// accumulate), and for float32 as TF32 (fprop and dgrad; opt-in, see conv2d_cuda.cu): mma.sync m16n8k16, ldmatrix fragment loads, a cp.async multi-stage shared-memory pipeline, XOR-swizzled
// shared memory, warp tiling. Same GEMM views as rung 2 (cuda_implicit_gemm.cuh), but every operand is read in
// 16-byte vectors (8 16-bit or 4 float32 channels), which needs channels-last (NHWC) data whose reduction channels
// come in multiples of that vector:
// the torch glue (conv2d_cuda.cu) provides that, padding channels with zeros where C/groups or K/groups is not a
// multiple.
//
//   kernel            direction  GEMM_M    GEMM_N     GEMM_K      A (gathered)               B (dense)
//   tc_conv_kernel    fprop      N·P·Q     K/g        R·S·Cp      x NHWC at (h(p,r), w(q,s))  w as [g][k][r][s][c]
//                     dgrad      N·H·W     C/g        R·S·Kp      dy NHWC at (p(h,r), q(w,s)) w as [g][c][r][s][k]
//   tc_wgrad_kernel   wgrad      K/g       R·S·Cp     N·P·Q       dy NHWC [npq][k]            x NHWC gathered [npq][rsc]
//   (Cp, Kp: channels per group rounded up to 8. The reduction index of fprop/dgrad is (r, s, c) with c fastest, so
//    8 consecutive reduction indices are 8 consecutive channels of one pixel: one 16-byte load.)
//
// fprop/dgrad may split the reduction over gridDim.z (split-K, TcConvParams::ws): then each slice writes float partial
// sums and tc_splitk_reduce_kernel adds them in a fixed order and applies bias and epilogue.
//
// Block tile BM × BN, reduction step BK = 32, WM × WN warps, each owning a (BM/WM) × (BN/WN) warp tile made of
// 16×8 mma tiles. Per reduction step and stage, shared memory holds an A tile and a B tile of 16-bit elements.
//
// Pipeline (CUTLASS's "multistage"): STAGES tiles are in flight. Before computing on tile kt a thread waits for its
// own copies of tile kt (cp.async.wait_group STAGES−2) and the block barrier makes everyone's copies visible; it also
// proves every warp has finished computing on tile kt−1, whose slot the copy for tile kt+STAGES−1 then overwrites.
#pragma once
#include <algorithm>

#include "../common/conv_params.h"
#include "../common/cuda_common.cuh"
#include "../common/mbarrier.cuh"
#include "../common/tma.cuh"
#include "../common/warp_mma.cuh"
#include "conv_epilogue.h"

namespace pyconv {
namespace cuda {

// Tile rows along the reduction are 64 bytes = 4 chunks of 16 bytes: 32 16-bit elements (two k16 mma steps), or 16
// float32 elements for the TF32 path (two k8 mma steps). In chunk units both element types share every index map.
template <typename T>
struct TcElem {
  static constexpr int kVec = 16 / int(sizeof(T));  // elements per 16-byte chunk
  static constexpr int kBK = 64 / int(sizeof(T));   // elements per tile row = the reduction step
};
constexpr int kTcBK = 32;  // wgrad's reduction step (rows of its k-major tiles; 16-bit types only)
static_assert(kTcBK / 16 == 2, "the main loops issue the next tile's copies between their two mma k-steps");

// Tile configurations, each a ladder step of its own (the autotuner picks among them by name).
template <int BM_, int BN_, int WM_, int WN_, int STAGES_>
struct TcTile {
  static constexpr int BM = BM_, BN = BN_, WM = WM_, WN = WN_, STAGES = STAGES_;
  static constexpr int kThreads = 32 * WM * WN;
  // Blocks per SM the register budget must allow (__launch_bounds__'s second argument): what the shared memory
  // allows anyway at these tile sizes. Without it ptxas let the 128×128 kernels grow to 144-152 registers, one block
  // per SM, when the loader gained per-row state.
  static constexpr int kMinBlocks = kThreads == 256 ? 2 : BM * BN >= 128 * 64 ? 3 : 4;
  static constexpr int kWarpM = BM / WM, kWarpN = BN / WN;  // warp tile
  static constexpr int MI = kWarpM / 16, NI = kWarpN / 8;    // mma tiles per warp tile
  static_assert(kWarpM % 16 == 0 && kWarpN % 16 == 0, "ldmatrix.x4 loads B for two n8 tiles at once");
};
using TcTile128x128 = TcTile<128, 128, 2, 4, 3>;  // 256 threads, warp tile 64×32, 48 KiB shared memory
using TcTile128x64 = TcTile<128, 64, 2, 2, 4>;    // 128 threads, warp tile 64×32, 48 KiB
using TcTile64x64 = TcTile<64, 64, 2, 2, 4>;      // 128 threads, warp tile 32×32, 32 KiB

// The mma k-step (0 or 1) of each main-loop iteration before which the next tile's copies are issued (see
// tc_conv_kernel's main loop).
template <typename Tile>
constexpr int kTcLoadStep = Tile::kThreads == 256 ? 0 : 1;

// ---- shared-memory layout -----------------------------------------------------------------------------------------
// A tile row of 64 bytes holds 4 chunks of 16 bytes. ldmatrix reads one chunk from each of 8 consecutive rows at once;
// unswizzled, rows r and r+2 are 128 bytes apart and hit the same banks (4-way conflict). XOR-ing the chunk index with
// (row/2) mod 4 spreads the 8 rows' chunks over all 8 16-byte bank groups: row r's chunk c lands in group
// (4·(r mod 2) + (c ^ (r/2 mod 4))) mod 8, distinct for r = 0..7. The cp.async writes stay conflict-free too (a warp
// writes 8 whole rows). Element offset of (row, chunk):
template <typename T>
__device__ __forceinline__ int swz64(int row, int chunk) {
  return row * TcElem<T>::kBK + (chunk ^ ((row >> 1) & 3)) * TcElem<T>::kVec;
}
// Rows of ≥ 128 bytes (the wgrad tiles, stored k-major): 8 rows at the same chunk would all map to the same banks, so
// the chunk index is XOR-ed with row mod 8. `row_chunks` = chunks per row (a multiple of 8).
__device__ __forceinline__ int swz128(int row, int chunk, int row_chunks) {
  return (row * row_chunks + (chunk ^ (row & 7))) << 3;
}

// One mma k-step (two chunks of the tile row) of acc += A·B: m16n8k16 for float16/bfloat16; for float32 the
// fragments are rounded to TF32 (cvt.rna) and go through m16n8k8 .tf32.
template <typename T>
__device__ __forceinline__ void mma_tc(float acc[4], const uint32_t a[4], const uint32_t b[2]) {
  mma_m16n8k16<T>(acc, a, b, acc);
}
template <>
__device__ __forceinline__ void mma_tc<float>(float acc[4], const uint32_t a[4], const uint32_t b[2]) {
  const uint32_t at[4] = {to_tf32(a[0]), to_tf32(a[1]), to_tf32(a[2]), to_tf32(a[3])};
  const uint32_t bt[2] = {to_tf32(b[0]), to_tf32(b[1])};
  mma_m16n8k8_tf32(acc, at, bt, acc);
}

// ---- fprop and dgrad: A gathered from an NHWC tensor, B a dense [group][n][r][s][c] matrix ------------------------

// One sub-pixel phase of a strided dgrad launched with the others (TcConvParams::phase): the fields of TcConvParams
// that differ between phases. x0: its first row tile (blockIdx.x); y_off / b_off: elements from y / b to its output
// (dx's rows ph, ph + stride, …, columns pw, pw + stride, …) and to its B matrix (K-major: its transposed filter
// [g][C/g][R'·S'·kp]; MN-major: b_g, b_kvalid and the tap map b_r0 / b_s0 as TcConvParams describes them).
constexpr int kTcMaxPhases = 4;  // stride 2 × 2 (every strided layer of ResNet and MobileNet); more: one launch each
struct TcPhase {
  int x0, R, S, pad_h, pad_w, OH, OW;
  FastDiv ohw_div, ow_div;
  int64_t y_off, b_off, b_g;
  int b_kvalid, b_r0, b_s0;
};

template <typename T>
struct TcConvParams {
  // A source: an NHWC tensor (channel stride 1), `ca` channels per group (a multiple of 8), groups side by side.
  const T* a;
  int64_t a_sn, a_sh, a_sw;  // element strides of n, h, w (multiples of 8: every chunk 16-byte aligned)
  int AH, AW, ca;
  // The output pixel grid (GEMM_M = N·OH·OW) and the tap map from output pixel to source pixel.
  int64_t N;
  int OH, OW, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  // B: [groups][gemm_n][R·S·ca], contiguous (K-major rows). The wgmma rung's dgrad (TcGatherLoader's kBMn) reads it
  // MN-major instead — the transposed filter where it lies: element (GEMM tap (r, s), reduction k, column c) at
  // b + g·b_g + tap·b_tap + k·b_k + c, tap = (b_r0 + r·b_step_h)·b_S + b_s0 + s·b_step_w (the filter's own tap; a
  // sub-pixel phase's taps r0, r0 + stride, …), zero where k ≥ b_kvalid or c ≥ b_cols: the filter in place, b_tap =
  // C/g, b_k = its k stride, b_kvalid = K/g, b_cols = C/g. Or (b_linear) a [R·S·kp][cp] copy (tc_dgrad_weight's MN
  // layout) addressed by the reduction index kk itself: element (kk, c) at b + g·b_g + kk·b_k + c, zero where
  // kk ≥ b_kvalid (= R·S·kp) — linear, so its 64-row tiles may straddle taps. 32-bit offsets (the host checks).
  const T* b;
  int gemm_n;
  int64_t groups;
  int64_t b_g;
  int b_tap, b_k, b_kvalid, b_cols, b_r0, b_s0, b_step_h, b_step_w, b_S, b_linear;
  int b_mn;  // the wgmma dgrad reads B MN-major through the b_* fields (else `b`, K-major)
  // C: element (pixel (n, oh, ow), channel g·gemm_n + j) at y + ys.at(n, channel, oh, ow); bias and epilogue fprop only.
  T* y;
  Strides4 ys;
  const T* bias;
  ConvEpilogue<T> epi;
  // Split-K (ws != nullptr): gridDim.z = groups · splits; slice `split` reduces tiles [split·tiles_per_split, …) and
  // writes its float partial sums, unrounded and without bias, to ws[split][m][g·gemm_n + j]; tc_splitk_reduce_kernel
  // adds the slices in a fixed order and applies bias and epilogue. Used when the output tiles alone leave SMs idle.
  float* ws;
  int splits, tiles_per_split;
  // The persistent (warp-specialised wgmma) kernels: how many blocks to launch at most — the resident ones, each
  // looping over the output tiles (x, y, z as in tc_conv_grid, x fastest) with stride gridDim.x.
  int persistent_blocks;
  // Divisors by OH·OW and OW as multiply-highs (tc_pixel): set with OH and OW by set_out_grid.
  FastDiv ohw_div, ow_div;
  // The output grid and its divisors together, so that neither is ever set without the other.
  void set_out_grid(int64_t oh, int64_t ow) {
    OH = int(oh), OW = int(ow);
    ohw_div = FastDiv::make(uint32_t(oh * ow)), ow_div = FastDiv::make(uint32_t(ow));  // (used below 2^31 pixels)
  }
  // A strided dgrad's sub-pixel phases in one launch (nphases > 0; the plain kernels, without split-K): the grid's x
  // runs over phase 0's row tiles, then phase 1's, … (phase_x_tiles in all), and a block works on the stride-1 GEMM
  // of the phase its x falls in (tc_phase_params). Each phase is a GEMM of its own shape: its taps, padding, output
  // grid (its rows and columns of dx) and its B.
  int nphases;
  int phase_x_tiles;
  TcPhase phase[kTcMaxPhases];
};

// Whether a GEMM of M output pixels takes tc_pixel's multiply-high path: M + 256 < 2^31, so every row of every tile,
// those past M included, is below 2^31.
PYCONV_HD bool tc_pixels_small(int64_t M) { return M < INT32_MAX - 256; }
// Output pixel m → (n, oh, ow). `small` (uniform: tc_pixels_small): two multiply-high divisions (FastDiv) — a 64-bit division is a ~70-instruction call, and the loader
// decoded each of its rows with three of them, per tile: on a 1×1 layer of one 64-channel reduction tile that integer
// work, not the tensor cores, set the speed (Nsight Compute, H200 run 10: fma-heavy pipe 39 %, XU 19 %, tensor 3.5 %).
template <typename T>
__device__ __forceinline__ void tc_pixel(const TcConvParams<T>& p, int64_t m, bool small, int64_t& n, int& oh,
                                         int& ow) {
  if (small) {
    const uint32_t mu = uint32_t(m), nn = p.ohw_div.div(mu), rem = mu - nn * p.ohw_div.d, hh = p.ow_div.div(rem);
    n = nn, oh = int(hh), ow = int(rem - hh * p.ow_div.d);
  } else {
    const int64_t ohw = int64_t(p.OH) * p.OW;
    n = m / ohw;
    const int64_t rem = m - n * ohw;
    oh = int(rem / p.OW), ow = int(rem - int64_t(oh) * p.OW);
  }
}
// Whether a tensor's pixels (n, oh, ow) over an OH × OW grid lie at one stride (channels_last and dense over its
// pixels: y, a residual): then pixel m sits at m·s3 (+ channel·s1) and its (n, oh, ow) need no decoding.
PYCONV_HD bool tc_pixels_dense(const Strides4& st, int64_t OH, int64_t OW) {
  return st.s0 == OH * st.s2 && st.s2 == OW * st.s3;
}

// One 16-byte chunk of the A (gathered) operand per (row, reduction index). fprop: source pixel
// ih = oh·stride − pad + r·dil. dgrad: the output pixel (p, q) whose tap r reaches input row h is
// p = (h + pad − r·dil) / stride when that division is exact and p is in range; otherwise the tap contributes zero.
// Two adjacent output elements (an mma accumulator pair), stored to shared memory as one 4- or 8-byte word.
template <typename T>
struct alignas(2 * sizeof(T)) TcPair {
  T a, b;
};
// Four adjacent elements as one 8-byte (16-bit T) word: wgrad's slice sum stores four channels of dw at once.
template <typename T>
struct alignas(4 * sizeof(T)) TcQuad {
  T v[4];
};

// Whether dw (strides dws, an R × S filter) holds the channels of each (k, r, s) contiguously, every (k, r, s) starting
// at a multiple of `vec` elements: then `vec` channels c … c + vec − 1 (c a multiple of vec) are one aligned word.
// Strides of size-1 dimensions do not count (a 1×1 NCHW filter qualifies). dw comes from at::empty: its start is
// aligned. True for a channels_last dw (wgrad_format) with C/g a multiple of vec, and for an NCHW 1×1 one.
PYCONV_HD bool tc_dw_channels_vec(const Strides4& dws, int R, int S, int vec) {
  return dws.s1 == 1 && dws.s0 % vec == 0 && (R == 1 || dws.s2 % vec == 0) && (S == 1 || dws.s3 % vec == 0);
}

template <bool kDgrad>
__device__ __forceinline__ bool tc_source_pixel(int h0, int r, int dil, int stride, int extent, int* out) {
  if (!kDgrad) {
    const int ih = h0 + r * dil;
    *out = ih;
    return ih >= 0 && ih < extent;
  }
  const int ph = h0 - r * dil;
  if (ph < 0) return false;
  const int p = stride == 1 ? ph : ph / stride;
  *out = p;
  return p * stride == ph && p < extent;
}

template <typename Tile>
constexpr size_t tc_smem_bytes() {
  return size_t(Tile::STAGES) * (Tile::BM + Tile::BN) * 64;  // 64-byte tile rows, whatever the element type
}

// float (TF32) needs a few more registers (the fragments' tf32 conversions) than 128 a thread: its 128×128 kernel
// runs one block per SM rather than spill.
template <typename T, typename Tile>
constexpr int tc_conv_min_blocks() {
  return sizeof(T) == 4 && Tile::kThreads == 256 ? 1 : Tile::kMinBlocks;
}

// `p`, a non-null pointer into global memory, said so to the compiler (tc_conv_store's pointers, at their place of
// use): read out of a copy of the parameters (a phased dgrad's, tc_phase_params) a pointer loses that, and the
// epilogue's stores became generic ST.E.128 instead of STG.E.128 (csrc/sass_expect.txt).
template <typename P>
__device__ __forceinline__ P* tc_global(P* p) {
#if defined(__CUDA_ARCH__)
  __builtin_assume(__isGlobal(p));
#endif
  return p;
}

// 16 bytes of T as one value: loads and stores of a whole chunk through it are single 16-byte accesses, and reading
// T elements out of it is not the type punning that an int4 would be (the emulator's host compiler optimises on that).
template <typename T>
struct alignas(16) TcChunk {
  T v[TcElem<T>::kVec];
};

// ReLU (or ReLU6) of both elements of a pair, as act::forward gives them for the values rounded to T.
template <typename T>
__device__ __forceinline__ TcPair<T> tc_pair_relu(TcPair<T> p, bool six) {
  using F = acc_t<T>;
  F a = to_acc(p.a), b = to_acc(p.b);
  a = six ? act::forward<Act::relu6>(a, F(0)) : act::forward<Act::relu>(a, F(0));
  b = six ? act::forward<Act::relu6>(b, F(0)) : act::forward<Act::relu>(b, F(0));
  return TcPair<T>{from_acc<T>(a), from_acc<T>(b)};
}

// The fused epilogue of one whole 16-byte chunk (kVec channels of one pixel) of a channels-last output whose residual,
// if any, is channels-last too, for no activation, ReLU or ReLU6 (ResNet's, MobileNet's; tc_epilogue_chunk_ok): the
// residual as one 16-byte load, the activation unrolled over the chunk. (Other activations keep the per-element
// path: unrolled, their run-time switch would be copied kVec times; rolled, the chunk's registers would be indexed
// dynamically, i.e. moved to local memory.) The per-element path (a run-time switch, a 2-byte residual load through
// 4 strides per element, not unrolled) cost about as much as the main loop of a 64-channel 3×3 tile: on an H200
// (2026-11-26) conv+bias+relu fused ran no faster than conv followed by torch's add and relu. Same value sequence as
// that path: (round_T(Σ x·w + bias) + residual) in float, activation, round to T.
template <typename T>
PYCONV_HD bool tc_epilogue_chunk_ok(const ConvEpilogue<T>& epi) {
  return epi.act < 0 || epi.act == int(Act::relu) || epi.act == int(Act::relu6);
}

// `c` holds round_T(Σ x·w + bias) of the chunk; `res` (or null) the residual's chunk.
template <typename T>
__device__ __forceinline__ void tc_epilogue_chunk(const ConvEpilogue<T>& epi, TcChunk<T>& c, const T* res) {
  using F = acc_t<T>;
  constexpr int kVec = TcElem<T>::kVec;
  F v[kVec];
#pragma unroll
  for (int e = 0; e < kVec; ++e) v[e] = to_acc(c.v[e]);
  if (res != nullptr) {
    const TcChunk<T> r = *reinterpret_cast<const TcChunk<T>*>(res);
#pragma unroll
    for (int e = 0; e < kVec; ++e) v[e] += F(to_acc(r.v[e]));
  }
  if (epi.act == int(Act::relu)) {
#pragma unroll
    for (int e = 0; e < kVec; ++e) v[e] = act::forward<Act::relu>(v[e], epi.param);
  } else if (epi.act == int(Act::relu6)) {
#pragma unroll
    for (int e = 0; e < kVec; ++e) v[e] = act::forward<Act::relu6>(v[e], epi.param);
  }
#pragma unroll
  for (int e = 0; e < kVec; ++e) c.v[e] = from_acc<T>(v[e]);
}

// Zero accumulators (a fixed-size register array; unrolled, so it stays in registers).
template <int MI, int NI>
__device__ __forceinline__ void tc_zero(float (&acc)[MI][NI][4]) {
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;
}

// A cp.async pipeline's prologue: the copies of tiles 0 .. ahead−1 (those that exist), one commit per tile, empty or
// not, so that the wait_group count of the main loop means the same thing in every iteration.
template <int kAhead, typename Load>
__device__ __forceinline__ void tc_prologue(Load&& load_tile, int KT) {
#pragma unroll
  for (int st = 0; st < kAhead; ++st) {
    if (st < KT) load_tile(st);
    cp_async_commit();
  }
}

// What a fprop/dgrad block works on: group g and split-K slice `split` (blockIdx.z), output rows m0 .. m0+BM of the
// M = N·OH·OW pixels, columns n0 .. n0+BN, and its reduction tiles [kt0, kt0 + KT) of bk elements: all of them, or
// one split-K slice.
struct TcBlock {
  int64_t g, split, M, m0;
  int n0, kt0, KT;
};
template <typename T>
__device__ __forceinline__ TcBlock tc_block_at(const TcConvParams<T>& pr, int bm, int bn, int bk, int64_t bx, int by,
                                               int64_t bz, int kt_all = 0) {
  TcBlock b;
  // (32-bit: bz < groups · splits ≤ 65535 — a 64-bit division is a ~70-instruction call, per block or tile)
  const uint32_t zu = uint32_t(bz), gu = uint32_t(pr.groups);
  b.g = gu == 1 ? 0 : zu % gu, b.split = gu == 1 ? zu : zu / gu;
  b.M = pr.N * pr.OH * pr.OW;
  b.m0 = bx * bm;
  b.n0 = by * bn;
  // reduction tiles: the packed R·S·ca reduction in bk-element tiles, unless the caller counts its own (TMA: a
  // whole number of 64-channel chunks per tap)
  if (kt_all == 0) kt_all = (pr.R * pr.S * pr.ca + bk - 1) / bk;
  b.kt0 = pr.ws != nullptr ? int(b.split) * pr.tiles_per_split : 0;
  b.KT = pr.ws == nullptr ? kt_all : (kt_all - b.kt0 < pr.tiles_per_split ? kt_all - b.kt0 : pr.tiles_per_split);
  return b;
}
template <typename T>
__device__ __forceinline__ TcBlock tc_block(const TcConvParams<T>& pr, int bm, int bn, int bk, int64_t bx) {
  return tc_block_at(pr, bm, bn, bk, bx, blockIdx.y, blockIdx.z);
}

// The parameters of the dgrad GEMM that row tile `bx` (blockIdx.x) belongs to, with bx made relative to it: `pr`
// itself, or (a phased launch, pr.nphases > 0) pr with the fields of the phase whose tiles hold bx. The phases' x0
// ascend, so the last phase starting at or before bx is it. Written as selects over constant indices, so that the
// table never needs an address in local memory (the compiler makes indexed parameter loads of it: no stack, per
// build/kernel_resources.md); a few instructions per block.
template <typename T>
__device__ __forceinline__ TcConvParams<T> tc_phase_params(const TcConvParams<T>& pr, int64_t& bx) {
  TcConvParams<T> p = pr;
  if (pr.nphases == 0) return p;
  TcPhase ph = pr.phase[0];
#pragma unroll
  for (int j = 1; j < kTcMaxPhases; ++j)
    if (j < pr.nphases && bx >= pr.phase[j].x0) ph = pr.phase[j];
  bx -= ph.x0;
  p.R = ph.R, p.S = ph.S, p.pad_h = ph.pad_h, p.pad_w = ph.pad_w;
  p.OH = ph.OH, p.OW = ph.OW, p.ohw_div = ph.ohw_div, p.ow_div = ph.ow_div;
  p.y = pr.y + ph.y_off, p.b = pr.b + ph.b_off, p.b_g = ph.b_g;
  p.b_kvalid = ph.b_kvalid, p.b_r0 = ph.b_r0, p.b_s0 = ph.b_s0;
  return p;
}

// The gather loader of fprop/dgrad, shared by the mma.sync kernel (rows of 4 chunks, 64 bytes) and the wgmma kernels
// (rows of 8 chunks, 128 bytes: cuda_tensor_core_sm90.cuh). Thread `tid` copies chunk column `chunk` of tile rows
// row0 + i·kRows (A, i < BM/kRows) and of B rows row0 + i·kRows (i < BN/kRows), one reduction tile after the other.
//
// Its rows are fixed for the whole reduction, so everything that depends on the row alone is computed once, in init,
// and what depends on the tap alone once per tile; a row then costs a handful of instructions per tile:
//   A row i   a_addr[i]  byte address of the row's pixel origin (tap (0, 0), channel 0 of this group):
//                        fprop  (n, oh·stride − pad, ow·stride − pad)   dgrad (stride 1)  (n, oh + pad, ow + pad)
//                        (an address outside the tensor when the origin is in the padding: only ever used with a
//                        tap that brings it back inside)
//             a_bad[i]   which taps leave the image: bit r (r < 15) when tap row r does, bit 16 + s when tap column s
//                        does; bit 15 always (the tile past the reduction's end sets it in tap_bits); every bit for a
//                        row past the GEMM's M
//   per tile  tap_bits   (1 << r) | (1 << 16 + s) of this thread's tap, or bit 15 past the end; delta = the tap's
//                        element offset + channel (fprop origin + tap, dgrad origin − tap)
//   per row   ok = (a_bad & tap_bits) == 0 (one LOP3), address a_addr + 2·delta (one IMAD.WIDE), the tensor's
//             base instead when !ok (two SEL: cp.async wants a mapped source even when it reads nothing), the cp.async
//   B row i   b_addr[i], the row's start, address b_addr + 2·kk, zero-filled past the reduction's end (a row past
//             gemm_n reads row 0 again: it only feeds accumulator columns that no store writes)
// Before, each row redid its bounds compares, a 64-bit tap offset and a select of the source pointer per tile: the
// wgmma 128×128 kernel's main loop was 215 SASS instructions a thread and tile (now 145), the warp-specialised
// producer's 270 (16 chunks; now 153): issue slots the tensor cores may have waited for (an SM's 4 schedulers issued
// ~440 of them per 128×128×64 tile at two blocks per SM, which the tensor cores finish in 512 cycles; the producer,
// one warp per scheduler, more than a warp issues in that time). csrc/sass_expect.txt caps both loops.
// The masks need R, S ≤ 15 and tap offsets that fit 32 bits (tc_unsupported in conv2d_cuda.cu sends other problems
// elsewhere). dgrad with stride > 1 (reached only with dilation > 1: the glue splits strided dgrad into stride-1 phases
// otherwise) needs an exact division per row and tap: it takes the general path, which re-derives each row's source
// pixel per tile from (n, h0, w0) kept in the same registers (a_addr = h0 << 32 | w0, a_bad = n, or −1 past M).
// Element offset of chunk `chunk` (8 elements) of reduction row `row` in an MN-major stage tile (the wgmma rung's
// wgrad operands and its dgrad's B): 64-element blocks along M (or N) of 64 rows × 128 bytes (8 KiB: the
// descriptor's LBO), the chunk at position (chunk mod 8) ^ (row mod 8) of its 128-byte row (the hardware's 128-byte
// swizzle; the cp.async writes of a warp's 8 rows at one chunk column land in 8 different bank groups).
__device__ __forceinline__ int tc_wg_mn_offset(int row, int chunk) {
  return ((chunk >> 3) * 64 + row) * 64 + (((chunk & 7) ^ (row & 7)) << 3);
}

// kBMn (the wgmma rung's dgrad): B MN-major from the transposed filter where it lies (TcConvParams' b_* fields), into
// 64-row blocks of BN/8 chunks each (tc_wg_mn_offset), instead of K-major rows of the [gemm_n][R·S·ca] matrix: the
// wgmma reads it transposed, and the host runs no transpose kernel when the filter is channels_last. A thread copies
// chunk column bchunk of reduction rows brow0, brow0 + kBMnRows, … of each tile: the tile's first reduction index
// kk − chunk·kVec (its tap and that tap's k from the A side's tracking) plus the row.
template <typename T, bool kDgrad, int NT, int BM, int BN, int kRowChunks, bool kBMn = false>
struct TcGatherLoader {
  static constexpr int kVec = TcElem<T>::kVec, kBK = kRowChunks * kVec;  // elements per tile row
  static constexpr int kRows = NT / kRowChunks, kAIters = BM / kRows, kBIters = kBMn ? 1 : BN / kRows;
  static constexpr int kBMnChunks = BN / kVec, kBMnRows = NT / kBMnChunks, kBMnIters = kBK / kBMnRows;
  static constexpr uint32_t kTailBit = 1u << 15;
  static_assert(BM % kRows == 0 && BN % kRows == 0, "each thread copies whole chunks");
  static_assert(!kBMn || (kDgrad && NT % kBMnChunks == 0 && kBK % kBMnRows == 0), "MN-major B: whole chunk rows");

  // (The parameters are passed to every call rather than kept as a pointer: the address of a kernel parameter would
  // make the compiler copy the struct to local memory.)
  int chunk, row0, Kgemm;
  bool general;
  uint64_t a_addr[kAIters];
  uint32_t a_bad[kAIters];
  uint64_t b_addr[kBIters];
  int64_t g;
  // The reduction index kk = (r·S + s)·ca + c of this thread's chunk, tracked incrementally (tiles are loaded in
  // order), so no division by ca or S happens in the loop; tap_off = r·dil_h·a_sh + s·dil_w·a_sw (fast path).
  int kk, tr, ts, tc, tap_off;
  uint32_t tap_bits;
  // kBMn: this thread's B chunk column and first row (its column's B base in b_addr[0]); btap_off: the offset of its
  // first row in the current tap (row brow0, k 0); bkvalid: b_kvalid − brow0 (very negative past b_cols); bstep: the
  // offset between its rows
  int bchunk, brow0, btap_off, bkvalid, bstep;
  uint32_t bdst0;  // byte offset of (row brow0, chunk bchunk) in an MN-major stage tile

  // Bits r < R of the taps whose source row stays inside [0, extent): fprop h0 + r·dil, dgrad h0 − r·dil.
  __device__ __forceinline__ static uint32_t inside_bits(int h0, int dil, int extent, int R) {
    const int lo_num = kDgrad ? h0 - extent + 1 : -h0;  // r·dil ≥ lo_num
    const int hi_num = kDgrad ? h0 : extent - 1 - h0;   // r·dil ≤ hi_num
    if (hi_num < 0) return 0;
    const int lo = lo_num <= 0 ? 0 : (lo_num + dil - 1) / dil;
    const int hi = min(R - 1, hi_num / dil);
    return lo > hi ? 0u : ((2u << hi) - 1u) & ~((1u << lo) - 1u);
  }

  __device__ __forceinline__ void init(const TcConvParams<T>& p, int tid, int64_t m0, int n0, int64_t g_, int64_t M,
                                       int kt0) {
    g = g_;
    chunk = tid % kRowChunks, row0 = tid / kRowChunks;
    Kgemm = p.R * p.S * p.ca;
    general = kDgrad && (p.stride_h != 1 || p.stride_w != 1);  // (R, S ≤ 15 and 32-bit taps: tc_unsupported)
    const uint64_t a_base = reinterpret_cast<uint64_t>(p.a);
#pragma unroll
    for (int i = 0; i < kAIters; ++i) {
      const int64_t m = m0 + row0 + i * kRows;
      int64_t n;
      int oh, ow;
      tc_pixel(p, m, tc_pixels_small(M), n, oh, ow);
      const int h0 = kDgrad ? oh + p.pad_h : oh * p.stride_h - p.pad_h;
      const int w0 = kDgrad ? ow + p.pad_w : ow * p.stride_w - p.pad_w;
      if (general) {
        a_addr[i] = (uint64_t(uint32_t(h0)) << 32) | uint32_t(w0);
        a_bad[i] = m < M ? uint32_t(n) : ~0u;
      } else {
        a_addr[i] = a_base + uint64_t(n * p.a_sn + g * p.ca + int64_t(h0) * p.a_sh + int64_t(w0) * p.a_sw) * sizeof(T);
        a_bad[i] = m < M ? ~(inside_bits(h0, p.dil_h, p.AH, p.R) | (inside_bits(w0, p.dil_w, p.AW, p.S) << 16)) : ~0u;
      }
    }
    if constexpr (kBMn) {
      bchunk = tid % kBMnChunks, brow0 = tid / kBMnChunks;
      bdst0 = uint32_t(tc_wg_mn_offset(brow0, bchunk) * sizeof(T));
      const int bcol = n0 + bchunk * kVec;
      const bool bcol_ok = bcol < p.b_cols;
      b_addr[0] = reinterpret_cast<uint64_t>(p.b + g * p.b_g + (bcol_ok ? bcol : 0));
      bkvalid = bcol_ok ? p.b_kvalid - brow0 : -(1 << 30);
      bstep = kBMnRows * p.b_k;
    } else {
      const uint64_t b_base = reinterpret_cast<uint64_t>(p.b + g * p.gemm_n * int64_t(Kgemm));
#pragma unroll
      for (int i = 0; i < kBIters; ++i) {
        const int n = n0 + row0 + i * kRows;
        b_addr[i] = b_base + uint64_t(n < p.gemm_n ? n : 0) * uint64_t(Kgemm) * sizeof(T);
      }
    }
    kk = kt0 * kBK + chunk * kVec, tr = 0, ts = 0, tc = kk;
    carry(p);  // finds (r, s, c) of the first tile
  }

  // tc ≥ ca: move on to the next tap (s, then r); then the tap's offset and bits for the next tile.
  __device__ __forceinline__ void carry(const TcConvParams<T>& p) {
    while (tc >= p.ca) {
      tc -= p.ca;
      if (++ts == p.S) ts = 0, ++tr;
    }
    if (!kDgrad || !general) {  // (the general path keeps neither: its taps may not fit these 32 bits)
      if (kk < Kgemm) {
        tap_off = tr * p.dil_h * int(p.a_sh) + ts * p.dil_w * int(p.a_sw);
        tap_bits = (1u << tr) | (1u << (16 + ts));
      } else {
        tap_bits = kTailBit;  // (every row off: tap_off keeps the last tap's, a harmless address)
      }
    }
    if constexpr (kBMn)
      btap_off = ((p.b_r0 + tr * p.b_step_h) * p.b_S + p.b_s0 + ts * p.b_step_w) * p.b_tap + brow0 * p.b_k;
  }

  // Issues this thread's cp.async copies of the next reduction tile into the stage tiles at shared-window addresses
  // a_dst / b_dst (element offsets of (row, chunk) by `swz`, the kernel's shared-memory layout), then advances by one
  // tile.
  template <typename Swz>
  __device__ __forceinline__ void load(const TcConvParams<T>& p, uint32_t a_dst, uint32_t b_dst, Swz swz) {
    if (!kDgrad || !general) {
      const int delta = kDgrad ? tc - tap_off : tc + tap_off;
#pragma unroll
      for (int i = 0; i < kAIters; ++i) {
        const bool ok = (a_bad[i] & tap_bits) == 0;
        const uint64_t src = a_addr[i] + uint64_t(int64_t(delta) * int64_t(sizeof(T)));
        cp_async_16_to(a_dst + swz(row0 + i * kRows, chunk) * sizeof(T), reinterpret_cast<const T*>(ok ? src : uint64_t(p.a)),
                       ok);
      }
    } else {
      const bool k_ok = kk < Kgemm;
#pragma unroll
      for (int i = 0; i < kAIters; ++i) {
        const int h0 = int(a_addr[i] >> 32), w0 = int(uint32_t(a_addr[i]));
        int ih = 0, iw = 0;
        const bool ok = k_ok && a_bad[i] != ~0u &&
                        tc_source_pixel<kDgrad>(h0, tr, p.dil_h, p.stride_h, p.AH, &ih) &&
                        tc_source_pixel<kDgrad>(w0, ts, p.dil_w, p.stride_w, p.AW, &iw);
        const int64_t off = ok ? int64_t(a_bad[i]) * p.a_sn + g * p.ca + ih * p.a_sh + iw * p.a_sw + tc : 0;
        cp_async_16_to(a_dst + swz(row0 + i * kRows, chunk) * sizeof(T), p.a + off, ok);
      }
    }
    if constexpr (kBMn) {
      // Row j of the tile: k = idx + j, idx the tile's first k in its tap (this thread's chunk's k, tc, less its
      // place in the row; kp a multiple of 64 keeps the tile in one tap), or with b_linear its first reduction index;
      // zero from b_kvalid on (the K/g tail of the tap; the copy's end) and past b_cols. This thread's rows
      // brow0 + i·kBMnRows: per tile a select, a subtract and a multiply-add; per row an add, a compare, a select
      // (a row that reads nothing copies from the column's base, a mapped address), a multiply-add to the address.
      const int idx = p.b_linear ? kk - chunk * kVec : tc - chunk * kVec;
      const int lim = bkvalid - idx;  // rows i with i·kBMnRows < lim are real
      int off = btap_off + idx * p.b_k;
#pragma unroll
      for (int i = 0; i < kBMnIters; ++i, off += bstep) {
        const bool ok = i * kBMnRows < lim;
        const uint64_t src = b_addr[0] + uint64_t(int64_t(ok ? off : 0) * int64_t(sizeof(T)));
        // rows kBMnRows apart: with kBMnRows a multiple of 8 the swizzle of row brow0 + i·kBMnRows is brow0's, so
        // its place is a fixed distance further (an immediate)
        const uint32_t dst = kBMnRows % 8 == 0 ? bdst0 + uint32_t(i * kBMnRows * 128)
                                               : uint32_t(tc_wg_mn_offset(brow0 + i * kBMnRows, bchunk) * sizeof(T));
        cp_async_16_to(b_dst + dst, reinterpret_cast<const T*>(src), ok);
      }
    } else {
      // Past the end of the reduction the chunk is zero-filled from the row's start (a valid address).
      const bool k_ok = kk < Kgemm;
      const uint64_t b_off = uint64_t(k_ok ? uint32_t(kk) : 0u) * sizeof(T);
#pragma unroll
      for (int i = 0; i < kBIters; ++i)
        cp_async_16_to(b_dst + swz(row0 + i * kRows, chunk) * sizeof(T),
                       reinterpret_cast<const T*>(b_addr[i] + b_off), k_ok);
    }
    kk += kBK;
    tc += kBK;
    carry(p);
  }
};

// tc_conv_store's barrier: the whole block's (kBarId 0), or named barrier kBarId among its NT threads.
template <int kBarId, int NT>
__device__ __forceinline__ void tc_store_sync() {
  if constexpr (kBarId == 0) __syncthreads();
  else named_barrier_sync<kBarId>(NT);
}

// The epilogue's staging tile: where element (row, col) of a BM × BN block tile lies (elements from its start).
// Padded (kSwz false): rows of BN + kVec elements — the 16 bytes of padding keep chunks aligned and put consecutive
// rows 4 banks apart. Swizzled (kSwz, BN a multiple of 64, 16-bit T): BN/64 column blocks of BM rows × 128 bytes,
// 16-byte chunk c of row r at chunk position c ^ (r mod 8) — the layout a TMA store reads (the 128-byte swizzle, the
// block 1024-byte aligned), and as free of bank conflicts for the accumulator pairs (a warp's eight rows gq at one
// chunk land in eight chunk positions) and for the 16-byte chunk reads (eight chunks of one row).
template <typename T, int BM, int BN, bool kSwz>
struct TcStage {
  static constexpr int kVec = TcElem<T>::kVec;
  static constexpr size_t kBytes = kSwz ? size_t(BM) * BN * sizeof(T) : size_t(BM) * (BN + kVec) * sizeof(T);
  static_assert(!kSwz || (BN % 64 == 0 && sizeof(T) == 2), "swizzled staging: 64-column blocks of 128-byte rows");
  __device__ __forceinline__ static int at(int row, int col) {
    if constexpr (kSwz)
      return (col / 64) * (BM * 64) + row * 64 + (((col % 64) / 8) ^ (row % 8)) * 8 + col % 8;
    else
      return row * (BN + kVec) + col;
  }};

// The end of a fprop/dgrad block (both the mma.sync kernel and the wgmma kernel of cuda_tensor_core_sm90.cuh): its
// BM × BN accumulators, held as MI × NI mma tiles of 16×8 per warp (warp tile origin (wm0, wn0), kWarpM rows; lane
// (gq = lane/4, t4 = lane%4) holds rows gq and gq+8, columns 2·t4 and 2·t4+1 of each), go to the split-K workspace or
// through the staged epilogue to y. `smem` is the kernel's pipeline buffer (kSmemBytes), free once the main loop ended.
// Every thread of the block calls it (it has block barriers), or with kBarId ≠ 0 the NT threads (ids 0 .. NT−1 in
// `tid`: the consumer warps of the warp-specialised kernel) that named barrier kBarId synchronises (tc_store_sync).
// kSwz: the staging tile swizzled (TcStage; the warp-specialised and TMA kernels'); then, given y_map (the TMA
// kernel's tiled map of y as {channels, pixels, 1}, made by the host only for an epilogue of bias and ReLU/ReLU6 at
// most, into a channels_last, pixel-dense y), thread 0 stores the staged tile by one TMA store per 64-column block
// instead of every thread's chunk loop: see "TMA stores" below.
template <typename T, int BM, int BN, int NT, int MI, int NI, int kWarpM, size_t kSmemBytes, int kBarId = 0,
          bool kSwz = false>
__device__ __forceinline__ void tc_conv_store(const TcConvParams<T>& pr, const float (&acc)[MI][NI][4], T* smem,
                                              int64_t m0, int n0, int64_t g, int64_t split, int64_t M, int wm0,
                                              int wn0, int tid, const TmaDesc* y_map = nullptr) {
  using Stage = TcStage<T, BM, BN, kSwz>;
  constexpr int kVec = TcElem<T>::kVec;
  const int lane = tid % 32;
  if (pr.ws != nullptr) {
    // Split-K slice: the float partial sums straight from the accumulators (lane holds rows gq, gq + 8 and columns
    // 2·t4, 2·t4 + 1 of each mma tile: one 8-byte store per pair); bias and epilogue wait for the reduction.
    const int64_t ldw = pr.groups * pr.gemm_n;
    float* ws = tc_global(pr.ws) + split * M * ldw + g * pr.gemm_n;
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int64_t m = m0 + wm0 + i * 16 + lane / 4 + half * 8;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < NI; ++j) {
          const int c = n0 + wn0 + j * 8 + 2 * (lane % 4);
          float* dst = ws + m * ldw + c;
          if ((pr.gemm_n & 1) == 0 && c < pr.gemm_n) {  // even gemm_n: c even, every row start even → 8-byte aligned
            *reinterpret_cast<float2*>(dst) = make_float2(acc[i][j][half * 2], acc[i][j][half * 2 + 1]);
          } else {
            if (c < pr.gemm_n) dst[0] = acc[i][j][half * 2];
            if (c + 1 < pr.gemm_n) dst[1] = acc[i][j][half * 2 + 1];
          }
        }
      }
    return;
  }

  // Epilogue, through shared memory (the pipeline's buffers are free once every warp is past the main loop).
  // Step 1: lane (group gq = lane/4, thread-in-group t4 = lane%4) holds rows gq and gq+8, columns 2·t4 and 2·t4+1 of
  // each mma tile; it adds the bias in float, rounds to T (the unfused sequence's conv output) and writes the pair
  // into a [rows][BN + kVec] staging tile. Step 2: each thread takes whole 16-byte chunks (one pixel, kVec
  // consecutive channels) in a loop that is not unrolled, applies residual + activation there and stores the chunk
  // with one 16-byte store when the output is channels-last and aligned (through the strides otherwise).
  // Why: applied in registers, the run-time activation switch was unrolled once per accumulator (64 of them per
  // thread), 25k instructions a kernel that each block streamed through the instruction cache; and the stores were
  // 2-byte scalars. The staged tile takes one warp row of the block tile per pass when the whole tile does not fit
  // (float32 128×128).
  constexpr int kPassRows = Stage::kBytes <= kSmemBytes ? BM : kWarpM;
  static_assert(!kSwz || kPassRows == BM, "the swizzled staging tile is staged whole");
  static_assert(Stage::kBytes / BM * kPassRows <= kSmemBytes, "the staged epilogue tile fits the pipeline smem");
  constexpr int kChunksPerRow = BN / kVec;
  T* sC = smem;
  const int gq = lane / 4, t4 = lane % 4;
  const bool nhwc_out = pr.ys.s1 == 1, small = tc_pixels_small(M);
  // y (and the residual) dense over their pixels: a chunk's address is m·s3 + k·s1, no (n, oh, ow) to decode
  const bool y_dense = tc_pixels_dense(pr.ys, pr.OH, pr.OW);
  const bool r_dense = pr.epi.residual == nullptr || tc_pixels_dense(pr.epi.rs, pr.OH, pr.OW);
  // TMA stores: thread 0's stores of the previous tile have read the staging tile (cp.async.bulk.wait_group.read)
  // before the barrier below lets anyone overwrite it. They take ReLU and ReLU6 epilogues without a residual too
  // (the host's condition), applied here to the pairs as they are staged (tma_act: 1 ReLU, 2 ReLU6, 0 none): the
  // chunk path's sequence, activation of the value rounded to T, which is representable again.
  int tma_act = 0;
  if constexpr (kSwz) {
    if (y_map != nullptr) {
      if (tid == 0) tma_store_wait<0>();
      tma_act = pr.epi.act == int(Act::relu) ? 1 : pr.epi.act == int(Act::relu6) ? 2 : 0;
    }
  }
  // every warp has finished reading the last pipeline stage (or, the persistent kernel's own staging tile: copying
  // out the previous tile) before it is overwritten
  tc_store_sync<kBarId, NT>();
#pragma unroll 1
  for (int pass = 0; pass < BM / kPassRows; ++pass) {
    const int prow0 = pass * kPassRows;  // block-tile row of the staged tile's first row
    if (wm0 >= prow0 && wm0 < prow0 + kPassRows) {  // this warp's rows are staged in this pass
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int c = wn0 + j * 8 + 2 * t4;  // block-tile column of the pair
        float b0 = 0.f, b1 = 0.f;
        if (pr.bias != nullptr) {
          const int64_t k = g * pr.gemm_n + n0 + c;
          if (n0 + c < pr.gemm_n) b0 = to_acc(tc_global(pr.bias)[k]);
          if (n0 + c + 1 < pr.gemm_n) b1 = to_acc(tc_global(pr.bias)[k + 1]);
        }
#pragma unroll
        for (int i = 0; i < MI; ++i)
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            // one 4-byte (8-byte for float32) store per pair; padded rows start 16 bytes (4 banks) apart, so the
            // warp's 8 rows × 4 pairs land in 32 distinct banks (16-bit types); swizzled: see TcStage
            TcPair<T> v{from_acc<T>(acc[i][j][half * 2] + b0), from_acc<T>(acc[i][j][half * 2 + 1] + b1)};
            if constexpr (kSwz)
              if (tma_act > 0) v = tc_pair_relu(v, tma_act == 2);  // (uniform; the TMA stores' ReLU / ReLU6)
            *reinterpret_cast<TcPair<T>*>(sC + Stage::at(wm0 - prow0 + i * 16 + gq + half * 8, c)) = v;
          }
      }
    }
    if constexpr (kSwz)
      if (y_map != nullptr) fence_proxy_async_smem();  // this thread's writes, before the copy engine reads them
    tc_store_sync<kBarId, NT>();  // the staged tile is complete before any thread reads other warps' part of it
    if constexpr (kSwz) {
      // TMA stores: one thread hands each 64-column block of the tile to the copy engine (rows past M and channels
      // past the tensor are clipped by the map; blocks past the group's own columns are not stored), one bulk group
      // a tile; the next tile's epilogue waits for it to have read the staging tile (above).
      if (y_map != nullptr) {
        if (tid == 0) {
#pragma unroll
          for (int jb = 0; jb < BN / 64; ++jb)
            if (n0 + 64 * jb < pr.gemm_n)
              tma_store_tiled_3d(y_map, smem_window_addr(sC + jb * (BM * 64)), int(g) * pr.gemm_n + n0 + 64 * jb,
                                 int(m0), 0);
          tma_store_commit();
        }
        return;
      }
    }
#pragma unroll 1
    for (int idx = tid; idx < kPassRows * kChunksPerRow; idx += NT) {
      const int row = idx / kChunksPerRow, cc = (idx % kChunksPerRow) * kVec;
      const int64_t m = m0 + prow0 + row;
      const int col0 = n0 + cc;
      if (m >= M || col0 >= pr.gemm_n) continue;
      int64_t n = 0;
      int oh = 0, ow = 0;
      if (!(y_dense && r_dense)) tc_pixel(pr, m, small, n, oh, ow);  // (uniform)
      const int64_t k0 = g * pr.gemm_n + col0;
      const int nv = pr.gemm_n - col0 < kVec ? pr.gemm_n - col0 : kVec;  // valid channels of this chunk
      T* chunk = sC + Stage::at(row, cc);
      T* out = tc_global(pr.y + (y_dense ? m * pr.ys.s3 + k0 * pr.ys.s1 : pr.ys.at(n, k0, oh, ow)));
      const bool vec_out = nhwc_out && nv == kVec && (reinterpret_cast<uintptr_t>(out) & 15) == 0;
      if (!pr.epi.trivial()) {
        // Like the unfused sequence, the activation sees the pre-activation rounded to T (already in the tile).
        const T* res = pr.epi.residual == nullptr
                           ? nullptr
                           : tc_global(pr.epi.residual +
                                       (r_dense ? m * pr.epi.rs.s3 + k0 * pr.epi.rs.s1 : pr.epi.rs.at(n, k0, oh, ow)));
        if (vec_out && tc_epilogue_chunk_ok(pr.epi) &&
            (res == nullptr || (pr.epi.rs.s1 == 1 && (reinterpret_cast<uintptr_t>(res) & 15) == 0))) {
          TcChunk<T> c = *reinterpret_cast<const TcChunk<T>*>(chunk);
          tc_epilogue_chunk<T>(pr.epi, c, res);
          *reinterpret_cast<TcChunk<T>*>(chunk) = c;
        } else {
          if (y_dense && r_dense) tc_pixel(pr, m, small, n, oh, ow);  // (the element epilogue indexes by (n, k, oh, ow))
#pragma unroll 1
          for (int e = 0; e < nv; ++e) chunk[e] = from_acc<T>(pr.epi(to_acc(chunk[e]), n, k0 + e, oh, ow));
        }
      }
      if (vec_out) {
        *reinterpret_cast<TcChunk<T>*>(out) = *reinterpret_cast<const TcChunk<T>*>(chunk);
      } else {
#pragma unroll 1
        for (int e = 0; e < nv; ++e) out[e * pr.ys.s1] = chunk[e];
      }
    }
    if (pass + 1 < BM / kPassRows) tc_store_sync<kBarId, NT>();  // the next pass overwrites the staged tile
  }
}

// One block of tc_conv_kernel: row tile bx of the GEMM that `pr` describes.
template <typename T, typename Tile, bool kDgrad>
__device__ __forceinline__ void tc_conv_block(const TcConvParams<T>& pr, int64_t bx) {
  constexpr int BM = Tile::BM, BN = Tile::BN, STAGES = Tile::STAGES, NT = Tile::kThreads;
  constexpr int kBK = TcElem<T>::kBK;
  PYCONV_EXTERN_SHARED(T, smem);
  T* sA = smem;                        // [STAGES][BM][kBK] swizzled
  T* sB = smem + STAGES * BM * kBK;    // [STAGES][BN][kBK] swizzled

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const TcBlock blk = tc_block(pr, BM, BN, kBK, bx);
  const int64_t g = blk.g, split = blk.split, M = blk.M, m0 = blk.m0;
  const int n0 = blk.n0, KT = blk.KT;

  TcGatherLoader<T, kDgrad, NT, BM, BN, 4> loader;
  loader.init(pr, tid, m0, n0, g, M, blk.kt0);
  const uint32_t sA_addr = smem_window_addr(sA), sB_addr = smem_window_addr(sB);
  auto load_tile = [&](int slot) {
    loader.load(pr, sA_addr + uint32_t(slot * BM * kBK * sizeof(T)), sB_addr + uint32_t(slot * BN * kBK * sizeof(T)),
                [](int row, int c) { return swz64<T>(row, c); });
  };

  // Warp tile origin and the accumulators: acc[i][j] is the 16×8 mma tile (i, j) of this warp's tile.
  const int wm0 = (warp / Tile::WN) * Tile::kWarpM, wn0 = (warp % Tile::WN) * Tile::kWarpN;
  float acc[Tile::MI][Tile::NI][4];
  tc_zero(acc);
  tc_prologue<STAGES - 1>(load_tile, KT);  // tiles 0 .. STAGES−2 in flight
  // ldmatrix row addresses: lane l names row l%8 of matrix l/8.
  const int lrow = lane % 8, lmat = lane / 8;
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<STAGES - 2>();  // this thread's copies of tile kt have landed …
    __syncthreads();              // … and everyone's; everyone is also done with tile kt−1's slot
    const T* a_s = sA + (kt % STAGES) * BM * kBK;
    const T* b_s = sB + (kt % STAGES) * BN * kBK;
    // Two mma k-steps per tile row, each spanning chunks 2·ks and 2·ks + 1. The copies for tile kt + STAGES − 1 are
    // issued between them (into tile kt−1's slot, free since the barrier): the first step's mma instructions are
    // then already queued on the tensor cores while the warp does the loader's integer work, instead of the loader
    // delaying every mma of the tile. Not in the 256-thread tiles: there the second step's fragments, loaded early
    // across the loader, cost registers beyond the 128 that two blocks per SM allow (spills on sm_80), and 16 warps
    // per SM hide the loader anyway.
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {
      if (ks == kTcLoadStep<Tile>) {
        const int next = kt + STAGES - 1;
        if (next < KT) load_tile(next % STAGES);
        cp_async_commit();
      }
      uint32_t af[Tile::MI][4], bf[Tile::NI][2];
      // A fragment = matrices (rows 0-7 | 8-15) × (chunk 2ks | 2ks+1), in a[0..3] order: rows vary first. For 16-bit
      // types a chunk is 8 k (the m16n8k16 layout); for float32 it is 4 k, and the same ldmatrix (b16 pairs = one
      // float) lands float (row g, k t4) in a[0], (g+8, t4) in a[1], (g, t4+4) in a[2], (g+8, t4+4) in a[3]: exactly
      // the m16n8k8 .tf32 A layout, and likewise for B.
#pragma unroll
      for (int i = 0; i < Tile::MI; ++i)
        ldmatrix_x4(af[i], a_s + swz64<T>(wm0 + i * 16 + (lmat & 1) * 8 + lrow, ks * 2 + (lmat >> 1)));
      // B for two n8 tiles: matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15).
#pragma unroll
      for (int jp = 0; jp < Tile::NI / 2; ++jp) {
        uint32_t r[4];
        ldmatrix_x4(r, b_s + swz64<T>(wn0 + jp * 16 + (lmat >> 1) * 8 + lrow, ks * 2 + (lmat & 1)));
        bf[2 * jp][0] = r[0], bf[2 * jp][1] = r[1], bf[2 * jp + 1][0] = r[2], bf[2 * jp + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < Tile::MI; ++i)
#pragma unroll
        for (int j = 0; j < Tile::NI; ++j) mma_tc<T>(acc[i][j], af[i], bf[j]);
    }
  }
  cp_async_wait<0>();  // this thread's copies (of tiles past the end: empty groups) have all landed before smem is reused

  tc_conv_store<T, BM, BN, NT, Tile::MI, Tile::NI, Tile::kWarpM, tc_smem_bytes<Tile>()>(pr, acc, smem, m0, n0, g,
                                                                                       split, M, wm0, wn0, tid);
}

template <typename T, typename Tile, bool kDgrad>
__global__ void __launch_bounds__(Tile::kThreads, (tc_conv_min_blocks<T, Tile>())) tc_conv_kernel(TcConvParams<T> pr) {
  if constexpr (kDgrad) {  // (a phased dgrad: this block's phase; fprop reads its parameters where they lie)
    int64_t bx = blockIdx.x;
    const TcConvParams<T> p = tc_phase_params(pr, bx);
    tc_conv_block<T, Tile, kDgrad>(p, bx);
  } else {
    tc_conv_block<T, Tile, kDgrad>(pr, blockIdx.x);
  }
}

// Split-K's second pass: y = epilogue(round_T(Σ_split ws[split] + bias)), the same value sequence as the one-pass
// epilogue. Element e walks ws's [m][g·gemm_n + j] order, channel fastest, so consecutive threads read consecutive
// floats (and write consecutive channels of a channels-last y). Index math in 32 bits whenever M·groups·gemm_n fits.
template <typename T, typename I>
__device__ __forceinline__ void tc_splitk_reduce_body(const TcConvParams<T>& pr, I total, I ldw, I OH, I OW) {
  for (I e = I(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += I(gridDim.x) * blockDim.x) {
    const I m = e / ldw, k = e - m * ldw;
    const I n = m / (OH * OW), pix = m - n * (OH * OW), oh = pix / OW, ow = pix - oh * OW;
    float v = 0.f;  // the slices are total elements apart
    for (int sp = 0; sp < pr.splits; ++sp) v += pr.ws[int64_t(sp) * total + e];
    if (pr.bias != nullptr) v += to_acc(pr.bias[k]);  // as in the one-pass epilogue: (Σ x·w) + bias in float, then T
    T out = from_acc<T>(v);
    if (!pr.epi.trivial()) out = from_acc<T>(pr.epi(to_acc(out), n, k, oh, ow));
    pr.y[pr.ys.at(n, k, oh, ow)] = out;
  }
}

// The same pass a 16-byte chunk (kVec channels of one pixel) per thread, when tc_splitk_vec_ok: float4 reads of
// every slice, the chunk path of the epilogue, one 16-byte store. (One element per thread, with its own 2-byte store
// and index divisions, took 13 µs for 16 MB on an H200, 2026-11-26: 3x3 256 → 256 channels at 14×14, 2 slices.)
template <typename T>
__device__ __forceinline__ void tc_splitk_reduce_vec_body(const TcConvParams<T>& pr, uint32_t total) {
  constexpr int kVec = TcElem<T>::kVec;
  const uint32_t ldw = uint32_t(pr.groups * pr.gemm_n), ldc = ldw / kVec, chunks = total / kVec;
  // y and the residual dense over their pixels (channels_last, the usual case): addresses m·s3 + k, no decoding
  const bool dense = tc_pixels_dense(pr.ys, pr.OH, pr.OW) &&
                     (pr.epi.residual == nullptr || tc_pixels_dense(pr.epi.rs, pr.OH, pr.OW));
  for (uint32_t e = blockIdx.x * blockDim.x + threadIdx.x; e < chunks; e += gridDim.x * blockDim.x) {
    const uint32_t m = e / ldc, k0 = (e - m * ldc) * kVec;
    int64_t n = 0;
    int oh = 0, ow = 0;
    if (!dense) tc_pixel(pr, m, true, n, oh, ow);  // (m < total ≤ 2^31 − 1: the multiply-high divisions hold)
    float v[kVec];
#pragma unroll
    for (int i = 0; i < kVec; ++i) v[i] = 0.f;
    const float* src = pr.ws + m * ldw + k0;  // 16-byte aligned: ldw and k0 are multiples of kVec (≥ 4)
#pragma unroll 4
    for (int sp = 0; sp < pr.splits; ++sp) {  // fixed order, as in the element-wise pass: the same sums
#pragma unroll
      for (int q = 0; q < kVec / 4; ++q) {
        const float4 f = reinterpret_cast<const float4*>(src + int64_t(sp) * total)[q];
        v[4 * q] += f.x, v[4 * q + 1] += f.y, v[4 * q + 2] += f.z, v[4 * q + 3] += f.w;
      }
    }
    TcChunk<T> c;
#pragma unroll
    for (int i = 0; i < kVec; ++i)
      c.v[i] = from_acc<T>(pr.bias != nullptr ? v[i] + to_acc(pr.bias[k0 + i]) : v[i]);
    if (!pr.epi.trivial())
      tc_epilogue_chunk<T>(pr.epi, c,
                           pr.epi.residual == nullptr ? nullptr
                           : pr.epi.residual + (dense ? int64_t(m) * pr.epi.rs.s3 + k0 : pr.epi.rs.at(n, k0, oh, ow)));
    *reinterpret_cast<TcChunk<T>*>(pr.y + (dense ? int64_t(m) * pr.ys.s3 + k0 : pr.ys.at(n, k0, oh, ow))) = c;
  }
}

// Whether tc_splitk_reduce_kernel may take whole 16-byte chunks: channels-last y (and residual) with 16-byte aligned
// pixels, chunks that do not straddle a group (gemm_n a multiple of the vector), an epilogue the chunk path
// implements, and 32-bit indices.
template <typename T>
bool tc_splitk_vec_ok(const TcConvParams<T>& pr) {
  constexpr int64_t kVec = TcElem<T>::kVec;
  const int64_t total = pr.N * pr.OH * pr.OW * pr.groups * pr.gemm_n;
  return pr.gemm_n % kVec == 0 && total <= INT32_MAX && nhwc_vectors_ok(pr.y, pr.ys, kVec) &&
         tc_epilogue_chunk_ok(pr.epi) &&
         (pr.epi.residual == nullptr || nhwc_vectors_ok(pr.epi.residual, pr.epi.rs, kVec));
}

template <typename T>
__global__ void tc_splitk_reduce_kernel(TcConvParams<T> pr, bool vec) {
  grid_dependency_wait();  // launched as a dependent of the kernel that writes pr.ws (launch_dependent)
  const int64_t ldw = pr.groups * pr.gemm_n, total = pr.N * pr.OH * pr.OW * ldw;
  if (vec)
    tc_splitk_reduce_vec_body<T>(pr, uint32_t(total));
  else if (total <= INT32_MAX)
    tc_splitk_reduce_body<T, uint32_t>(pr, uint32_t(total), uint32_t(ldw), uint32_t(pr.OH), uint32_t(pr.OW));
  else
    tc_splitk_reduce_body<T, int64_t>(pr, total, ldw, int64_t(pr.OH), int64_t(pr.OW));
}

// The split-K second pass after a kernel that wrote pr.ws.
template <typename T>
cudaError_t launch_tc_splitk_reduce(const TcConvParams<T>& pr, cudaStream_t stream) {
  const bool vec = tc_splitk_vec_ok(pr);
  const int64_t items = pr.N * pr.OH * pr.OW * pr.groups * pr.gemm_n / (vec ? TcElem<T>::kVec : 1);
  return launch_dependent(tc_splitk_reduce_kernel<T>, dim3(grid_1d(items, 256)), dim3(256), 0, stream, pr, vec);
}

// The fprop/dgrad grid of a BM × BN tile: output row tiles, column tiles, groups × split-K slices (see tc_block).
template <typename T>
dim3 tc_conv_grid(const TcConvParams<T>& pr, int bm, int bn) {
  const int64_t M = pr.N * pr.OH * pr.OW;
  const int splits = pr.ws != nullptr ? pr.splits : 1;
  return dim3(static_cast<unsigned>(pr.nphases > 0 ? pr.phase_x_tiles : ceil_div(M, bm)),
              static_cast<unsigned>(ceil_div(pr.gemm_n, bn)),
              static_cast<unsigned>(pr.groups * splits));
}

template <typename T, typename Tile>
cudaError_t launch_tc_conv(const TcConvParams<T>& pr, bool dgrad, cudaStream_t stream) {
  if (pr.nphases > 0 && (!dgrad || pr.ws != nullptr)) return cudaErrorInvalidValue;  // (phases: dgrad, one pass)
  const dim3 grid = tc_conv_grid(pr, Tile::BM, Tile::BN);
  cudaError_t e =
      dgrad ? launch(tc_conv_kernel<T, Tile, true>, grid, dim3(Tile::kThreads), tc_smem_bytes<Tile>(), stream, pr)
            : launch(tc_conv_kernel<T, Tile, false>, grid, dim3(Tile::kThreads), tc_smem_bytes<Tile>(), stream, pr);
  if (e != cudaSuccess || pr.ws == nullptr) return e;
  return launch_tc_splitk_reduce(pr, stream);
}

// ---- dgrad's B operand: the filter transposed, [g][c][r'][s'][kp] per sub-pixel phase --------------------------------
// dgrad reduces over (r, s, k) with k fastest, so B row c needs the K/g filter values of each tap side by side, while
// a filter (K, C/g, R, S) keeps them R·S·C/g (or, channels-last, C/g·R·S) elements apart. A strided dgrad runs one GEMM
// per sub-pixel phase (r0, s0) = (r mod stride_h, s mod stride_w) on that phase's taps r = r0 + r'·stride_h,
// s = s0 + s'·stride_w; one launch builds every phase's matrix, one after the other in a single buffer (phases in
// row-major (r0, s0) order, tc_dgrad_phase_offset): the phase GEMMs then wait for one small kernel instead of one per
// phase (four 3-5 µs launches in a row before a stride-2 3×3 dgrad could start). With stride 1 there is one phase:
// the plain [g][c][R][S][kp] transpose.
// Tiled through shared memory: a block moves a 32 (k) × 32 (c) tile of one tap, reading along c (contiguous in a
// channels-last filter) and writing along k (contiguous in B); columns k ≥ K/g up to kp are zeros. (torch's
// permute + constant_pad_nd + contiguous did this as a generic strided copy: 15-17 µs for the 2.4M-element filters of
// ResNet-50's last stage on an H200, 2026-11-26; 4.7 MB at copy speed is ~3 µs.)
struct TcDgradWeightParams {
  int64_t ws0, ws1, ws2, ws3;  // filter strides (k, c, r, s)
  int kg, cg, kp, groups;
  int R, S, step_h, step_w;  // the taps and the strides that split them into phases
  int cp;                    // > 0: the MN-major form [g][taps][kp][cp] (the wgmma rung's dgrad), else K-major
};

// Taps of phase r0 along one axis: r0, r0 + step, … < R (none when r0 ≥ R).
__host__ __device__ inline int tc_phase_taps(int r0, int R, int step) { return r0 < R ? (R - r0 + step - 1) / step : 0; }

// Taps r < R with r mod step < r0: those of the phases before r0 along one axis.
__host__ __device__ inline int tc_phase_taps_before(int r0, int R, int step) {
  return (R / step) * r0 + (R % step < r0 ? R % step : r0);
}
// Where phase (r0, s0)'s matrix starts in the buffer, in units of groups·cg·kp elements (one tap of every row): the
// taps of the phases before it in row-major (r0, s0) order — every tap of the phase rows above (S a row: each column
// tap lies in exactly one column phase), then those of the phases left of it in its row. (Closed form: the loop over
// phases this replaced made ptxas spill on sm_90a.)
__host__ __device__ inline int64_t tc_dgrad_phase_offset(int r0, int s0, int R, int S, int step_h, int step_w) {
  return int64_t(tc_phase_taps_before(r0, R, step_h)) * S +
         int64_t(tc_phase_taps(r0, R, step_h)) * tc_phase_taps_before(s0, S, step_w);
}

template <typename T>
__global__ void __launch_bounds__(256) tc_dgrad_weight_kernel(const T* w, T* b, TcDgradWeightParams pr) {
  __shared__ T tile[32][33];  // +1 column: the transposed reads of a warp hit 32 different banks
  const int k0 = blockIdx.x * 32, c0 = blockIdx.y * 32, tx = threadIdx.x, ty = threadIdx.y;
  const int taps = pr.R * pr.S;
  for (int64_t z = blockIdx.z; z < int64_t(pr.groups) * taps; z += gridDim.z) {  // z = (g, filter tap (r, s))
    const int64_t g = z / taps;
    const int tap = int(z - g * taps), r = tap / pr.S, s = tap - r * pr.S;
    // the tap's phase, its place among that phase's taps, and where that phase's [g][c][r'][s'][kp] matrix starts
    const int r0 = r % pr.step_h, s0 = s % pr.step_w;
    const int th = tc_phase_taps(r0, pr.R, pr.step_h), tw = tc_phase_taps(s0, pr.S, pr.step_w);
    const int ptap = (r / pr.step_h) * tw + s / pr.step_w;
    const int cols = pr.cp > 0 ? pr.cp : pr.cg;  // a phase matrix's columns (K-major: its rows) per group
    T* bp = b + tc_dgrad_phase_offset(r0, s0, pr.R, pr.S, pr.step_h, pr.step_w) * pr.groups * cols * pr.kp;
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // read: k = k0 + ty + 8i, c = c0 + tx (consecutive lanes, consecutive c)
      const int k = k0 + ty + 8 * i, c = c0 + tx;
      const T v = k < pr.kg && c < pr.cg ? w[(g * pr.kg + k) * pr.ws0 + c * pr.ws1 + r * pr.ws2 + s * pr.ws3]
                                         : from_acc<T>(acc_t<T>(0));
      if (pr.cp == 0)
        tile[ty + 8 * i][tx] = v;
      else if (k < pr.kp && c < pr.cp)  // MN-major: row k of the tap, c contiguous (no transpose: no tile)
        bp[((g * (th * tw) + ptap) * pr.kp + k) * int64_t(pr.cp) + c] = v;
    }
    if (pr.cp > 0) continue;  // (uniform across the block: no thread reaches the barriers below)
    __syncthreads();  // the whole tile is in shared memory before any thread reads another thread's element
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // write: c = c0 + ty + 8i, k = k0 + tx (consecutive lanes, consecutive k)
      const int c = c0 + ty + 8 * i, k = k0 + tx;
      if (c < pr.cg && k < pr.kp) bp[((g * pr.cg + c) * (th * tw) + ptap) * int64_t(pr.kp) + k] = tile[tx][ty + 8 * i];
    }
    __syncthreads();  // every thread has read the tile before the next (g, tap) overwrites it
  }
}

template <typename T>
cudaError_t launch_tc_dgrad_weight(const T* w, T* b, const TcDgradWeightParams& pr, cudaStream_t stream) {
  const int64_t z = std::min<int64_t>(int64_t(pr.groups) * pr.R * pr.S, 65535);
  const int cols = pr.cp > 0 ? pr.cp : pr.cg;  // the MN-major form writes its zero columns up to cp too
  const dim3 grid(static_cast<unsigned>(ceil_div(pr.kp, 32)), static_cast<unsigned>(ceil_div(cols, 32)),
                  static_cast<unsigned>(z));
  return launch(tc_dgrad_weight_kernel<T>, grid, dim3(32, 8), 0, stream, w, b, pr);
}

// ---- wgrad: A = dy as [npq][k] (k contiguous), B = x gathered as [npq][(r, s, c)] (c contiguous) --------------------
// Both operands are contiguous along their GEMM M / N index, not along the reduction (npq), so tiles are stored
// k-major ([kk][m] and [kk][n]) and ldmatrix.trans turns them into the row-major A and "column" B fragments.
// The reduction N·P·Q is long and GEMM M × N small (K/g × R·S·C/g), so it is split over gridDim.z / groups slices
// (split-K); each writes float partial sums to its own workspace slice and tc_wgrad_reduce adds the slices in a fixed
// order (deterministic, no atomics) and writes dw through its strides.

template <typename T>
struct TcWgradParams {
  const T* dy;  // NHWC [N][P][Q][groups·kp], contiguous; kp = K/g rounded up to 8
  const T* x;   // NHWC, channel stride 1, cp channels per group
  int64_t x_sn, x_sh, x_sw;
  int H, W, P, Q, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int kp, cp, kg, cg;  // kg, cg: the real K/g (rows of the GEMM) and C/g (channels of dw)
  int64_t N, groups;
  FastDiv pq_div, q_div;  // by P·Q and by Q: the loader's reduction index npq → (n, p, q)
  int splits, tiles_per_split;
  float* ws;  // [splits][groups][kg][R·S·cp]
  // One slice (splits == 1): dw itself, written by the kernel (rounded to T, through its strides); ws is then unused
  // and no reduce pass runs (it would only convert and reorder: 18 µs for a 2.4M-element dw on an H200, 2026-11-26).
  T* dw;
  Strides4 dws;
};

// sm_80's register allocation of the 128×128 wgrad kernel needs a few more than 128 registers a thread (sm_90's fits):
// there it runs one block per SM rather than spill.
template <typename Tile>
constexpr int tc_wgrad_min_blocks() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
  return Tile::kThreads == 256 ? 1 : Tile::kMinBlocks;
#else
  return Tile::kMinBlocks;
#endif
}

// The wgrad operand loader, shared by the mma.sync kernel (kRows = 32 reduction rows a tile, kTcBK) and the wgmma
// kernels (kRows = 64: cuda_tensor_core_sm90.cuh). Thread `tid` copies, for each reduction tile, the A chunk column
// a_col (8 output channels of dy) of rows a_row0 + i·NT/kAChunks and the B chunk column b_col (8 channels of one tap
// (r, s) of the gathered x) of rows b_row0 + i·NT/kBChunks. Its columns are fixed for the whole reduction, so the tap
// is decoded once, in init; a column past the GEMM (dy channels past kp, x columns past R·S·cp) reads column 0
// instead: it only feeds accumulator rows or columns that no store writes.
// The rows of tile t are the reduction indices npq = npq0 + row, 32-bit (tc_unsupported: N·P·Q < 2^31):
//   A  dy row npq is a_addr + row·(its row bytes): one 64-bit add per row and tile
//   B  npq → (n, p, q) by two multiply-high divisions (FastDiv by P·Q and by Q), then the source pixel
//      (p·stride − pad + r·dil, q·stride − pad + s·dil) and its offset within the image in 32 bits (tc_unsupported
//      bounds an image's offsets below 2^31)
// Before, each B row stepped (n, p, q) forward by a carry loop per row and tile and built its address in 64 bits: the
// wgmma 128×128 kernel's main loop was 406 SASS instructions a thread and tile (now 216), the warp-specialised
// producer's 710 (now 352).
template <typename T, int NT, int BM, int BN, int kRows>
struct TcWgradLoader {
  static constexpr int kAChunks = BM / 8, kBChunks = BN / 8;  // 16-byte chunks per tile row (M-, N-contiguous)
  static constexpr int kAIters = kRows * kAChunks / NT, kBIters = kRows * kBChunks / NT;
  static constexpr int kARowStep = NT / kAChunks, kBRowStep = NT / kBChunks;
  static_assert(kRows * kAChunks % NT == 0 && kRows * kBChunks % NT == 0 && NT % kBChunks == 0 && NT % kAChunks == 0,
                "each thread copies whole chunks at a fixed column");

  int a_col, a_row0, b_col, b_row0;
  int b_dh, b_dw;          // the tap's pixel offset (r·dil − pad, s·dil − pad)
  uint64_t a_addr;         // byte address of dy row npq0 + a_row0, this thread's 8 channels
  uint64_t a_row_bytes;    // dy's pixel stride in bytes
  uint64_t b_base;         // byte address of x's channels g·cp + c of pixel (0, 0, 0)
  int npq0, NPQ;           // the next tile's first reduction index; N·P·Q

  __device__ __forceinline__ void init(const TcWgradParams<T>& pr, int tid, int m0, int n0, int64_t g, int64_t kt0) {
    a_col = tid % kAChunks, a_row0 = tid / kAChunks;
    b_col = tid % kBChunks, b_row0 = tid / kBChunks;
    const int am = m0 + a_col * 8 < pr.kp ? m0 + a_col * 8 : 0;
    const int bn = n0 + b_col * 8 < pr.R * pr.S * pr.cp ? n0 + b_col * 8 : 0;
    const int b_c = bn % pr.cp, b_tap = bn / pr.cp, b_s = b_tap % pr.S, b_r = b_tap / pr.S;
    b_dh = b_r * pr.dil_h - pr.pad_h, b_dw = b_s * pr.dil_w - pr.pad_w;
    const int64_t ldy = pr.groups * pr.kp;
    a_row_bytes = uint64_t(ldy) * sizeof(T);
    NPQ = int(pr.N * pr.P * pr.Q);
    npq0 = int(kt0 * kRows);
    a_addr = reinterpret_cast<uint64_t>(pr.dy) + (uint64_t(npq0 + a_row0) * uint64_t(ldy) + uint64_t(g * pr.kp + am)) *
                                                     sizeof(T);
    b_base = reinterpret_cast<uint64_t>(pr.x) + uint64_t(g * pr.cp + b_c) * sizeof(T);
  }

  // Issues this thread's cp.async copies of the next tile into the stage tiles at shared-window addresses a_dst /
  // b_dst (element offset of (row, chunk) in a tile of `chunks` chunks per row: dst(row, chunk, chunks), the kernel's
  // shared-memory layout), then moves on.
  template <typename Dst>
  __device__ __forceinline__ void load(const TcWgradParams<T>& pr, uint32_t a_dst, uint32_t b_dst, Dst dst) {
    const int left = NPQ - npq0;  // rows of this tile inside the reduction
#pragma unroll
    for (int i = 0; i < kAIters; ++i) {
      const int row = a_row0 + i * kARowStep;
      const bool ok = row < left;
      const uint64_t src = a_addr + uint64_t(i * kARowStep) * a_row_bytes;
      cp_async_16_to(a_dst + dst(row, a_col, kAChunks) * sizeof(T),
                     reinterpret_cast<const T*>(ok ? src : reinterpret_cast<uint64_t>(pr.dy)), ok);
    }
#pragma unroll
    for (int i = 0; i < kBIters; ++i) {
      const int row = b_row0 + i * kBRowStep;
      const uint32_t npq = uint32_t(npq0 + row);
      const uint32_t n = pr.pq_div.div(npq), pq = npq - n * pr.pq_div.d;
      const uint32_t p = pr.q_div.div(pq), q = pq - p * pr.q_div.d;
      const int ih = int(p) * pr.stride_h + b_dh, iw = int(q) * pr.stride_w + b_dw;
      const bool ok = row < left && unsigned(ih) < unsigned(pr.H) && unsigned(iw) < unsigned(pr.W);
      const uint64_t src = b_base + uint64_t(n) * uint64_t(pr.x_sn) * sizeof(T) +
                           uint64_t(int64_t(ih * int(pr.x_sh) + iw * int(pr.x_sw)) * int64_t(sizeof(T)));
      cp_async_16_to(b_dst + dst(row, b_col, kBChunks) * sizeof(T),
                     reinterpret_cast<const T*>(ok ? src : reinterpret_cast<uint64_t>(pr.x)), ok);
    }
    a_addr += uint64_t(kRows) * a_row_bytes;
    npq0 += kRows;
  }
};

// The end of a wgrad block (both kernels): its accumulators, MI × NI mma tiles of 16×8 per warp from (row0, col0) of
// the GEMM (lane (gq = lane/4, t4 = lane%4) holds rows gq and gq+8, columns 2·t4 and 2·t4+1 of each), go to dw itself
// (one slice) or to the split-K workspace slice `split`.
template <typename T, int MI, int NI>
__device__ __forceinline__ void tc_wgrad_store(const TcWgradParams<T>& pr, const float (&acc)[MI][NI][4], int row0,
                                               int col0, int64_t g, int64_t split, int lane) {
  const int gq = lane / 4, t4 = lane % 4;
  const int gemm_n = pr.R * pr.S * pr.cp;
  if (pr.dw != nullptr) {
    // Single slice: dw[g·kg + row, c, r, s] directly. Column col = (r·S + s)·cp + c; a lane's pair (col, col + 1)
    // shares its tap (col is even and cp a multiple of 8), so the tap is decoded once per n8 tile, not per element.
    // Where dw's channels are contiguous and even-aligned (channels_last: wgrad_format), the pair (c, c + 1) is one
    // 4-byte store, the four lanes of a row 16 contiguous bytes; else (NCHW 3×3: channels R·S apart) one per element.
    const bool pairs = tc_dw_channels_vec(pr.dws, pr.R, pr.S, 2);
#pragma unroll
    for (int j = 0; j < NI; ++j) {
      const int col = col0 + j * 8 + 2 * t4;
      if (col >= gemm_n) continue;
      const int tap = col / pr.cp, c = col - tap * pr.cp, r = tap / pr.S, sx = tap - r * pr.S;
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int row = row0 + i * 16 + gq + half * 8;
          if (row >= pr.kg || c >= pr.cg) continue;
          T* dst = pr.dw + pr.dws.at(g * pr.kg + row, c, r, sx);
          if (pairs && c + 1 < pr.cg) {
            *reinterpret_cast<TcPair<T>*>(dst) =
                TcPair<T>{from_acc<T>(acc[i][j][half * 2]), from_acc<T>(acc[i][j][half * 2 + 1])};
          } else {
            dst[0] = from_acc<T>(acc[i][j][half * 2]);
            if (c + 1 < pr.cg) dst[pr.dws.s1] = from_acc<T>(acc[i][j][half * 2 + 1]);
          }
        }
    }
    return;
  }
  // Partial sums to this split's workspace slice (float; rows k < kg, columns < R·S·cp): a lane's pair (col, col + 1)
  // as one 8-byte store (col even, R·S·cp a multiple of 8: both columns in or both out).
  float* out = pr.ws + (split * pr.groups + g) * int64_t(pr.kg) * gemm_n;
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int row = row0 + i * 16 + gq + half * 8;
      if (row >= pr.kg) continue;
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int col = col0 + j * 8 + 2 * t4;
        if (col < gemm_n)
          *reinterpret_cast<TcPair<float>*>(out + int64_t(row) * gemm_n + col) =
              TcPair<float>{acc[i][j][half * 2], acc[i][j][half * 2 + 1]};
      }
    }
}

// A wgrad block's reduction tiles of kRows rows: all of them, or split-K slice blockIdx.z / groups.
struct TcWgradRange {
  int64_t g, split, kt0;
  int KT;
};
template <typename T>
__device__ __forceinline__ TcWgradRange tc_wgrad_range(const TcWgradParams<T>& pr, int kRows) {
  TcWgradRange r;
  r.g = blockIdx.z % pr.groups, r.split = blockIdx.z / pr.groups;
  const int64_t kt_all = (pr.N * pr.P * pr.Q + kRows - 1) / kRows;
  r.kt0 = r.split * pr.tiles_per_split;
  const int64_t kt1 = r.kt0 + pr.tiles_per_split < kt_all ? r.kt0 + pr.tiles_per_split : kt_all;
  r.KT = kt1 > r.kt0 ? int(kt1 - r.kt0) : 0;
  return r;
}

template <typename T, typename Tile>
__global__ void __launch_bounds__(Tile::kThreads, (tc_wgrad_min_blocks<Tile>())) tc_wgrad_kernel(TcWgradParams<T> pr) {
  constexpr int BM = Tile::BM, BN = Tile::BN, STAGES = Tile::STAGES, NT = Tile::kThreads;
  PYCONV_EXTERN_SHARED(T, smem);
  T* sA = smem;                          // [STAGES][32][BM] swizzled (k-major)
  T* sB = smem + STAGES * kTcBK * BM;    // [STAGES][32][BN]
  constexpr int kAChunks = BM / 8, kBChunks = BN / 8;

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const TcWgradRange rg = tc_wgrad_range(pr, kTcBK);
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  TcWgradLoader<T, NT, BM, BN, kTcBK> loader;
  loader.init(pr, tid, m0, n0, rg.g, rg.kt0);
  const uint32_t sA_addr = smem_window_addr(sA), sB_addr = smem_window_addr(sB);
  auto load_tile = [&](int slot) {
    loader.load(pr, sA_addr + uint32_t(slot * kTcBK * BM * sizeof(T)), sB_addr + uint32_t(slot * kTcBK * BN * sizeof(T)),
                [](int row, int c, int chunks) { return swz128(row, c, chunks); });
  };

  const int wm0 = (warp / Tile::WN) * Tile::kWarpM, wn0 = (warp % Tile::WN) * Tile::kWarpN;
  float acc[Tile::MI][Tile::NI][4];
  tc_zero(acc);
  const int KT = rg.KT;
  tc_prologue<STAGES - 1>(load_tile, KT);
  const int lrow = lane % 8, lmat = lane / 8;
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<STAGES - 2>();
    __syncthreads();  // same two guarantees as in tc_conv_kernel
    const T* a_s = sA + (kt % STAGES) * kTcBK * BM;
    const T* b_s = sB + (kt % STAGES) * kTcBK * BN;
#pragma unroll
    for (int ks = 0; ks < kTcBK / 16; ++ks) {
      if (ks == kTcLoadStep<Tile>) {  // the next tile's copies between the two mma k-steps, as in tc_conv_kernel
        const int next = kt + STAGES - 1;
        if (next < KT) load_tile(next % STAGES);
        cp_async_commit();
      }
      uint32_t af[Tile::MI][4], bf[Tile::NI][2];
      // A stored [k][m]: matrix (m 0-7 | 8-15) × (k 0-7 | 8-15) is the transposed 8×8 block at rows k, columns m.
#pragma unroll
      for (int i = 0; i < Tile::MI; ++i)
        ldmatrix_x4<true>(af[i], a_s + swz128(ks * 16 + (lmat >> 1) * 8 + lrow, (wm0 + i * 16) / 8 + (lmat & 1),
                                              kAChunks));
      // B stored [k][n]: matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15).
#pragma unroll
      for (int jp = 0; jp < Tile::NI / 2; ++jp) {
        uint32_t r[4];
        ldmatrix_x4<true>(r, b_s + swz128(ks * 16 + (lmat & 1) * 8 + lrow, (wn0 + jp * 16) / 8 + (lmat >> 1),
                                          kBChunks));
        bf[2 * jp][0] = r[0], bf[2 * jp][1] = r[1], bf[2 * jp + 1][0] = r[2], bf[2 * jp + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < Tile::MI; ++i)
#pragma unroll
        for (int j = 0; j < Tile::NI; ++j) mma_tc<T>(acc[i][j], af[i], bf[j]);
    }
  }
  cp_async_wait<0>();
  tc_wgrad_store<T, Tile::MI, Tile::NI>(pr, acc, m0 + wm0, n0 + wn0, rg.g, rg.split, lane);
}

// dw[k, c, r, s] = Σ_split ws[split][g][k'][(r·S + s)·cp + c]. A thread per kC consecutive channels of one (k, r, s)
// — kC = 4 (one float4 read per slice) whenever C/g is a multiple of 4, else 1 — and per split lane: a block is
// 256 / lanes such outputs (threadIdx.x: consecutive outputs, so each slice's reads are coalesced) × `lanes` split lanes
// (threadIdx.y = lane sums slices lane, lane + lanes, …, unrolled so several loads are in flight); the lanes' sums then
// meet in shared memory (`part`, 256·kC floats) and lane 0 adds them in lane order. The order depends on the slice
// count alone: deterministic. Why lanes: wgrad splits its reduction most (up to 64 slices) exactly where dw is small,
// and one thread per output walking every slice left this pass latency-bound on a handful of SMs — Nsight Compute on
// an H200 (run 10, benchmarks/results/nvidia-h200-2026-11-27-run10-ncu-focus.csv): 14 µs, as long as the GEMM
// itself, for the 63 slices of a 64 × 64 1×1 dw (4 blocks, long-scoreboard stalls 27 per issued instruction).
// Index math in I = uint32_t whenever dw has fewer than 2^31 elements: the three 64-bit divisions per element this
// pass used to do made it 25 µs for a 2M-element dw on an H200 (ncu), for 16 MB of traffic; one element per thread
// with 32-bit math still took 18 µs (2026-11-26, run 5).
template <typename T, typename I, int kC>
__device__ __forceinline__ void tc_wgrad_reduce_body(const float* ws, int splits, I total, int64_t slice, I cg, I cp,
                                                     I R, I S, T* dw, Strides4 dws, float* part) {
  const I cgv = cg / kC, n = total / kC;  // channel groups of kC per (k, r, s); outputs of this pass
  const I bx = blockDim.x;
  const int lane = int(threadIdx.y), lanes = int(blockDim.y);
  // e walks dw's channels fastest: with channels contiguous (channels_last, or 1×1) consecutive threads write
  // consecutive 8-byte words; an NCHW 3×3 dw puts each channel R·S elements from the next (scattered 2-byte stores).
  const bool quads = kC == 4 && tc_dw_channels_vec(dws, int(R), int(S), 4);
  // (the block's chunk loop is uniform, so every thread reaches the barriers)
  for (I base = I(blockIdx.x) * bx; base < n; base += I(gridDim.x) * bx) {
    const I e = base + threadIdx.x;
    // e walks dw in (k, r, s, c) order, c fastest: the workspace reads of consecutive threads are consecutive.
    const I kt = e / cgv, c = (e - kt * cgv) * kC;  // kt = (k·R + r)·S + s
    const int64_t src = int64_t(kt) * cp + c;  // (k·R·S + r·S + s)·cp + c: groups are stacked rows
    float v[kC];
#pragma unroll
    for (int i = 0; i < kC; ++i) v[i] = 0.f;
    if (e < n) {
#pragma unroll 4
      for (int sp = lane; sp < splits; sp += lanes) {
        if constexpr (kC == 4) {  // src and slice are multiples of 4 floats: 16-byte aligned
          const float4 f = *reinterpret_cast<const float4*>(ws + sp * slice + src);
          v[0] += f.x, v[1] += f.y, v[2] += f.z, v[3] += f.w;
        } else {
          v[0] += ws[sp * slice + src];
        }
      }
    }
    if (lanes > 1) {  // (uniform)
#pragma unroll
      for (int i = 0; i < kC; ++i) part[(lane * int(bx) + int(threadIdx.x)) * kC + i] = v[i];
      __syncthreads();  // every lane's sums are in shared memory before lane 0 adds them
      if (lane == 0)
        for (int l = 1; l < lanes; ++l)
#pragma unroll
          for (int i = 0; i < kC; ++i) v[i] += part[(l * int(bx) + int(threadIdx.x)) * kC + i];
      __syncthreads();  // lane 0 has read `part` before the next chunk overwrites it
    }
    if (lane != 0 || e >= n) continue;
    const I ks = kt / S, s = kt - ks * S;
    const I k = ks / R, r = ks - k * R;  // k over all groups: row k of group k / kg
    T* dst = dw + dws.at(k, c, r, s);
    if constexpr (kC == 4) {
      if (quads) {  // (uniform) channels contiguous and 4-aligned: the four as one 8-byte store
        TcQuad<T> q;
#pragma unroll
        for (int i = 0; i < 4; ++i) q.v[i] = from_acc<T>(v[i]);
        *reinterpret_cast<TcQuad<T>*>(dst) = q;
        continue;
      }
    }
#pragma unroll
    for (int i = 0; i < kC; ++i) dst[i * dws.s1] = from_acc<T>(v[i]);
  }
}

// tc_wgrad_reduce_kernel's split lanes (blockDim.y) for `splits` slices: as many as there are slices, up to 8, in
// powers of two; the block is always 256 threads.
inline int tc_wgrad_reduce_lanes(int splits) { return splits >= 8 ? 8 : splits >= 4 ? 4 : splits >= 2 ? 2 : 1; }

template <typename T>
__global__ void __launch_bounds__(256) tc_wgrad_reduce_kernel(const float* ws, int splits, int64_t groups, int kg,
                                                              int cg, int cp, int R, int S, T* dw, Strides4 dws) {
  grid_dependency_wait();  // launched as a dependent of the wgrad kernel that writes ws (launch_dependent)
  __shared__ float part[256 * 4];  // the lanes' sums: 256 threads × up to 4 channels
  const int64_t total = groups * kg * int64_t(cg) * R * S;
  const int64_t slice = groups * int64_t(kg) * R * S * cp;
  if (cg % 4 == 0 && total <= INT32_MAX)
    tc_wgrad_reduce_body<T, uint32_t, 4>(ws, splits, uint32_t(total), slice, cg, cp, R, S, dw, dws, part);
  else if (total <= INT32_MAX)
    tc_wgrad_reduce_body<T, uint32_t, 1>(ws, splits, uint32_t(total), slice, cg, cp, R, S, dw, dws, part);
  else
    tc_wgrad_reduce_body<T, int64_t, 1>(ws, splits, total, slice, cg, cp, R, S, dw, dws, part);
}

// The wgrad grid (both kernels): output-channel tiles × R·S·Cp tiles × (groups · split-K slices).
template <typename T>
dim3 tc_wgrad_grid(const TcWgradParams<T>& pr, int bm, int bn) {
  return dim3(static_cast<unsigned>(ceil_div(pr.kg, bm)), static_cast<unsigned>(ceil_div(pr.R * pr.S * pr.cp, bn)),
              static_cast<unsigned>(pr.groups * pr.splits));
}

// After a wgrad kernel: with split-K the slices' sum into dw (one slice: the kernel wrote dw, nothing to do).
template <typename T>
cudaError_t launch_tc_wgrad_reduce(const TcWgradParams<T>& pr, T* dw, Strides4 dws, cudaStream_t stream) {
  if (pr.dw != nullptr) return cudaSuccess;
  const int64_t n_out = pr.groups * int64_t(pr.kg) * pr.cg * pr.R * pr.S / (pr.cg % 4 == 0 ? 4 : 1);
  const int lanes = tc_wgrad_reduce_lanes(pr.splits);
  return launch_dependent(tc_wgrad_reduce_kernel<T>, dim3(grid_1d(n_out, 256 / lanes)), dim3(256 / lanes, lanes), 0,
                          stream, pr.ws, pr.splits, pr.groups, pr.kg, pr.cg, pr.cp, pr.R, pr.S, dw, dws);
}

template <typename T, typename Tile>
cudaError_t launch_tc_wgrad(const TcWgradParams<T>& pr, T* dw, Strides4 dws, cudaStream_t stream) {
  const cudaError_t e = launch(tc_wgrad_kernel<T, Tile>, tc_wgrad_grid(pr, Tile::BM, Tile::BN), dim3(Tile::kThreads),
                               tc_smem_bytes<Tile>(), stream, pr);
  return e != cudaSuccess ? e : launch_tc_wgrad_reduce(pr, dw, dws, stream);
}

}  // namespace cuda
}  // namespace pyconv
