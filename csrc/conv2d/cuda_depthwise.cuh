// conv2d on CUDA, rung "depthwise": convolutions with one input channel per group (C/groups == 1: MobileNet's
// depthwise layers, K = C·mult). Each output channel reads one input plane, so there is no reduction over channels to
// feed a GEMM: 2·R·S FLOPs per output element against ~2 elements of traffic. These kernels are memory-bound and aim
// at the bandwidth roofline: coalesced loads in either layout, filter taps in registers, float accumulation.
//
//   fprop  y[n, k, p, q]  = bias[k] + Σ_{r,s} x[n, k/mult, h(p,r), w(q,s)] · w[k, 0, r, s]
//   dgrad  dx[n, c, h, w] = Σ_{m<mult} Σ_{r,s} dy[n, c·mult + m, p(h,r), q(w,s)] · w[c·mult + m, 0, r, s]
//   wgrad  dw[k, 0, r, s] = Σ_{n,p,q} dy[n, k, p, q] · x[n, k/mult, h(p,r), w(q,s)]
//
// fprop / dgrad: each thread computes kStrip = 4 horizontally adjacent outputs of one channel (register blocking: a
// filter tap is loaded once for 4 outputs, and with stride 1 the 4 inputs of a tap are adjacent). Which index runs
// fastest across threads follows the memory layout: the channel in channels_last tensors (adjacent threads read
// adjacent channels of one pixel), the strip in NCHW tensors (adjacent threads read adjacent columns).
// wgrad: a block reduces one channel's N·P·Q products for up to kTaps taps at once (one dy load feeds kTaps
// products); split over the batch when there are too few channels to fill the GPU, with a deterministic final sum.
#pragma once
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "../common/conv_params.h"
#include "../common/cuda_common.cuh"
#include "conv_epilogue.h"

