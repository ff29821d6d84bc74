// Self-tests of the CUDA emulator: small kernels written exactly as for a GPU, run through pyconv::launch, with their
// results checked against values worked out independently on the host. Three kinds:
//   feature        must run and give the right answer (warp shuffles with mask and width, votes, block votes,
//                  atomics across blocks and OS threads, dynamic shared memory, a warp-shuffle reduction, mma.sync f16/bf16/tf32,
//                  cp.async with zero fill, ldmatrix.x4 plain and transposed, Hopper's wgmma on 128-byte-swizzled
//                  shared memory and an mbarrier producer/consumer ring — on a GPU only where the device is compute
//                  capability 9.0);
//   emulator_bug   a seeded bug the emulator itself must report (early return before a barrier, divergent barriers,
//                  full-mask shuffle in a partial warp, shuffle with an exited lane, divergent warp collectives, a
//                  shuffle whose lanes wait at a barrier instead, launch configurations CUDA rejects, a cp.async
//                  over a stage a pending wgmma still reads, an mbarrier phase that never completes, a wgmma issued
//                  before the mbarrier said its operands had landed, a named barrier too few threads reach);
//   sanitizer_bug  a seeded bug only a sanitizer sees (missing __syncthreads → TSan, global out-of-bounds read → ASan,
//                  shared-memory index overflow → UBSan); run by tests/emu_harness under that sanitizer.
// Used by the Python extension (pyconv._C_emu.selftest) and the standalone sanitizer harness. No torch header.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "../common/cuda_common.cuh"
#include "../common/mbarrier.cuh"
#include "../common/tma.cuh"
#include "../common/warp_mma.cuh"
#include "../common/warpgroup_mma.cuh"

