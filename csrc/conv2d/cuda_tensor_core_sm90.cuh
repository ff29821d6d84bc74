// conv2d on CUDA, rung 4: "tensor_core_wgmma". The implicit GEMM of rung 3 (cuda_tensor_core.cuh: same GEMM views,
// same gather loader, same epilogue and split-K) with Hopper's warpgroup MMA as its inner product, for float16 and
// bfloat16 on compute capability 9.0 (an sm_90a build; csrc/common/warpgroup_mma.cuh says why and how).
//
// What changes against rung 3:
//   * the reduction step is 64 elements (128-byte tile rows = one 128-byte swizzle row), 4 wgmma k16 steps per tile;
//   * each warpgroup (4 warps, 128 threads) owns 64 rows × BN columns of the block tile and issues one
//     wgmma.m64nBNk16 per k16 step with both operands read by the tensor cores straight from shared memory: no
//     ldmatrix, no fragment registers, and the operands are read once per warpgroup instead of once per warp;
//   * the wgmma of tile kt runs asynchronously while the warps pass the next barrier and issue the next copies: one
//     group stays in flight (wgmma.wait_group 1), so the copy that overwrites a stage waits for the group two tiles
//     back (or none, with two blocks per SM instead: the 128x128_s3 tile).
//
// "tensor_core_wgmma_ws": the same kernels warp-specialised (a producer warpgroup, consumer warpgroups, mbarriers:
// see "warp-specialised kernels" below); "tensor_core_wgmma_tma": those with the TMA unit as producer (see "TMA").
//
// wgrad (tc_wgmma_wgrad_kernel): A = dy [npq][k] and B = the gathered x [npq][(r, s, c)] are contiguous along M and
// N, not along the reduction npq, so their tiles are stored MN-major (64 reduction rows × 64 M or N elements of 128
// bytes per block, blocks LBO = 8 KiB apart) and the wgmma reads them transposed (imm-trans-a/b = 1); rung 3's wgrad
// loader (TcWgradLoader: 64-row tiles here), split-K and store (tc_wgrad_store), the same pipeline (tc_wg_mainloop).
//
// Pipeline, per main-loop iteration kt, with F = the wgmma groups kept in flight (TcWgTile::kInFlight, 0 or 1) and
// A = STAGES − 1 − F tiles of copies ahead:
//   cp.async.wait_group A−1        this thread's copies of tile kt have landed
//   fence.proxy.async              … and are visible to the async proxy (the tensor cores read through it)
//   __syncthreads                  everyone's copies of tile kt are in; every warpgroup has waited for the wgmma of
//                                  tile kt−1−F (its wait_group F in iteration kt−1), so that tile's stage is free
//   copies of tile kt+A            into that stage ((kt + A) mod STAGES = (kt − 1 − F) mod STAGES)
//   wgmma.fence; 4 × wgmma on tile kt; commit; wait_group F
// With 4 stages and F = 1 a stage holds, in turn: tile kt−1 (its wgmma maybe still running), kt (issued now), kt+1
// and kt+2 (copies in flight).
#pragma once
#include <atomic>

#include "../common/mbarrier.cuh"
#include "../common/tma.cuh"
#include "../common/warpgroup_mma.cuh"
#include "cuda_tensor_core.cuh"