namespace pyconv {
namespace cuda {

constexpr int kDwStrip = 4;      // outputs per thread along w (fprop: q, dgrad: w)
constexpr int kDwThreads = 256;  // fprop/dgrad ask for 3 / 4 resident blocks (≤ 80 / 64 registers): a
                                  // memory-bound kernel needs many warps in flight to cover DRAM latency
                                  // (fprop's fused-epilogue pass needs the extra registers to stay spill-free)
constexpr int kDwTaps = 8;       // wgrad taps per block

// Decodes a linear thread index into (n, channel, row, strip): channel-fastest for channels_last, strip-fastest else.
struct DwIndex {
  int64_t n, c, row, col0;
};
PYCONV_HD DwIndex dw_decode(int64_t i, int64_t C, int64_t rows, int64_t strips, bool channels_fastest) {
  DwIndex d;
  if (channels_fastest) {
    d.c = i % C;
    i /= C;
    d.col0 = (i % strips) * kDwStrip;
    i /= strips;
  } else {
    d.col0 = (i % strips) * kDwStrip;
    i /= strips;
    d.c = i % C;
    i /= C;
  }
  d.row = i % rows;
  d.n = i / rows;
  return d;
}

template <typename T>
__global__ void __launch_bounds__(kDwThreads, 3)
    dw_fprop_kernel(Conv2dShape s, const T* x, Strides4 xs, const T* w, Strides4 ws, const T* bias, T* y, Strides4 ys,
                    bool channels_fastest, ConvEpilogue<T> epi) {
  using Acc = acc_t<T>;
  const int64_t strips = ceil_div(s.Q, kDwStrip), total = s.N * s.K * s.P * strips;
  const int64_t mult = s.K / s.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const DwIndex d = dw_decode(i, s.K, s.P, strips, channels_fastest);
    const int64_t k = d.c, c = k / mult, p = d.row, q0 = d.col0;
    Acc acc[kDwStrip];
    const Acc b = bias ? to_acc(bias[k]) : Acc(0);
#pragma unroll
    for (int j = 0; j < kDwStrip; ++j) acc[j] = b;
    const T* xp = x + d.n * xs.s0 + c * xs.s1;
    for (int64_t r = 0; r < s.R; ++r) {
      const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
      if (h < 0 || h >= s.H) continue;  // a padding row: contributes zero to all 4 outputs
      for (int64_t t = 0; t < s.S; ++t) {
        const Acc wv = to_acc(w[ws.at(k, 0, r, t)]);  // one tap, reused for the strip
#pragma unroll
        for (int j = 0; j < kDwStrip; ++j) {
          const int64_t ww = (q0 + j) * s.stride_w - s.pad_w + t * s.dil_w;
          if (q0 + j < s.Q && ww >= 0 && ww < s.W) acc[j] += to_acc(xp[h * xs.s2 + ww * xs.s3]) * wv;
        }
      }
    }
#pragma unroll
    for (int j = 0; j < kDwStrip; ++j)
      if (q0 + j < s.Q) y[ys.at(d.n, k, p, q0 + j)] = from_acc<T>(acc[j]);
    // The fused epilogue as a rolled second pass over the values just stored (still in L1): inlining the run-time
    // activation switch into the unrolled stores would cost 4 copies and raise register pressure (occupancy) for
    // every launch, fused or not.
    if (!epi.trivial()) {
#pragma unroll 1
      for (int j = 0; j < kDwStrip && q0 + j < s.Q; ++j) {
        T& out = y[ys.at(d.n, k, p, q0 + j)];
        out = from_acc<T>(epi(to_acc(out), d.n, k, p, q0 + j));
      }
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kDwThreads, 4)
    dw_dgrad_kernel(Conv2dShape s, const T* dy, Strides4 dys, const T* w, Strides4 ws, T* dx, Strides4 dxs,
                    bool channels_fastest) {
  using Acc = acc_t<T>;
  const int64_t strips = ceil_div(s.W, kDwStrip), total = s.N * s.C * s.H * strips;
  const int64_t mult = s.K / s.C;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const DwIndex d = dw_decode(i, s.C, s.H, strips, channels_fastest);
    const int64_t c = d.c, h = d.row, w0 = d.col0;
    Acc acc[kDwStrip];
#pragma unroll
    for (int j = 0; j < kDwStrip; ++j) acc[j] = Acc(0);
    for (int64_t m = 0; m < mult; ++m) {
      const int64_t k = c * mult + m;
      const T* dyp = dy + d.n * dys.s0 + k * dys.s1;
      for (int64_t r = 0; r < s.R; ++r) {
        // Output row p whose tap r lands on input row h: exact division only.
        const int64_t ph = h + s.pad_h - r * s.dil_h;
        if (ph < 0) continue;
        const int64_t p = ph / s.stride_h;
        if (p * s.stride_h != ph || p >= s.P) continue;
        for (int64_t t = 0; t < s.S; ++t) {
          const Acc wv = to_acc(w[ws.at(k, 0, r, t)]);
#pragma unroll
          for (int j = 0; j < kDwStrip; ++j) {
            const int64_t qw = w0 + j + s.pad_w - t * s.dil_w;
            if (qw < 0) continue;
            const int64_t q = qw / s.stride_w;
            if (w0 + j < s.W && q * s.stride_w == qw && q < s.Q) acc[j] += to_acc(dyp[p * dys.s2 + q * dys.s3]) * wv;
          }
        }
      }
    }
#pragma unroll
    for (int j = 0; j < kDwStrip; ++j)
      if (w0 + j < s.W) dx[dxs.at(d.n, c, h, w0 + j)] = from_acc<T>(acc[j]);
  }
}

// Block (k, tap chunk, split): threads stride over this split's pixels (n, p, q), each accumulating kDwTaps products
// per pixel; then a shared-memory tree adds the 256 partial sums of each tap. ws[split][k][tap] receives the result
// (in the accumulator type: float, or double for double).
template <typename T>
__global__ void __launch_bounds__(kDwThreads)
    dw_wgrad_kernel(Conv2dShape s, const T* dy, Strides4 dys, const T* x, Strides4 xs, acc_t<T>* ws, int64_t splits) {
  using Acc = acc_t<T>;
  __shared__ Acc red[kDwThreads];
  const int64_t k = blockIdx.x, split = blockIdx.z, mult = s.K / s.C, c = k / mult;
  const int64_t taps = s.R * s.S, t0 = int64_t(blockIdx.y) * kDwTaps;
  const int64_t npq = s.N * s.P * s.Q, per = ceil_div(npq, splits);
  const int64_t e0 = split * per, e1 = e0 + per < npq ? e0 + per : npq;
  int tr[kDwTaps], tt[kDwTaps];
#pragma unroll
  for (int j = 0; j < kDwTaps; ++j) {
    const int64_t tap = t0 + j < taps ? t0 + j : taps - 1;  // past the end: a duplicate, never written
    tr[j] = int(tap / s.S), tt[j] = int(tap % s.S);
  }
  Acc acc[kDwTaps];
#pragma unroll
  for (int j = 0; j < kDwTaps; ++j) acc[j] = Acc(0);
  for (int64_t e = e0 + threadIdx.x; e < e1; e += kDwThreads) {
    const int64_t q = e % s.Q, p = (e / s.Q) % s.P, n = e / (s.Q * s.P);
    const Acc g = to_acc(dy[dys.at(n, k, p, q)]);
    const T* xp = x + n * xs.s0 + c * xs.s1;
#pragma unroll
    for (int j = 0; j < kDwTaps; ++j) {
      const int64_t h = p * s.stride_h - s.pad_h + tr[j] * s.dil_h, ww = q * s.stride_w - s.pad_w + tt[j] * s.dil_w;
      if (h >= 0 && h < s.H && ww >= 0 && ww < s.W) acc[j] += g * to_acc(xp[h * xs.s2 + ww * xs.s3]);
    }
  }
  for (int j = 0; j < kDwTaps; ++j) {
    red[threadIdx.x] = acc[j];
    __syncthreads();  // all partial sums of tap j are in shared memory
    for (int half = kDwThreads / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) red[threadIdx.x] += red[threadIdx.x + half];
      __syncthreads();  // this level's sums are complete before the next level (or the next tap) reads red
    }
    if (threadIdx.x == 0 && t0 + j < taps) ws[(split * s.K + k) * taps + t0 + j] = red[0];
    __syncthreads();  // thread 0 has read red[0] before the next tap overwrites red
  }
}

// dw[k, 0, r, s] = Σ_split ws[split][k][r·S + s]. A block takes 32 consecutive outputs (threadIdx.x: each split's
// 32 values are one coalesced 128-byte read) × kDwFinishLanes split lanes (threadIdx.y sums splits y, y + lanes, …);
// the lane sums then meet in shared memory and are added in lane order. Fixed order throughout: deterministic.
// (One thread per output walking every split took 60 µs for 512 splits × 1296 outputs on an H200: one dependent
// load at a time, 6 blocks on 132 SMs.)
constexpr int kDwFinishLanes = 8;

template <typename T>
__global__ void __launch_bounds__(32 * kDwFinishLanes)
    dw_wgrad_finish_kernel(Conv2dShape s, const acc_t<T>* ws, int64_t splits, T* dw, Strides4 dws) {
  grid_dependency_wait();  // launched as a dependent of the wgrad kernel that writes ws (launch_dependent)
  using Acc = acc_t<T>;
  __shared__ Acc part[kDwFinishLanes][32];
  const int64_t taps = s.R * s.S, total = s.K * taps;
  const int64_t i = int64_t(blockIdx.x) * 32 + threadIdx.x;
  Acc v = 0;
  if (i < total) {
    // Unrolled so that several of a lane's loads are in flight at once (the adds still run in split order).
#pragma unroll 8
    for (int64_t sp = threadIdx.y; sp < splits; sp += kDwFinishLanes) v += ws[sp * total + i];
  }
  part[threadIdx.y][threadIdx.x] = v;
  __syncthreads();  // every lane's partial sum is in shared memory before lane 0 adds them
  if (threadIdx.y == 0 && i < total) {
    Acc sum = 0;
    for (int l = 0; l < kDwFinishLanes; ++l) sum += part[l][threadIdx.x];
    dw[dws.at(i / taps, 0, (i % taps) / s.S, i % s.S)] = from_acc<T>(sum);
  }
}

inline dim3 dw_finish_grid(const Conv2dShape& s) { return dim3(static_cast<unsigned>(ceil_div(s.K * s.R * s.S, int64_t(32)))); }

// ---- channels-last fast path: one input channel per output channel (K == C), C a multiple of the 16-byte vector ---
// The generic kernels above decode each thread's (n, channel, row, strip) with four 64-bit divisions and compute every
// address in 64 bits, for 4 outputs and R·S loads of 2 bytes: on an H200 (2026-11-26) that integer work, not memory,
// set their speed (fprop 240 us where moving the bytes takes 12). Here a thread owns one 16-byte vector of channels
// (kVec of them) × kDwStrip adjacent output columns: every load and store is 16 bytes, the decode is amortised over
// kVec·kDwStrip outputs, and the index math is 32-bit (Idx = int; tensors past 2^31 elements take the generic path). The filter comes
// pre-transposed as wt[r·S + s][C] (the glue's tiny copy), so one tap of kVec channels is one 16-byte load too.
// fprop and dgrad share the kernel: dgrad is the same gather with the transposed tap map (input row
// ih = (oh + pad − r·dil) / stride when exact), no bias and no epilogue.
template <typename T>
struct alignas(16) DwVec {
  static constexpr int kN = 16 / int(sizeof(T));
  T v[kN];
};

// A 16-byte vector's kVec elements as accumulator values, converted one 32-bit word at a time: a 16-bit pair
// converts in place (each half read straight from the word by HADD2.F32's half selector). Unpacking a DwVec<T>
// element by element instead made the compiler split every loaded word into two registers first and zero-fill
// padding vectors half by half: a PRMT per element, 288 of the ~1000 SASS instructions of the 3×3 fprop window kernel
// (sm_90a, 2026-11-26), as many as its FFMAs.
__device__ __forceinline__ float2 dw_pair_to_float2(__half2 h) { return __half22float2(h); }
__device__ __forceinline__ float2 dw_pair_to_float2(__nv_bfloat162 h) { return __bfloat1622float2(h); }

template <typename T>
__device__ __forceinline__ void dw_unpack(const uint4& u, acc_t<T> (&out)[DwVec<T>::kN]) {
  const unsigned word[4] = {u.x, u.y, u.z, u.w};
  if constexpr (sizeof(T) == 2) {  // __half, __nv_bfloat16: two to a word
    using Pair = std::conditional_t<std::is_same_v<T, __half>, __half2, __nv_bfloat162>;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      Pair h;
      memcpy(&h, &word[k], 4);
      const float2 f = dw_pair_to_float2(h);
      out[2 * k] = f.x, out[2 * k + 1] = f.y;
    }
  } else {  // float, double: the accumulator type itself
    static_assert(std::is_same_v<T, acc_t<T>>, "a 32/64-bit element is its own accumulator type");
    memcpy(out, word, 16);
  }
}

// The 16-byte vector at p, or zeros when `inside` is false (a padding column): whole words, no per-element fill.
template <typename T>
__device__ __forceinline__ uint4 dw_load_or_zero(const T* p, bool inside) {
  uint4 u = make_uint4(0u, 0u, 0u, 0u);
  if (inside) u = *reinterpret_cast<const uint4*>(p);
  return u;
}

template <typename T>
struct DwVecParams {
  const T* in;   // fprop: x, dgrad: dy; NHWC with channel stride 1
  T* out;        // fprop: y, dgrad: dx; NHWC with channel stride 1
  const T* wt;   // [R·S][C] (dw_nhwc_vec_kernel; the windowed kernel when w is null)
  const T* w;    // the filter itself, [C][R·S] contiguous and 16-byte aligned: the windowed kernel stages its taps from
                 // here (null: it reads wt)
  const T* bias;  // fprop only (may be null)
  ConvEpilogue<T> epi;  // fprop only
  int64_t in_sn, in_sh, in_sw, out_sn, out_sh, out_sw;
  int N, C, IH, IW, OH, OW, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int row_group;  // the windowed kernel's work order: output rows in groups of this many (dw_vec_item; 1: none)
};