namespace pyconv {
namespace emu_selftest {

// ---- kernels --------------------------------------------------------------------------------------------------

// Each lane records the result of every shuffle flavour. Block of 48 threads: warp 0 is full, warp 1 has 16 lanes
// and must use mask 0xffff.
__global__ void shfl_kernel(int* out) {
  const int t = threadIdx.x, lane = t % 32;
  const unsigned mask = t < 32 ? 0xffffffffu : 0x0000ffffu;
  const int v = 100 + t;
  int* o = out + t * 6;
  o[0] = __shfl_sync(mask, v, 5);            // broadcast lane 5 of the warp
  o[1] = __shfl_sync(mask, v, lane + 3, 8);  // (lane+3) mod 8 within each 8-lane segment
  o[2] = __shfl_up_sync(mask, v, 3, 16);     // lanes below 3 within a 16-segment keep their own value
  o[3] = __shfl_down_sync(mask, v, 2, 8);
  o[4] = __shfl_xor_sync(mask, v, 5);
  o[5] = __shfl_xor_sync(mask, v, 17, 16);  // lanes whose partner lies in a later 16-segment keep their own value
}

__global__ void vote_kernel(unsigned* out) {
  const int t = threadIdx.x;
  const unsigned mask = t < 32 ? 0xffffffffu : 0x0000ffffu;
  unsigned* o = out + t * 7;
  o[0] = __ballot_sync(mask, t % 3 == 0);
  o[1] = __any_sync(mask, t == 40);
  o[2] = __all_sync(mask, t < 40);
  o[3] = __syncthreads_count(t % 5 == 0);
  o[4] = __syncthreads_and(t < 48);
  o[5] = __syncthreads_or(t == 47);
  __syncwarp(mask);
  o[6] = __activemask();
}

__global__ void atomics_kernel(int* count, float* fsum, double* dsum, int* imax, unsigned* umin, int* cas_ticket,
                               int* tickets) {
  const int gid = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(count, 1);
  atomicAdd(fsum, 0.5f);  // sums of 0.5 stay exact in float for these sizes, in any order
  atomicAdd(dsum, 0.25);
  atomicMax(imax, gid * 7 % 1000);
  atomicMin(umin, 5000u - unsigned(gid));
  // A ticket dispenser built from atomicCAS: every thread must get a distinct ticket.
  int old = atomicAdd(cas_ticket, 0), assumed;  // an atomic read: a plain one would race with the CAS below
  do {
    assumed = old;
    old = atomicCAS(cas_ticket, assumed, assumed + 1);
  } while (old != assumed);
  tickets[gid] = old;
}

// Reverses each block's slice through dynamic shared memory.
__global__ void dynamic_smem_kernel(const float* in, float* out) {
  PYCONV_EXTERN_SHARED(float, buf);
  const int t = threadIdx.x, n = blockDim.x, base = blockIdx.x * n;
  buf[t] = in[base + t];
  __syncthreads();  // the whole slice is staged before anyone reads a mirrored element
  out[base + t] = buf[n - 1 - t];
}

// Block sum: shuffle-down tree inside each warp, one partial per warp in shared memory, then warp 0 sums those.
__global__ void reduce_kernel(const float* in, float* out, int n) {
  __shared__ float partial[32];
  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  float v = 0;
  for (int i = t; i < n; i += blockDim.x) v += in[i];
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  if (lane == 0) partial[warp] = v;
  __syncthreads();  // all warp partials written before warp 0 reads them
  if (warp == 0) {
    const int nwarps = blockDim.x / 32;
    v = lane < nwarps ? partial[lane] : 0.0f;
    for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
    if (lane == 0) *out = v;
  }
}

// One warp computes D = A·B + C for A 16×16 (row-major halves), B 16×8 (stored k-major, i.e. B[k][n]), C 16×8 floats,
// loading each lane's fragments by the documented layout.
__global__ void mma_kernel(const __half* A, const __half* B, const float* C, float* D) {
  const int lane = threadIdx.x, g = lane / 4, tig = lane % 4;
  uint32_t a[4], b[2];
  float c[4], d[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + ((i & 1) ? 8 : 0), col = 2 * tig + ((i & 2) ? 8 : 0);
    a[i] = pack_half2(A[row * 16 + col], A[row * 16 + col + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    const int k = 2 * tig + (i ? 8 : 0);
    b[i] = pack_half2(B[k * 8 + g], B[(k + 1) * 8 + g]);
  }
  for (int i = 0; i < 4; ++i) c[i] = C[(g + ((i & 2) ? 8 : 0)) * 8 + 2 * tig + (i & 1)];
  mma_m16n8k16_f16_f32(d, a, b, c);
  for (int i = 0; i < 4; ++i) D[(g + ((i & 2) ? 8 : 0)) * 8 + 2 * tig + (i & 1)] = d[i];
}

// The bfloat16 twin of mma_kernel: operands travel as raw 16-bit patterns.
__global__ void mma_bf16_kernel(const uint16_t* A, const uint16_t* B, const float* C, float* D) {
  const int lane = threadIdx.x, g = lane / 4, tig = lane % 4;
  uint32_t a[4], b[2];
  float c[4], d[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + ((i & 1) ? 8 : 0), col = 2 * tig + ((i & 2) ? 8 : 0);
    a[i] = uint32_t(A[row * 16 + col]) | (uint32_t(A[row * 16 + col + 1]) << 16);
  }
  for (int i = 0; i < 2; ++i) {
    const int k = 2 * tig + (i ? 8 : 0);
    b[i] = uint32_t(B[k * 8 + g]) | (uint32_t(B[(k + 1) * 8 + g]) << 16);
  }
  for (int i = 0; i < 4; ++i) c[i] = C[(g + ((i & 2) ? 8 : 0)) * 8 + 2 * tig + (i & 1)];
  mma_m16n8k16_bf16_f32(d, a, b, c);
  for (int i = 0; i < 4; ++i) D[(g + ((i & 2) ? 8 : 0)) * 8 + 2 * tig + (i & 1)] = d[i];
}

// m16n8k8 TF32: A 16×8 and B 8×8 floats (k-major B[k][n]), rounded by to_tf32 as the kernels do.
__global__ void mma_tf32_kernel(const float* A, const float* B, const float* C, float* D) {
  const int lane = threadIdx.x, g = lane / 4, t = lane % 4;
  auto bits = [](float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    return to_tf32(u);
  };
  const uint32_t a[4] = {bits(A[g * 8 + t]), bits(A[(g + 8) * 8 + t]), bits(A[g * 8 + t + 4]),
                         bits(A[(g + 8) * 8 + t + 4])};
  const uint32_t b[2] = {bits(B[t * 8 + g]), bits(B[(t + 4) * 8 + g])};
  float c[4], d[4];
  for (int i = 0; i < 4; ++i) c[i] = C[(g + ((i & 2) ? 8 : 0)) * 8 + 2 * t + (i & 1)];
  mma_m16n8k8_tf32(d, a, b, c);
  for (int i = 0; i < 4; ++i) D[(g + ((i & 2) ? 8 : 0)) * 8 + 2 * t + (i & 1)] = d[i];
}

// cp.async into dynamic shared memory, then ldmatrix.x4 and ldmatrix.x4.trans from it. 32 threads; `in` holds four
// 8×8 matrices of 16-bit values (matrix i, row r, col c at i·64 + r·8 + c). Chunks of odd index are copied with
// src-size 0 (zero fill). out[lane·8 + 0..3] = the four registers of ldmatrix, out[lane·8 + 4..7] those of .trans.
__global__ void ldmatrix_kernel(const uint16_t* in, uint32_t* out) {
  PYCONV_EXTERN_SHARED(uint16_t, sm);
  const int lane = threadIdx.x;
  // 32 chunks of 16 bytes: lane copies chunk `lane` (matrix lane/8, row lane%8) as one cp.async group.
  const bool valid = lane % 2 == 0;
  cp_async_16(sm + lane * 8, valid ? in + lane * 8 : in, valid);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();  // every lane's chunk has landed before any lane reads another's rows
  uint32_t r[4], t[4];
  ldmatrix_x4(r, sm + lane * 8);  // lane l names row l%8 of matrix l/8, which is chunk l
  ldmatrix_x4<true>(t, sm + lane * 8);
  for (int i = 0; i < 4; ++i) out[lane * 8 + i] = r[i], out[lane * 8 + 4 + i] = t[i];
}

// Shared by both wgmma self-test kernels: the dynamic shared memory's first 1024-byte boundary (the swizzle pattern's
// alignment), and everything after the copies — wait, async-proxy fence, barrier, the four k16 steps (descriptors
// kStep units apart) in two commit groups onto a non-zero C, the waits, and the accumulators to D.
__device__ __forceinline__ __half* wgmma_selftest_smem(unsigned char* raw) {
  const uint32_t raw_addr = smem_window_addr(raw);
  return reinterpret_cast<__half*>(raw + ((1024u - raw_addr % 1024u) % 1024u));
}
template <bool kMnA, bool kMnB>
__device__ __forceinline__ void wgmma_selftest_product(const __half* sA, const __half* sB, float* D) {
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async_smem();
  __syncthreads();
  float acc[16][4];
  for (int j = 0; j < 16; ++j)
    for (int e = 0; e < 4; ++e) acc[j][e] = float(j - e);  // a non-zero C: wgmma accumulates onto it
  // one k16 step: 16 rows (MN-major) or 32 bytes (K-major)
  constexpr uint64_t kStepA = kMnA ? 2048 / 16 : 32 / 16, kStepB = kMnB ? 2048 / 16 : 32 / 16;
  const uint32_t a_addr = smem_window_addr(sA), b_addr = smem_window_addr(sB);
  const uint64_t da = kMnA ? wgmma_desc_sw128_mn(a_addr, 64 * 64 * 2) : wgmma_desc_sw128(a_addr);
  const uint64_t db = kMnB ? wgmma_desc_sw128_mn(b_addr, 64 * 64 * 2) : wgmma_desc_sw128(b_addr);
  wgmma_fence();
  wgmma_m64k16<__half, 128, kMnA, kMnB>(acc, da, db);
  wgmma_m64k16<__half, 128, kMnA, kMnB>(acc, da + kStepA, db + kStepB);
  wgmma_commit();
  wgmma_m64k16<__half, 128, kMnA, kMnB>(acc, da + 2 * kStepA, db + 2 * kStepB);
  wgmma_m64k16<__half, 128, kMnA, kMnB>(acc, da + 3 * kStepA, db + 3 * kStepB);
  wgmma_commit();
  wgmma_wait<1>();
  wgmma_wait<0>();
  const int tid = threadIdx.x, w = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  for (int j = 0; j < 16; ++j)
    for (int e = 0; e < 4; ++e) D[(16 * w + g + 8 * (e / 2)) * 128 + 8 * j + 2 * t + e % 2] = acc[j][e];
}

// wgmma.mma_async m64n128k16 (float16) over a 64-wide reduction: one warpgroup (128 threads). A is 64 × 64 and B is
// 128 × 64 (row n = output column n), both row-major with k fastest in global memory; each thread cp.asyncs 16-byte
// chunks into 1024-byte-aligned shared tiles at the 128-byte-swizzled position (chunk c of row r at c ^ (r mod 8)),
// exactly as the wgmma conv kernel does, then issues the four k16 steps in two commit groups (descriptor + 2 per step)
// and writes its accumulators: D[16w + g + 8h][8j + 2t + c] from acc[j][2h + c] (warp w, lane 4g + t).
__global__ void wgmma_kernel(const __half* A, const __half* B, float* D) {
  PYCONV_EXTERN_SHARED(unsigned char, raw);
  __half* sA = wgmma_selftest_smem(raw);
  __half* sB = sA + 64 * 64;
  for (int c = threadIdx.x; c < (64 + 128) * 8; c += 128) {  // 8 chunks per 64-element row
    const int row = c / 8, chunk = c % 8;
    if (row < 64)
      cp_async_16(sA + row * 64 + (chunk ^ (row & 7)) * 8, A + row * 64 + chunk * 8, true);
    else
      cp_async_16(sB + (row - 64) * 64 + (chunk ^ ((row - 64) & 7)) * 8, B + (row - 64) * 64 + chunk * 8, true);
  }
  wgmma_selftest_product<false, false>(sA, sB, D);
}

// The same product with both operands MN-major (wgrad's layout, imm-trans-a/b = 1): A is stored [k][m] (64 × 64) and
// B [k][n] (64 × 128), m and n fastest. Shared tiles: 64 reduction rows of 128 bytes (64 m or n) per 64-element
// block, chunk c of row k at c ^ (k mod 8); B's two column blocks 8 KiB apart (the descriptor's LBO); one k16 step
// is 16 rows = 2048 bytes further (descriptor + 128). D[m][n] = Σ_k A[k][m]·B[k][n], written as in wgmma_kernel.
__global__ void wgmma_mn_kernel(const __half* A, const __half* B, float* D) {
  PYCONV_EXTERN_SHARED(unsigned char, raw);
  __half* sA = wgmma_selftest_smem(raw);
  __half* sB = sA + 64 * 64;
  for (int c = threadIdx.x; c < 64 * (8 + 16); c += 128) {  // per reduction row: 8 chunks of A, 16 of B
    const int k = c / 24, chunk = c % 24;
    if (chunk < 8) {
      cp_async_16(sA + k * 64 + (chunk ^ (k & 7)) * 8, A + k * 64 + chunk * 8, true);
    } else {
      const int bc = chunk - 8, blk = bc / 8;
      cp_async_16(sB + blk * 64 * 64 + k * 64 + ((bc % 8) ^ (k & 7)) * 8, B + k * 128 + bc * 8, true);
    }
  }
  wgmma_selftest_product<true, true>(sA, sB, D);
}

// The mixed layout of the TMA dgrad kernel (imm-trans-a = 0, imm-trans-b = 1): A K-major as in wgmma_kernel (A[m][k]),
// B MN-major as in wgmma_mn_kernel (B[k][n], two 64-column blocks 8 KiB apart). D[m][n] = Σ_k A[m][k]·B[k][n].
__global__ void wgmma_kb_kernel(const __half* A, const __half* B, float* D) {
  PYCONV_EXTERN_SHARED(unsigned char, raw);
  __half* sA = wgmma_selftest_smem(raw);
  __half* sB = sA + 64 * 64;
  for (int c = threadIdx.x; c < 64 * (8 + 16); c += 128) {  // A: 64 rows m of 8 chunks; B: 64 rows k of 16 chunks
    if (c < 64 * 8) {
      const int m = c / 8, chunk = c % 8;
      cp_async_16(sA + m * 64 + (chunk ^ (m & 7)) * 8, A + m * 64 + chunk * 8, true);
    } else {
      const int k = (c - 64 * 8) / 16, bc = (c - 64 * 8) % 16, blk = bc / 8;
      cp_async_16(sB + blk * 64 * 64 + k * 64 + ((bc % 8) ^ (k & 7)) * 8, B + k * 128 + bc * 8, true);
    }
  }
  wgmma_selftest_product<false, true>(sA, sB, D);
}

// An mbarrier ring as the warp-specialised conv kernel runs it (cuda_tensor_core_sm90.cuh): 256 threads; warpgroup 0
// copies kRingTiles tiles of 128 16-byte chunks (4 floats; chunk t by producer thread t) into a ring of 3 stages
// with cp.async, each thread arriving on the stage's `full` barrier by cp.async.mbarrier.arrive.noinc (count 128),
// from the second lap on after waiting for the stage's `empty` barrier; warpgroup 1 waits on `full`, reads chunk
// 127 − t of the stage (another thread's copy), accumulates it weighted by the tile number (so a stale or early
// stage changes the sum) and arrives on `empty` (count 128). Two blocks, each writing its own half of out:
// out[block][4t + e] = Σ_tile (tile + 1)·in[tile][127 − t][e].
constexpr int kRingTiles = 10, kRingStages = 3;
__global__ void mbarrier_ring_kernel(const float* in, float* out) {
  PYCONV_EXTERN_SHARED(unsigned char, raw);
  float* ring = reinterpret_cast<float*>(raw);  // [kRingStages][128 chunks][4]
  uint64_t* full = reinterpret_cast<uint64_t*>(raw + kRingStages * 128 * 16);
  uint64_t* empty = full + kRingStages;
  const int tid = threadIdx.x, t = tid % 128;
  if (tid == 0)
    for (int s = 0; s < kRingStages; ++s) {
      mbarrier_init(&full[s], 128);
      mbarrier_init(&empty[s], 128);
    }
  if (tid == 0) mbarrier_init_fence();
  __syncthreads();
  if (tid < 128) {
    for (int k = 0; k < kRingTiles; ++k) {
      const int s = k % kRingStages;
      if (k >= kRingStages) mbarrier_wait_parity(&empty[s], (k / kRingStages - 1) & 1);
      cp_async_16(ring + (s * 128 + t) * 4, in + (k * 128 + t) * 4, true);
      cp_async_mbarrier_arrive_noinc(&full[s]);
    }
  } else {
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
    for (int k = 0; k < kRingTiles; ++k) {
      const int s = k % kRingStages;
      mbarrier_wait_parity(&full[s], (k / kRingStages) & 1);
      for (int e = 0; e < 4; ++e) acc[e] += float(k + 1) * ring[(s * 128 + 127 - t) * 4 + e];
      mbarrier_arrive(&empty[s]);
    }
    for (int e = 0; e < 4; ++e) out[(blockIdx.x * 128 + t) * 4 + e] = acc[e];  // each block its own half
  }
}

// TMA (csrc/common/tma.cuh): thread 0 posts the bytes of two loads on one mbarrier and issues an im2col load of
// kTmaPixels pixels × 64 channels (A) and a tiled load of 16 rows × 64 channels (B); everyone waits on the barrier
// and copies the two tiles out un-swizzled (chunk c of row r sits at chunk position c ^ (r mod 8)), A's rows first.
constexpr int kTmaPixels = 64, kTmaBRows = 16;
struct TmaSelftestMaps {
  TmaDesc a, b;
};
__global__ void tma_kernel(const __grid_constant__ TmaSelftestMaps maps, __half* out, int c, int w, int h, int n,
                           int off_w, int off_h, int b_tap) {
  PYCONV_EXTERN_SHARED(unsigned char, raw);
  unsigned char* tiles = raw + ((1024u - smem_window_addr(raw) % 1024u) % 1024u);  // 1024-aligned: the swizzle's unit
  uint64_t* bar = reinterpret_cast<uint64_t*>(tiles + (kTmaPixels + kTmaBRows) * 128);
  const uint32_t a_addr = smem_window_addr(tiles), b_addr = a_addr + kTmaPixels * 128;
  if (threadIdx.x == 0) {
    mbarrier_init(bar, 1);
    mbarrier_init_fence();
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    mbarrier_arrive_expect_tx(bar, (kTmaPixels + kTmaBRows) * 128);
    tma_load_im2col_4d(a_addr, &maps.a, bar, c, w, h, n, uint16_t(off_w), uint16_t(off_h));
    tma_load_tiled_3d(b_addr, &maps.b, bar, 0, b_tap, 0);
  }
  mbarrier_wait_parity(bar, 0);
  const __half* t = reinterpret_cast<const __half*>(tiles);
  for (int i = threadIdx.x; i < (kTmaPixels + kTmaBRows) * 64; i += blockDim.x) {
    const int row = i / 64, e = i % 64;
    out[i] = t[row * 64 + (((e / 8) ^ (row % 8)) * 8) + e % 8];
  }
}

// ---- seeded bugs the emulator must report ----------------------------------------------------------------------

// An mbarrier whose phase needs 65 arrivals, and 64 threads that arrive and wait: a hang on a GPU.
__global__ void mbarrier_deadlock_kernel(float* out) {
  PYCONV_EXTERN_SHARED(unsigned char, raw);
  uint64_t* bar = reinterpret_cast<uint64_t*>(raw);
  if (threadIdx.x == 0) mbarrier_init(bar, 65);  // BUG: one more than the block has threads
  __syncthreads();
  mbarrier_arrive(bar);
  mbarrier_wait_parity(bar, 0);
  out[threadIdx.x] = 1.0f;
}

// Two warps of four reach a named barrier that counts all four (the other two have left): a hang on a GPU.
__global__ void named_barrier_short_kernel(float* out) {
  if (threadIdx.x >= 64) return;
  named_barrier_sync<1>(128);  // BUG: 128 threads named, only 64 come
  out[threadIdx.x] = 1.0f;
}

// A consumer warpgroup that issues its wgmma on a stage before waiting on the stage's `full` barrier: the copies the
// barrier tracks may land under the running wgmma.
__global__ void mbarrier_wgmma_early_kernel(const __half* A, float* D) {
  PYCONV_EXTERN_SHARED(unsigned char, raw);
  __half* sA = wgmma_selftest_smem(raw);  // one 64 × 64 tile (8 KiB), A = B; the barrier after it
  uint64_t* full = reinterpret_cast<uint64_t*>(sA + 64 * 64);
  const int tid = threadIdx.x;
  if (tid == 0) mbarrier_init(full, 128);
  __syncthreads();
  if (tid < 128) {
    for (int c = tid; c < 64 * 8; c += 128) cp_async_16(sA + c * 8, A + c * 8, true);
    cp_async_mbarrier_arrive_noinc(full);
  } else {
    float acc[8][4] = {};
    const uint64_t d = wgmma_desc_sw128(smem_window_addr(sA));
    wgmma_fence();
    wgmma_m64k16<__half, 64>(acc, d, d);  // BUG: before the wait below
    wgmma_commit();
    mbarrier_wait_parity(full, 0);
    wgmma_wait<0>();
    D[tid - 128] = acc[0][0];
  }
}

__global__ void wgmma_stage_reuse_kernel(const __half* A, float* D) {
  PYCONV_EXTERN_SHARED(unsigned char, raw);
  const uint32_t raw_addr = smem_window_addr(raw);
  __half* sA = reinterpret_cast<__half*>(raw + ((1024u - raw_addr % 1024u) % 1024u));
  const int tid = threadIdx.x;
  for (int c = tid; c < 64 * 8; c += 128) cp_async_16(sA + c * 8, A + c * 8, true);  // one 64 × 64 tile, A = B
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async_smem();
  __syncthreads();
  float acc[8][4] = {};
  const uint64_t d = wgmma_desc_sw128(smem_window_addr(sA));
  wgmma_fence();
  wgmma_m64k16<__half, 64>(acc, d, d);
  wgmma_commit();
  // BUG: the next tile is copied over the stage the wgmma above may still be reading (no wgmma.wait_group first)
  cp_async_16(sA + tid * 8, A + tid * 8, true);
  cp_async_commit();
  wgmma_wait<0>();
  cp_async_wait<0>();
  D[tid] = acc[0][0];
}

__global__ void early_return_kernel(float* out) {
  __shared__ float s[64];
  if (threadIdx.x == 5) return;  // BUG: thread 5 never reaches the barrier below
  s[threadIdx.x] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = s[63 - threadIdx.x];
}

__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x < 32) {
    out[threadIdx.x] = 1.0f;
    __syncthreads();  // BUG: the two halves of the block wait at different barriers
  } else {
    out[threadIdx.x] = 2.0f;
    __syncthreads();
  }
}

__global__ void full_mask_partial_warp_kernel(int* out) {
  // BUG: launched with 48 threads, warp 1 has lanes 0..15 only; 0xffffffff names lanes that do not exist.
  out[threadIdx.x] = __shfl_sync(0xffffffffu, int(threadIdx.x), 0);
}

__global__ void shfl_exited_lane_kernel(int* out) {
  if (threadIdx.x == 3) return;  // BUG: lane 3 is still named in the full mask below
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, int(threadIdx.x), 1);
}

__global__ void divergent_warp_kernel(unsigned* out) {
  if (threadIdx.x % 2) out[threadIdx.x] = __ballot_sync(0xffffffffu, 1);  // BUG: same mask, different collectives
  else out[threadIdx.x] = unsigned(__shfl_sync(0xffffffffu, int(threadIdx.x), 0));
}

__global__ void shfl_vs_barrier_kernel(int* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_sync(0xffffffffu, int(threadIdx.x), 0);
  else __syncthreads();  // BUG: lanes 16..31 wait here and never join the shuffle (a hang on a GPU)
}

// ---- seeded bugs only a sanitizer sees -------------------------------------------------------------------------

__global__ void missing_syncthreads_kernel(const float* in, float* out) {
  __shared__ float s[64];
  const int t = threadIdx.x;
  s[t] = in[t];
  // BUG: no __syncthreads() here: thread t reads its neighbour's slot, which may not be written yet (TSan: race).
  out[t] = s[(t + 1) % 64];
}

__global__ void global_oob_kernel(const float* in, float* out, int n) {
  const int t = threadIdx.x;
  out[t] = in[t + 1];  // BUG: the last thread reads in[n], one past the end (ASan: heap-buffer-overflow)
  (void)n;
}

__global__ void smem_overflow_kernel(const float* in, float* out) {
  __shared__ float s[64];
  const int t = threadIdx.x;  // launched with 65 threads
  s[t] = in[t];               // BUG: s[64] is out of bounds (UBSan: index 64 out of bounds for type 'float [64]')
  __syncthreads();
  out[t] = s[t % 64];
}

// ---- host side ----------------------------------------------------------------------------------------------

// Device memory for a test: host memory under the emulator, cudaMalloc'd memory on a GPU.
template <typename T>
struct Buf {
  std::vector<T> host;
  T* dev = nullptr;
  explicit Buf(size_t n, T fill = T()) : host(n, fill) {
#ifdef PYCONV_EMULATION
    dev = host.data();
#else
    cudaMalloc(&dev, n * sizeof(T));
    cudaMemcpy(dev, host.data(), n * sizeof(T), cudaMemcpyHostToDevice);
#endif
  }
  Buf(const Buf&) = delete;
  ~Buf() {
#ifndef PYCONV_EMULATION
    cudaFree(dev);
#endif
  }
  std::vector<T>& get() {
#ifndef PYCONV_EMULATION
    cudaMemcpy(host.data(), dev, host.size() * sizeof(T), cudaMemcpyDeviceToHost);
#endif
    return host;
  }
};

// "" when the launch succeeded, else the runtime's message.
inline std::string launch_error(cudaError_t e) { return e == cudaSuccess ? std::string() : cudaGetErrorString(e); }

#define PYCONV_SELFTEST_CHECK(cond, msg)        \
  do {                                          \
    if (!(cond)) return std::string(msg);       \
  } while (0)

inline std::string test_shfl() {
  Buf<int> out(48 * 6, -1);
  std::string e = launch_error(launch(shfl_kernel, dim3(1), dim3(48), 0, nullptr, out.dev));
  if (!e.empty()) return e;
  const std::vector<int>& o = out.get();
  for (int t = 0; t < 48; ++t) {
    const int w0 = t / 32 * 32, lane = t % 32, nl = t < 32 ? 32 : 16;
    auto val = [&](int l) { return 100 + w0 + l; };
    const int seg8 = lane / 8 * 8, seg16 = lane / 16 * 16;
    int exp[6];
    exp[0] = val(5);
    exp[1] = val(seg8 + (lane + 3) % 8);
    exp[2] = lane - seg16 >= 3 ? val(lane - 3) : val(lane);
    exp[3] = lane - seg8 + 2 < 8 ? val(lane + 2) : val(lane);
    exp[4] = (lane ^ 5) < nl ? val(lane ^ 5) : -2;  // in warp 1 (16 lanes), xor 5 stays within 0..15
    exp[5] = (lane ^ 17) < seg16 + 16 ? val(lane ^ 17) : val(lane);
    for (int k = 0; k < 6; ++k)
      PYCONV_SELFTEST_CHECK(o[t * 6 + k] == exp[k], "shfl: thread " + std::to_string(t) + " op " + std::to_string(k) +
                                                        ": expected " + std::to_string(exp[k]) + ", got " +
                                                        std::to_string(o[t * 6 + k]));
  }
  return "";
}

inline std::string test_vote() {
  Buf<unsigned> out(48 * 7, 12345u);
  std::string e = launch_error(launch(vote_kernel, dim3(1), dim3(48), 0, nullptr, out.dev));
  if (!e.empty()) return e;
  const std::vector<unsigned>& o = out.get();
  for (int t = 0; t < 48; ++t) {
    const int w0 = t / 32 * 32, nl = t < 32 ? 32 : 16;
    unsigned ballot = 0;
    bool any = false, all = true;
    for (int l = 0; l < nl; ++l) {
      if ((w0 + l) % 3 == 0) ballot |= 1u << l;
      any |= (w0 + l) == 40;
      all &= (w0 + l) < 40;
    }
    int count = 0;
    for (int i = 0; i < 48; ++i) count += i % 5 == 0;
    const unsigned exp[7] = {ballot, unsigned(any), unsigned(all), unsigned(count), 1u, 1u,
                             nl == 32 ? 0xffffffffu : 0xffffu};
    for (int k = 0; k < 7; ++k)
      PYCONV_SELFTEST_CHECK(o[t * 7 + k] == exp[k], "vote: thread " + std::to_string(t) + " op " + std::to_string(k) +
                                                        ": expected " + std::to_string(exp[k]) + ", got " +
                                                        std::to_string(o[t * 7 + k]));
  }
  return "";
}

inline std::string test_atomics() {
  const int blocks = 16, threads = 96, n = blocks * threads;
  Buf<int> count(1, 0), imax(1, -1), ticket(1, 0), tickets(n, -1);
  Buf<float> fsum(1, 0.0f);
  Buf<double> dsum(1, 0.0);
  Buf<unsigned> umin(1, 0xffffffffu);
  std::string e = launch_error(launch(atomics_kernel, dim3(blocks), dim3(threads), 0, nullptr, count.dev, fsum.dev,
                                      dsum.dev, imax.dev, umin.dev, ticket.dev, tickets.dev));
  if (!e.empty()) return e;
  int exp_max = -1;
  for (int g = 0; g < n; ++g) exp_max = std::max(exp_max, g * 7 % 1000);
  PYCONV_SELFTEST_CHECK(count.get()[0] == n, "atomicAdd(int): got " + std::to_string(count.get()[0]));
  PYCONV_SELFTEST_CHECK(fsum.get()[0] == 0.5f * n, "atomicAdd(float): got " + std::to_string(fsum.get()[0]));
  PYCONV_SELFTEST_CHECK(dsum.get()[0] == 0.25 * n, "atomicAdd(double): got " + std::to_string(dsum.get()[0]));
  PYCONV_SELFTEST_CHECK(imax.get()[0] == exp_max, "atomicMax: got " + std::to_string(imax.get()[0]));
  PYCONV_SELFTEST_CHECK(umin.get()[0] == 5000u - unsigned(n - 1), "atomicMin: got " + std::to_string(umin.get()[0]));
  PYCONV_SELFTEST_CHECK(ticket.get()[0] == n, "atomicCAS: final ticket " + std::to_string(ticket.get()[0]));
  std::vector<int> seen(n, 0);
  for (int v : tickets.get()) {
    PYCONV_SELFTEST_CHECK(v >= 0 && v < n && !seen[v], "atomicCAS: ticket " + std::to_string(v) + " handed out twice");
    seen[v] = 1;
  }
  return "";
}

inline std::string test_dynamic_smem() {
  const int blocks = 3, threads = 40;
  Buf<float> in(blocks * threads), out(blocks * threads, -1.0f);
  for (int i = 0; i < blocks * threads; ++i) in.host[i] = float(i) * 0.5f;
#ifndef PYCONV_EMULATION
  cudaMemcpy(in.dev, in.host.data(), in.host.size() * sizeof(float), cudaMemcpyHostToDevice);
#endif
  std::string e = launch_error(
      launch(dynamic_smem_kernel, dim3(blocks), dim3(threads), threads * sizeof(float), nullptr, in.dev, out.dev));
  if (!e.empty()) return e;
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < threads; ++t) {
      const float exp = float(b * threads + threads - 1 - t) * 0.5f;
      PYCONV_SELFTEST_CHECK(out.get()[b * threads + t] == exp, "dynamic smem: element " + std::to_string(t));
    }
  return "";
}