namespace pyconv {
namespace cuda {

// Block tile BM × BN (BM a multiple of 64: one warpgroup per 64 rows), STAGES stages, the blocks per SM that the
// launch bounds promise (what shared memory allows: 227 KiB per SM on Hopper), and IN_FLIGHT: how many wgmma groups
// stay in flight across an iteration (1: the tensor cores work on tile kt while the warps pass the next barrier and
// issue copies, which costs one stage; 0: each tile's wgmma is waited for in its own iteration, and the other blocks
// of the SM fill the gap).
template <int BM_, int BN_, int STAGES_, int MIN_BLOCKS_, int IN_FLIGHT_ = 1>
struct TcWgTile {
  static constexpr int BM = BM_, BN = BN_, STAGES = STAGES_, kMinBlocks = MIN_BLOCKS_, kInFlight = IN_FLIGHT_;
  static constexpr int kWarpGroups = BM / 64, kThreads = 128 * kWarpGroups;
  static constexpr int kBK = 64;       // 16-bit elements per tile row: 128 bytes
  static constexpr int NI = BN / 8;    // n8 column tiles of a warp's accumulators
  static constexpr int kAhead = STAGES - 1 - kInFlight;  // tiles whose copies are in flight ahead of the one computed
  static constexpr size_t kStageBytes = size_t(BM + BN) * 128;
  static constexpr size_t kBarrierBytes = 0;  // (the warp-specialised tiles keep more after their stages)
  static constexpr bool kWarpSpecialized = false;
  static_assert(BM % 64 == 0 && (BN == 16 || BN == 64 || BN == 128 || BN == 256), "wgmma m64 × n16/64/128/256 tiles");
  static_assert((kInFlight == 0 || kInFlight == 1) && kAhead >= 1, "at least one tile of copies ahead");
};
using TcWgTile128x256 = TcWgTile<128, 256, 4, 1>;     // 256 threads, 4 × 48 KiB, 128 accumulators a thread
using TcWgTile128x128 = TcWgTile<128, 128, 4, 1>;     // 256 threads, 4 × 32 KiB: one block per SM
using TcWgTile128x128s3 = TcWgTile<128, 128, 3, 2, 0>;  // 3 × 32 KiB, nothing in flight: two blocks per SM
using TcWgTile128x64 = TcWgTile<128, 64, 4, 2>;       // 256 threads, 4 × 24 KiB: two blocks per SM
using TcWgTile64x64 = TcWgTile<64, 64, 4, 3>;         // 128 threads, 4 × 16 KiB: three blocks per SM
// 128 threads, 4 × 10 KiB: five blocks per SM. fprop/dgrad of ≤ 16 GEMM columns (the ResNet stem's dgrad: 3 input
// channels; MobileNetV2's 16-channel 1×1 layers), which a 64-column tile would multiply 4× to 21× in padding: these
// GEMMs are bound by the gather of A, not by the tensor cores, and five blocks a SM keep more of it in flight. B
// K-major only (the MN-major stage layout is made of 64-column blocks): dgrad reads the transposed filter copy.
using TcWgTile64x16 = TcWgTile<64, 16, 4, 5>;

// Dynamic shared memory: the stages plus 1 KiB of slack to align them to 1024 bytes (the GPU promises 16).
template <typename Tile>
constexpr size_t tc_wg_smem_bytes() {
  return Tile::STAGES * Tile::kStageBytes + Tile::kBarrierBytes + 1024;
}

// The pipelined main loop of both wgmma kernels (the pipeline above) over KT reduction tiles: load_tile(slot) issues
// this thread's copies of the next tile into stage `slot`; da0 / db0 describe stage 0 of this warpgroup's A rows and
// of B (stage `slot` is slot · BM · 128 and slot · BN · 128 bytes further: that >> 4 added to the start-address field,
// which cannot carry, shared addresses staying < 256 KiB). kMnA / kMnB: that operand MN-major, its k16 steps 16 rows =
// 2048 bytes apart (K-major: 32 bytes along the row). Ends with every wgmma and every copy complete.
// The descriptors come in precomputed on purpose: with the warpgroup's row offset computed inside the loop, ptxas
// serialised the wgmma pipeline (C7515, "non wgmma instructions defining accumulator registers").
template <typename T, typename Tile, bool kMnA, bool kMnB, typename Load>
__device__ __forceinline__ void tc_wg_mainloop(float (&acc)[1][Tile::NI][4], Load&& load_tile, int KT, uint64_t da0,
                                               uint64_t db0) {
  constexpr int BM = Tile::BM, BN = Tile::BN, STAGES = Tile::STAGES, kAhead = Tile::kAhead;
  // descriptor units (16 bytes) per k16 step, per operand
  constexpr uint32_t kStepA = kMnA ? 2048 / 16 : 32 / 16, kStepB = kMnB ? 2048 / 16 : 32 / 16;
  tc_prologue<kAhead>(load_tile, KT);  // tiles 0 .. kAhead−1 in flight
  // The stages of tile kt and of tile kt + kAhead, counted along rather than taken mod STAGES (a division by 3 or 5).
  int slot = 0, next_slot = kAhead;
  for (int kt = 0; kt < KT; ++kt) {
    cp_async_wait<kAhead - 1>();
    fence_proxy_async_smem();
    __syncthreads();
    // tile kt + kAhead's stage held tile kt − 1 − kInFlight, whose wgmma every warpgroup has waited for
    if (kt + kAhead < KT) load_tile(next_slot);
    cp_async_commit();
    const uint64_t da = wgmma_desc_add(da0, uint32_t(slot * BM * 128 / 16)),
                   db = wgmma_desc_add(db0, uint32_t(slot * BN * 128 / 16));
    slot = slot + 1 == STAGES ? 0 : slot + 1;
    next_slot = next_slot + 1 == STAGES ? 0 : next_slot + 1;
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < Tile::kBK / 16; ++ks)
      wgmma_m64k16<T, BN, kMnA, kMnB>(acc[0], wgmma_desc_add(da, kStepA * ks), wgmma_desc_add(db, kStepB * ks));
    wgmma_commit();
    wgmma_wait<Tile::kInFlight>();
  }
  wgmma_wait<0>();
  cp_async_wait<0>();  // the copies of tiles past the end (empty groups) too, before the epilogue reuses the stages
}

// The dynamic shared memory of a wgmma block, its stage tiles aligned to 1024 bytes (the hardware swizzles by address
// bits [7, 10); tc_wg_smem_bytes reserves the 1 KiB of slack).
#define PYCONV_WG_SMEM(smem)                                                       \
  PYCONV_EXTERN_SHARED(unsigned char, smem_raw);                                   \
  const uint32_t smem_raw_addr = smem_window_addr(smem_raw);                       \
  T* smem = reinterpret_cast<T*>(smem_raw + ((1024u - smem_raw_addr % 1024u) % 1024u))

// kBMn (dgrad only): B MN-major, the transposed filter as it lies (TcGatherLoader's kBMn), instead of the K-major
// transposed copy; both forms are built for this kernel (PYCONV_WGMMA_DGRAD_B picks, see conv2d_cuda.cu).
template <typename T, typename Tile, bool kDgrad, bool kBMn>
__device__ __forceinline__ void tc_wgmma_conv_block(const TcConvParams<T>& pr, int64_t bx) {
  static_assert(!kBMn || Tile::BN >= 64, "MN-major B: 64-column blocks");
  constexpr int BM = Tile::BM, BN = Tile::BN, STAGES = Tile::STAGES, NT = Tile::kThreads, kBK = Tile::kBK;
  PYCONV_WG_SMEM(smem);
  T* sA = smem;                      // [STAGES][BM][64] 128-byte swizzled (BM·128 bytes: a multiple of 1024)
  T* sB = smem + STAGES * BM * kBK;  // [STAGES][BN][64]
  const uint32_t sA_addr = smem_window_addr(sA), sB_addr = smem_window_addr(sB);

  const int tid = threadIdx.x, warp = tid / 32, wg = warp / 4;
  const TcBlock blk = tc_block(pr, BM, BN, kBK, bx);
  // Stage 0 of this warpgroup's 64 rows of A (K-major: rows are 128 bytes) and of all of B (kBMn: MN-major blocks of
  // 64 reduction rows × 64 columns, 8 KiB apart: the transposed filter as it lies, TcGatherLoader's kBMn).
  const uint64_t da0 = wgmma_desc_sw128(sA_addr + uint32_t(wg) * 64u * 128u),
                 db0 = kBMn ? wgmma_desc_sw128_mn(sB_addr, 64u * 128u) : wgmma_desc_sw128(sB_addr);

  TcGatherLoader<T, kDgrad, NT, BM, BN, 8, kBMn> loader;
  loader.init(pr, tid, blk.m0, blk.n0, blk.g, blk.M, blk.kt0);
  auto load_tile = [&](int slot) {
    loader.load(pr, sA_addr + uint32_t(slot * BM * 128), sB_addr + uint32_t(slot * BN * 128),
                [](int row, int c) { return swz128(row, c, 8); });
  };

  // This warp's accumulators: rows 16·(warp mod 4) .. +15 of its warpgroup's 64, all BN columns, as NI mma tiles of
  // 16×8 (the wgmma accumulator layout is the mma.sync C fragment repeated along N, so rung 3's epilogue applies).
  float acc[1][Tile::NI][4];
  tc_zero(acc);
  tc_wg_mainloop<T, Tile, false, kBMn>(acc, load_tile, blk.KT, da0, db0);

  tc_conv_store<T, BM, BN, NT, 1, Tile::NI, 16, STAGES * Tile::kStageBytes>(pr, acc, smem, blk.m0, blk.n0, blk.g,
                                                                            blk.split, blk.M, wg * 64 + (warp % 4) * 16,
                                                                            0, tid);
}
template <typename T, typename Tile, bool kDgrad, bool kBMn = kDgrad>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks) tc_wgmma_conv_kernel(TcConvParams<T> pr) {
#if defined(__CUDA_ARCH__) && !defined(PYCONV_WGMMA_DEVICE)
  __trap();  // an sm_80 (or plain sm_90) pass: no wgmma; the host launches this kernel only where has_wgmma()
#else
  if constexpr (kDgrad) {  // (a phased dgrad: this block's phase; fprop reads its parameters where they lie)
    int64_t bx = blockIdx.x;
    const TcConvParams<T> p = tc_phase_params(pr, bx);
    tc_wgmma_conv_block<T, Tile, kDgrad, kBMn>(p, bx);
  } else {
    tc_wgmma_conv_block<T, Tile, kDgrad, kBMn>(pr, blockIdx.x);
  }
#endif
}