// A fast-path thread's work item i → (image n, output row oh, first output column ow0 of its strip, first channel c0
// of its vector), channel vector fastest, then strip, row, image (a warp reads adjacent 16-byte vectors: 512
// contiguous bytes when C ≥ 256); and its accumulators' start: the bias (fprop) or zero.
// With row groups of RG > 1 rows: channel vector fastest, then the row within its group, then strip, group, image
// — so that a block's items span RG adjacent output rows of a few strips rather than one row of many, and the input
// rows those share (kK − stride of every kK) are read again from the SM's L1, not from L2 by another block. The rows
// are counted up to a multiple of RG; items past OH have oh ≥ OH (the caller skips them).
template <typename Idx>
struct DwVecItem {
  Idx n, oh, ow0, c0;
};
template <typename Idx>
PYCONV_HD Idx dw_vec_rows(Idx OH, Idx RG) {  // the output rows the items count (a multiple of RG)
  return RG > 1 ? (OH + RG - 1) / RG * RG : OH;
}
template <typename T, typename Idx>
__device__ __forceinline__ DwVecItem<Idx> dw_vec_item(Idx i, Idx CV, Idx strips, Idx OH, Idx RG = 1) {
  DwVecItem<Idx> it;
  Idx rest = i / CV;
  it.c0 = (i - rest * CV) * DwVec<T>::kN;
  if (RG > 1) {
    const Idx r_in = rest % RG;
    rest /= RG;
    const Idx strip = rest % strips, groups = (OH + RG - 1) / RG;
    rest /= strips;
    it.oh = rest % groups * RG + r_in, it.n = rest / groups, it.ow0 = strip * kDwStrip;
    return it;
  }
  const Idx strip = rest % strips;
  rest /= strips;
  it.oh = rest % OH, it.n = rest / OH, it.ow0 = strip * kDwStrip;
  return it;
}
template <typename T, typename Idx>
__device__ __forceinline__ void dw_vec_acc_init(acc_t<T> (&acc)[kDwStrip][DwVec<T>::kN], const T* bias, Idx c0) {
#pragma unroll
  for (int e = 0; e < DwVec<T>::kN; ++e) {
    const acc_t<T> b = bias != nullptr ? to_acc(bias[c0 + e]) : acc_t<T>(0);
#pragma unroll
    for (int j = 0; j < kDwStrip; ++j) acc[j][e] = b;
  }
}

// The input coordinate that tap r of output coordinate o reads: fprop o·stride − pad + r·dil; dgrad the exact
// quotient (o + pad − r·dil) / stride. False when there is none (padding, or a stride that skips o).
template <bool kDgrad, typename Idx>
__device__ __forceinline__ bool dw_tap_source(Idx o, Idx r, Idx stride, Idx pad, Idx dil, Idx extent, Idx* in) {
  if (!kDgrad) {
    *in = o * stride - pad + r * dil;
    return *in >= 0 && *in < extent;
  }
  const Idx t = o + pad - r * dil;
  if (t < 0) return false;
  *in = stride == 1 ? t : t / stride;
  return *in * stride == t && *in < extent;
}

// The strip's kDwStrip output vectors as 16-byte stores (columns past the edge skipped); for a fused fprop, then the
// epilogue as a rolled second pass over the values just stored (still in L1), as in dw_fprop_kernel: one copy of the
// run-time activation switch, not kVec·kDwStrip.
template <typename T, typename Idx, bool kDgrad>
__device__ __forceinline__ void dw_vec_store(const DwVecParams<T>& pr, const acc_t<T> (&acc)[kDwStrip][DwVec<T>::kN],
                                             Idx n, Idx oh, Idx ow0, Idx c0) {
  constexpr int kVec = DwVec<T>::kN;
  T* out_row = pr.out + n * Idx(pr.out_sn) + oh * Idx(pr.out_sh) + c0;
#pragma unroll
  for (int j = 0; j < kDwStrip; ++j) {
    if (ow0 + j >= pr.OW) continue;
    DwVec<T> o;
#pragma unroll
    for (int e = 0; e < kVec; ++e) o.v[e] = from_acc<T>(acc[j][e]);
    *reinterpret_cast<DwVec<T>*>(out_row + (ow0 + j) * Idx(pr.out_sw)) = o;
  }
  if (!kDgrad && !pr.epi.trivial()) {
#pragma unroll 1
    for (int j = 0; j < kDwStrip; ++j) {
      if (ow0 + j >= pr.OW) break;
#pragma unroll 1
      for (int e = 0; e < kVec; ++e) {
        T& v = out_row[(ow0 + j) * Idx(pr.out_sw) + e];
        v = from_acc<T>(pr.epi(to_acc(v), n, c0 + e, oh, ow0 + j));
      }
    }
  }
}

template <typename T, typename Idx, bool kDgrad>
__global__ void __launch_bounds__(kDwThreads, 3) dw_nhwc_vec_kernel(DwVecParams<T> pr) {
  using Acc = acc_t<T>;
  constexpr int kVec = DwVec<T>::kN;
  const Idx CV = pr.C / kVec, strips = (pr.OW + kDwStrip - 1) / kDwStrip;
  const Idx total = Idx(pr.N) * pr.OH * strips * CV;
  for (Idx i = Idx(blockIdx.x) * Idx(blockDim.x) + Idx(threadIdx.x); i < total; i += Idx(gridDim.x) * Idx(blockDim.x)) {
    const DwVecItem<Idx> it = dw_vec_item<T, Idx>(i, CV, strips, pr.OH);
    const Idx n = it.n, oh = it.oh, ow0 = it.ow0, c0 = it.c0;
    Acc acc[kDwStrip][kVec];
    dw_vec_acc_init<T, Idx>(acc, kDgrad ? nullptr : pr.bias, c0);
    const T* in_n = pr.in + n * Idx(pr.in_sn) + c0;
    for (Idx r = 0; r < pr.R; ++r) {
      Idx ih;
      if (!dw_tap_source<kDgrad, Idx>(oh, r, pr.stride_h, pr.pad_h, pr.dil_h, pr.IH, &ih)) continue;
      const T* in_row = in_n + ih * Idx(pr.in_sh);
      for (Idx t = 0; t < pr.S; ++t) {
        const DwVec<T> wv = *reinterpret_cast<const DwVec<T>*>(pr.wt + (r * pr.S + t) * Idx(pr.C) + c0);
#pragma unroll
        for (int j = 0; j < kDwStrip; ++j) {
          Idx iw;
          if (ow0 + j >= pr.OW ||
              !dw_tap_source<kDgrad, Idx>(ow0 + j, t, pr.stride_w, pr.pad_w, pr.dil_w, pr.IW, &iw))
            continue;
          const DwVec<T> xv = *reinterpret_cast<const DwVec<T>*>(in_row + iw * Idx(pr.in_sw));
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[j][e] += to_acc(xv.v[e]) * to_acc(wv.v[e]);
        }
      }
    }
    dw_vec_store<T, Idx, kDgrad>(pr, acc, n, oh, ow0, c0);
  }
}

