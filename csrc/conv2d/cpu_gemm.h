// conv2d on the CPU, rung 1: "im2col_gemm". Each direction is a GEMM whose activation operand is gathered tile by
// tile (im2col) straight into the packed-panel layout of csrc/common/cpu_gemm.h, then multiplied by the vectorised
// micro-kernel. Requires contiguous NCHW activations and KCRS filters (the glue makes them so).
//
//   fprop  y[g]  (Kg × PQ)  = w[g] (Kg × CRS)   · col (CRS × PQ)      col[crs, pq] = x[n, g·Cg+c, h(p,r), w(q,s)]
//   dgrad  dcol  (CRS × PQ) = w[g]ᵀ (CRS × Kg)  · dy[g] (Kg × PQ)     then col2im: dx[n, c, h, w] += dcol[crs, pq]
//   wgrad  dw[g] (Kg × CRS) = Σ_n dy[g] (Kg × PQ) · colᵀ (PQ × CRS)
//
// PQ is cut into column tiles of kTilePQ so the gathered operand (CRS × tile) stays in L2 and every (n, g, tile)
// is an independent parallel task; the reduction dimension is cut into kBlockK slices so a micro-panel of B stays in
// L1 while it is reused against every row panel of A.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common/conv_params.h"
#include "../common/cpu_gemm.h"
#include "conv_epilogue.h"