inline std::string test_reduce() {
  const int n = 1000;
  Buf<float> in(n), out(1, -1.0f);
  double exp = 0;
  for (int i = 0; i < n; ++i) {
    in.host[i] = float((i * 37) % 101) * 0.25f;  // small multiples of 1/4: exact float sums in any order
    exp += in.host[i];
  }
#ifndef PYCONV_EMULATION
  cudaMemcpy(in.dev, in.host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
#endif
  std::string e = launch_error(launch(reduce_kernel, dim3(1), dim3(256), 0, nullptr, in.dev, out.dev, n));
  if (!e.empty()) return e;
  PYCONV_SELFTEST_CHECK(out.get()[0] == float(exp), "reduce: expected " + std::to_string(exp) + ", got " +
                                                        std::to_string(out.get()[0]));
  return "";
}

inline std::string test_mma() {
  Buf<__half> A(16 * 16), B(16 * 8);
  Buf<float> C(16 * 8), D(16 * 8, -1.0f);
  for (int i = 0; i < 256; ++i) A.host[i] = __float2half(float((i * 7) % 13 - 6) * 0.125f);
  for (int i = 0; i < 128; ++i) B.host[i] = __float2half(float((i * 5) % 11 - 5) * 0.25f);
  for (int i = 0; i < 128; ++i) C.host[i] = float(i % 9) - 4.0f;
#ifndef PYCONV_EMULATION
  cudaMemcpy(A.dev, A.host.data(), 256 * sizeof(__half), cudaMemcpyHostToDevice);
  cudaMemcpy(B.dev, B.host.data(), 128 * sizeof(__half), cudaMemcpyHostToDevice);
  cudaMemcpy(C.dev, C.host.data(), 128 * sizeof(float), cudaMemcpyHostToDevice);
#endif
  std::string e = launch_error(launch(mma_kernel, dim3(1), dim3(32), 0, nullptr, A.dev, B.dev, C.dev, D.dev));
  if (!e.empty()) return e;
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      double ref = C.host[m * 8 + n];
      for (int k = 0; k < 16; ++k)
        ref += double(__half2float(A.host[m * 16 + k])) * double(__half2float(B.host[k * 8 + n]));
      // Inputs are multiples of 1/32 with small sums: exact in float in any order, so compare exactly.
      PYCONV_SELFTEST_CHECK(D.get()[m * 8 + n] == float(ref), "mma: D[" + std::to_string(m) + "][" +
                                                                  std::to_string(n) + "] expected " +
                                                                  std::to_string(ref) + ", got " +
                                                                  std::to_string(D.get()[m * 8 + n]));
    }
  return "";
}