// The windowed kernel's filter taps in shared memory, staged by each block from the filter itself ([C][kTaps]), so
// that no launch has to build the [R·S][C] copy first (an ATen copy before every call: a few microseconds of host
// and GPU time in front of kernels that take 10-15 µs on MobileNetV2's late layers). A block's kDwThreads items have
// consecutive channel vectors, channel vector fastest: they touch ns = min(kDwThreads, CV) distinct vectors,
// cv_base, cv_base + 1, … (mod CV), held as slots 0 … ns − 1 in the layout the kernel reads, [tap][slot] 16-byte
// vectors (adjacent threads, adjacent slots: conflict-free 128-bit reads). One slot's source is kVec channels ×
// kTaps taps = kTaps contiguous 16-byte chunks; element m of chunk `part` is channel (part·kVec + m) / kTaps, tap
// (part·kVec + m) mod kTaps.
template <typename T, int kTaps>
__device__ __forceinline__ void dw_stage_taps(const T* w, int CV, int cv_base, int ns, DwVec<T>* taps) {
  constexpr int kVec = DwVec<T>::kN;
  for (int k = int(threadIdx.x); k < ns * kTaps; k += int(blockDim.x)) {
    const int slot = k / kTaps, part = k - slot * kTaps;
    const int cv = cv_base + slot < CV ? cv_base + slot : cv_base + slot - CV;
    const DwVec<T> v = *reinterpret_cast<const DwVec<T>*>(w + (cv * kTaps + part) * kVec);
#pragma unroll
    for (int m = 0; m < kVec; ++m) {
      const int f = part * kVec + m, e = f / kTaps;
      taps[(f - e * kTaps) * ns + slot].v[e] = v.v[m];
    }
  }
}

// ---- the windowed fast path: square kK × kK filters, dilation 1, the same stride kStride in both directions --------
// MobileNet's depthwise layers (3×3 or 5×5, stride 1 or 2). dw_nhwc_vec_kernel above walks run-time R / S loops with a
// bounds branch per (tap, output), one 16-byte load per tap and output: 36 loads for 3×3 and 4 outputs, only 18 of
// them distinct, and since the loops do not unroll, the loads of one tap wait for the previous tap's (a latency-bound
// kernel: ~0.45× cuDNN on an H200, 2026-11-26). Here the taps unroll, and for each filter row the kDwStrip outputs
// share one window of kWin = (kDwStrip − 1)·kStride + kK input columns, loaded once, all at once, into registers
// (zero where the column is padding): 6 loads per row instead of 12 at 3×3 stride 1, 9 instead of 12 at stride 2.
//   fprop: output column ow0 + j, tap t reads input column ow0·stride − pad + (j·stride + t): window index
//   j·stride + t.
//   dgrad, stride 1: dx column w0 + j, tap t reads dy column w0 + j + pad − t, a correlation with the filter
//   flipped: the window starts at w0 + pad − (kK − 1) and tap t of output j is window index j + (kK − 1 − t); rows
//   likewise (window row r is filter row kK − 1 − r).
//   dgrad, stride 2: dx column w0 + j gets tap t from dy column (w0 + j + pad − t) / 2 when that is exact, i.e. only
//   the taps t ≡ w0 + j + pad (mod 2). With w0 a multiple of kDwStrip, the parity of w0 + pad is the parity of pad,
//   the same for every thread: a template argument (kParity), so that the (window column, output) → tap map stays
//   compile-time. Writing w0 + pad = 2A + kParity, output j meets window column u = (kParity + j − t) / 2 of the
//   columns A + u, u = kULo … kUHi (3 columns for 3×3, 4 for 5×5: the strip's 4 outputs need 2.25 taps each on
//   average instead of 9). Rows: dx row h gets filter row r from dy row (h + pad − r) / 2 when exact — 1 or 2 of
//   3 rows, decided per thread at run time.
// Two resident blocks per SM (≤ 128 registers a thread): the window, the 4 × kVec accumulators and one row's taps
// need 97-128 at 16-bit types; asking for three (≤ 80) made even the 3×3 stride-1 kernels spill (3×3 strided dgrad,
// with its narrower window, does ask for three: DwWindowMap::kBlocksPerSm).
// The taps come from shared memory (dw_stage_taps; dynamic, dw_window_stage_bytes) when pr.w is set, else from
// the [R·S][C] copy pr.wt. The grid-stride loop steps whole blocks so that every thread meets every barrier.
//
// The compile-time window geometry of each case: how many input columns a row's window holds, and which tap joins
// window column c to output j (outside [0, kK): none).
template <int kK, int kStride, bool kDgrad, int kParity>
struct DwWindowMap {
  static constexpr bool kStridedDgrad = kDgrad && kStride == 2;
  // strided dgrad: the largest tap of kParity's parity (the first column's), and the window's column range
  static constexpr int kTopTap = (kK - 1) - ((kK - 1 - kParity) & 1);
  static constexpr int kULo = kStridedDgrad ? (kParity - kTopTap) / 2 : 0;
  static constexpr int kUHi = (kParity + kDwStrip - 1 - ((kParity + kDwStrip - 1) & 1)) / 2;
  static constexpr int kWin = kStridedDgrad ? kUHi - kULo + 1 : (kDwStrip - 1) * kStride + kK;
  // Resident blocks per SM asked of ptxas (≤ 128 / ≤ 80 registers a thread): two in general (see below); three for
  // 3×3 strided dgrad, whose 3-column windows fit 80 registers without a spill (sm_80, sm_90a; 5×5 spilled) and whose
  // dx stores, four times its dy reads, want more warps in flight.
  static constexpr int kBlocksPerSm = kStridedDgrad && kK == 3 ? 3 : 2;
  static constexpr int tap(int c, int j) {
    return kStridedDgrad ? kParity + j - 2 * (c + kULo) : kDgrad ? kK - 1 - (c - j) : c - j * kStride;
  }
};

template <typename T, int kK, int kStride, bool kDgrad, int kParity = 0>
__global__ void __launch_bounds__(kDwThreads, DwWindowMap<kK, kStride, kDgrad, kParity>::kBlocksPerSm)
    dw_nhwc_window_kernel(DwVecParams<T> pr) {
  static_assert(kStride == 1 || kStride == 2, "stride 1 or 2");
  static_assert(kParity == 0 || (kDgrad && kStride == 2 && kParity == 1), "kParity: strided dgrad only");
  using Acc = acc_t<T>;
  using Map = DwWindowMap<kK, kStride, kDgrad, kParity>;
  constexpr int kVec = DwVec<T>::kN, kWin = Map::kWin;
  PYCONV_EXTERN_SHARED(DwVec<T>, taps);
  const int CV = pr.C / kVec, strips = (pr.OW + kDwStrip - 1) / kDwStrip;
  const int total = pr.N * dw_vec_rows(pr.OH, pr.row_group) * strips * CV, ns = CV < kDwThreads ? CV : kDwThreads;
  for (int base = int(blockIdx.x) * kDwThreads; base < total; base += int(gridDim.x) * kDwThreads) {
    const int i = base + int(threadIdx.x), cv_base = base % CV;
    if (pr.w != nullptr) {
      __syncthreads();  // the previous round's taps have been read before they are overwritten
      dw_stage_taps<T, kK * kK>(pr.w, CV, cv_base, ns, taps);
      __syncthreads();  // every slot is staged before any thread reads one
    }
    if (i >= total) continue;  // no item, but the next round's barriers still count this thread
    const DwVecItem<int> it = dw_vec_item<T, int>(i, CV, strips, pr.OH, pr.row_group);
    const int n = it.n, oh = it.oh, ow0 = it.ow0, c0 = it.c0;
    if (oh >= pr.OH) continue;  // a row group's rows past the last (after the barriers, as above)
    // Where tap (r, t) of this thread's channels lies: row-major taps, `tap_step` elements apart.
    const int slot = c0 / kVec - cv_base < 0 ? c0 / kVec - cv_base + CV : c0 / kVec - cv_base;
    const T* tap0 = pr.w != nullptr ? reinterpret_cast<const T*>(taps + slot) : pr.wt + c0;
    const int tap_step = pr.w != nullptr ? ns * kVec : pr.C;
    Acc acc[kDwStrip][kVec];
    dw_vec_acc_init<T, int>(acc, kDgrad ? nullptr : pr.bias, c0);
    // the window's first input row and column (strided dgrad: A + kULo, A = (ow0 + pad − kParity) / 2, exact)
    const int row0 = kDgrad ? oh + pr.pad_h - (kK - 1) : oh * kStride - pr.pad_h;
    const int col0 = Map::kStridedDgrad ? (ow0 + pr.pad_w - kParity) / 2 + Map::kULo
                     : kDgrad           ? ow0 + pr.pad_w - (kK - 1)
                                        : ow0 * kStride - pr.pad_w;
    const T* in_n = pr.in + n * int(pr.in_sn) + c0;  // 32-bit offsets: dw_vec_eligible checked they fit
#pragma unroll
    for (int r = 0; r < kK; ++r) {
      int ih = row0 + r;
      if (Map::kStridedDgrad) {  // filter row r reaches dx row oh from dy row (oh + pad − r) / 2, when exact
        const int num = oh + pr.pad_h - r;
        ih = num >= 0 && (num & 1) == 0 ? num / 2 : -1;
      }
      if (unsigned(ih) >= unsigned(pr.IH)) continue;  // a padding row (or no exact one): zero for every output
      const T* in_row = in_n + ih * int(pr.in_sh);
      uint4 win[kWin];
#pragma unroll
      for (int c = 0; c < kWin; ++c) {  // independent loads: all in flight before the first multiply
        const int iw = col0 + c;
        win[c] = dw_load_or_zero(in_row + iw * int(pr.in_sw), unsigned(iw) < unsigned(pr.IW));
      }
      const int fr = kDgrad && !Map::kStridedDgrad ? kK - 1 - r : r;  // the filter row this window row meets
      Acc wf[kK][kVec];                        // its kK taps, converted once for the kDwStrip outputs
#pragma unroll
      for (int t = 0; t < kK; ++t)
        dw_unpack<T>(*reinterpret_cast<const uint4*>(tap0 + (fr * kK + t) * tap_step), wf[t]);
      // Window column c, converted once, meets output j through tap t = c − j·stride (fprop), t = kK − 1 − (c − j)
      // (dgrad, the filter flipped) or t = kParity + j − 2·(c + kULo) (strided dgrad): compile-time after unrolling,
      // out-of-range pairs drop out.
#pragma unroll
      for (int c = 0; c < kWin; ++c) {
        Acc xf[kVec];
        dw_unpack<T>(win[c], xf);
#pragma unroll
        for (int j = 0; j < kDwStrip; ++j) {
          const int t = Map::tap(c, j);
          if (t < 0 || t >= kK) continue;
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[j][e] += xf[e] * wf[t][e];
        }
      }
    }
    dw_vec_store<T, int, kDgrad>(pr, acc, n, oh, ow0, c0);
  }
}