// ---- warp-specialised kernels: a producer warpgroup and mbarriers instead of __syncthreads -------------------------
// tc_wgmma_conv_kernel's warps both copy and multiply, so every tile costs a block-wide barrier: the tensor cores wait
// while the slowest warp finishes its copies (and with nothing in flight, _s3, while all of them issue the next
// ones). Here the roles are split (CUTLASS's "warp-specialised" mainloop, with cp.async instead of TMA because the
// A operand is a gather):
//   warpgroup 0 (128 threads)      the producer: rung 3's gather loader, one tile after the other into a ring of
//                                  STAGES stages; before refilling a stage it waits on that stage's `empty` barrier,
//                                  after issuing a tile's copies each thread arrives on the stage's `full` barrier
//                                  through cp.async.mbarrier.arrive.noinc (the arrival fires when its copies land)
//   warpgroups 1 .. BM/64          the consumers, 64 rows of the block tile each: wait on `full`, fence the landed
//                                  copies into the async proxy, issue the tile's 4 wgmma, keep one group in flight
//                                  (wait_group 1) and arrive on the previous tile's `empty`
// No barrier couples the two sides inside the main loop, so the producer runs up to STAGES tiles ahead and the
// consumers issue wgmma back to back whenever data is there. One block of (1 + BM/64) warpgroups per SM with ~192 KiB
// of stages (64×128: two blocks of two warpgroups). The producer warps leave after their loop; the consumers write
// the epilogue.
template <int BM_, int BN_, int STAGES_, int MIN_BLOCKS_ = 1>
struct TcWsTile {
  static constexpr int BM = BM_, BN = BN_, STAGES = STAGES_, kMinBlocks = MIN_BLOCKS_, kInFlight = 1;
  static constexpr int kConsumers = BM / 64, kProducerThreads = 128, kThreads = 128 * (1 + kConsumers);
  static constexpr int kBK = 64, NI = BN / 8;
  static constexpr size_t kStageBytes = size_t(BM + BN) * 128;
  // After the stages: the epilogue's staging tile (BM rows of BN + 8 16-bit elements, tc_conv_store's layout) —
  // its own, so that the producer fills the ring for the block's next tile while the consumers store this one — then
  // the ring's barriers, full[STAGES] and empty[STAGES].
  static constexpr size_t kEpilogueBytes = size_t(BM) * (BN + 8) * 2;
  static constexpr size_t kBarrierBytes = kEpilogueBytes + 2 * STAGES * sizeof(uint64_t);
  static constexpr bool kWarpSpecialized = true;
  static_assert(BM % 64 == 0 && (BN == 64 || BN == 128 || BN == 256) && STAGES >= 2, "wgmma m64 × n64/n128/n256");
};
using TcWsTile128x128 = TcWsTile<128, 128, 5>;  // 384 threads, 5 × 32 KiB + 34 KiB of epilogue tile
using TcWsTile128x256 = TcWsTile<128, 256, 3>;  // 384 threads, 3 × 48 KiB + 66 KiB; 128 accumulators a consumer
// 256 threads (one consumer warpgroup), 3 × 24 KiB + 17 KiB: two blocks per SM, twice the tiles of 128×128 — for
// the late layers whose 128×128 tiles leave SMs idle (ResNet-50's 3×3 256-channel layer at 14×14: 98 tiles on 132).
using TcWsTile64x128 = TcWsTile<64, 128, 3, 2>;
// 384 threads, 8 × 24 KiB + 18 KiB: for GEMMs of ≤ 64 columns (ResNet-50's 64-channel layers), whose reduction is
// often one or two tiles (1×1 convolutions of 64-256 channels): memory-bound, so the depth of the ring is what counts —
// the producer runs up to 8 tiles (of the next output tiles) ahead while the consumers compute and store.
using TcWsTile128x64 = TcWsTile<128, 64, 8>;

// The pieces both warp-specialised kernels (fprop/dgrad below, wgrad after the MN-major helpers) share.
// The ring's barriers, after the stages (and the epilogue tile) in dynamic shared memory: full[STAGES], empty[STAGES].
template <typename Tile>
__device__ __forceinline__ uint64_t* tc_ws_barriers(unsigned char* stages) {
  return reinterpret_cast<uint64_t*>(stages + Tile::STAGES * Tile::kStageBytes + Tile::kEpilogueBytes);
}

// Thread 0 initialises the ring's barriers; the caller's __syncthreads publishes them. `producers`: the arrivals that
// fill a stage (the producer warpgroup's threads with cp.async; the one issuing thread with TMA).
template <typename Tile>
__device__ __forceinline__ void tc_ws_init(uint64_t* full, uint64_t* empty, int producers = Tile::kProducerThreads) {
  if (threadIdx.x == 0) {
#pragma unroll 1
    for (int s = 0; s < Tile::STAGES; ++s) {
      mbarrier_init(&full[s], producers);
      mbarrier_init(&empty[s], Tile::kConsumers * 128);
    }
    mbarrier_init_fence();
  }
}

// The producer's loop over KT reduction tiles at ring positions ring .. ring + KT − 1 (the ring runs on across a
// persistent block's output tiles): load_tile(slot) issues this thread's copies of the next tile into stage `slot`.
// Ring position p uses stage s = p mod STAGES for the u-th time, u = p / STAGES: phase u of full[s]; it may start
// once the consumers released use u − 1 (phase u − 1 of empty[s]).
template <typename Tile, typename Load>
__device__ __forceinline__ void tc_ws_produce(Load&& load_tile, int ring, int KT, uint64_t* full, uint64_t* empty) {
  constexpr int STAGES = Tile::STAGES;
  int s = ring % STAGES;
  uint32_t use = uint32_t(ring / STAGES);  // (stage and use counted along: no division per tile)
#pragma unroll 1
  for (int p = ring; p < ring + KT; ++p) {
    if (use > 0) mbarrier_wait_parity(&empty[s], (use - 1) & 1);
    load_tile(s);
    cp_async_mbarrier_arrive_noinc(&full[s]);
    if (++s == STAGES) s = 0, ++use;
  }
}

// The producer leaves only once its last copies have landed (the full phases of the last ring positions completed):
// no copy of this thread is in flight when it exits. (Only producer arrivals complete a full phase, so a completed
// one stays observable.)
template <typename Tile>
__device__ __forceinline__ void tc_ws_produce_tail(int ring, uint64_t* full) {
  constexpr int STAGES = Tile::STAGES;
#pragma unroll 1
  for (int p = ring > STAGES ? ring - STAGES : 0; p < ring; ++p)
    mbarrier_wait_parity(&full[p % STAGES], (p / STAGES) & 1);
}

// A consumer warpgroup's loop over KT tiles at ring positions ring .. ring + KT − 1: da0 / db0 describe stage 0 of its
// 64 rows of A and of all of B (stage s is s · BM · 128 and s · BN · 128 bytes further, as in tc_wg_mainloop);
// kMnA / kMnB: that operand MN-major (its k16 steps 2048 bytes apart instead of 32). Ends with every wgmma complete
// and every stage it read released.
// kFence: the stages were filled by cp.async (generic proxy), which must be fenced into the async proxy before the
// tensor cores read them; TMA writes through the async proxy already.
template <typename T, typename Tile, bool kMnA, bool kMnB, bool kFence>
__device__ __forceinline__ void tc_ws_consume(float (&acc)[1][Tile::NI][4], int ring, int KT, uint64_t* full,
                                              uint64_t* empty, uint64_t da0, uint64_t db0) {
  constexpr int BM = Tile::BM, BN = Tile::BN, STAGES = Tile::STAGES;
  constexpr uint32_t kStepA = kMnA ? 2048 / 16 : 32 / 16, kStepB = kMnB ? 2048 / 16 : 32 / 16;
  tc_zero(acc);
  int s = ring % STAGES, prev = s == 0 ? STAGES - 1 : s - 1;  // the stages of positions p and p − 1
  uint32_t use = uint32_t(ring / STAGES);
#pragma unroll 1
  for (int p = ring; p < ring + KT; ++p) {
    mbarrier_wait_parity(&full[s], use & 1);
    if (kFence) fence_proxy_async_smem();  // the landed copies (generic proxy) before the tensor cores (async proxy)
    const uint64_t da = wgmma_desc_add(da0, uint32_t(s * BM * 128 / 16)),
                   db = wgmma_desc_add(db0, uint32_t(s * BN * 128 / 16));
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < Tile::kBK / 16; ++ks)
      wgmma_m64k16<T, BN, kMnA, kMnB>(acc[0], wgmma_desc_add(da, kStepA * ks), wgmma_desc_add(db, kStepB * ks));
    wgmma_commit();
    wgmma_wait<1>();  // position p − 1's group is complete: its stage may be refilled
    if (p > ring) mbarrier_arrive(&empty[prev]);
    prev = s;
    if (++s == STAGES) s = 0, ++use;
  }
  wgmma_wait<0>();
  if (KT > 0) mbarrier_arrive(&empty[prev]);  // the last stage too (a next tile may follow)
}