namespace pyconv {
namespace cpu {

constexpr int64_t kTilePQ = 256;  // columns of one im2col tile (a multiple of every NR)
constexpr int64_t kBlockK = 128;  // reduction slice: a B micro-panel (NR·kBlockK·sizeof(T) = 16 KiB for float on AVX-512) stays in L1

// The im2col matrix of image n, group g, restricted to output positions [pq0, pq0 + cols):
//   col[crs, j] = x[n, g·Cg + c, h, w]   with (c, r, s) = crs in KCRS order (so row crs pairs with w[k][crs]),
//   (p, q) = pq0 + j,  h = p·stride_h − pad_h + r·dil_h,  w = q·stride_w − pad_w + s·dil_w,  0 outside the image.
// Two gathers write it straight into a packed B operand, each in the order its layout is stored so every write is
// sequential and no index is divided inside the loops:
//   im2col_pack_cols: panels of NR columns  → [cols/NR][CRS][NR]    (fprop: B = col)
//   im2col_pack_rows: panels of NR rows     → [CRS/NR][cols][NR]    (wgrad: B = colᵀ)
// Where a panel runs past the matrix edge it is zero-filled.
struct Im2colTile {
  std::vector<int64_t> h0, w0;  // per column j: p·stride_h − pad_h and q·stride_w − pad_w
  Im2colTile(const Conv2dShape& s, int64_t pq0, int64_t cols) : h0(cols), w0(cols) {
    int64_t p = pq0 / s.Q, q = pq0 % s.Q;
    for (int64_t j = 0; j < cols; ++j) {
      h0[j] = p * s.stride_h - s.pad_h;
      w0[j] = q * s.stride_w - s.pad_w;
      if (++q == s.Q) { q = 0; ++p; }
    }
  }
};

// Within one panel the columns j0..j0+NR-1 are consecutive output positions, which form at most a few runs of
// consecutive q on one output row p. Along a run, h is fixed and w advances by stride_w, so each (c, r, s) row of a
// run is a strided copy from one input row with zeros where w leaves the image: a memcpy-like loop for stride 1,
// instead of a bounds test per element.
//
// Here the columns are the flattened output positions m = (n·P + p)·Q + q of all images, [m0, m0 + cols): when P·Q
// is small (7×7 late layers) one tile spans several images, so the filter operand is reused across images instead of
// being streamed from memory once per image.
template <typename T>
inline void im2col_pack_cols(const Conv2dShape& s, const T* x, int64_t g, int64_t m0, int64_t cols, int nr,
                             T* out) {
  struct Run { int64_t jj, len, p, q; const T* xg; };
  std::vector<Run> runs;
  const int64_t PQ = s.P * s.Q;
  for (int64_t j0 = 0; j0 < cols; j0 += nr) {
    const int64_t jn = std::min<int64_t>(nr, cols - j0);
    runs.clear();
    for (int64_t jj = 0; jj < jn;) {  // split the panel at output-row (and so image) boundaries
      const int64_t m = m0 + j0 + jj, n = m / PQ, p = m % PQ / s.Q, q = m % s.Q;
      const int64_t len = std::min(jn - jj, s.Q - q);
      runs.push_back({jj, len, p, q, x + (n * s.C + g * s.Cg()) * s.H * s.W});
      jj += len;
    }
    for (int64_t c = 0; c < s.Cg(); ++c)
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t t = 0; t < s.S; ++t) {
          for (const Run& run : runs) {
            const T* plane = run.xg + c * s.H * s.W;
            T* o = out + run.jj;
            const int64_t h = run.p * s.stride_h - s.pad_h + r * s.dil_h;
            if (h < 0 || h >= s.H) {  // the whole run reads the top/bottom padding
              for (int64_t i = 0; i < run.len; ++i) o[i] = T(0);
              continue;
            }
            const T* row = plane + h * s.W;
            const int64_t w0 = run.q * s.stride_w - s.pad_w + t * s.dil_w;  // w of the run's first column
            // columns i with 0 ≤ w0 + i·stride_w < W:  i in [lo, hi)
            int64_t lo = w0 >= 0 ? 0 : (-w0 + s.stride_w - 1) / s.stride_w;
            int64_t hi = w0 >= s.W ? 0 : (s.W - 1 - w0) / s.stride_w + 1;
            lo = std::min(lo, run.len), hi = std::max(lo, std::min(hi, run.len));
            for (int64_t i = 0; i < lo; ++i) o[i] = T(0);
            if (s.stride_w == 1) {
              const T* src = row + w0;
              for (int64_t i = lo; i < hi; ++i) o[i] = src[i];
            } else {
              for (int64_t i = lo; i < hi; ++i) o[i] = row[w0 + i * s.stride_w];
            }
            for (int64_t i = hi; i < run.len; ++i) o[i] = T(0);
          }
          for (int64_t jj = jn; jj < nr; ++jj) out[jj] = T(0);
          out += nr;
        }
  }
}

template <typename T>
inline void im2col_pack_rows(const Conv2dShape& s, const T* x, int64_t n, int64_t g, int64_t pq0, int64_t cols,
                             int nr, T* out) {
  const Im2colTile tile(s, pq0, cols);
  const T* xg = x + (n * s.C + g * s.Cg()) * s.H * s.W;
  const int64_t CRS = s.crs();
  std::vector<int64_t> plane(nr), dr(nr), ds(nr);  // per row of the panel: channel plane offset and tap offsets
  for (int64_t i0 = 0; i0 < CRS; i0 += nr) {
    const int64_t in = std::min<int64_t>(nr, CRS - i0);
    for (int64_t ii = 0; ii < in; ++ii) {
      const int64_t crs = i0 + ii, c = crs / (s.R * s.S), r = crs / s.S % s.R, t = crs % s.S;
      plane[ii] = c * s.H * s.W, dr[ii] = r * s.dil_h, ds[ii] = t * s.dil_w;
    }
    for (int64_t j = 0; j < cols; ++j) {
      for (int64_t ii = 0; ii < in; ++ii) {
        const int64_t h = tile.h0[j] + dr[ii], w = tile.w0[j] + ds[ii];
        out[ii] = (h >= 0 && h < s.H && w >= 0 && w < s.W) ? xg[plane[ii] + h * s.W + w] : T(0);
      }
      for (int64_t ii = in; ii < nr; ++ii) out[ii] = T(0);
      out += nr;
    }
  }
}

// Packs rows [0, M) × reduction [0, Kd) of a matrix given by elem(i, kd) into MR-row panels, zero-padded.
template <typename T, typename Elem>
inline void pack_a(int64_t M, int64_t Kd, int mr, Elem&& elem, T* out) {
  for (int64_t ip = 0; ip < M; ip += mr)
    for (int64_t kd = 0; kd < Kd; ++kd)
      for (int i = 0; i < mr; ++i) *out++ = (ip + i < M) ? elem(ip + i, kd) : T(0);
}

// C (M × N, row stride ldc) += Ap · Bp over Kd, both operands packed (see cpu_gemm.h).
template <typename T>
inline void gemm_packed(const MicroKernel<T>& uk, int64_t M, int64_t N, int64_t Kd, const T* Ap, const T* Bp, T* C,
                        int64_t ldc) {
  for (int64_t k0 = 0; k0 < Kd; k0 += kBlockK) {
    const int64_t kb = std::min(kBlockK, Kd - k0);
    for (int64_t j0 = 0; j0 < N; j0 += uk.nr) {
      const T* b = Bp + (j0 / uk.nr) * Kd * uk.nr + k0 * uk.nr;  // B micro-panel: reused by every A panel below
      for (int64_t i0 = 0; i0 < M; i0 += uk.mr) {
        const T* a = Ap + (i0 / uk.mr) * Kd * uk.mr + k0 * uk.mr;
        uk.fn(kb, a, b, C + i0 * ldc + j0, ldc, int(std::min<int64_t>(uk.mr, M - i0)),
              int(std::min<int64_t>(uk.nr, N - j0)));
      }
    }
  }
}

inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// Packs rows [0, M) of one matrix, given by elem(i, kd), into the MR-row panels that live at `out`, panel by panel in
// parallel: the weight repack of a large layer (K·C·R·S ≈ 2.4 M floats for 512 channels of 3×3) would otherwise be
// a serial prologue that costs a sizeable fraction of the whole convolution.
template <typename T, typename Elem, typename ParallelFor>
inline void pack_a_parallel(int64_t M, int64_t Kd, int mr, Elem&& elem, T* out, ParallelFor&& pfor) {
  const int64_t panels = (M + mr - 1) / mr;
  pfor(0, panels, [&](int64_t b, int64_t e) {
    for (int64_t ip = b; ip < e; ++ip) {
      T* o = out + ip * Kd * mr;
      const int64_t i0 = ip * mr;
      for (int64_t kd = 0; kd < Kd; ++kd)
        for (int i = 0; i < mr; ++i) *o++ = (i0 + i < M) ? elem(i0 + i, kd) : T(0);
    }
  });
}

// The fused epilogue over one output segment y[n, k, p, q .. ] of `len` elements (row-major over (p, q)), as two
// tight loops the compiler can vectorise — the residual add (a straight run when the residual is NCHW-contiguous,
// else (p, q) stepped along), then the activation with its kind fixed at compile time (one dispatch per segment, not
// a switch per element).
template <typename T>
void epilogue_segment(const ConvEpilogue<T>& epi, const T* src, T* dst, int64_t len, int64_t n, int64_t k,
                      int64_t p, int64_t q, int64_t Q) {
  if (epi.residual != nullptr) {
    const Strides4 rs = epi.rs;
    if (rs.s3 == 1 && rs.s2 == Q) {
      const T* r = epi.residual + rs.at(n, k, p, q);
      for (int64_t i = 0; i < len; ++i) dst[i] = src[i] + r[i];
    } else {
      for (int64_t i = 0; i < len; ++i) {
        dst[i] = src[i] + epi.residual[rs.at(n, k, p, q)];
        if (++q == Q) q = 0, ++p;
      }
    }
    src = dst;
  }
  if (epi.act >= 0) {
    dispatch_act(static_cast<Act>(epi.act), [&](auto tag) {
      constexpr Act A = decltype(tag)::value;
      const T param = epi.param;
      for (int64_t i = 0; i < len; ++i) dst[i] = act::forward<A, T>(src[i], param);
    });
  } else if (src != dst) {
    std::copy(src, src + len, dst);
  }
}

template <typename T, typename ParallelFor>
void conv2d_fprop_im2col_gemm(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y,
                              const ConvEpilogue<T>& epi, int64_t max_threads, ParallelFor&& pfor) {
  const auto uk = select_micro_kernel<T>();
  const int64_t Kg = s.Kg(), CRS = s.crs(), PQ = s.P * s.Q;
  // Filters of every group packed as A panels (row = output channel k, reduction = crs).
  const int64_t wp_group = round_up(Kg, uk.mr) * CRS;
  std::vector<T> wp(s.groups * wp_group);
  for (int64_t g = 0; g < s.groups; ++g) {
    const T* wg = w + g * Kg * CRS;
    pack_a_parallel<T>(Kg, CRS, uk.mr, [&](int64_t k, int64_t crs) { return wg[k * CRS + crs]; },
                       wp.data() + g * wp_group, pfor);
  }
  // Column tiles over all N·P·Q output positions: at most kTilePQ wide, and as many per group as makes the task
  // count a multiple of the thread count, with equal widths, so the static split of parallel_for is balanced.
  const int64_t NPQ = s.N * PQ, threads = std::max<int64_t>(1, max_threads);
  int64_t tiles = (NPQ + kTilePQ - 1) / kTilePQ;
  if (s.groups < threads) tiles = round_up(tiles, threads / s.groups);
  const int64_t tile_w = (NPQ + tiles - 1) / tiles;
  tiles = (NPQ + tile_w - 1) / tile_w;
  pfor(0, s.groups * tiles, [&](int64_t begin, int64_t end) {
    std::vector<T> col(CRS * round_up(kTilePQ, uk.nr));  // this task's packed im2col tile: [cols/NR][CRS][NR]
    std::vector<T> ct(Kg * kTilePQ);                         // its output tile, row-major Kg × cols
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / tiles, m0 = (task % tiles) * tile_w, cols = std::min(tile_w, NPQ - m0);
      im2col_pack_cols(s, x, g, m0, cols, uk.nr, col.data());
      for (int64_t k = 0; k < Kg; ++k) std::fill(ct.data() + k * cols, ct.data() + (k + 1) * cols, bias ? bias[g * Kg + k] : T(0));
      gemm_packed(uk, Kg, cols, CRS, wp.data() + g * wp_group, col.data(), ct.data(), cols);
      // Scatter the tile into y, one image segment at a time: y[n, g·Kg + k, pq .. pq + len); the fused epilogue
      // (residual, activation) is applied on the way, while the tile is still in cache.
      for (int64_t j = 0; j < cols;) {
        const int64_t m = m0 + j, n = m / PQ, pq = m % PQ, len = std::min(cols - j, PQ - pq);
        for (int64_t k = 0; k < Kg; ++k) {
          const T* src = ct.data() + k * cols + j;
          T* dst = y + (n * s.K + g * Kg + k) * PQ + pq;
          if (epi.trivial()) {
            std::copy(src, src + len, dst);
          } else {
            epilogue_segment(epi, src, dst, len, n, g * Kg + k, pq / s.Q, pq % s.Q, s.Q);
          }
        }
        j += len;
      }
    }
  });
}