// The windowed kernel's filter size for this problem (0: it does not apply): fprop and dgrad alike.
inline int dw_window_k(const Conv2dShape& s) {
  const bool square = s.R == s.S && (s.R == 3 || s.R == 5) && s.dil_h == 1 && s.dil_w == 1 &&
                      s.stride_h == s.stride_w && (s.stride_h == 1 || s.stride_h == 2);
  return square ? int(s.R) : 0;
}

// Whether the fast path takes this problem: K == C == groups, C a multiple of the vector, both tensors channels-last
// with 16-byte-aligned pixels (base pointer and pixel strides). `in`/`out` are (x, y) for fprop, (dy, dx) for dgrad.
// The fast-path kernels index in 32 bits: the thread count (with the grid-stride loop's headroom), every element
// offset of both tensors and the coordinate arithmetic (which may reach (extent + pad + taps)·(stride + 1)) must stay
// below 2^31; larger problems take the generic 64-bit kernels.
template <typename T>
bool dw_vec_eligible(const Conv2dShape& s, const T* in, Strides4 ins, const T* out, Strides4 outs) {
  constexpr int64_t kVec = DwVec<T>::kN;
  const int64_t lim = (int64_t(1) << 31) - int64_t(kDwThreads) * kMaxGridX;
  const bool fits32 = s.N * ins.s0 < lim && s.N * outs.s0 < lim &&
                      s.N * s.C * std::max(s.H * s.W, s.P * s.Q) < lim &&
                      (s.H + s.P + s.pad_h + s.R * s.dil_h) * (s.stride_h + 1) < lim &&
                      (s.W + s.Q + s.pad_w + s.S * s.dil_w) * (s.stride_w + 1) < lim;
  return s.K == s.C && s.groups == s.C && s.C % kVec == 0 && nhwc_vectors_ok(in, ins, kVec) &&
         nhwc_vectors_ok(out, outs, kVec) && fits32;
}

// wt: the filter as [R·S][C] (contiguous, 16-byte aligned).
// The shared memory the windowed kernel stages its taps in: min(kDwThreads, C / kVec) channel vectors × R·S taps.
template <typename T>
size_t dw_window_stage_bytes(const Conv2dShape& s) {
  return size_t(std::min<int64_t>(kDwThreads, s.C / DwVec<T>::kN) * s.R * s.S) * sizeof(DwVec<T>);
}

// Whether launch_dw_nhwc_vec takes its taps from the filter w ([C][R·S], contiguous) itself: the windowed kernel
// applies, w is 16-byte aligned (each slot's taps are whole 16-byte chunks: kVec·R·S elements) and the staged taps fit
// the default 48 KiB of shared memory (every 3×3 problem; 5×5 up to 976 16-bit or 488 32-bit channels). Otherwise
// the caller passes the [R·S][C] copy.
template <typename T>
bool dw_window_stages(const Conv2dShape& s, const T* w) {
  return dw_window_k(s) != 0 && (reinterpret_cast<uintptr_t>(w) & 15) == 0 &&
         dw_window_stage_bytes<T>(s) <= 48 * 1024;
}

// The windowed kernel's row groups (DwVecParams::row_group): PYCONV_DW_ROWS (1 to 8, read per call), default 1 — the
// one-row order every measurement so far used. Unmeasured (2026-11-27): groups of 4 should cut the L2 reads of a
// stride-1 3×3 layer from ~3× its input to ~1.5× (MobileNetV2's stride-1 depthwise fprop ran 0.88-0.96× cuDNN in H200
// run 10; the lease's A/B decides the default).
inline int dw_row_group() {
  const char* v = std::getenv("PYCONV_DW_ROWS");
  const int g = v == nullptr ? 1 : std::atoi(v);
  return g < 1 ? 1 : g > 8 ? 8 : g;
}