// A warp-specialised block's dynamic shared memory (from PYCONV_WG_SMEM's 1024-byte aligned base): the ring's A and B
// stages (128-byte rows, 128-byte swizzled; K-major or MN-major blocks), the epilogue's staging tile, the barriers.
template <typename T, typename Tile>
struct TcWsShared {
  T* sA;  // [STAGES][BM rows (or BM/64 MN-major blocks)][64]
  T* sB;  // [STAGES][BN rows (or blocks)][64]
  T* sC;  // the epilogue's staging tile (fprop/dgrad)
  uint64_t *full, *empty;
  uint32_t sA_addr, sB_addr;
  __device__ __forceinline__ explicit TcWsShared(T* smem)
      : sA(smem),
        sB(smem + Tile::STAGES * Tile::BM * Tile::kBK),
        sC(smem + Tile::STAGES * (Tile::BM + Tile::BN) * Tile::kBK),
        full(tc_ws_barriers<Tile>(reinterpret_cast<unsigned char*>(smem))),
        empty(full + Tile::STAGES),
        sA_addr(smem_window_addr(sA)),
        sB_addr(smem_window_addr(sB)) {}
};

// The output tiles of a persistent fprop/dgrad kernel (x fastest, as tc_conv_grid numbers them; split-K slices last)
// and tile t's block; kt_all: the reduction tiles per output tile when the caller counts its own (TMA), else 0.
template <typename T, typename Tile>
struct TcWsTiles {
  int64_t x, y, count;
  int kt_all;
  __device__ __forceinline__ TcWsTiles(const TcConvParams<T>& pr, int kt_all_ = 0)
      : x((pr.N * pr.OH * pr.OW + Tile::BM - 1) / Tile::BM),
        y((pr.gemm_n + Tile::BN - 1) / Tile::BN),
        count(x * y * pr.groups * (pr.ws != nullptr ? pr.splits : 1)),
        kt_all(kt_all_) {}
  __device__ __forceinline__ TcBlock at(const TcConvParams<T>& pr, int64_t t) const {
    if (count <= INT32_MAX) {  // (uniform; any real grid) 32-bit divisions: every consumer thread decodes every tile
      const uint32_t tu = uint32_t(t), xu = uint32_t(x), yu = uint32_t(y), q = tu / xu;
      return tc_block_at(pr, Tile::BM, Tile::BN, Tile::kBK, tu - q * xu, int(q % yu), q / yu, kt_all);
    }
    return tc_block_at(pr, Tile::BM, Tile::BN, Tile::kBK, t % x, int((t / x) % y), t / (x * y), kt_all);
  }
};

// The consumer warpgroups of a persistent fprop/dgrad kernel, from ring position `ring` on: warpgroup c = wg − 1
// computes rows 64c .. 64c + 63 of each of the block's output tiles and writes them through the staging tile. The
// producer warps never join the epilogue, so the consumers (ids tid − 128) synchronise it by named barrier 1. (With
// the producers in the epilogue too, the accumulators were live in code both roles ran: 128×256 spilled at the 168
// registers a thread that 384 threads allow.) kFence: see tc_ws_consume. kMnB: B's stages hold MN-major blocks
// (64 reduction rows × 64 columns of 128 bytes, 8 KiB apart: the TMA dgrad kernel's filter) instead of K-major rows.
// The staging tile is swizzled (TcStage), the layout a TMA store reads, on the 128×64 and 128×128 tiles; y_map (the
// TMA kernel, where the host made it): the tiles leave by TMA stores (tc_conv_store's "TMA stores"), else by the
// chunked stores. (128×256 and 64×128 keep the padded tile and the chunked stores: with the swizzled addresses
// 128×256's 128 accumulators a thread spilled 240-340 bytes at 168 registers, 64×128 16-76 bytes at the 128 of its
// two blocks a SM.)
template <typename T, typename Tile, bool kFence, bool kMnB = false>
__device__ __forceinline__ void tc_ws_conv_consumers(const TcConvParams<T>& pr, const TcWsShared<T, Tile>& sh,
                                                     const TcWsTiles<T, Tile>& tiles, int ring,
                                                     const TmaDesc* y_map = nullptr) {
  constexpr bool kSwz = Tile::BN <= 128 && Tile::kMinBlocks == 1;
  if constexpr (!kSwz) y_map = nullptr;
  const int tid = threadIdx.x, warp = tid / 32, wg = warp / 4;
  const uint64_t da0 = wgmma_desc_sw128(sh.sA_addr + uint32_t(wg - 1) * 64u * 128u),
                 db0 = kMnB ? wgmma_desc_sw128_mn(sh.sB_addr, 64u * 128u) : wgmma_desc_sw128(sh.sB_addr);
  float acc[1][Tile::NI][4];
#pragma unroll 1
  for (int64_t t = blockIdx.x; t < tiles.count; t += gridDim.x) {
    const TcBlock blk = tiles.at(pr, t);
    tc_ws_consume<T, Tile, false, kMnB, kFence>(acc, ring, blk.KT, sh.full, sh.empty, da0, db0);
    ring += blk.KT;
    tc_conv_store<T, Tile::BM, Tile::BN, Tile::kConsumers * 128, 1, Tile::NI, 16, Tile::kEpilogueBytes, 1, kSwz>(
        pr, acc, sh.sC, blk.m0, blk.n0, blk.g, blk.split, blk.M, (wg - 1) * 64 + (warp % 4) * 16, 0, tid - 128,
        y_map);
  }
  // the last tile's stores complete before the block's shared memory (their source) goes
  if (y_map != nullptr && tid == 128) tma_store_wait<0, true>();
}