inline std::string test_mma_bf16() {
  Buf<uint16_t> A(16 * 16), B(16 * 8);
  Buf<float> C(16 * 8), D(16 * 8, -1.0f);
  auto bf = [](float v) {  // exact: these values need at most 8 significant bits
    uint32_t u;
    std::memcpy(&u, &v, 4);
    return uint16_t(u >> 16);
  };
  auto fl = [](uint16_t h) {
    const uint32_t u = uint32_t(h) << 16;
    float v;
    std::memcpy(&v, &u, 4);
    return v;
  };
  for (int i = 0; i < 256; ++i) A.host[i] = bf(float((i * 7) % 13 - 6) * 0.125f);
  for (int i = 0; i < 128; ++i) B.host[i] = bf(float((i * 5) % 11 - 5) * 0.25f);
  for (int i = 0; i < 128; ++i) C.host[i] = float(i % 9) - 4.0f;
#ifndef PYCONV_EMULATION
  cudaMemcpy(A.dev, A.host.data(), 256 * sizeof(uint16_t), cudaMemcpyHostToDevice);
  cudaMemcpy(B.dev, B.host.data(), 128 * sizeof(uint16_t), cudaMemcpyHostToDevice);
  cudaMemcpy(C.dev, C.host.data(), 128 * sizeof(float), cudaMemcpyHostToDevice);
#endif
  std::string e = launch_error(launch(mma_bf16_kernel, dim3(1), dim3(32), 0, nullptr, A.dev, B.dev, C.dev, D.dev));
  if (!e.empty()) return e;
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      double ref = C.host[m * 8 + n];
      for (int k = 0; k < 16; ++k) ref += double(fl(A.host[m * 16 + k])) * double(fl(B.host[k * 8 + n]));
      PYCONV_SELFTEST_CHECK(D.get()[m * 8 + n] == float(ref), "mma bf16: D[" + std::to_string(m) + "][" +
                                                                  std::to_string(n) + "] expected " +
                                                                  std::to_string(ref) + ", got " +
                                                                  std::to_string(D.get()[m * 8 + n]));
    }
  return "";
}