// w: the filter as [C][R·S] when dw_window_stages says the windowed kernel stages from it (wt may then be null);
// otherwise null, and wt is the filter as [R·S][C] (contiguous, 16-byte aligned).
template <typename T, bool kDgrad>
cudaError_t launch_dw_nhwc_vec(const Conv2dShape& s, const T* in, Strides4 ins, const T* w, const T* wt,
                               const T* bias, T* out, Strides4 outs, ConvEpilogue<T> epi, cudaStream_t stream) {
  DwVecParams<T> pr;
  pr.in = in, pr.out = out, pr.w = w, pr.wt = wt, pr.bias = bias, pr.epi = epi;
  pr.in_sn = ins.s0, pr.in_sh = ins.s2, pr.in_sw = ins.s3, pr.out_sn = outs.s0, pr.out_sh = outs.s2, pr.out_sw = outs.s3;
  pr.N = int(s.N), pr.C = int(s.C), pr.R = int(s.R), pr.S = int(s.S);
  pr.IH = int(kDgrad ? s.P : s.H), pr.IW = int(kDgrad ? s.Q : s.W), pr.OH = int(kDgrad ? s.H : s.P);
  pr.OW = int(kDgrad ? s.W : s.Q);
  pr.stride_h = int(s.stride_h), pr.stride_w = int(s.stride_w), pr.pad_h = int(s.pad_h), pr.pad_w = int(s.pad_w);
  pr.dil_h = int(s.dil_h), pr.dil_w = int(s.dil_w);
  const int64_t strips = ceil_div(int64_t(pr.OW), kDwStrip), cv = s.C / DwVec<T>::kN;
  // row groups: the windowed kernel only (dw_nhwc_vec_kernel keeps one row per group). The padded item count stays
  // below the element count that dw_vec_eligible bounds to 32 bits: N·(OH + 7)·⌈OW/4⌉·C/kVec ≤ N·OH·OW·C.
  pr.row_group = dw_window_k(s) != 0 ? dw_row_group() : 1;
  const int64_t total = s.N * dw_vec_rows<int64_t>(pr.OH, pr.row_group) * strips * cv;
  // 32-bit indexing: the caller checked dw_vec_eligible, which includes the 32-bit bounds
  const dim3 grid(grid_1d(total, kDwThreads)), block(kDwThreads);
  const size_t smem = w != nullptr ? dw_window_stage_bytes<T>(s) : 0;
  switch (dw_window_k(s) * 10 + int(s.stride_h)) {  // (kK, kStride) of the windowed kernel, if it applies
    case 31: return launch(dw_nhwc_window_kernel<T, 3, 1, kDgrad>, grid, block, smem, stream, pr);
    case 51: return launch(dw_nhwc_window_kernel<T, 5, 1, kDgrad>, grid, block, smem, stream, pr);
    case 32:
      if (!kDgrad) return launch(dw_nhwc_window_kernel<T, 3, 2, false>, grid, block, smem, stream, pr);
      if (s.pad_w % 2 == 0) return launch(dw_nhwc_window_kernel<T, 3, 2, true, 0>, grid, block, smem, stream, pr);
      return launch(dw_nhwc_window_kernel<T, 3, 2, true, 1>, grid, block, smem, stream, pr);
    case 52:
      if (!kDgrad) return launch(dw_nhwc_window_kernel<T, 5, 2, false>, grid, block, smem, stream, pr);
      if (s.pad_w % 2 == 0) return launch(dw_nhwc_window_kernel<T, 5, 2, true, 0>, grid, block, smem, stream, pr);
      return launch(dw_nhwc_window_kernel<T, 5, 2, true, 1>, grid, block, smem, stream, pr);
    default: break;
  }
  if (wt == nullptr) return cudaErrorInvalidValue;  // dw_nhwc_vec_kernel reads the [R·S][C] copy only
  return launch(dw_nhwc_vec_kernel<T, int, kDgrad>, grid, block, 0, stream, pr);
}

// wgrad on the same layout: dw[c, r, s] = Σ_{n,p,q} dy[n, p, q, c] · x[n, ih, iw, c]. A thread owns one channel
// vector and up to kDwVecTaps taps (kVec·kDwVecTaps float accumulators: one dy vector load feeds all of them); the
// block's cvb channel-vector lanes × (256 / cvb) pixel lanes stride over this split's pixels (cvb = the channel
// vectors, at most 32, not rounded to a power of two: MobileNetV2's 144 channels are 18 f16 vectors, and a
// 32-lane block left 14 of every 32 threads idle); then, kDwRedTaps taps at a time, the pixel lanes' partial sums meet
// in shared memory and every thread adds up some (tap, channel) outputs over the pixel lanes in a fixed order into
// ws[split][c][tap] (dw_wgrad_finish_kernel sums the splits, in order: deterministic, no atomics). (The reduction used
// to be one thread per channel vector walking lanes × kVec values, tap by tap: 9 × 64 dependent shared-memory reads,
// as long as the block's share of the pixels itself.)
constexpr int kDwVecTaps = 9;  // a 3×3 filter in one block
constexpr int kDwRedTaps = 3;  // taps per shared-memory reduction round (3 × 8 KiB for 16-bit types)

template <typename T>
struct DwWgradVecParams {
  const T* dy;  // NHWC, channel stride 1
  const T* x;   // NHWC, channel stride 1
  acc_t<T>* ws;  // [splits][C][R·S]
  int64_t dy_sn, dy_sh, dy_sw, x_sn, x_sh, x_sw;
  int N, C, H, W, P, Q, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w;
  int cvb;     // channel vectors per block (1 … 32)
  int splits;  // gridDim.z
};

// Resident blocks per SM of dw_wgrad_nhwc_vec_kernel the register budget allows (≤ 128 registers a thread; 119-125
// used at 16-bit types: 9 taps × kVec accumulators).
constexpr int kDwWgradBlocksPerSm = 2;

// The end of both channels-last wgrad kernels: the block's kTaps × kVec partial sums per thread (taps tap0 …, of
// `taps`) summed over its pixel lanes into ws[blockIdx.z][c][tap], kDwRedTaps taps per round through shared memory.
// Output o of a round is (tap jj, channel-vector lane lc, element e) with e fastest, so the reads
// red[jj][l·cvb + lc][e] of consecutive threads are consecutive words (no bank conflicts).
template <typename T, typename Idx, int kTaps>
__device__ __forceinline__ void dw_wgrad_block_reduce(const DwWgradVecParams<T>& pr,
                                                      const acc_t<T> (&acc)[kTaps][DwVec<T>::kN], int lanes_p,
                                                      int tap0, int taps) {
  using Acc = acc_t<T>;
  constexpr int kVec = DwVec<T>::kN;
  __shared__ Acc red[kDwRedTaps][kDwThreads][kVec];
  const int per_tap = pr.cvb * kVec;
#pragma unroll
  for (int j0 = 0; j0 < kTaps; j0 += kDwRedTaps) {
    const int round = kTaps - j0 < kDwRedTaps ? kTaps - j0 : kDwRedTaps;  // the last round may be short (5 taps)
#pragma unroll
    for (int jj = 0; jj < kDwRedTaps; ++jj) {
      if (jj >= round) continue;  // compile-time after unrolling
      const int j = j0 + jj < kTaps ? j0 + jj : 0;  // (always j0 + jj here; the select keeps the index in bounds)
#pragma unroll
      for (int e = 0; e < kVec; ++e) red[jj][threadIdx.x][e] = acc[j][e];  // idle threads write zeros
    }
    __syncthreads();  // every pixel lane's partial sums of this round's taps are in shared memory
    for (int o = threadIdx.x; o < round * per_tap; o += kDwThreads) {
      const int jj = o / per_tap, ce = o - jj * per_tap, tap = tap0 + j0 + jj;
      const Idx c = Idx(blockIdx.x) * per_tap + ce;  // = (blockIdx.x·cvb + lc)·kVec + e
      if (c >= pr.C || tap >= taps) continue;
      const Acc* col = &red[jj][0][0] + ce;
      Acc v = Acc(0);
      for (int l = 0; l < lanes_p; ++l) v += col[l * per_tap];  // fixed order: reproducible
      pr.ws[(Idx(blockIdx.z) * pr.C + c) * taps + tap] = v;
    }
    __syncthreads();  // the sums have read red before the next round overwrites it
  }
}