// Persistent: the grid holds at most the resident blocks (pr.persistent_blocks), and each loops over output tiles
// t = blockIdx.x, blockIdx.x + gridDim.x, … (x fastest, as tc_conv_grid numbers them, so the blocks running at once
// share B's column tiles). The ring runs on from tile to tile: while the consumers write one tile's epilogue (from
// their own staging tile, not the ring), the producer already fills the ring with the next tile's operands.
template <typename T, typename Tile, bool kDgrad>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks) tc_wgmma_ws_conv_kernel(TcConvParams<T> pr) {
#if defined(__CUDA_ARCH__) && !defined(PYCONV_WGMMA_DEVICE)
  __trap();  // see tc_wgmma_conv_kernel
#else
  constexpr int BM = Tile::BM, BN = Tile::BN;
  PYCONV_WG_SMEM(smem);
  const TcWsShared<T, Tile> sh(smem);
  const TcWsTiles<T, Tile> tiles(pr);
  tc_ws_init<Tile>(sh.full, sh.empty);
  __syncthreads();  // the barriers are initialised before any thread arrives on or waits for them

  const int tid = threadIdx.x;
  if (tid < 128) {  // warpgroup 0, the producer: the gather loader into the ring, tile after tile
    int ring = 0;   // ring position of the next reduction tile, across this block's output tiles
#pragma unroll 1
    for (int64_t t = blockIdx.x; t < tiles.count; t += gridDim.x) {
      const TcBlock blk = tiles.at(pr, t);
      TcGatherLoader<T, kDgrad, Tile::kProducerThreads, BM, BN, 8, kDgrad> loader;
      loader.init(pr, tid, blk.m0, blk.n0, blk.g, blk.M, blk.kt0);
      tc_ws_produce<Tile>([&](int slot) {
        loader.load(pr, sh.sA_addr + uint32_t(slot * BM * 128), sh.sB_addr + uint32_t(slot * BN * 128),
                    [](int row, int c) { return swz128(row, c, 8); });
      }, ring, blk.KT, sh.full, sh.empty);
      ring += blk.KT;
    }
    tc_ws_produce_tail<Tile>(ring, sh.full);
    return;
  }
  tc_ws_conv_consumers<T, Tile, true, kDgrad>(pr, sh, tiles, 0);
#endif
}

// wgrad on wgmma: dw[g][k][(r, s, c)] = Σ_npq dy[npq][g·kp + k] · x(npq, tap (r, s), channel g·cp + c), one block per
// BM output channels × BN columns (r, s, c) × reduction slice; A and B tiles MN-major (see the top of this file).
template <typename T, typename Tile>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks) tc_wgmma_wgrad_kernel(TcWgradParams<T> pr) {
#if defined(__CUDA_ARCH__) && !defined(PYCONV_WGMMA_DEVICE)
  __trap();  // see tc_wgmma_conv_kernel
#else
  constexpr int BM = Tile::BM, BN = Tile::BN, NT = Tile::kThreads, kBK = Tile::kBK;
  constexpr uint32_t kBlockBytes = 64u * kBK * 2u;  // one 64-element-wide MN-major block of a stage: the LBO
  PYCONV_WG_SMEM(smem);
  T* sA = smem;                            // [STAGES][BM/64][64 rows][64] (BM·128 bytes a stage, as above)
  T* sB = smem + Tile::STAGES * BM * kBK;  // [STAGES][BN/64][64 rows][64]
  const uint32_t sA_addr = smem_window_addr(sA), sB_addr = smem_window_addr(sB);

  const int tid = threadIdx.x, warp = tid / 32, wg = warp / 4;
  const TcWgradRange rg = tc_wgrad_range(pr, kBK);
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  // Stage 0 of this warpgroup's A block (its 64 output channels: block wg) and of all BN/64 blocks of B.
  const uint64_t da0 = wgmma_desc_sw128_mn(sA_addr + uint32_t(wg) * kBlockBytes, kBlockBytes),
                 db0 = wgmma_desc_sw128_mn(sB_addr, kBlockBytes);

  TcWgradLoader<T, NT, BM, BN, kBK> loader;
  loader.init(pr, tid, m0, n0, rg.g, rg.kt0);
  auto load_tile = [&](int slot) {
    loader.load(pr, sA_addr + uint32_t(slot * BM * 128), sB_addr + uint32_t(slot * BN * 128),
                [](int row, int c, int) { return tc_wg_mn_offset(row, c); });
  };

  float acc[1][Tile::NI][4];
  tc_zero(acc);
  tc_wg_mainloop<T, Tile, true, true>(acc, load_tile, rg.KT, da0, db0);
  tc_wgrad_store<T, 1, Tile::NI>(pr, acc, m0 + wg * 64 + (warp % 4) * 16, n0, rg.g, rg.split, tid % 32);
#endif
}

// The consumer warpgroups of a warp-specialised wgrad block: warpgroup c = wg − 1 computes output channels
// 64c .. 64c + 63 of the block's tile from MN-major stages (one 64-element block each, 8 KiB apart: the LBO) and
// writes them (or its split-K slice). kFence: see tc_ws_consume.
template <typename T, typename Tile, bool kFence>
__device__ __forceinline__ void tc_ws_wgrad_consumers(const TcWgradParams<T>& pr, const TcWsShared<T, Tile>& sh,
                                                      const TcWgradRange& rg) {
  constexpr uint32_t kBlockBytes = 64u * Tile::kBK * 2u;
  const int tid = threadIdx.x, warp = tid / 32, wg = warp / 4;
  float acc[1][Tile::NI][4];
  tc_ws_consume<T, Tile, true, true, kFence>(acc, 0, rg.KT, sh.full, sh.empty,
                                       wgmma_desc_sw128_mn(sh.sA_addr + uint32_t(wg - 1) * kBlockBytes, kBlockBytes),
                                       wgmma_desc_sw128_mn(sh.sB_addr, kBlockBytes));
  tc_wgrad_store<T, 1, Tile::NI>(pr, acc, blockIdx.x * Tile::BM + (wg - 1) * 64 + (warp % 4) * 16,
                                 blockIdx.y * Tile::BN, rg.g, rg.split, tid % 32);
}