inline std::string test_mma_tf32() {
  Buf<float> A(16 * 8), B(8 * 8), C(16 * 8), D(16 * 8, -1.0f);
  // Values with ≤ 11 significant bits are TF32-exact, so to_tf32 leaves them alone and the sums are exact; one value
  // with more bits (1 + 2^-12, which rounds to 1) checks that the rounding happens.
  for (int i = 0; i < 128; ++i) A.host[i] = float((i * 7) % 13 - 6) * 0.125f;
  for (int i = 0; i < 64; ++i) B.host[i] = float((i * 5) % 11 - 5) * 0.25f;
  for (int i = 0; i < 128; ++i) C.host[i] = float(i % 9) - 4.0f;
  A.host[0] = 1.0f + 1.0f / 4096.0f;
#ifndef PYCONV_EMULATION
  cudaMemcpy(A.dev, A.host.data(), 128 * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(B.dev, B.host.data(), 64 * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(C.dev, C.host.data(), 128 * sizeof(float), cudaMemcpyHostToDevice);
#endif
  std::string e = launch_error(launch(mma_tf32_kernel, dim3(1), dim3(32), 0, nullptr, A.dev, B.dev, C.dev, D.dev));
  if (!e.empty()) return e;
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 8; ++n) {
      double ref = C.host[m * 8 + n];
      for (int k = 0; k < 8; ++k) ref += double(m * 8 + k == 0 ? 1.0f : A.host[m * 8 + k]) * double(B.host[k * 8 + n]);
      PYCONV_SELFTEST_CHECK(D.get()[m * 8 + n] == float(ref), "mma tf32: D[" + std::to_string(m) + "][" +
                                                                  std::to_string(n) + "] expected " +
                                                                  std::to_string(ref) + ", got " +
                                                                  std::to_string(D.get()[m * 8 + n]));
    }
  return "";
}

inline std::string test_ldmatrix() {
  Buf<uint16_t> in(256);
  Buf<uint32_t> out(32 * 8, 0xdeadbeefu);
  for (int i = 0; i < 256; ++i) in.host[i] = uint16_t(1000 + i);
#ifndef PYCONV_EMULATION
  cudaMemcpy(in.dev, in.host.data(), 256 * sizeof(uint16_t), cudaMemcpyHostToDevice);
#endif
  std::string e = launch_error(launch(ldmatrix_kernel, dim3(1), dim3(32), 256 * sizeof(uint16_t), nullptr, in.dev,
                                      out.dev));
  if (!e.empty()) return e;
  // Shared memory as the kernel left it: chunk c (8 values) copied when c is even, zeros when odd.
  auto sm = [&](int mat, int row, int col) -> uint32_t {
    const int chunk = mat * 8 + row;
    return chunk % 2 == 0 ? in.host[mat * 64 + row * 8 + col] : 0u;
  };
  const uint32_t* o = out.get().data();
  for (int l = 0; l < 32; ++l)
    for (int i = 0; i < 4; ++i) {
      const uint32_t plain = sm(i, l / 4, 2 * (l % 4)) | (sm(i, l / 4, 2 * (l % 4) + 1) << 16);
      const uint32_t trans = sm(i, 2 * (l % 4), l / 4) | (sm(i, 2 * (l % 4) + 1, l / 4) << 16);
      PYCONV_SELFTEST_CHECK(o[l * 8 + i] == plain, "ldmatrix: lane " + std::to_string(l) + " matrix " +
                                                       std::to_string(i) + " expected " + std::to_string(plain) +
                                                       ", got " + std::to_string(o[l * 8 + i]));
      PYCONV_SELFTEST_CHECK(o[l * 8 + 4 + i] == trans, "ldmatrix.trans: lane " + std::to_string(l) + " matrix " +
                                                           std::to_string(i) + " expected " + std::to_string(trans) +
                                                           ", got " + std::to_string(o[l * 8 + 4 + i]));
    }
  return "";
}

// The wgmma self-tests' host side: `kernel` (wgmma_kernel, wgmma_mn_kernel or wgmma_kb_kernel) computes D = A·B + C0
// for a 64 × 64 A and a 64 × 128 B (reduction 64), each stored K-major (A[m][k], B[n][k]) or, with mn_a / mn_b,
// MN-major (A[k][m], B[k][n]);
// checked against a float64 host reference. The values are multiples of 1/32 with small sums: exact in float in any
// order. wgmma on a GPU needs compute capability 9.0 and an sm_90a build; elsewhere the kernel would trap, so the GPU
// run reports what it could not check (tests/test_emulator.py skips it there by the same rule).
inline std::string run_wgmma_test(const char* name, void (*kernel)(const __half*, const __half*, float*), bool mn_a,
                                  bool mn_b) {
#ifndef PYCONV_EMULATION
  int dev = 0, major = 0, minor = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  if (major != 9 || minor != 0) return "wgmma needs a compute capability 9.0 GPU";
#endif
  Buf<__half> A(64 * 64), B(128 * 64);
  Buf<float> D(64 * 128, -1.0f);
  for (int i = 0; i < 64 * 64; ++i) A.host[i] = __float2half(float((i * 7) % 13 - 6) * 0.125f);
  for (int i = 0; i < 128 * 64; ++i) B.host[i] = __float2half(float((i * 5) % 11 - 5) * 0.25f);
#ifndef PYCONV_EMULATION
  cudaMemcpy(A.dev, A.host.data(), A.host.size() * sizeof(__half), cudaMemcpyHostToDevice);
  cudaMemcpy(B.dev, B.host.data(), B.host.size() * sizeof(__half), cudaMemcpyHostToDevice);
#endif
  const size_t smem = (64 + 128) * 64 * sizeof(__half) + 1024;
  std::string e = launch_error(launch(kernel, dim3(1), dim3(128), smem, nullptr, A.dev, B.dev, D.dev));
  if (!e.empty()) return e;
  const std::vector<float>& d = D.get();
  for (int m = 0; m < 64; ++m)
    for (int n = 0; n < 128; ++n) {
      double ref = double(n / 8) - double(2 * ((m % 16) / 8) + n % 2);  // the kernels' initial acc[j][e] = j − e
      for (int k = 0; k < 64; ++k)
        ref += double(__half2float(A.host[mn_a ? k * 64 + m : m * 64 + k])) *
               double(__half2float(B.host[mn_b ? k * 128 + n : n * 64 + k]));
      PYCONV_SELFTEST_CHECK(d[m * 128 + n] == float(ref), std::string(name) + ": D[" + std::to_string(m) + "][" +
                                                              std::to_string(n) + "] expected " +
                                                              std::to_string(ref) + ", got " +
                                                              std::to_string(d[m * 128 + n]));
    }
  return "";
}
inline std::string test_wgmma() { return run_wgmma_test("wgmma", wgmma_kernel, false, false); }
// The MN-major (transposed) operand layout of wgrad's wgmma kernel.
inline std::string test_wgmma_mn() { return run_wgmma_test("wgmma_mn", wgmma_mn_kernel, true, true); }
// K-major A with MN-major B: the TMA dgrad kernel's filter read in place.
inline std::string test_wgmma_kb() { return run_wgmma_test("wgmma_kb", wgmma_kb_kernel, false, true); }

// "" where the features of compute capability 9.0 exist (always under the emulator), else why `what` cannot run.
inline std::string needs_cc9(const char* what) {
#ifndef PYCONV_EMULATION
  int dev = 0, major = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  if (major < 9) return std::string(what) + " needs a compute capability 9.0 GPU";
#else
  (void)what;
#endif
  return "";
}

inline std::string test_mbarrier_ring() {
  if (std::string why = needs_cc9("mbarrier.try_wait"); !why.empty()) return why;
  Buf<float> in(kRingTiles * 128 * 4), out(2 * 128 * 4, -1.0f);
  for (size_t i = 0; i < in.host.size(); ++i) in.host[i] = float(int(i * 7 % 19) - 9);
#ifndef PYCONV_EMULATION
  cudaMemcpy(in.dev, in.host.data(), in.host.size() * sizeof(float), cudaMemcpyHostToDevice);
#endif
  const size_t smem = kRingStages * 128 * 16 + 2 * kRingStages * sizeof(uint64_t);
  std::string e = launch_error(launch(mbarrier_ring_kernel, dim3(2), dim3(256), smem, nullptr, in.dev, out.dev));
  if (!e.empty()) return e;
  const std::vector<float>& o = out.get();
  for (int blk = 0; blk < 2; ++blk)
    for (int t = 0; t < 128; ++t)
      for (int k = 0; k < 4; ++k) {
        double ref = 0;
        for (int tile = 0; tile < kRingTiles; ++tile)
          ref += (tile + 1) * double(in.host[(tile * 128 + 127 - t) * 4 + k]);
        const int i = (blk * 128 + t) * 4 + k;
        PYCONV_SELFTEST_CHECK(o[i] == float(ref), "mbarrier_ring: out[" + std::to_string(i) + "] expected " +
                                                      std::to_string(ref) + ", got " + std::to_string(o[i]));
      }
  return "";
}

// The TMA self-test's host side. A = rows m0 .. m0 + 63 of the im2col matrix of a convolution chosen to exercise what
// the descriptor encodes: 2 images of 5 × 7 pixels, 40 channels (a zero tail to 64), stride (h 2, w 1), dilation
// (1, 2), padding top 1, left 0, bottom 1, right 1 (asymmetric, H ≠ W: a swapped H/W order in a corner, a stride or
// an offset shows), tap (r 2, s 1) (offsets h 2, w 2); m0 = 3 (a load that starts mid-row, crosses into the second
// image and runs past the last output pixel into zeros). The expected rows come from the convolution's definition —
// output pixel m = (n, oh, ow) reads x[n][oh·2 − 1 + r][ow − 0 + 2s][c] — not from the walk. B = filter rows 0..15 of
// a {40 channels, 6 taps, 10 rows} tensor at tap 5 (rows past 10 and channels past 40 zero).
inline std::string test_tma() {
  if (std::string why = needs_cc9("TMA"); !why.empty()) return why;
  constexpr int N = 2, H = 5, W = 7, C = 40, R = 3, S = 2, sh = 2, sw = 1, dh = 1, dw = 2, pt = 1, pl = 0, pb = 1, pr = 1;
  constexpr int P = (H + pt + pb - (R - 1) * dh - 1) / sh + 1, Q = (W + pl + pr - (S - 1) * dw - 1) / sw + 1;
  constexpr int r = 2, sx = 1, m0 = 3, K = 10, taps = 6, tap = 5;
  Buf<__half> x(size_t(N) * H * W * C), f(size_t(K) * taps * C), out(size_t(kTmaPixels + kTmaBRows) * 64);
  for (size_t i = 0; i < x.host.size(); ++i) x.host[i] = __float2half(float(int(i % 1021) - 510));  // exact in half
  for (size_t i = 0; i < f.host.size(); ++i) f.host[i] = __float2half(float(int(i % 997) - 498));
  for (auto& v : out.host) v = __float2half(-9999.0f);
#ifndef PYCONV_EMULATION
  cudaMemcpy(x.dev, x.host.data(), x.host.size() * sizeof(__half), cudaMemcpyHostToDevice);
  cudaMemcpy(f.dev, f.host.data(), f.host.size() * sizeof(__half), cudaMemcpyHostToDevice);
  cudaMemcpy(out.dev, out.host.data(), out.host.size() * sizeof(__half), cudaMemcpyHostToDevice);
#endif
  TmaSelftestMaps maps{};
  TmaIm2colSpec sa{};
  sa.base = x.dev;
  sa.dims[0] = C, sa.dims[1] = W, sa.dims[2] = H, sa.dims[3] = N;
  sa.strides[0] = C * 2, sa.strides[1] = uint64_t(W) * C * 2, sa.strides[2] = uint64_t(H) * W * C * 2;
  sa.lower[0] = -pl, sa.lower[1] = -pt;
  sa.upper[0] = -pl + (Q - 1) * sw + 1 - W, sa.upper[1] = -pt + (P - 1) * sh + 1 - H;
  sa.elem_strides[0] = sw, sa.elem_strides[1] = sh;
  sa.pixels = kTmaPixels;
  std::string why = tma_encode_im2col(&maps.a, sa);
  if (!why.empty()) return "tma: the im2col map " + why;
  TmaTiledSpec sb{};
  sb.base = f.dev;
  sb.dims[0] = C, sb.dims[1] = taps, sb.dims[2] = K;
  sb.strides[0] = C * 2, sb.strides[1] = uint64_t(taps) * C * 2;
  sb.box[0] = 64, sb.box[1] = 1, sb.box[2] = kTmaBRows;
  why = tma_encode_tiled(&maps.b, sb);
  if (!why.empty()) return "tma: the tiled map " + why;
  const int n0 = m0 / (P * Q), oh0 = m0 / Q % P, ow0 = m0 % Q;
  const size_t smem = (kTmaPixels + kTmaBRows) * 128 + 8 + 1024;
  std::string e = launch_error(launch(tma_kernel, dim3(1), dim3(128), smem, nullptr, maps, out.dev, 0,
                                      ow0 * sw - pl, oh0 * sh - pt, n0, sx * dw, r * dh, tap));
  if (!e.empty()) return e;
  const std::vector<__half>& o = out.get();
  for (int p = 0; p < kTmaPixels; ++p)
    for (int c = 0; c < 64; ++c) {
      const int m = m0 + p, n = m / (P * Q), oh = m / Q % P, ow = m % Q;
      const int ih = oh * sh - pt + r * dh, iw = ow * sw - pl + sx * dw;
      const bool in = n < N && c < C && ih >= 0 && ih < H && iw >= 0 && iw < W;
      const float ref = in ? __half2float(x.host[((size_t(n) * H + ih) * W + iw) * C + c]) : 0.0f;
      const float got = __half2float(o[size_t(p) * 64 + c]);
      PYCONV_SELFTEST_CHECK(got == ref, "tma: im2col row " + std::to_string(p) + " (output pixel " + std::to_string(m) +
                                            ") channel " + std::to_string(c) + " expected " + std::to_string(ref) +
                                            ", got " + std::to_string(got));
    }
  for (int row = 0; row < kTmaBRows; ++row)
    for (int c = 0; c < 64; ++c) {
      const float ref = row < K && c < C ? __half2float(f.host[(size_t(row) * taps + tap) * C + c]) : 0.0f;
      const float got = __half2float(o[size_t(kTmaPixels + row) * 64 + c]);
      PYCONV_SELFTEST_CHECK(got == ref, "tma: tiled row " + std::to_string(row) + " channel " + std::to_string(c) +
                                            " expected " + std::to_string(ref) + ", got " + std::to_string(got));
    }
  return "";
}

// Seeded bugs: return the launch's error text ("" if the launch — wrongly — succeeded). Most take one output array
// of `threads` elements and one block.
template <typename T>
inline std::string seeded_bug(void (*kernel)(T*), int threads, size_t smem = 0) {
  Buf<T> out(static_cast<size_t>(threads));
  return launch_error(launch(kernel, dim3(1), dim3(threads), smem, nullptr, out.dev));
}
inline std::string bug_early_return() { return seeded_bug(early_return_kernel, 64); }
inline std::string bug_divergent_barrier() { return seeded_bug(divergent_barrier_kernel, 64); }
inline std::string bug_full_mask_partial_warp() { return seeded_bug(full_mask_partial_warp_kernel, 48); }
inline std::string bug_shfl_exited_lane() { return seeded_bug(shfl_exited_lane_kernel, 32); }
inline std::string bug_divergent_warp() { return seeded_bug(divergent_warp_kernel, 32); }
inline std::string bug_shfl_vs_barrier() { return seeded_bug(shfl_vs_barrier_kernel, 32); }
// Launch configurations the CUDA runtime rejects: the emulator must reject them the same way, before running anything.
inline std::string bug_bad_launch_config() {
  Buf<int> out(48 * 6);
  std::string e = launch_error(launch(shfl_kernel, dim3(1), dim3(2048), 0, nullptr, out.dev));
  e += " | " + launch_error(launch(shfl_kernel, dim3(1, 70000), dim3(32), 0, nullptr, out.dev));
  e += " | " + launch_error(launch(shfl_kernel, dim3(1), dim3(32), size_t(1) << 20, nullptr, out.dev));
  return e;
}
inline std::string bug_wgmma_stage_reuse() {
  Buf<__half> A(64 * 64, __float2half(1.0f));
  Buf<float> D(128);
  return launch_error(launch(wgmma_stage_reuse_kernel, dim3(1), dim3(128), 64 * 64 * sizeof(__half) + 1024, nullptr,
                             A.dev, D.dev));
}
inline std::string bug_mbarrier_deadlock() { return seeded_bug(mbarrier_deadlock_kernel, 64, 8); }
inline std::string bug_named_barrier_short() { return seeded_bug(named_barrier_short_kernel, 128); }
inline std::string bug_mbarrier_wgmma_early() {
  Buf<__half> A(64 * 64, __float2half(1.0f));
  Buf<float> D(128);
  return launch_error(launch(mbarrier_wgmma_early_kernel, dim3(1), dim3(256), 64 * 64 * sizeof(__half) + 1024 + 8,
                             nullptr, A.dev, D.dev));
}
inline std::string bug_missing_syncthreads() {
  Buf<float> in(64, 1.0f), out(64);
  return launch_error(launch(missing_syncthreads_kernel, dim3(1), dim3(64), 0, nullptr, in.dev, out.dev));
}
inline std::string bug_global_oob() {
  // A separate heap allocation of exactly 64 floats, so that in[64] lands in ASan's redzone.
  std::vector<float>* in = new std::vector<float>(64, 1.0f);
  Buf<float> out(64);
  std::string e = launch_error(launch(global_oob_kernel, dim3(1), dim3(64), 0, nullptr,
                                      static_cast<const float*>(in->data()), out.dev, 64));
  delete in;
  return e;
}
inline std::string bug_smem_overflow() {
  Buf<float> in(65, 1.0f), out(65);
  return launch_error(launch(smem_overflow_kernel, dim3(1), dim3(65), 0, nullptr, in.dev, out.dev));
}

struct SelfTest {
  const char* name;
  const char* kind;    // "feature", "emulator_bug" or "sanitizer_bug"
  const char* expect;  // emulator_bug: a phrase its error must contain; sanitizer_bug: the sanitizer's report
  std::function<std::string()> run;
};

inline const std::vector<SelfTest>& selftests() {
  static const std::vector<SelfTest> t{
      {"shfl", "feature", "", test_shfl},
      {"vote", "feature", "", test_vote},
      {"atomics", "feature", "", test_atomics},
      {"dynamic_smem", "feature", "", test_dynamic_smem},
      {"reduce", "feature", "", test_reduce},
      {"mma", "feature", "", test_mma},
      {"mma_bf16", "feature", "", test_mma_bf16},
      {"mma_tf32", "feature", "", test_mma_tf32},
      {"ldmatrix_cp_async", "feature", "", test_ldmatrix},
      {"wgmma", "feature", "", test_wgmma},
      {"wgmma_mn", "feature", "", test_wgmma_mn},
      {"wgmma_kb", "feature", "", test_wgmma_kb},
      {"mbarrier_ring", "feature", "", test_mbarrier_ring},
      {"tma", "feature", "", test_tma},
      {"early_return", "emulator_bug", "returned while", bug_early_return},
      {"divergent_barrier", "emulator_bug", "but thread", bug_divergent_barrier},
      {"full_mask_partial_warp", "emulator_bug", "names lanes that do not exist", bug_full_mask_partial_warp},
      {"shfl_exited_lane", "emulator_bug", "exited", bug_shfl_exited_lane},
      {"divergent_warp", "emulator_bug", "divergent warp collective", bug_divergent_warp},
      {"shfl_vs_barrier", "emulator_bug", "deadlock", bug_shfl_vs_barrier},
      {"bad_launch_config", "emulator_bug", "invalid block dimensions", bug_bad_launch_config},
      {"wgmma_stage_reuse", "emulator_bug", "that a wgmma issued at", bug_wgmma_stage_reuse},
      {"mbarrier_deadlock", "emulator_bug", "wait on an mbarrier", bug_mbarrier_deadlock},
      {"mbarrier_wgmma_early", "emulator_bug", "that a wgmma issued at", bug_mbarrier_wgmma_early},
      {"named_barrier_short", "emulator_bug", "which no other thread will reach", bug_named_barrier_short},
      {"missing_syncthreads", "sanitizer_bug", "ThreadSanitizer: data race", bug_missing_syncthreads},
      {"global_oob", "sanitizer_bug", "AddressSanitizer: heap-buffer-overflow", bug_global_oob},
      {"smem_overflow", "sanitizer_bug", "index 64 out of bounds", bug_smem_overflow},
  };
  return t;
}

#undef PYCONV_SELFTEST_CHECK

}  // namespace emu_selftest
}  // namespace pyconv