template <typename T, typename Idx>
__global__ void __launch_bounds__(kDwThreads, kDwWgradBlocksPerSm) dw_wgrad_nhwc_vec_kernel(DwWgradVecParams<T> pr) {
  using Acc = acc_t<T>;
  constexpr int kVec = DwVec<T>::kN;
  const int lanes_p = kDwThreads / pr.cvb;  // pixel lanes; the last kDwThreads mod cvb threads have none
  const int lane_c = int(threadIdx.x) % pr.cvb, lane_p = int(threadIdx.x) / pr.cvb;
  const Idx cv = Idx(blockIdx.x) * pr.cvb + lane_c, c0 = cv * kVec;
  const bool live = c0 < pr.C && lane_p < lanes_p;
  const int taps = pr.R * pr.S, tap0 = int(blockIdx.y) * kDwVecTaps;
  int tr[kDwVecTaps], ts[kDwVecTaps];
#pragma unroll
  for (int j = 0; j < kDwVecTaps; ++j) {
    const int tap = tap0 + j < taps ? tap0 + j : taps - 1;  // past the end: a duplicate, never written
    tr[j] = tap / pr.S, ts[j] = tap % pr.S;
  }
  Acc acc[kDwVecTaps][kVec];
#pragma unroll
  for (int j = 0; j < kDwVecTaps; ++j)
#pragma unroll
    for (int e = 0; e < kVec; ++e) acc[j][e] = Acc(0);
  const Idx npq = Idx(pr.N) * pr.P * pr.Q, per = (npq + pr.splits - 1) / pr.splits;
  const Idx e0 = Idx(blockIdx.z) * per, e1 = e0 + per < npq ? e0 + per : npq;
  if (live) {
    for (Idx px = e0 + lane_p; px < e1; px += lanes_p) {
      const Idx rest = px / pr.Q, q = px - rest * pr.Q, n = rest / pr.P, p = rest - n * pr.P;
      const DwVec<T> g = *reinterpret_cast<const DwVec<T>*>(pr.dy + n * Idx(pr.dy_sn) + p * Idx(pr.dy_sh) +
                                                            q * Idx(pr.dy_sw) + c0);
      const T* xn = pr.x + n * Idx(pr.x_sn) + c0;
#pragma unroll
      for (int j = 0; j < kDwVecTaps; ++j) {
        const Idx ih = p * pr.stride_h - pr.pad_h + tr[j] * pr.dil_h, iw = q * pr.stride_w - pr.pad_w + ts[j] * pr.dil_w;
        if (ih < 0 || ih >= pr.H || iw < 0 || iw >= pr.W) continue;
        const DwVec<T> xv = *reinterpret_cast<const DwVec<T>*>(xn + ih * Idx(pr.x_sh) + iw * Idx(pr.x_sw));
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[j][e] += to_acc(g.v[e]) * to_acc(xv.v[e]);
      }
    }
  }
  dw_wgrad_block_reduce<T, Idx, kDwVecTaps>(pr, acc, lanes_p, tap0, taps);
}

// The windowed wgrad fast path: square kK×kK filters (3×3, 5×5 or 7×7), dilation 1, the same stride kStride (1 or 2) in
// both directions — as dw_nhwc_window_kernel does for fprop/dgrad. dw_wgrad_nhwc_vec_kernel above handles one output
// pixel per iteration: its dy vector, then one x vector per tap (10 loads, every x vector fetched by 9 different
// pixels, each load behind its tap's padding branch) and the pixel's (n, p, q) by two divisions. Here a block takes
// one filter row r = blockIdx.y (gridDim.y = kK) and a pixel lane a strip of kDwWgradStrip consecutive output columns
// of one row: the strip's dy vectors (converted to float once, for the row's kK taps) and the
// kWin = (kDwWgradStrip − 1)·kStride + kK x vectors of input row p·kStride − pad_h + r, each converted once and
// multiplied into every (output j, tap t) it meets (window column j·kStride + t). The same block layout, split and
// reduction as the vec kernel (dw_wgrad_block_reduce, into taps kK·r … kK·r + kK − 1 of ws[split][c][·]); splits cut
// the N·P·⌈Q/kDwWgradStrip⌉ strips.
// Why one filter row a block. The first windowed kernel held all 9 taps of a 3×3 filter (72 float accumulators at
// 16-bit types, 126 registers, 2 blocks per SM); its SASS put each filter row behind its own padding branch, so a
// strip's loads went out in four waves (dy, then each row's 4 x vectors), each after the previous wave's FFMAs: four
// memory round trips a strip, and no registers left to overlap them. With one row's taps (3×3: 24 accumulators, 70
// registers, 3 blocks per SM; 5×5: 40, 102-114 registers, 2 blocks; 7×7: 56, with 1-pixel strips to stay under 128)
// every load of a strip is issued before any is used (a padding row or column loads nothing and multiplies as zeros:
// no branch between the loads): one round trip a strip. dy is read by the kK row blocks (from L2 after the first).
// H200 run 9 (benchmarks/results/nvidia-h200-2026-11-26-run9-*), MobileNetV2's 10 depthwise wgrad layers (3×3), f16
// NHWC batch 32, geomean of cuDNN time / ours: 9-tap kernel 0.81× (two passes), this kernel 0.99×; with two strips'
// loads in flight a thread (96 registers, 2 blocks per SM; an unrolled pair of strips) 0.90× / 0.96× — fewer
// warps lose more than the deeper pipeline wins (576 channels at 14×14: 20 µs against 24). 5×5 (run 9 had no such
// layer) and 7×7 (ConvNeXt's) have not been timed on a GPU: the emulator tests them.
constexpr int kDwWgradStrip = 2;  // outputs a strip (3×3, 5×5; 7×7 takes 1: see dw_wgrad_row_strip)
template <int kK>
constexpr int dw_wgrad_row_blocks_per_sm() { return kK == 3 ? 3 : 2; }
template <int kK>
constexpr int dw_wgrad_row_strip() { return kK == 7 ? 1 : kDwWgradStrip; }  // 7×7: 56 accumulators leave no room

template <typename T, int kK, int kStride>
__global__ void __launch_bounds__(kDwThreads, dw_wgrad_row_blocks_per_sm<kK>())
    dw_wgrad_row_kernel(DwWgradVecParams<T> pr) {
  using Acc = acc_t<T>;
  constexpr int kVec = DwVec<T>::kN, kStrip = dw_wgrad_row_strip<kK>(), kWin = (kStrip - 1) * kStride + kK;
  const int r = int(blockIdx.y);  // this block's filter row
  const int lanes_p = kDwThreads / pr.cvb;
  const int lane_c = int(threadIdx.x) % pr.cvb, lane_p = int(threadIdx.x) / pr.cvb;
  const int c0 = (int(blockIdx.x) * pr.cvb + lane_c) * kVec;
  const bool live = c0 < pr.C && lane_p < lanes_p;
  Acc acc[kK][kVec];
#pragma unroll
  for (int t = 0; t < kK; ++t)
#pragma unroll
    for (int e = 0; e < kVec; ++e) acc[t][e] = Acc(0);
  const int qs = (pr.Q + kStrip - 1) / kStrip, strips = pr.N * pr.P * qs;  // strips of kStrip outputs per row
  const int per = (strips + pr.splits - 1) / pr.splits;
  const int e0 = int(blockIdx.z) * per, e1 = e0 + per < strips ? e0 + per : strips;
  if (live) {
    for (int st = e0 + lane_p; st < e1; st += lanes_p) {
      const int rest = st / qs, q0 = (st - rest * qs) * kStrip, n = rest / pr.P, p = rest - n * pr.P;
      const int ih = p * kStride - pr.pad_h + r, col0 = q0 * kStride - pr.pad_w;
      const bool row_ok = unsigned(ih) < unsigned(pr.H);  // a padding row: nothing loaded, zeros multiplied
      // 32-bit offsets: dw_vec_eligible checked they fit
      const T* dy_row = pr.dy + n * int(pr.dy_sn) + p * int(pr.dy_sh) + c0;
      const T* x_row = pr.x + n * int(pr.x_sn) + ih * int(pr.x_sh) + c0;
      uint4 gv[kStrip], xv[kWin];  // raw 16-byte vectors: every load issued before any use
#pragma unroll
      for (int j = 0; j < kStrip; ++j)
        gv[j] = dw_load_or_zero(dy_row + (q0 + j) * int(pr.dy_sw), row_ok && q0 + j < pr.Q);
#pragma unroll
      for (int c = 0; c < kWin; ++c)
        xv[c] = dw_load_or_zero(x_row + (col0 + c) * int(pr.x_sw), row_ok && unsigned(col0 + c) < unsigned(pr.W));
      Acc g[kStrip][kVec];  // the strip's dy, converted once for the row's kK taps
#pragma unroll
      for (int j = 0; j < kStrip; ++j) dw_unpack<T>(gv[j], g[j]);
#pragma unroll
      for (int c = 0; c < kWin; ++c) {
        Acc xf[kVec];  // window column c, converted once for every (output j, tap t = c − j·stride) it meets
        dw_unpack<T>(xv[c], xf);
#pragma unroll
        for (int j = 0; j < kStrip; ++j) {
          const int t = c - j * kStride;  // compile-time after unrolling
          if (t < 0 || t >= kK) continue;
#pragma unroll
          for (int e = 0; e < kVec; ++e) acc[t][e] += g[j][e] * xf[e];
        }
      }
    }
  }
  dw_wgrad_block_reduce<T, int, kK>(pr, acc, lanes_p, r * kK, kK * kK);
}