// wgrad, warp-specialised: tc_wgmma_wgrad_kernel's operands, loader and store with tc_wgmma_ws_conv_kernel's roles
// (a producer warpgroup running the wgrad loader, one consumer warpgroup per 64 output channels).
template <typename T, typename Tile>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks) tc_wgmma_ws_wgrad_kernel(TcWgradParams<T> pr) {
#if defined(__CUDA_ARCH__) && !defined(PYCONV_WGMMA_DEVICE)
  __trap();  // see tc_wgmma_conv_kernel
#else
  constexpr int BM = Tile::BM, BN = Tile::BN, kBK = Tile::kBK;
  PYCONV_WG_SMEM(smem);
  const TcWsShared<T, Tile> sh(smem);
  const TcWgradRange rg = tc_wgrad_range(pr, kBK);
  tc_ws_init<Tile>(sh.full, sh.empty);
  __syncthreads();  // the barriers are initialised before any thread arrives on or waits for them

  const int tid = threadIdx.x;
  if (tid < 128) {
    TcWgradLoader<T, Tile::kProducerThreads, BM, BN, kBK> loader;
    loader.init(pr, tid, blockIdx.x * BM, blockIdx.y * BN, rg.g, rg.kt0);
    tc_ws_produce<Tile>([&](int slot) {
      loader.load(pr, sh.sA_addr + uint32_t(slot * BM * 128), sh.sB_addr + uint32_t(slot * BN * 128),
                  [](int row, int c, int) { return tc_wg_mn_offset(row, c); });
    }, 0, rg.KT, sh.full, sh.empty);
    tc_ws_produce_tail<Tile>(rg.KT, sh.full);
  } else {
    tc_ws_wgrad_consumers<T, Tile, true>(pr, sh, rg);
  }
#endif
}
// ---- TMA: the copy engine as the producer ("tensor_core_wgmma_tma") --------------------------------------------------
// tc_wgmma_ws_conv_kernel with its gather loader replaced by TMA loads per reduction tile (csrc/common/tma.cuh):
// A, the tile's BM output pixels × 64 channels of one tap, by an im2col load of the NHWC source; B, the BN GEMM
// columns × the same 64 channels of the same tap, by tiled loads of the filter:
//   fprop: the filter [K][R][S][C/g] (channels last) viewed as {ca, R·S, groups·gemm_n}: one box of 64 channels ×
//     1 tap × BN filter rows, K-major (a row's 64 reduction channels contiguous) like A;
//   dgrad: the GEMM's B is the transposed filter (columns c, reduction k), and the filter is read in place, without
//     the transpose kernel the other rungs run first (tc_dgrad_weight): viewed as {C/g, R·S, K} (c contiguous), each
//     of BN/64 boxes of 64 c × 1 tap × 64 k lands as one MN-major block (64 reduction rows k of 128 bytes of c, the
//     blocks 8 KiB apart), which the consumers' wgmma reads transposed (imm-trans-b = 1).
// One thread of the producer warpgroup issues them and posts the stage's bytes on its `full` barrier; the rest of the
// producer warpgroup leaves at once. What the hardware does that the loader did: every address, the padding (pixels
// outside the image read as zero), the channel tail past C (zero), the rows past the last image (zero).
//
// The reduction runs tap by tap, ⌈ca/64⌉ 64-channel chunks per tap (the gather loader packs R·S·ca densely instead):
// tile kt = (tap, chunk), tap = (r, s). Channels past ca read zero in both operands (B's map is ca wide); channels of
// the next group inside a chunk are excluded by the host (grouped convolutions need ca a multiple of 64 here).
//
// Tap offsets and corners (TcTmaMaps): fprop, source pixel (p·stride − pad + r·dil): the im2col box starts at
// lower = −pad, the tap offset is r·dil. dgrad (stride 1: the host's sub-pixel phases), source pixel
// (h + pad − r·dil) of dy, i.e. lower = pad − (R − 1)·dil and offset (R − 1 − r)·dil: the same walk over the flipped
// tap, while B's tap stays r: the filter tap TcConvParams' b_* fields map it to, as for the cp.async loaders — r itself
// with stride 1; for a sub-pixel phase of a strided dgrad (the host runs each as a stride-1 dgrad over the phase's
// taps r0, r0 + stride, …) the phase's own taps, so the one filter serves every phase.
// (wgrad, tc_wgmma_tma_wgrad_kernel below: `a` is dy's tiled map, `b` x's im2col map, cc unused)
//
// pix_tiled: the pixel operand (fprop/dgrad: A; wgrad: B) comes by tiled loads instead of im2col ones. Where the
// im2col walk is the identity — one tap (1×1), stride 1, no padding, the output grid the source's own — pixel m of the
// GEMM is the source's pixel m, and a source dense over its pixels is a plain matrix {channels, N·H·W}: its map is
// tiled (box 64 channels × BM pixels, or × 64 for wgrad's B blocks), the load names (channel, first pixel) and lands
// the very bytes the im2col load would (pixel rows of 128 bytes, 128-byte swizzled, rows past the last pixel zero).
// Why: the tiled form is the TMA unit's GEMM path (no bounding-box walk, no per-pixel wrap), and ResNet-50's 1×1
// stride-1 layers — 13 of its 23 convolutions, the ones furthest from cuDNN (0.44-0.72× in H200 run 11) — are all
// of this kind. PYCONV_TMA_PIXELS=im2col keeps the im2col loads (A/B timing; the results are bit-identical).
//
// y_tiled (fprop/dgrad, the 128×64 and 128×128 tiles): the consumers store each output tile by TMA (tc_conv_store's
// "TMA stores") through `y`, the tiled map of the output as {channels, N·P·Q, 1} in boxes of 64 channels × BM pixels
// — where the host could make it: a channels_last output dense over its pixels, channels in whole 16-byte rows, no
// split-K, no residual, no activation but ReLU or ReLU6 (bias and activation are applied as the tile is staged), and
// 64-column boxes that stay inside one group's channels.
struct TcTmaMaps {
  TmaDesc a, b, y;
  int lower_h, lower_w;  // first source row / column of output pixel (0, 0) at tap offset 0
  int cc;                // 64-channel chunks per tap (fprop/dgrad)
  int pix_tiled;         // 1: the pixel operand's map is tiled (see above), 0: im2col
  int y_tiled;           // 1: y is stored by TMA through map y (see above)
};

template <typename T, typename Tile, bool kDgrad>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    tc_wgmma_tma_conv_kernel(TcConvParams<T> pr, const __grid_constant__ TcTmaMaps maps) {
#if defined(__CUDA_ARCH__) && !defined(PYCONV_WGMMA_DEVICE)
  __trap();  // see tc_wgmma_conv_kernel
#else
  constexpr int BM = Tile::BM, BN = Tile::BN, STAGES = Tile::STAGES;
  PYCONV_WG_SMEM(smem);
  const TcWsShared<T, Tile> sh(smem);  // (the stages 128-byte swizzled by the TMA unit)
  const TcWsTiles<T, Tile> tiles(pr, pr.R * pr.S * maps.cc);
  tc_ws_init<Tile>(sh.full, sh.empty, 1);
  __syncthreads();  // the barriers are initialised before any thread arrives on or waits for them

  if (threadIdx.x < 128) {  // warpgroup 0: one thread issues the loads, the others leave
    if (threadIdx.x != 0) return;
    constexpr uint32_t kStageBytes = uint32_t(Tile::kStageBytes);  // A's BM rows + B's BN rows of 128 bytes
    int s = 0;
    uint32_t use = 0;
#pragma unroll 1
    for (int64_t t = blockIdx.x; t < tiles.count; t += gridDim.x) {
      const TcBlock blk = tiles.at(pr, t);
      // the tile's first output pixel (n, p, q) → the im2col walk's first source pixel at tap offset 0 (a tiled
      // pixel map names the pixel m0 itself: the host bounds M below 2^31)
      int n = 0, src_h = 0, src_w = 0;
      if (!maps.pix_tiled) {
        int64_t n64;
        int p, q;
        tc_pixel(pr, blk.m0, tc_pixels_small(blk.M), n64, p, q);
        n = int(n64), src_h = p * pr.stride_h + maps.lower_h, src_w = q * pr.stride_w + maps.lower_w;
      }
      const int c_base = int(blk.g) * pr.ca, b_row = int(blk.g) * pr.gemm_n + blk.n0;
      // reduction tile kt0 → (tap (r, sx), channel chunk), then counted along
      int chunk = blk.kt0 % maps.cc, tap = blk.kt0 / maps.cc, r = tap / pr.S, sx = tap - r * pr.S;
#pragma unroll 1
      for (int k = 0; k < blk.KT; ++k) {
        if (use > 0) mbarrier_wait_parity(&sh.empty[s], (use - 1) & 1);  // the consumers released its last use
        mbarrier_arrive_expect_tx(&sh.full[s], kStageBytes);
        const int ro = kDgrad ? pr.R - 1 - r : r, so = kDgrad ? pr.S - 1 - sx : sx;
        if (maps.pix_tiled)  // (uniform) one tap, the identity walk: the box of BM pixels from m0
          tma_load_tiled_3d(sh.sA_addr + uint32_t(s * BM * 128), &maps.a, &sh.full[s], c_base + chunk * 64,
                            int(blk.m0), 0);
        else
          tma_load_im2col_4d(sh.sA_addr + uint32_t(s * BM * 128), &maps.a, &sh.full[s], c_base + chunk * 64, src_w,
                             src_h, n, uint16_t(so * pr.dil_w), uint16_t(ro * pr.dil_h));
        if constexpr (kDgrad) {
          // BN/64 MN-major blocks: filter channels n0 + 64j .. (zero past C/g), output channels (the reduction) of
          // this group's chunk, at the filter tap of GEMM tap (r, sx)
          const int wtap = (pr.b_r0 + r * pr.b_step_h) * pr.b_S + pr.b_s0 + sx * pr.b_step_w;
#pragma unroll
          for (int j = 0; j < BN / 64; ++j)
            tma_load_tiled_3d(sh.sB_addr + uint32_t(s * BN * 128 + j * 64 * 128), &maps.b, &sh.full[s],
                              blk.n0 + 64 * j, wtap, c_base + chunk * 64);
        } else {
          tma_load_tiled_3d(sh.sB_addr + uint32_t(s * BN * 128), &maps.b, &sh.full[s], chunk * 64, tap, b_row);
        }
        if (++chunk == maps.cc) {
          chunk = 0, ++tap;
          if (++sx == pr.S) sx = 0, ++r;
        }
        if (++s == STAGES) s = 0, ++use;
      }
    }
    return;
  }
  // the consumers: the ws kernel's, without the proxy fence (the TMA unit writes through the async proxy); dgrad's
  // B in MN-major blocks
  tc_ws_conv_consumers<T, Tile, false, kDgrad>(pr, sh, tiles, 0, maps.y_tiled ? &maps.y : nullptr);
#endif
}