template <typename T, typename ParallelFor>
void conv2d_fprop_im2col_gemm(const Conv2dShape& s, const T* x, const T* w, const T* bias, T* y,
                              int64_t max_threads, ParallelFor&& pfor) {
  conv2d_fprop_im2col_gemm(s, x, w, bias, y, ConvEpilogue<T>{}, max_threads, pfor);
}

template <typename T, typename ParallelFor>
void conv2d_dgrad_im2col_gemm(const Conv2dShape& s, const T* dy, const T* w, T* dx, ParallelFor&& pfor) {
  const auto uk = select_micro_kernel<T>();
  const int64_t Kg = s.Kg(), Cg = s.Cg(), CRS = s.crs(), PQ = s.P * s.Q;
  // A = wᵀ per group: row crs, reduction k.
  const int64_t wt_group = round_up(CRS, uk.mr) * Kg;
  std::vector<T> wt(s.groups * wt_group);
  for (int64_t g = 0; g < s.groups; ++g) {
    const T* wg = w + g * Kg * CRS;
    pack_a_parallel<T>(CRS, Kg, uk.mr, [&](int64_t crs, int64_t k) { return wg[k * CRS + crs]; },
                       wt.data() + g * wt_group, pfor);
  }
  // One task per (n, g): col2im scatters overlapping windows into dx[n, g's channels], which no other task touches.
  pfor(0, s.N * s.groups, [&](int64_t begin, int64_t end) {
    std::vector<T> dyp(round_up(kTilePQ, uk.nr) * Kg);  // packed dy tile: [cols/NR][Kg][NR]
    std::vector<T> dcol(CRS * kTilePQ);                    // row-major CRS × cols
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / s.groups, g = task % s.groups;
      T* dxg = dx + (n * s.C + g * Cg) * s.H * s.W;
      std::fill(dxg, dxg + Cg * s.H * s.W, T(0));
      const T* dyg = dy + (n * s.K + g * Kg) * PQ;
      for (int64_t pq0 = 0; pq0 < PQ; pq0 += kTilePQ) {
        const int64_t cols = std::min(kTilePQ, PQ - pq0), nr = uk.nr;
        for (int64_t jp = 0; jp < cols; jp += nr)
          for (int64_t k = 0; k < Kg; ++k)
            for (int64_t jj = 0; jj < nr; ++jj)
              dyp[(jp / nr) * Kg * nr + k * nr + jj] = (jp + jj < cols) ? dyg[k * PQ + pq0 + jp + jj] : T(0);
        std::fill(dcol.begin(), dcol.begin() + CRS * cols, T(0));
        gemm_packed(uk, CRS, cols, Kg, wt.data() + g * wt_group, dyp.data(), dcol.data(), cols);
        // col2im: the transpose of im2col's gather; taps that fell in the padding are dropped.
        const int64_t p0 = pq0 / s.Q, q0 = pq0 % s.Q;
        for (int64_t c = 0; c < Cg; ++c)
          for (int64_t r = 0; r < s.R; ++r)
            for (int64_t t = 0; t < s.S; ++t) {
              const T* row = dcol.data() + ((c * s.R + r) * s.S + t) * cols;
              T* plane = dxg + c * s.H * s.W;
              int64_t p = p0, q = q0;
              for (int64_t j = 0; j < cols; ++j) {
                const int64_t h = p * s.stride_h - s.pad_h + r * s.dil_h;
                const int64_t ww = q * s.stride_w - s.pad_w + t * s.dil_w;
                if (h >= 0 && h < s.H && ww >= 0 && ww < s.W) plane[h * s.W + ww] += row[j];
                if (++q == s.Q) { q = 0; ++p; }
              }
            }
      }
    }
  });
}