// Whether the windowed wgrad kernel takes this problem: 3×3, 5×5 or 7×7, dilation 1, stride 1 or 2 in both
// directions.
inline bool dw_wgrad_window_ok(const Conv2dShape& s) {
  return (s.R == 3 || s.R == 5 || s.R == 7) && s.S == s.R && s.dil_h == 1 && s.dil_w == 1 && s.stride_h == s.stride_w &&
         (s.stride_h == 1 || s.stride_h == 2);
}

// The wgrad fast path: `work` holds splits · C · R·S accumulators; the splits are the caller's choice
// (dw_wgrad_vec_splits). dy and x as for dw_vec_eligible.
template <typename T>
int dw_wgrad_vec_cvb(const Conv2dShape& s) {
  return int(std::min<int64_t>(s.C / DwVec<T>::kN, 32));
}

// Blocks along gridDim.y and resident blocks per SM of the channels-last wgrad kernel that takes this problem.
inline int dw_wgrad_grid_y(const Conv2dShape& s) {
  return dw_wgrad_window_ok(s) ? int(s.R) : int(ceil_div(s.R * s.S, int64_t(kDwVecTaps)));
}
inline int dw_wgrad_blocks_per_sm(const Conv2dShape& s) {
  if (!dw_wgrad_window_ok(s)) return kDwWgradBlocksPerSm;
  return s.R == 3 ? dw_wgrad_row_blocks_per_sm<3>() : s.R == 5 ? dw_wgrad_row_blocks_per_sm<5>()
                                                               : dw_wgrad_row_blocks_per_sm<7>();
}

template <typename T>
int64_t dw_wgrad_vec_splits(const Conv2dShape& s, int64_t sms) {
  const int cvb = dw_wgrad_vec_cvb<T>(s);
  const int64_t blocks = ceil_div(s.C / DwVec<T>::kN, int64_t(cvb)) * dw_wgrad_grid_y(s);
  const int64_t lanes_p = kDwThreads / cvb;
  // One wave: every SM's resident blocks all at once (the kernel is latency-bound, one round trip to memory per
  // strip and thread, so every resident warp counts and a second partial wave only adds its latency), but at least
  // 4 pixels per pixel lane (the block's reduction must stay small next to its share) and at most 512 splits (the
  // workspace is splits·C·R·S). The earlier rule (~4 blocks per SM, ≥ 16 pixels per lane) ran the small late
  // MobileNetV2 layers (960 channels at 7×7: 12 splits, 48 blocks) on a third of the SMs.
  int64_t splits = ceil_div(dw_wgrad_blocks_per_sm(s) * sms, blocks);
  splits = std::min<int64_t>(splits, std::max<int64_t>(1, s.npq() / (4 * lanes_p)));
  return std::max<int64_t>(1, std::min<int64_t>(splits, 512));
}

template <typename T>
cudaError_t launch_dw_wgrad_nhwc_vec(const Conv2dShape& s, const T* dy, Strides4 dys, const T* x, Strides4 xs, T* dw,
                                     Strides4 dws, acc_t<T>* work, int64_t splits, cudaStream_t stream) {
  DwWgradVecParams<T> pr;
  pr.dy = dy, pr.x = x, pr.ws = work;
  pr.dy_sn = dys.s0, pr.dy_sh = dys.s2, pr.dy_sw = dys.s3, pr.x_sn = xs.s0, pr.x_sh = xs.s2, pr.x_sw = xs.s3;
  pr.N = int(s.N), pr.C = int(s.C), pr.H = int(s.H), pr.W = int(s.W), pr.P = int(s.P), pr.Q = int(s.Q);
  pr.R = int(s.R), pr.S = int(s.S), pr.stride_h = int(s.stride_h), pr.stride_w = int(s.stride_w);
  pr.pad_h = int(s.pad_h), pr.pad_w = int(s.pad_w), pr.dil_h = int(s.dil_h), pr.dil_w = int(s.dil_w);
  pr.cvb = dw_wgrad_vec_cvb<T>(s), pr.splits = int(splits);
  const dim3 grid(static_cast<unsigned>(ceil_div(s.C / DwVec<T>::kN, int64_t(pr.cvb))),
                  static_cast<unsigned>(dw_wgrad_grid_y(s)), static_cast<unsigned>(splits));
  // 32-bit indexing: the caller checked dw_vec_eligible (dy and x), which includes the 32-bit bounds
  const dim3 block(kDwThreads);
  cudaError_t e;
  if (!dw_wgrad_window_ok(s))
    e = launch(dw_wgrad_nhwc_vec_kernel<T, int>, grid, block, 0, stream, pr);
  else if (s.R == 3)
    e = s.stride_h == 1 ? launch(dw_wgrad_row_kernel<T, 3, 1>, grid, block, 0, stream, pr)
                        : launch(dw_wgrad_row_kernel<T, 3, 2>, grid, block, 0, stream, pr);
  else if (s.R == 5)
    e = s.stride_h == 1 ? launch(dw_wgrad_row_kernel<T, 5, 1>, grid, block, 0, stream, pr)
                        : launch(dw_wgrad_row_kernel<T, 5, 2>, grid, block, 0, stream, pr);
  else
    e = s.stride_h == 1 ? launch(dw_wgrad_row_kernel<T, 7, 1>, grid, block, 0, stream, pr)
                        : launch(dw_wgrad_row_kernel<T, 7, 2>, grid, block, 0, stream, pr);
  if (e != cudaSuccess) return e;
  return launch_dependent(dw_wgrad_finish_kernel<T>, dw_finish_grid(s), dim3(32, kDwFinishLanes), 0, stream, s,
                          static_cast<const acc_t<T>*>(work), splits, dw, dws);
}

template <typename T>
cudaError_t launch_dw_fprop(const Conv2dShape& s, const T* x, Strides4 xs, const T* w, Strides4 ws, const T* bias,
                            T* y, Strides4 ys, bool channels_fastest, cudaStream_t stream, ConvEpilogue<T> epi) {
  const int64_t total = s.N * s.K * s.P * ceil_div(s.Q, kDwStrip);
  return launch(dw_fprop_kernel<T>, dim3(grid_1d(total, kDwThreads)), dim3(kDwThreads), 0, stream, s, x, xs, w, ws,
                bias, y, ys, channels_fastest, epi);
}

template <typename T>
cudaError_t launch_dw_dgrad(const Conv2dShape& s, const T* dy, Strides4 dys, const T* w, Strides4 ws, T* dx,
                            Strides4 dxs, bool channels_fastest, cudaStream_t stream) {
  const int64_t total = s.N * s.C * s.H * ceil_div(s.W, kDwStrip);
  return launch(dw_dgrad_kernel<T>, dim3(grid_1d(total, kDwThreads)), dim3(kDwThreads), 0, stream, s, dy, dys, w, ws,
                dx, dxs, channels_fastest);
}

// `work` holds splits · K · R·S accumulators (float; double for double).
template <typename T>
cudaError_t launch_dw_wgrad(const Conv2dShape& s, const T* dy, Strides4 dys, const T* x, Strides4 xs, T* dw,
                            Strides4 dws, acc_t<T>* work, int64_t splits, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(s.K), static_cast<unsigned>(ceil_div(s.R * s.S, kDwTaps)),
                  static_cast<unsigned>(splits));
  cudaError_t e = launch(dw_wgrad_kernel<T>, grid, dim3(kDwThreads), 0, stream, s, dy, dys, x, xs, work, splits);
  if (e != cudaSuccess) return e;
  return launch_dependent(dw_wgrad_finish_kernel<T>, dw_finish_grid(s), dim3(32, kDwFinishLanes), 0, stream, s,
                          static_cast<const acc_t<T>*>(work), splits, dw, dws);
}

}  // namespace cuda
}  // namespace pyconv