// wgrad with the TMA unit as producer: tc_wgmma_ws_wgrad_kernel's consumers (MN-major operands) fed per reduction
// tile of 64 output pixels npq0 .. npq0 + 63 by BM/64 + BN/64 loads of 64 rows × 64 elements each, which land in
// exactly the MN-major blocks the descriptors read (64 reduction rows of 128 bytes, 128-byte swizzled, 8 KiB apart):
//   A block j (output channels m0 + 64j ..): a tiled load of dy viewed as {groups·kp, N·P·Q, 1} at (g·kp + m0 + 64j,
//     npq0) — rows past N·P·Q read zero; channels past the group's kg only feed dw rows no store writes;
//   B block j (GEMM columns n0 + 64j .., one tap (r, s) and 64 channels c0 of it: the host requires cp to be a
//     multiple of 64): an im2col load of x at the walk's first pixel of npq0 and tap offsets (s·dil, r·dil) — fprop's
//     walk over the output pixels (TcTmaMaps' corners), so pixel npq0 + i of the tile reads x at its tap, zero in the
//     padding and past the last image. A block past the GEMM's R·S·cp columns loads tap 0 (columns no store writes).
//     With maps.pix_tiled (a 1×1, stride-1, unpadded convolution over a pixel-dense x) a tiled load of x viewed as
//     {channels, N·H·W, 1} at (c0, npq0) instead: the same 64 pixel rows.
template <typename T, typename Tile>
__global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)
    tc_wgmma_tma_wgrad_kernel(TcWgradParams<T> pr, const __grid_constant__ TcTmaMaps maps) {
#if defined(__CUDA_ARCH__) && !defined(PYCONV_WGMMA_DEVICE)
  __trap();  // see tc_wgmma_conv_kernel
#else
  constexpr int BM = Tile::BM, BN = Tile::BN, STAGES = Tile::STAGES, kBK = Tile::kBK;
  constexpr uint32_t kBlockBytes = 64u * kBK * 2u;  // one 64-element-wide MN-major block
  PYCONV_WG_SMEM(smem);
  const TcWsShared<T, Tile> sh(smem);
  const TcWgradRange rg = tc_wgrad_range(pr, kBK);
  const int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
  tc_ws_init<Tile>(sh.full, sh.empty, 1);
  __syncthreads();  // the barriers are initialised before any thread arrives on or waits for them

  if (threadIdx.x < 128) {  // warpgroup 0: one thread issues the loads, the others leave
    if (threadIdx.x != 0) return;
    // B's column blocks: channel (in x) and tap offsets of columns n0 + 64j, fixed for the whole reduction
    int b_c[BN / 64], b_offw[BN / 64], b_offh[BN / 64];
#pragma unroll
    for (int j = 0; j < BN / 64; ++j) {
      const int n = n0 + 64 * j, tap = n < pr.R * pr.S * pr.cp ? n / pr.cp : 0, r = tap / pr.S;
      b_c[j] = int(rg.g) * pr.cp + (n < pr.R * pr.S * pr.cp ? n - tap * pr.cp : 0);
      b_offw[j] = (tap - r * pr.S) * pr.dil_w, b_offh[j] = r * pr.dil_h;
    }
    const int a_k = int(rg.g) * pr.kp + m0;
    int s = 0;
    uint32_t use = 0;
#pragma unroll 1
    for (int k = 0; k < rg.KT; ++k) {
      const uint32_t npq0 = uint32_t(rg.kt0 + k) * 64u;  // < 2^31 (tc_unsupported)
      uint32_t n = 0;
      int src_h = 0, src_w = 0;
      if (!maps.pix_tiled) {  // (uniform) the im2col walk's first source pixel; a tiled map names npq0 itself
        n = pr.pq_div.div(npq0);
        const uint32_t pq = npq0 - n * uint32_t(pr.P) * uint32_t(pr.Q);
        const uint32_t p = pr.q_div.div(pq), q = pq - p * uint32_t(pr.Q);
        src_h = int(p) * pr.stride_h + maps.lower_h, src_w = int(q) * pr.stride_w + maps.lower_w;
      }
      if (use > 0) mbarrier_wait_parity(&sh.empty[s], (use - 1) & 1);  // the consumers released its last use
      mbarrier_arrive_expect_tx(&sh.full[s], uint32_t(Tile::kStageBytes));
#pragma unroll
      for (int j = 0; j < BM / 64; ++j)
        tma_load_tiled_3d(sh.sA_addr + uint32_t(s * BM * 128) + j * kBlockBytes, &maps.a, &sh.full[s], a_k + 64 * j,
                          int(npq0), 0);
#pragma unroll
      for (int j = 0; j < BN / 64; ++j) {
        if (maps.pix_tiled)  // (uniform) 1×1, stride 1, no padding: 64 pixels from npq0 of channels b_c[j]
          tma_load_tiled_3d(sh.sB_addr + uint32_t(s * BN * 128) + j * kBlockBytes, &maps.b, &sh.full[s], b_c[j],
                            int(npq0), 0);
        else
          tma_load_im2col_4d(sh.sB_addr + uint32_t(s * BN * 128) + j * kBlockBytes, &maps.b, &sh.full[s], b_c[j],
                             src_w, src_h, int(n), uint16_t(b_offw[j]), uint16_t(b_offh[j]));
      }
      if (++s == STAGES) s = 0, ++use;
    }
    return;
  }
  tc_ws_wgrad_consumers<T, Tile, false>(pr, sh, rg);
#endif
}