template <typename T, typename ParallelFor>
void conv2d_wgrad_im2col_gemm(const Conv2dShape& s, const T* dy, const T* x, T* dw, int64_t max_threads,
                              ParallelFor&& pfor) {
  const auto uk = select_micro_kernel<T>();
  const int64_t Kg = s.Kg(), CRS = s.crs(), PQ = s.P * s.Q;
  // The reduction runs over n: split the batch into `chunks` contiguous ranges, each summed into its own partial dw,
  // then add the partials in chunk order. No atomics, and the order of additions is fixed for a given thread count.
  const int64_t chunks = std::max<int64_t>(1, std::min(s.N, max_threads));
  const int64_t dw_size = s.K * CRS;
  std::vector<T> partial(chunks * dw_size, T(0));
  pfor(0, chunks, [&](int64_t begin, int64_t end) {
    std::vector<T> dyp(round_up(Kg, uk.mr) * kTilePQ);  // A: dy tile, [Kg/MR][cols][MR]
    std::vector<T> colT(round_up(CRS, uk.nr) * kTilePQ);  // B: colᵀ tile, [CRS/NR][cols][NR]
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      T* dwc = partial.data() + chunk * dw_size;
      for (int64_t n = chunk * s.N / chunks; n < (chunk + 1) * s.N / chunks; ++n)
        for (int64_t g = 0; g < s.groups; ++g)
          for (int64_t pq0 = 0; pq0 < PQ; pq0 += kTilePQ) {
            const int64_t cols = std::min(kTilePQ, PQ - pq0), nr = uk.nr;
            const T* dyg = dy + (n * s.K + g * Kg) * PQ + pq0;
            pack_a<T>(Kg, cols, uk.mr, [&](int64_t k, int64_t j) { return dyg[k * PQ + j]; }, dyp.data());
            im2col_pack_rows(s, x, n, g, pq0, cols, nr, colT.data());
            gemm_packed(uk, Kg, CRS, cols, dyp.data(), colT.data(), dwc + g * Kg * CRS, CRS);
          }
    }
  });
  pfor(0, dw_size, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T acc = partial[i];
      for (int64_t c = 1; c < chunks; ++c) acc += partial[c * dw_size + i];
      dw[i] = acc;
    }
  });
}

}  // namespace cpu
}  // namespace pyconv