#undef PYCONV_WG_SMEM

// The opt-in to more than 48 KiB of dynamic shared memory, once per kernel and device (cudaFuncSetAttribute is a
// driver call: not one per launch). One instantiation, hence one flag word, per kernel.
template <auto kKernel>
cudaError_t tc_wg_opt_in(size_t bytes) {
#if defined(PYCONV_EMULATION)
  return set_max_dynamic_smem(kKernel, bytes);
#else
  static std::atomic<uint64_t> done{0};  // one bit per device (devices ≥ 64 opt in on every launch)
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  if (dev < 64 && ((done.load(std::memory_order_relaxed) >> dev) & 1)) return cudaSuccess;
  e = set_max_dynamic_smem(kKernel, bytes);
  if (e == cudaSuccess && dev < 64) done.fetch_or(uint64_t(1) << dev, std::memory_order_relaxed);
  return e;
#endif
}

template <typename T, typename Tile, bool kDgrad, bool kBMn = kDgrad>
cudaError_t launch_tc_wgmma_kernel(const TcConvParams<T>& pr, dim3 grid, cudaStream_t stream) {
  constexpr size_t smem = tc_wg_smem_bytes<Tile>();
  constexpr auto kKernel = [] {  // the warp-specialised kernel for its tiles (dgrad: B MN-major only)
    if constexpr (Tile::kWarpSpecialized) return tc_wgmma_ws_conv_kernel<T, Tile, kDgrad>;
    else return tc_wgmma_conv_kernel<T, Tile, kDgrad, kBMn>;
  }();
  const cudaError_t e = tc_wg_opt_in<kKernel>(smem);
  if (e != cudaSuccess) return e;
  return launch(kKernel, grid, dim3(Tile::kThreads), smem, stream, pr);
}

// The TMA kernel: persistent like the warp-specialised ones (pr.persistent_blocks blocks at most), then split-K's
// reduce when pr.ws is set.
template <typename T, typename Tile, bool kDgrad>
cudaError_t launch_tc_wgmma_tma_kernel(const TcConvParams<T>& pr, const TcTmaMaps& maps, dim3 grid,
                                       cudaStream_t stream) {
  constexpr size_t smem = tc_wg_smem_bytes<Tile>();
  constexpr auto kKernel = tc_wgmma_tma_conv_kernel<T, Tile, kDgrad>;
  const cudaError_t e = tc_wg_opt_in<kKernel>(smem);
  return e != cudaSuccess ? e : launch(kKernel, grid, dim3(Tile::kThreads), smem, stream, pr, maps);
}
template <typename T, typename Tile>
cudaError_t launch_tc_wgmma_tma_conv(const TcConvParams<T>& pr, const TcTmaMaps& maps, bool dgrad,
                                     cudaStream_t stream) {
  if (pr.nphases > 0) return cudaErrorInvalidValue;  // (phased dgrad launches: the plain kernels only)
  const dim3 g = tc_conv_grid(pr, Tile::BM, Tile::BN);
  const int64_t tiles = int64_t(g.x) * g.y * g.z;
  const dim3 grid(static_cast<unsigned>(pr.persistent_blocks > 0 && pr.persistent_blocks < tiles ? pr.persistent_blocks
                                                                                                  : tiles));
  const cudaError_t e = dgrad ? launch_tc_wgmma_tma_kernel<T, Tile, true>(pr, maps, grid, stream)
                              : launch_tc_wgmma_tma_kernel<T, Tile, false>(pr, maps, grid, stream);
  if (e != cudaSuccess || pr.ws == nullptr) return e;
  return launch_tc_splitk_reduce(pr, stream);
}

template <typename T, typename Tile>
cudaError_t launch_tc_wgmma_tma_wgrad(const TcWgradParams<T>& pr, const TcTmaMaps& maps, T* dw, Strides4 dws,
                                      cudaStream_t stream) {
  constexpr size_t smem = tc_wg_smem_bytes<Tile>();
  constexpr auto kKernel = tc_wgmma_tma_wgrad_kernel<T, Tile>;
  cudaError_t e = tc_wg_opt_in<kKernel>(smem);
  if (e == cudaSuccess)
    e = launch(kKernel, tc_wgrad_grid(pr, Tile::BM, Tile::BN), dim3(Tile::kThreads), smem, stream, pr, maps);
  return e != cudaSuccess ? e : launch_tc_wgrad_reduce(pr, dw, dws, stream);
}

template <typename T, typename Tile>
cudaError_t launch_tc_wgmma_wgrad(const TcWgradParams<T>& pr, T* dw, Strides4 dws, cudaStream_t stream) {
  constexpr size_t smem = tc_wg_smem_bytes<Tile>();
  constexpr auto kKernel = [] {
    if constexpr (Tile::kWarpSpecialized) return tc_wgmma_ws_wgrad_kernel<T, Tile>;
    else return tc_wgmma_wgrad_kernel<T, Tile>;
  }();
  cudaError_t e = tc_wg_opt_in<kKernel>(smem);
  if (e == cudaSuccess)
    e = launch(kKernel, tc_wgrad_grid(pr, Tile::BM, Tile::BN), dim3(Tile::kThreads), smem, stream, pr);
  return e != cudaSuccess ? e : launch_tc_wgrad_reduce(pr, dw, dws, stream);
}

template <typename T, typename Tile>
cudaError_t launch_tc_wgmma_conv(const TcConvParams<T>& pr, bool dgrad, cudaStream_t stream) {
  dim3 grid = tc_conv_grid(pr, Tile::BM, Tile::BN);
  if constexpr (Tile::kWarpSpecialized) {  // persistent: at most the resident blocks, each looping over tiles
    const int64_t tiles = int64_t(grid.x) * grid.y * grid.z;
    grid = dim3(static_cast<unsigned>(pr.persistent_blocks > 0 && pr.persistent_blocks < tiles ? pr.persistent_blocks
                                                                                                 : tiles));
  }
  // dgrad's B: MN-major (pr.b_mn: the b_* fields) or the K-major transposed copy (plain tiles only; the only form
  // of the n16 tile)
  if (dgrad && Tile::kWarpSpecialized && !pr.b_mn) return cudaErrorInvalidValue;
  if (dgrad && Tile::BN < 64 && pr.b_mn) return cudaErrorInvalidValue;
  if (pr.nphases > 0 && (Tile::kWarpSpecialized || !dgrad || pr.ws != nullptr))
    return cudaErrorInvalidValue;  // (phased dgrad: plain tiles, one pass)
  cudaError_t e;
  if constexpr (Tile::BN < 64)
    e = dgrad ? launch_tc_wgmma_kernel<T, Tile, true, false>(pr, grid, stream)
              : launch_tc_wgmma_kernel<T, Tile, false>(pr, grid, stream);
  else
    e = !dgrad    ? launch_tc_wgmma_kernel<T, Tile, false>(pr, grid, stream)
        : pr.b_mn ? launch_tc_wgmma_kernel<T, Tile, true, true>(pr, grid, stream)
                  : launch_tc_wgmma_kernel<T, Tile, true, false>(pr, grid, stream);
  if (e != cudaSuccess || pr.ws == nullptr) return e;
  return launch_tc_splitk_reduce(pr, stream);
}

}  // namespace cuda
}  // namespace pyconv
