// CUDA host wrappers for conv2d, in torchvision's order: check inputs → device guard → allocate → current stream →
// return early when empty → dtype dispatch → launch → check the launch. Kernels see raw pointers, element strides
// (so any memory layout works without a copy) and the current stream, which keeps the ops correct under
// torch.cuda.stream(...) and inside CUDA graphs.
//
// The same file is also compiled by the host compiler into the emulated backend (conv2d_emu.cpp includes it after
// csrc/emu/cuda_emu.h): then the ops are `pyconv_emu::*` on CPU tensors, and every launch below runs the unchanged
// kernels on the CPU emulator, so this host code (checks, grid math, algorithm choice) is exercised too.
#include <ATen/ATen.h>
#include <algorithm>
#include <cstdlib>
#include <torch/library.h>

#include "../common/cuda_glue.h"
#include "conv2d_glue.h"
#include "cuda_depthwise.cuh"
#include "cuda_direct.cuh"
#include "cuda_implicit_gemm.cuh"
#include "cuda_tensor_core.cuh"
#include "cuda_tensor_core_sm90.cuh"
#include "cuda_winograd.cuh"
#include "tuning.h"

namespace pyconv {
namespace {

void check_cuda(const at::Tensor& t, const char* name) { check_device(t, "conv2d", name); }

// ---- the tensor-core rung: eligibility, operand preparation, tile choice -------------------------------------------

enum class Dir { fprop, dgrad, wgrad };

bool is_tc(const std::string& algo) { return algo.rfind("tensor_core", 0) == 0; }
// The wgmma rung (rung 4, cuda_tensor_core_sm90.cuh): fprop, dgrad and wgrad.
bool is_wgmma(const std::string& algo) { return algo.rfind("tensor_core_wgmma", 0) == 0; }

// Channels per 16-byte vector: 8 for float16/bfloat16, 4 for float32 (TF32). Per-group channel counts are padded up
// to a multiple of it.
int64_t tc_vec(at::ScalarType dt) { return dt == at::kFloat ? 4 : 8; }
int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// float32 on the tensor cores means TF32 (10-bit mantissa inputs): "auto" uses it only where torch would use TF32
// for a GEMM (torch.backends.cuda.matmul.allow_tf32, off by default); naming a tensor_core rung is the explicit opt-in.
bool auto_tf32() { return at::globalContext().allowTF32CuBLAS(); }

// Why the tensor-core kernels cannot run this problem ("" when they can). They keep pixel coordinates, tap counts and
// the reduction index in 32-bit registers and put n tiles / groups on grid.y / grid.z.
std::string tc_unsupported(const Conv2dShape& s, at::ScalarType dt) {
  if (dt != at::kHalf && dt != at::kBFloat16 && dt != at::kFloat)
    return std::string("needs float16, bfloat16 or float32 (as TF32) tensors (got ") + c10::toString(dt) + ")";
  if (!has_tensor_cores()) return "needs a GPU of compute capability 8.0 or newer (mma.sync m16n8k16, cp.async)";
  const int64_t lim = int64_t(1) << 30;
  for (int64_t v : {s.H, s.W, s.P, s.Q, s.R * s.S * round_up(s.Cg(), 8), s.R * s.S * round_up(s.Kg(), 8),
                    s.stride_h, s.stride_w, s.pad_h + s.H, s.pad_w + s.W, s.dil_h * s.R, s.dil_w * s.S})
    if (v >= lim) return "has a spatial size, padding, dilation or R·S·C/groups of 2^30 or more";
  if (s.groups > 65535) return "supports at most 65535 groups";
  // The gather loader (TcGatherLoader) keeps one tap-validity bit per filter row and column of each tile row, and a
  // tap's element offset from its pixel in 32 bits: bounded here over both gathered operands (x for fprop, dy for
  // dgrad), whose padded pixels hold groups·round_up(C/g or K/g, 8) channels.
  if (s.R > 15 || s.S > 15)
    return "supports kernels of at most 15×15 taps, but got " + std::to_string(s.R) + "×" + std::to_string(s.S);
  const double pix = double(s.groups) * double(round_up(std::max(s.Cg(), s.Kg()), 8));
  if (double(s.R - 1) * double(s.dil_h) * double(std::max(s.W, s.Q)) * pix + double(s.S - 1) * double(s.dil_w) * pix +
          2 * pix + 128 >= double(int64_t(1) << 31))
    return "needs the element offset of a pixel's farthest tap below 2^31 (image width × channels × dilation × kernel "
           "too large)";
  // The wgrad loader (TcWgradLoader) decodes its reduction index N·P·Q in 32 bits and offsets within one image of x
  // (any pixel a tap of an output pixel reaches, padding included) in 32 bits.
  if (double(s.N) * double(s.P) * double(s.Q) >= double(int64_t(1) << 31))
    return "needs N·P·Q (output pixels of the batch) below 2^31";
  const double ext_h = double(std::max(s.H, s.P * s.stride_h) + s.R * s.dil_h + s.pad_h) + 1;
  const double ext_w = double(std::max(s.W, s.Q * s.stride_w) + s.S * s.dil_w + s.pad_w) + 1;
  if (ext_h * ext_w * pix >= double(int64_t(1) << 31))
    return "needs one image's elements (padding and taps included) below 2^31";
  return "";
}

// Why the wgmma rung cannot run this problem ("" when it can), beyond tc_unsupported.
std::string wgmma_unsupported(at::ScalarType dt) {
  if (dt != at::kHalf && dt != at::kBFloat16)
    return std::string("needs float16 or bfloat16 tensors (got ") + c10::toString(dt) + ")";
  if (!has_wgmma())
    return "needs a GPU of compute capability 9.0 (Hopper: wgmma) and a pyconv built for it (TORCH_CUDA_ARCH_LIST "
           "with 9.0a)";
  return "";
}

// A channels-last copy of the 4-D tensor t (N, C, H, W) as a contiguous [N][H][W][groups·cp] array whose channels
// come in groups of cp ≥ C/groups, zero-padded: the tensor-core kernels read 8 channels at a time. When t already is
// channels-last with C/groups a multiple of 8 this is the tensor itself (no copy).
at::Tensor nhwc_padded(const at::Tensor& t, int64_t groups, int64_t cp) {
  const int64_t N = t.size(0), C = t.size(1), H = t.size(2), W = t.size(3), cg = C / groups;
  at::Tensor v = t.permute({0, 2, 3, 1});
  if (cp != cg)
    v = at::constant_pad_nd(v.reshape({N, H, W, groups, cg}), {0, cp - cg}).reshape({N, H, W, groups * cp});
  v = v.contiguous();
  if (reinterpret_cast<uintptr_t>(v.data_ptr()) % 16 != 0) v = v.clone();  // an odd storage offset
  return v;
}

// "tensor_core" → a concrete tile: big tiles when they alone give every SM a block, smaller ones otherwise.
// "tensor_core_wgmma": 128×128 with 3 stages and two blocks per SM (_s3) whenever the GEMM has more than 64 columns,
// else 128×64 (64×64 when even those tiles leave SMs without a block); split-K fills small grids. Measured on an H100
// (ResNet-50 fprop/dgrad, float16 NHWC, batch 32, every tile timed: benchmarks/results/nvidia-h100-2026-11-26-run6-*):
// _s3 was the fastest wgmma tile on 24 of the 46 layers and within 15% on most others (one block of 8 warps per SM
// leaves the tensor cores idle while the warps wait at the barrier; a second block fills the gap), geomean vs cuDNN
// 0.64 fprop / 0.50 dgrad with this rule, 0.57 / 0.47 with the rule rung 3 uses (128×256 first), 0.66 / 0.53 taking
// the best tile of each layer.
std::string tc_tile(const std::string& algo, int64_t gemm_m, int64_t gemm_n, int64_t groups) {
  // "tensor_core_wgmma_tma" (auto's wherever tma_suits_auto): 128×256 only where its tiles fill two waves of the
  // GPU (one block per SM each), else 128×128 above 64 columns, 128×64 at most; split-K fills small grids. H200 run 10
  // (benchmarks/results/nvidia-h200-2026-11-27-run10-*, every TMA tile on every ResNet-50 layer, float16 NHWC batch
  // 32): with "128×256 above 128 columns" the layers of ≤ 1.5 waves of 128×256 tiles (layer3/4: 49-196 tiles on 132
  // SMs) ran 10-25% slower than at 128×128 (e.g. fprop 1024 → 256 at 14×14: 20.7 against 15.7 µs); the geomean
  // against cuDNN over the 22 layers read off the tile columns becomes 0.72× instead of 0.68× (fprop), 0.69× instead
  // of 0.66× (dgrad). The first waves' layers (≥ 2 waves) keep 128×256 (fprop 64 → 256 at 56×56: 53.9 against 61.8).
  if (algo == "tensor_core_wgmma_tma") {
    if (gemm_n > 128 && ceil_div(gemm_m, 128) * ceil_div(gemm_n, 256) * groups >= 2 * sm_count())
      return algo + "_128x256";
    return algo + (gemm_n <= 64 ? "_128x64" : "_128x128");
  }
  if (algo == "tensor_core_wgmma_ws") {  // (unmeasured: the wgmma rung's findings, one block per SM each)
    if (gemm_n > 128) return algo + "_128x256";
    if (gemm_n <= 64) return algo + "_128x64";
    const bool fills = ceil_div(gemm_m, 128) * ceil_div(gemm_n, 128) * groups >= sm_count();
    return algo + (fills ? "_128x128" : "_64x128");
  }
  if (algo != "tensor_core" && algo != "tensor_core_wgmma") return algo;
  const std::string base = algo + "_";
  const int64_t sms = sm_count();
  if (algo == "tensor_core_wgmma") {
    if (gemm_n <= 16) return base + "64x16";  // (unmeasured, 2026-11-27: TcWgTile64x16 says why)
    if (gemm_n > 64) return base + "128x128_s3";
    return ceil_div(gemm_m, 128) * groups >= sms ? base + "128x64" : base + "64x64";
  }
  if (gemm_n > 64 && ceil_div(gemm_m, 128) * ceil_div(gemm_n, 128) * groups >= sms) return base + "128x128";
  if (ceil_div(gemm_m, 128) * ceil_div(gemm_n, 64) * groups >= sms) return base + "128x64";
  return base + "64x64";
}

// Split-K for fprop/dgrad: the number of slices the reduction (R·S·C/g) is cut into. When the output tiles fill at
// most half of one wave (blocks_per_sm · SMs resident blocks; ResNet-50's later layers at batch 32 give 100-200 tiles
// on an H200's 132 SMs), slices multiply the blocks up to one full wave, at the price of float partial sums
// (splits·M·N·4 bytes, mostly L2-resident) and a second, memory-bound pass that adds them in a fixed order
// (deterministic) and applies bias and epilogue. Every slice keeps ≥ min_tiles reduction tiles (16 of rung 3's; 8 of
// the wgmma rung's, which are twice as long) so the pipeline's prologue stays amortized; at most 8 slices. Measured
// on an H200 (benchmarks/results/nvidia-h200-2026-11-26-run3-*): 0.55-0.75× the time on the 3×3 layers with 2 slices of
// 128×64 or 64×64 tiles; 1.5-1.7× when 2 slices of ~200 128×128 tiles overfilled the 264-block wave (the rule then was
// "fewer tiles than two per SM") — hence the wave capacity.
// PYCONV_TC_SPLIT_K=0 turns it off (for A/B timing).
int64_t tc_conv_splits(int64_t tiles, int64_t kt_all, int64_t min_tiles, int64_t groups, int64_t blocks_per_sm) {
  static const bool enabled = [] {
    const char* v = std::getenv("PYCONV_TC_SPLIT_K");
    return v == nullptr || std::string(v) != "0";
  }();
  const int64_t capacity = blocks_per_sm * sm_count();
  if (!enabled || 2 * tiles > capacity) return 1;
  return std::max<int64_t>(1, std::min<int64_t>({capacity / tiles, kt_all / min_tiles, 8, 65535 / groups}));
}

// A concrete tile's block shape and the resident blocks per SM of its fprop/dgrad kernel (the launch bounds'
// minimum: what registers and shared memory allow), read off the tile type.
struct TcTileShape {
  int64_t bm, bn, blocks_per_sm, bk;  // bk: elements of one reduction tile
};
template <typename T, typename Tile>
TcTileShape tc_tile_shape() {
  return {Tile::BM, Tile::BN, cuda::tc_conv_min_blocks<T, Tile>(), cuda::TcElem<T>::kBK};
}
template <typename Tile>
TcTileShape tc_wg_tile_shape() {
  return {Tile::BM, Tile::BN, Tile::kMinBlocks, Tile::kBK};
}
// A concrete tile name → f(its tile type): the one place each rung's tile names are mapped (rung 3, then wgmma).
template <typename F>
decltype(auto) with_tile(const std::string& tile, F&& f) {
  if (tile == "tensor_core_128x128") return f(cuda::TcTile128x128{});
  if (tile == "tensor_core_128x64") return f(cuda::TcTile128x64{});
  return f(cuda::TcTile64x64{});
}
// The warp-specialised wgmma tiles (fprop, dgrad and wgrad).
template <typename F>
decltype(auto) with_ws_tile(const std::string& tile, F&& f) {
  if (tile == "tensor_core_wgmma_ws_128x256") return f(cuda::TcWsTile128x256{});
  if (tile == "tensor_core_wgmma_ws_64x128") return f(cuda::TcWsTile64x128{});
  if (tile == "tensor_core_wgmma_ws_128x64") return f(cuda::TcWsTile128x64{});
  return f(cuda::TcWsTile128x128{});
}
bool is_ws(const std::string& tile) { return tile.rfind("tensor_core_wgmma_ws", 0) == 0; }
// The TMA kernels (tc_wgmma_tma_conv_kernel, fprop/dgrad) on the warp-specialised tiles' shapes.
template <typename F>
decltype(auto) with_tma_tile(const std::string& tile, F&& f) {
  if (tile == "tensor_core_wgmma_tma_128x256") return f(cuda::TcWsTile128x256{});
  if (tile == "tensor_core_wgmma_tma_128x64") return f(cuda::TcWsTile128x64{});
  return f(cuda::TcWsTile128x128{});
}
bool is_tma(const std::string& tile) { return tile.rfind("tensor_core_wgmma_tma", 0) == 0; }
// The warp-specialised (cp.async) counterpart of a TMA name: what wgrad runs under it, and what fprop/dgrad fall back
// to where the TMA maps cannot describe the problem (tma_prepare).
std::string tma_to_ws(const std::string& algo) {
  return "tensor_core_wgmma_ws" + algo.substr(std::string("tensor_core_wgmma_tma").size());
}
template <typename F>
decltype(auto) with_wg_tile(const std::string& tile, F&& f) {
  if (tile == "tensor_core_wgmma_128x256") return f(cuda::TcWgTile128x256{});
  if (tile == "tensor_core_wgmma_128x128") return f(cuda::TcWgTile128x128{});
  if (tile == "tensor_core_wgmma_128x128_s3") return f(cuda::TcWgTile128x128s3{});
  if (tile == "tensor_core_wgmma_128x64") return f(cuda::TcWgTile128x64{});
  return f(cuda::TcWgTile64x64{});
}
// fprop/dgrad only: those tiles and the n16 tile (wgrad's MN-major operands come in 64-column blocks).
template <typename F>
decltype(auto) with_wg_conv_tile(const std::string& tile, F&& f) {
  if (tile == "tensor_core_wgmma_64x16") return f(cuda::TcWgTile64x16{});
  return with_wg_tile(tile, std::forward<F>(f));
}

template <typename T>
TcTileShape tc_tile_shape(const std::string& tile) {
  if (is_ws(tile)) return with_ws_tile(tile, [](auto t) { return tc_wg_tile_shape<decltype(t)>(); });
  if (is_tma(tile)) return tc_tile_shape<T>(tma_to_ws(tile));  // (the same block shapes)
  if (is_wgmma(tile)) return with_wg_conv_tile(tile, [](auto t) { return tc_wg_tile_shape<decltype(t)>(); });
  return with_tile(tile, [](auto t) { return tc_tile_shape<T, decltype(t)>(); });
}

// wgrad's "tensor_core" / "tensor_core_wgmma" tile. Its split-K (wgrad_tc) supplies the parallelism that big tiles
// lack, so the biggest tile wins unless it is mostly padding: 128 rows (output channels K/g) only when there are more
// than 64 of them, 128 columns (R·S·C/g) only when there are more than 64 and the 128×128 tiles alone do not already
// overfill the GPU (then split-K has nothing to add and 128×64 keeps more blocks per SM). Measured on an H200
// (ResNet-50 / MobileNetV2 wgrad at batch 32, benchmarks/results/nvidia-h200-2026-11-26-run2-*): the 3×3 layers ran
// 3× faster at 128×128 with split-K than at the 64×64 the fprop rule chose (250 µs → 83 µs on 256 channels at 14×14).
// The wgmma rung: the same rule on its tiles, 128×128 as _s3 (two blocks per SM, the fprop/dgrad finding), except
// that 1×1 convolutions (taps == 1) take 128×64 — H200 run 8 timed every wgmma tile on every wgrad layer
// (benchmarks/results/nvidia-h200-2026-11-26-run8-*): on the 12 ResNet-50 1×1 layers the old rule gave _s3, 128×64
// was faster on 11 (by 1-17%, e.g. 128 → 512 channels at 28×28: 33.3 against 40.0 µs) and 9% slower on one (512 →
// 256 at 28×28); over all 23 layers the geomean against cuDNN becomes 0.498× instead of 0.477× (MobileNetV2's 20 dense
// layers: 0.644× instead of 0.607×). On the 3×3 layers of > 64 channels _s3 was the best wgmma tile or within 6%.
std::string tc_wgrad_tile(const std::string& algo, int64_t kg, int64_t gemm_n, int64_t groups, int64_t taps) {
  // the TMA names: the warp-specialised kernels' tile rule (tc_wgmma_tma_wgrad_kernel runs on their tiles)
  if (is_tma(algo)) {
    const std::string ws = tc_wgrad_tile(tma_to_ws(algo), kg, gemm_n, groups, taps);
    return "tensor_core_wgmma_tma" + ws.substr(std::string("tensor_core_wgmma_ws").size());
  }
  if (algo == "tensor_core_wgmma_ws") return algo + (kg <= 64 ? "_64x128" : gemm_n <= 64 ? "_128x64" : "_128x128");
  // the n16 tile is fprop/dgrad's: wgrad named with it takes the rung's own tile
  if (algo == "tensor_core_wgmma_64x16") return tc_wgrad_tile("tensor_core_wgmma", kg, gemm_n, groups, taps);
  if (algo == "tensor_core_wgmma") {
    if (kg <= 64) return "tensor_core_wgmma_64x64";
    return gemm_n > 64 && taps > 1 ? "tensor_core_wgmma_128x128_s3" : "tensor_core_wgmma_128x64";
  }
  if (algo != "tensor_core") return algo;
  if (kg <= 64) return "tensor_core_64x64";
  if (gemm_n > 64 && ceil_div(kg, 128) * ceil_div(gemm_n, 128) * groups <= sm_count()) return "tensor_core_128x128";
  return "tensor_core_128x64";
}

// The wgmma launch for a concrete tensor_core_wgmma_* tile (float16 / bfloat16 only).
template <typename T>
cudaError_t launch_wgmma_tile(const std::string& tile, const cuda::TcConvParams<T>& pr, bool dgrad,
                              cudaStream_t stream) {
  if constexpr (std::is_same<T, float>::value) {
    TORCH_CHECK(false, "pyconv: the wgmma tensor-core kernels take float16 or bfloat16");  // resolve_algo rejects it
  } else {
    auto run = [&](auto t) { return cuda::launch_tc_wgmma_conv<T, decltype(t)>(pr, dgrad, stream); };
    return is_ws(tile) ? with_ws_tile(tile, run) : with_wg_conv_tile(tile, run);
  }
}

// Why the Winograd rung (cuda_winograd.cuh) cannot run this convolution ("" when it can): F(2×2, 3×3) needs 3×3 taps,
// stride 1 and dilation 1 (any padding, groups and floating dtype), and its 16·groups GEMMs run as one grouped
// convolution, whose group count lives on a grid dimension (≤ 65535).
std::string winograd_unsupported(const Conv2dShape& s) {
  if (s.R != 3 || s.S != 3 || s.stride_h != 1 || s.stride_w != 1 || s.dil_h != 1 || s.dil_w != 1)
    return "needs a 3×3 kernel with stride 1 and dilation 1 (F(2×2, 3×3)), but got kernel (" + std::to_string(s.R) +
           ", " + std::to_string(s.S) + "), stride (" + std::to_string(s.stride_h) + ", " +
           std::to_string(s.stride_w) + "), dilation (" + std::to_string(s.dil_h) + ", " + std::to_string(s.dil_w) +
           ")";
  if (16 * s.groups > 65535) return "supports at most 4095 groups (its GEMMs run as 16·groups groups)";
  return "";
}

// Whether a strided dgrad of `phases` sub-pixel phases (those some tap reaches and those none does) runs them in one
// launch (run_tc_gather's `phases`): on the plain kernels (rung 3's, the plain wgmma tiles: one block per output
// tile, which the phase table re-targets per block), 2 to kTcMaxPhases phases. The persistent kernels decode their
// tiles in a loop and keep the fork. Unmeasured on a GPU (2026-11-27): PYCONV_DGRAD_PHASES=fork restores the fork for
// A/B timing.
bool phased_dgrad_ok(const std::string& algo, int64_t phases) {
  if (is_tma(algo) || is_ws(algo) || phases < 2 || phases > cuda::kTcMaxPhases) return false;
  const char* v = std::getenv("PYCONV_DGRAD_PHASES");  // (read per call: tests and A/B runs switch it)
  return v == nullptr || std::string(v) != "fork";
}

// Whether some filter tap reaches the sub-pixel phase (ph, pw) of a strided dgrad's dx: its first tap
// (ph + pad) mod stride lies inside the filter, in both directions.
bool dgrad_phase_reached(const Conv2dShape& s, int64_t ph, int64_t pw) {
  return (ph + s.pad_h) % s.stride_h < s.R && (pw + s.pad_w) % s.stride_w < s.S;
}

// The sub-pixel phases of a strided, undilated dgrad that some tap reaches (dgrad_tc runs one GEMM for each); 1
// without stride or with dilation (one GEMM).
int64_t dgrad_phase_count(const Conv2dShape& s) {
  if ((s.stride_h == 1 && s.stride_w == 1) || s.dil_h != 1 || s.dil_w != 1) return 1;
  int64_t n = 0;
  for (int64_t ph = 0; ph < s.stride_h && ph < s.H; ++ph)
    for (int64_t pw = 0; pw < s.stride_w && pw < s.W; ++pw) n += dgrad_phase_reached(s, ph, pw);
  return n;
}

// Whether auto's wgmma choice for direction `dir` ("fprop", "dgrad", "wgrad") of shape `s` is the TMA kernels
// (tensor_core_wgmma_tma) rather than the plain wgmma tiles: where their maps describe the problem (tma_prepare /
// tma_prepare_wgrad, from the shape alone: groups of 64-channel multiples; dgrad C/g a multiple of 8 and no stride
// with dilation; wgrad C/g padded to a multiple of 64) and TMA's reduction tiles — whole 64-channel chunks per tap —
// are no more than the gather loader's, which packs R·S·ca densely (a 7×7 stem of 3 channels, padded to 8, runs 49
// TMA tiles against 7: H200 run 10, 1232 against 259 µs). The padding and tap extents are bounded well inside the
// im2col corners' ±127. Where the maps still cannot take a call (an unaligned or non-dense operand) the TMA name's
// warp-specialised tile runs instead (tma_to_ws), correct but slower. Not a strided dgrad of several phases: the
// plain tiles run those in one launch (phased_dgrad_ok), the TMA kernels one per phase on forked streams.
bool tma_suits_auto(const Conv2dShape& s, const std::string& dir) {
  if ((s.R - 1) * s.dil_h > 64 || (s.S - 1) * s.dil_w > 64 || s.pad_h > 64 || s.pad_w > 64 || s.stride_h > 8 ||
      s.stride_w > 8)
    return false;
  if (dir == "wgrad") return round_up(s.Cg(), 8) % 64 == 0;
  const bool dgrad = dir == "dgrad";
  const int64_t ca = round_up(dgrad ? s.Kg() : s.Cg(), 8);  // the gathered operand's channels per group
  if (s.groups > 1 && ca % 64 != 0) return false;
  if (dgrad && (s.Cg() % 8 != 0 || ((s.stride_h != 1 || s.stride_w != 1) && (s.dil_h != 1 || s.dil_w != 1))))
    return false;
  // a strided dgrad whose phases the plain tiles run in one launch (the TMA kernels fork one per phase)
  if (dgrad && phased_dgrad_ok("tensor_core_wgmma", dgrad_phase_count(s))) return false;
  return s.R * s.S * ceil_div(ca, int64_t(64)) <= ceil_div(s.R * s.S * ca, int64_t(64));
}

// The default algorithm for "auto" in direction `dir` (pyconv.tuning may time the candidates and pass a concrete name
// instead). On a Hopper GPU built for sm_90a, 16-bit fprop/dgrad/wgrad run the wgmma rung, with the TMA kernels as
// producer wherever tma_suits_auto. Measured on an H200 (ResNet-50, float16 NHWC, batch 32, geomean against cuDNN
// over its 22 layers past the stem; run 10, benchmarks/results/nvidia-h200-2026-11-27-run10-*): the TMA kernels at
// their heuristic tile 0.68× fprop, 0.65× dgrad, 0.85× wgrad against the plain wgmma tiles' 0.59×, 0.58×, 0.74×,
// faster on 21, 20 and 19 of the 22 layers. The plain tiles in turn beat rung 3 (1.2-1.3× on an H100; wgrad 0.48×
// cuDNN against rung 3's 0.43× in run 8) and the warp-specialised cp.async kernels (at best 0.49× / 0.50× / 0.72× in
// run 10), so they take the shapes TMA does not suit.
std::string choose_cuda_algo(const Conv2dShape& s, at::ScalarType dt, const std::string& dir) {
  if (s.Cg() == 1) return "depthwise";  // padding one channel to the tensor cores' 8 would waste 7/8 of the work
  if ((dt != at::kFloat || auto_tf32()) && tc_unsupported(s, dt).empty()) {
    if (!wgmma_unsupported(dt).empty()) return "tensor_core";
    return tma_suits_auto(s, dir) ? "tensor_core_wgmma_tma" : "tensor_core_wgmma";
  }
  return "implicit_gemm";
}

// "auto": the autotuner's choice for this call when pyconv.tuning installed one, else the heuristic.
std::string resolve_algo(c10::string_view algo_name, const Conv2dShape& s, const at::Tensor& t, const char* dir) {
  const at::ScalarType dt = t.scalar_type();
  std::string algo;
  if (algo_name == "auto") {
    algo = tuned_for(dir, s, t);
    if (algo.empty()) algo = choose_cuda_algo(s, dt, dir);
  } else {
    algo = check_algo(algo_name, conv2d_cuda_algos(), "CUDA");
  }
  if (is_tc(algo)) {
    std::string why = tc_unsupported(s, dt);
    if (why.empty() && is_wgmma(algo)) why = wgmma_unsupported(dt);
    TORCH_CHECK(why.empty(), "pyconv.conv2d: algo '", algo, "' ", why, "; use algo='auto' or 'implicit_gemm'");
  }
  if (algo == "depthwise")
    TORCH_CHECK(s.Cg() == 1, "pyconv.conv2d: algo 'depthwise' needs one input channel per group (groups == C), but ",
                "got C=", s.C, " with groups=", s.groups, "; use algo='auto' or 'implicit_gemm'");
  if (algo == "winograd") {
    if (std::string(dir) == "wgrad") return choose_cuda_algo(s, dt, dir);  // F(2×2, 3×3) is fprop/dgrad only
    const std::string why = winograd_unsupported(s);
    TORCH_CHECK(why.empty(), "pyconv.conv2d: algo 'winograd' ", why, "; use algo='auto' or 'tensor_core'");
  }
  return algo;
}

// The im2col map of the NHWC tensor `a` ([N][AH][AW][channels], channel stride 1) walked over an OH × OW output grid
// of loads of `pixels` pixels: the bounding box runs from `lower` (the source pixel of output (0, 0) at tap offset 0)
// to the last output's source pixel, so the walk visits exactly the outputs of each image, then the next image.
// "" and `map` encoded, or why the map cannot describe it.
template <typename T>
std::string tma_im2col_map(const at::Tensor& a, int64_t lower_h, int64_t lower_w, int64_t out_h, int64_t out_w,
                           int64_t stride_h, int64_t stride_w, int64_t pixels, TmaDesc* map) {
  if (a.dim() != 4 || a.stride(3) != 1 || a.size(0) >= (int64_t(1) << 31)) return "needs a channels-last source";
  TmaIm2colSpec sa{};
  sa.base = a.data_ptr();
  sa.dims[0] = uint64_t(a.size(3)), sa.dims[1] = uint64_t(a.size(2)), sa.dims[2] = uint64_t(a.size(1));
  sa.dims[3] = uint64_t(a.size(0));
  sa.strides[0] = uint64_t(a.stride(2)) * sizeof(T), sa.strides[1] = uint64_t(a.stride(1)) * sizeof(T);
  sa.strides[2] = uint64_t(a.stride(0)) * sizeof(T);
  const int64_t upper_h = lower_h + (out_h - 1) * stride_h + 1 - a.size(1);
  const int64_t upper_w = lower_w + (out_w - 1) * stride_w + 1 - a.size(2);
  for (int64_t v : {lower_h, lower_w, upper_h, upper_w})
    if (v < -128 || v > 127) return "padding or filter extent outside the im2col corners' range [-128, 127]";
  sa.lower[0] = int(lower_w), sa.lower[1] = int(lower_h), sa.upper[0] = int(upper_w), sa.upper[1] = int(upper_h);
  sa.elem_strides[0] = uint32_t(stride_w), sa.elem_strides[1] = uint32_t(stride_h);
  sa.pixels = uint32_t(pixels);
  sa.bf16 = std::is_same<T, __nv_bfloat16>::value;
  const std::string why = tma_check_im2col(sa);
  if (!why.empty()) return why;
  // past the documented limits, which the checks mirror: a refusal now is a bug worth an error
  const std::string err = tma_encode_im2col(map, sa);
  TORCH_CHECK(err.empty(), "pyconv: the im2col tensor map ", err);
  return "";
}

// The tiled map of a dense 16-bit tensor {d0, d1, d2} (element strides s1 of d1, s2 of d2) in boxes of
// 64 × box1 × box2: 64 × 1 × BN (fprop's filter: {ca, R·S, groups·gemm_n}), 64 × 1 × 64 (dgrad's filter in place:
// {C/g, R·S, K}) or 64 × 64 × 1 (wgrad's dy: {groups·kp, N·P·Q, 1}).
template <typename T>
std::string tma_tiled_map(const void* base, int64_t d0, int64_t d1, int64_t d2, int64_t s1, int64_t s2, uint32_t box1,
                          uint32_t box2, TmaDesc* map) {
  TmaTiledSpec sb{};
  sb.base = base;
  sb.dims[0] = uint64_t(d0), sb.dims[1] = uint64_t(d1), sb.dims[2] = uint64_t(d2);
  sb.strides[0] = uint64_t(s1) * sizeof(T), sb.strides[1] = uint64_t(s2) * sizeof(T);
  sb.box[0] = 64, sb.box[1] = box1, sb.box[2] = box2;
  sb.bf16 = std::is_same<T, __nv_bfloat16>::value;
  const std::string why = tma_check_common(sb.base, sb.dims, 3, sb.strides);
  if (!why.empty()) return why;
  const std::string err = tma_encode_tiled(map, sb);
  TORCH_CHECK(err.empty(), "pyconv: the tiled tensor map ", err);
  return "";
}

// Whether the TMA kernels may read their pixel operand through a tiled map where the im2col walk is the identity
// (TcTmaMaps::pix_tiled): yes unless PYCONV_TMA_PIXELS=im2col (read per call: tests and A/B runs switch it).
bool tma_pixels_tiled_wanted() {
  const char* v = std::getenv("PYCONV_TMA_PIXELS");
  return v == nullptr || std::string(v) != "im2col";
}

// The tiled map of the NHWC tensor `a` ([N][H][W][channels], channel stride 1) as the matrix {channels, N·H·W, 1}
// in boxes of 64 channels × `pixels` pixels (TcTmaMaps::pix_tiled): "" and `map` encoded, or why it cannot — its
// pixels must lie at one stride (dense over N, H, W: nhwc_padded's copies always are, an output need not be) and
// number below 2^31 (the load's 32-bit coordinate).
template <typename T>
std::string tma_pixel_map(const at::Tensor& a, int64_t pixels, TmaDesc* map) {
  if (a.dim() != 4 || a.stride(3) != 1) return "needs a channels-last source";
  const int64_t n_pix = a.size(0) * a.size(1) * a.size(2);
  if (n_pix > INT32_MAX) return "needs fewer than 2^31 pixels";
  if ((a.size(1) > 1 && a.stride(1) != a.size(2) * a.stride(2)) ||
      (a.size(0) > 1 && a.stride(0) != a.size(1) * a.size(2) * a.stride(2)))
    return "needs the source's pixels at one stride";
  return tma_tiled_map<T>(a.data_ptr(), a.size(3), n_pix, 1, a.stride(2), a.stride(2) * n_pix, uint32_t(pixels), 1,
                          map);
}

// Whether the TMA kernels may store their output tiles by TMA (TcTmaMaps::y_tiled): yes unless PYCONV_TMA_STORE=0
// (read per call: tests and A/B runs switch it).
bool tma_store_wanted() {
  const char* v = std::getenv("PYCONV_TMA_STORE");
  return v == nullptr || std::string(v) != "0";
}

// The tiled map of a GEMM's output `out` (N, channels, OH, OW: the channels of `groups` groups of gemm_n) for the TMA
// stores of the TMA kernels' epilogue (tc_conv_store's "TMA stores"): tma_pixel_map's matrix of its NHWC view — so
// channels_last and dense over its pixels (a strided dgrad's phase of dx is not), each pixel's channels whole 16-byte
// rows (the TMA stride rule) — provided a 64-channel box cannot reach into the next group's channels. "" and `map`
// encoded, or why not.
template <typename T>
std::string tma_out_map(const at::Tensor& out, int64_t groups, int64_t gemm_n, int64_t pixels, TmaDesc* map) {
  if (out.dim() != 4) return "needs a 4-d output";
  if (groups > 1 && gemm_n % 64 != 0) return "needs groups of whole 64-channel boxes";
  return tma_pixel_map<T>(out.permute({0, 2, 3, 1}), pixels, map);
}

// Whether dgrad can read the filter w [K][C/g][R][S] in place (no transpose): its channels contiguous and its taps in
// (r, s) order C/g apart (channels_last, or any 1×1 filter whose channels are contiguous).
bool filter_in_place(const at::Tensor& w) {
  const int64_t cg = w.size(1), R = w.size(2), S = w.size(3);
  return w.stride(1) == 1 && (S == 1 || w.stride(3) == cg) && (R == 1 || w.stride(2) == S * cg);
}

// Whether a dgrad on `algo` reads its B MN-major (TcDgradB below): the warp-specialised and TMA wgmma kernels always
// (they are built that way only); the plain wgmma tiles (auto's) too, unless PYCONV_WGMMA_DGRAD_B=kmajor asks for the
// K-major transposed copy (the path H200 run 8 measured). The trade: MN-major reads a channels_last filter in place
// (no transpose kernel and no launch in front of the GEMM) at the price of a longer loader loop (auto's _128x128_s3
// dgrad: 165 SASS instructions a thread and tile against 145 K-major, stride-1 path: ~14% more issue in a loop that
// is not issue-bound on short reductions). Run 8 timed dgrad 4.5-6 µs slower than fprop on every stride-1 1×1 layer
// whose GEMM is fprop's of another layer (the transpose and its launch: the loops are the same), 9-19 µs on the 3×3
// layers with C = K. MN by default since 2026-11-27, unmeasured; gpu_lease.sh times both.
bool wgmma_dgrad_b_mn(const std::string& algo, int64_t cg) {
  if (!is_wgmma(algo)) return false;
  // the n16 tile (tc_tile: ≤ 16 GEMM columns, C/g here) reads B K-major only
  if (algo == "tensor_core_wgmma_64x16" || (algo == "tensor_core_wgmma" && cg <= 16)) return false;
  if (is_ws(algo) || is_tma(algo)) return true;
  const char* v = std::getenv("PYCONV_WGMMA_DGRAD_B");  // (read per call: tests and A/B runs switch it)
  return v == nullptr || std::string(v) != "kmajor";
}

// The wgmma rung's dgrad B (TcConvParams' b_* fields: MN-major, read by TcGatherLoader's kBMn): the filter in place
// (TcDgradB::in_place: channels contiguous and taps C/g apart, K/g padded to a multiple of 64 so that a 64-row
// reduction tile stays in one tap, C/g a multiple of 8 for 16-byte chunks, 32-bit offsets), else tc_dgrad_weight's
// MN-major copy (one launch for every phase), addressed by the reduction index (linear).
struct TcDgradB {
  const void* ptr = nullptr;
  int64_t g = 0;
  int tap = 0, k = 0, kvalid = 0, cols = 0, r0 = 0, s0 = 0, step_h = 1, step_w = 1, S = 1, linear = 0;
  static bool in_place(const at::Tensor& w, const Conv2dShape& s, int64_t kp) {
    return filter_in_place(w) && kp % 64 == 0 && s.Cg() % 8 == 0 && w.stride(0) % 8 == 0 &&
           reinterpret_cast<uintptr_t>(w.data_ptr()) % 16 == 0 && w.stride(0) * w.size(0) < (int64_t(1) << 31);
  }
  // phase (r0, s0) of the strides (1, 1 and 0, 0: the whole dgrad), from the filter `w` in place
  static TcDgradB filter(const at::Tensor& w, const Conv2dShape& s, int64_t r0, int64_t s0, int64_t step_h,
                         int64_t step_w) {
    TcDgradB b;
    b.ptr = w.data_ptr(), b.g = s.Kg() * w.stride(0), b.tap = int(s.Cg()), b.k = int(w.stride(0));
    b.kvalid = int(s.Kg()), b.cols = int(s.Cg());
    b.r0 = int(r0), b.s0 = int(s0), b.step_h = int(step_h), b.step_w = int(step_w), b.S = int(s.S);
    return b;
  }
  // phase (r0, s0) inside tc_dgrad_weight's MN-major copy `buf` (cp columns): rows kk = (r'·tw + s')·kp + k
  template <typename T>
  static TcDgradB copy(const at::Tensor& buf, const Conv2dShape& s, int64_t kp, int64_t cp, int64_t r0, int64_t s0,
                       int64_t step_h, int64_t step_w) {
    const int64_t taps = int64_t(cuda::tc_phase_taps(int(r0), int(s.R), int(step_h))) *
                         cuda::tc_phase_taps(int(s0), int(s.S), int(step_w));
    TORCH_INTERNAL_ASSERT(buf.numel() < (int64_t(1) << 31), "pyconv: dgrad filter copy past 32-bit offsets");
    TcDgradB b;
    b.ptr = reinterpret_cast<const T*>(buf.data_ptr()) +
            cuda::tc_dgrad_phase_offset(int(r0), int(s0), int(s.R), int(s.S), int(step_h), int(step_w)) * s.groups *
                kp * cp;
    b.g = taps * kp * cp, b.k = int(cp), b.kvalid = int(taps * kp), b.cols = int(cp), b.linear = 1;
    return b;
  }
};

// The TMA maps of a fprop/dgrad GEMM (cuda_tensor_core_sm90.cuh, tc_wgmma_tma_conv_kernel) of shape `s` (for a dgrad
// phase: the phase's stride-1 shape) over the out_h × out_w grid: "" and `maps` filled, or why the maps cannot
// describe it — then the caller runs the warp-specialised kernel of the same tile instead.
// A: the NHWC source `a` (groups·ca channels) by BM-pixel im2col loads whose box starts at −pad (dgrad:
// pad − (R − 1)·dil, the flipped taps). B, fprop: `b` ([g][gemm_n][R·S·ca]) as {ca, R·S, groups·gemm_n} in boxes of
// 64 channels × 1 tap × BN rows; dgrad (`filter` given): the filter in place, {C/g, R·S, K} in boxes of 64 c × 1 tap
// × 64 k (which filter tap a GEMM tap reads: TcDgradB's tap map in TcConvParams).
template <typename T>
std::string tma_prepare(const Conv2dShape& s, const at::Tensor& a, int64_t ca, int64_t out_h, int64_t out_w,
                        int64_t gemm_n, const at::Tensor& b, const at::Tensor* filter, int64_t bm, int64_t bn,
                        cuda::TcTmaMaps* maps) {
  const bool dgrad = filter != nullptr;
  if (dgrad && (s.stride_h != 1 || s.stride_w != 1))
    return "dgrad with both stride and dilation (its gather skips taps by divisibility; no im2col walk)";
  if (s.groups > 1 && ca % 64 != 0)
    return "grouped convolutions need channels per group in multiples of 64 (a 64-channel load would reach into the "
           "next group)";
  if ((s.R - 1) * s.dil_h > 127 || (s.S - 1) * s.dil_w > 127) return "tap offsets ((R - 1)·dilation) above 127";
  if (a.size(3) != s.groups * ca) return "needs a source of groups·ca channels";
  if (dgrad && !filter_in_place(*filter)) return "dgrad needs the filter's channels contiguous (channels_last)";
  const int64_t lower_h = dgrad ? s.pad_h - (s.R - 1) * s.dil_h : -s.pad_h;
  const int64_t lower_w = dgrad ? s.pad_w - (s.S - 1) * s.dil_w : -s.pad_w;
  // the identity walk (one tap, stride 1, no padding, the source's own grid): a tiled map when `a` allows one
  const bool identity = s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && lower_h == 0 && lower_w == 0 &&
                        out_h == a.size(1) && out_w == a.size(2);
  maps->pix_tiled = identity && tma_pixels_tiled_wanted() && tma_pixel_map<T>(a, bm, &maps->a).empty() ? 1 : 0;
  std::string why;
  if (!maps->pix_tiled) why = tma_im2col_map<T>(a, lower_h, lower_w, out_h, out_w, s.stride_h, s.stride_w, bm, &maps->a);
  if (!why.empty()) return why;
  if (dgrad) {
    const at::Tensor& w = *filter;
    why = tma_tiled_map<T>(w.data_ptr(), w.size(1), w.size(2) * w.size(3), w.size(0), w.size(1), w.stride(0), 1, 64,
                           &maps->b);
  } else {
    why = tma_tiled_map<T>(b.data_ptr(), ca, s.R * s.S, s.groups * gemm_n, ca, s.R * s.S * ca, 1, uint32_t(bn),
                           &maps->b);
  }
  if (!why.empty()) return why;
  maps->lower_h = int(lower_h), maps->lower_w = int(lower_w), maps->cc = int(ceil_div(ca, 64));
  return "";
}

// wgrad's TMA maps (tc_wgmma_tma_wgrad_kernel): A = dy ({groups·kp, N·P·Q, 1} in 64 × 64 boxes), B = x by 64-pixel
// im2col loads over the P × Q output grid (fprop's box). B's 64-column blocks must each lie in one tap: cp a multiple
// of 64.
std::string tma_wgrad_unsupported(const Conv2dShape& s, int64_t cp) {
  if (cp % 64 != 0) return "wgrad needs channels per group in multiples of 64 (one tap per 64 GEMM columns)";
  if ((s.R - 1) * s.dil_h > 127 || (s.S - 1) * s.dil_w > 127) return "tap offsets ((R - 1)·dilation) above 127";
  return "";
}
template <typename T>
std::string tma_prepare_wgrad(const Conv2dShape& s, const at::Tensor& dy, const at::Tensor& x, int64_t cp,
                              cuda::TcTmaMaps* maps) {
  std::string why = tma_wgrad_unsupported(s, cp);
  if (!why.empty()) return why;
  const bool identity = s.R == 1 && s.S == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
  maps->pix_tiled = identity && tma_pixels_tiled_wanted() && tma_pixel_map<T>(x, 64, &maps->b).empty() ? 1 : 0;
  if (!maps->pix_tiled) why = tma_im2col_map<T>(x, -s.pad_h, -s.pad_w, s.P, s.Q, s.stride_h, s.stride_w, 64, &maps->b);
  if (!why.empty()) return why;
  const int64_t npq = s.N * s.P * s.Q;
  why = tma_tiled_map<T>(dy.data_ptr(), dy.size(3), npq, 1, dy.stride(2), dy.stride(2) * npq, 64, 1, &maps->a);
  if (!why.empty()) return why;
  maps->lower_h = int(-s.pad_h), maps->lower_w = int(-s.pad_w), maps->cc = 0;
  return "";
}

// The gather GEMM shared by fprop and dgrad: A = the NHWC tensor `a` (ca channels per group) sampled at the taps of
// each pixel of the out_h × out_w grid, B = the dense [g][gemm_n][R·S·ca] matrix `b`, C = `out` through its strides.
// Launched on `stream`; returns the split-K workspace (undefined without split-K), which must outlive the launch when
// `stream` is not the current one (StreamFork).
// dgrad on the wgmma rung reads its B MN-major when given dgrad_b (the filter in place or its MN-major copy; `b`
// undefined; always for the warp-specialised and TMA tiles) and, on a TMA tile, through dgrad_maps
// (tc_dgrad_tma_maps) — without them that tile's warp-specialised kernel runs on dgrad_b. Otherwise (rung 3, and the
// plain wgmma tiles with PYCONV_WGMMA_DGRAD_B=kmajor) it reads `b`, the K-major transposed filter.
// `phases` (a strided dgrad's sub-pixel phases, 2 to cuda::kTcMaxPhases of them, on a plain tile: phased_dgrad_ok):
// one launch for all of them (TcConvParams::phase), without split-K; s, out_h, out_w, b, out and dgrad_b are then
// phase 0's, and each phase brings its own.
struct GatherPhase {
  Conv2dShape sp;  // its stride-1 dgrad
  at::Tensor out;  // its rows and columns of dx
  at::Tensor b;    // its K-major B (rung 3, PYCONV_WGMMA_DGRAD_B=kmajor), else undefined
  TcDgradB mn;     // its MN-major B (the wgmma rung)
};
template <typename T>
at::Tensor run_tc_gather(const std::string& algo, const Conv2dShape& s, bool dgrad, const at::Tensor& a, int64_t ca,
                         int64_t a_h, int64_t a_w, int64_t out_h, int64_t out_w, const at::Tensor& b, int64_t gemm_n,
                         at::Tensor& out, const T* bias, const ConvEpilogue<T>& epi,
                         cudaStream_t stream = current_stream(), const cuda::TcTmaMaps* dgrad_maps = nullptr,
                         const TcDgradB* dgrad_b = nullptr, const std::vector<GatherPhase>* phases = nullptr) {
  cuda::TcConvParams<T> pr{};
  pr.a = reinterpret_cast<const T*>(a.data_ptr());
  pr.a_sn = a.stride(0), pr.a_sh = a.stride(1), pr.a_sw = a.stride(2);
  pr.AH = int(a_h), pr.AW = int(a_w), pr.ca = int(ca);
  pr.N = s.N, pr.R = int(s.R), pr.S = int(s.S);
  pr.set_out_grid(out_h, out_w);
  pr.stride_h = int(s.stride_h), pr.stride_w = int(s.stride_w), pr.pad_h = int(s.pad_h), pr.pad_w = int(s.pad_w);
  pr.dil_h = int(s.dil_h), pr.dil_w = int(s.dil_w);
  pr.gemm_n = int(gemm_n), pr.groups = s.groups;
  pr.y = reinterpret_cast<T*>(out.data_ptr()), pr.ys = strides4(out), pr.bias = bias, pr.epi = epi;
  int64_t gemm_m = s.N * out_h * out_w;
  if (phases != nullptr) {  // the tile for all the phases' rows: they run as one grid
    gemm_m = 0;
    for (const GatherPhase& ph : *phases) gemm_m += s.N * ph.out.size(2) * ph.out.size(3);
  }
  // (tc_unsupported bounded these for the loader; checked exactly here, where the strides are known)
  TORCH_INTERNAL_ASSERT(s.R <= 15 && s.S <= 15 &&
                        (s.R - 1) * s.dil_h * pr.a_sh + (s.S - 1) * s.dil_w * pr.a_sw + ca + 128 < (int64_t(1) << 31),
                        "pyconv: tensor-core gather offsets past 32 bits");
  std::string tile = tc_tile(algo, gemm_m, gemm_n, s.groups);
  cuda::TcTmaMaps maps{};
  if (is_tma(tile)) {
    const TcTileShape t = tc_tile_shape<T>(tile);
    if (dgrad_maps != nullptr)
      maps = *dgrad_maps;
    else if (dgrad || !tma_prepare<T>(s, a, ca, out_h, out_w, gemm_n, b, nullptr, t.bm, t.bn, &maps).empty())
      tile = tma_to_ws(tile);
  }
  if (dgrad && is_wgmma(tile) && dgrad_b != nullptr) {
    pr.b = static_cast<const T*>(dgrad_b->ptr), pr.b_g = dgrad_b->g, pr.b_tap = dgrad_b->tap, pr.b_k = dgrad_b->k;
    pr.b_kvalid = dgrad_b->kvalid, pr.b_cols = dgrad_b->cols, pr.b_r0 = dgrad_b->r0, pr.b_s0 = dgrad_b->s0;
    pr.b_step_h = dgrad_b->step_h, pr.b_step_w = dgrad_b->step_w, pr.b_S = dgrad_b->S, pr.b_linear = dgrad_b->linear;
    pr.b_mn = 1;
  } else {
    TORCH_INTERNAL_ASSERT(is_tma(tile) || b.defined(), "pyconv: the gather GEMM's ", tile, " needs its B matrix");
    pr.b = b.defined() ? reinterpret_cast<const T*>(b.data_ptr()) : nullptr;
  }
  const TcTileShape ts = tc_tile_shape<T>(tile);
  // reduction tiles: TMA's run tap by tap in whole 64-channel chunks; the gather loader's pack R·S·ca densely
  const int64_t kt_all = is_tma(tile) ? s.R * s.S * maps.cc : ceil_div(s.R * s.S * ca, ts.bk);
  const int64_t splits = phases != nullptr ? 1
                         : tc_conv_splits(ceil_div(gemm_m, ts.bm) * ceil_div(gemm_n, ts.bn) * s.groups, kt_all,
                                          is_wgmma(tile) ? 8 : 16, s.groups, ts.blocks_per_sm);
  if (phases != nullptr) {
    TORCH_INTERNAL_ASSERT(dgrad && !is_tma(tile) && !is_ws(tile) && phases->size() >= 1 &&
                              phases->size() <= size_t(cuda::kTcMaxPhases),
                          "pyconv: a phased dgrad launch on ", tile);
    // phase i's row tiles follow phase i−1's; every field a phase changes is relative to phase 0's (pr's)
    int64_t x0 = 0;
    pr.nphases = int(phases->size());
    for (size_t i = 0; i < phases->size(); ++i) {
      const GatherPhase& gp = (*phases)[i];
      cuda::TcPhase& ph = pr.phase[i];
      const int64_t oh = gp.out.size(2), ow = gp.out.size(3);
      ph.x0 = int(x0);
      x0 += ceil_div(s.N * oh * ow, ts.bm);
      ph.R = int(gp.sp.R), ph.S = int(gp.sp.S), ph.pad_h = int(gp.sp.pad_h), ph.pad_w = int(gp.sp.pad_w);
      ph.OH = int(oh), ph.OW = int(ow);
      ph.ohw_div = FastDiv::make(uint32_t(oh * ow)), ph.ow_div = FastDiv::make(uint32_t(ow));
      ph.y_off = reinterpret_cast<const T*>(gp.out.data_ptr()) - reinterpret_cast<const T*>(out.data_ptr());
      TORCH_INTERNAL_ASSERT(gp.sp.R <= s.R && gp.sp.S <= s.S && gp.out.strides() == out.strides(),
                            "pyconv: a dgrad phase wider than phase 0, or of other strides");
      if (pr.b_mn) {  // MN-major: the filter in place (its tap map) or the phase's slice of the copy
        ph.b_off = static_cast<const T*>(gp.mn.ptr) - pr.b, ph.b_g = gp.mn.g;
        ph.b_kvalid = gp.mn.kvalid, ph.b_r0 = gp.mn.r0, ph.b_s0 = gp.mn.s0;
      } else {  // K-major: the phase's own [g][C/g][R'·S'·kp] matrix
        ph.b_off = reinterpret_cast<const T*>(gp.b.data_ptr()) - pr.b, ph.b_g = pr.b_g;
        ph.b_kvalid = pr.b_kvalid, ph.b_r0 = pr.b_r0, ph.b_s0 = pr.b_s0;
      }
    }
    TORCH_CHECK(x0 <= INT32_MAX, "pyconv.conv2d: dgrad input gradient too large for one grid (", x0, " row tiles)");
    pr.phase_x_tiles = int(x0);
  }
  at::Tensor ws;
  if (splits > 1) {
    pr.tiles_per_split = int(ceil_div(kt_all, splits));
    pr.splits = int(ceil_div(kt_all, int64_t(pr.tiles_per_split)));  // no empty slice
    ws = at::empty({pr.splits, gemm_m, s.groups * gemm_n}, a.options().dtype(at::kFloat));
    pr.ws = ws.data_ptr<float>();
  }
  pr.persistent_blocks = int(ts.blocks_per_sm * sm_count());  // (the warp-specialised kernels' grid)
  // the TMA kernel's epilogue by TMA stores where y's map can be made (no split-K: the slices write float partial
  // sums; bias, and ReLU or ReLU6 without a residual: applied as the tile is staged; the 128×64 and 128×128 tiles:
  // see tc_ws_conv_consumers)
  const bool store_epi = epi.residual == nullptr && cuda::tc_epilogue_chunk_ok(epi);  // (none, ReLU, ReLU6)
  if (is_tma(tile) && splits == 1 && store_epi && ts.bn <= 128 && ts.bm == 128 && tma_store_wanted())
    maps.y_tiled = tma_out_map<T>(out, s.groups, gemm_n, ts.bm, &maps.y).empty() ? 1 : 0;
  record_tc_launch(tile, splits > 1 ? pr.splits : 1);
  const char* what = dgrad ? "conv2d_dgrad tensor_core" : "conv2d_fprop tensor_core";
  if (is_tma(tile)) {
    if (maps.pix_tiled) tc_tma_tiled_pixel_count().fetch_add(1);
    if (maps.y_tiled) tc_tma_store_count().fetch_add(1);
    if constexpr (!std::is_same<T, float>::value)  // (float32 never reaches a wgmma tile: resolve_algo rejects it)
      check_launch(with_tma_tile(tile, [&](auto t) {
                     return cuda::launch_tc_wgmma_tma_conv<T, decltype(t)>(pr, maps, dgrad, stream);
                   }),
                   what);
  } else if (is_wgmma(tile))
    check_launch(launch_wgmma_tile<T>(tile, pr, dgrad, stream), what);
  else
    check_launch(with_tile(tile, [&](auto t) { return cuda::launch_tc_conv<T, decltype(t)>(pr, dgrad, stream); }),
                 what);
  return ws;
}

template <typename T>
void fprop_tc(const std::string& algo, const Conv2dShape& s, const at::Tensor& input, const at::Tensor& weight,
              const T* bias, at::Tensor& y, const ConvEpilogue<T>& epi) {
  const int64_t cp = round_up(s.Cg(), tc_vec(input.scalar_type()));
  const at::Tensor x = nhwc_padded(input, s.groups, cp);
  // weight (K, C/g, R, S) → [K][R][S][cp] = [g][K/g][R·S·cp]: the B matrix, reduction index (r, s, c)
  at::Tensor w = weight.permute({0, 2, 3, 1});
  if (cp != s.Cg()) w = at::constant_pad_nd(w, {0, cp - s.Cg()});
  run_tc_gather<T>(algo, s, false, x, cp, s.H, s.W, s.P, s.Q, w.contiguous(), s.Kg(), y, bias, epi);
}

// dgrad's B matrices, one per sub-pixel phase (r0, s0) of the strides step_h × step_w (one phase, all taps, with steps
// 1): [g][C/g][taps_h][taps_w][kp] each, reduction index (r', s', k), zero columns past K/g, the phases one after the
// other (tc_dgrad_weight_kernel). tc_dgrad_phase_matrix picks one out.
// cp > 0: the MN-major form the wgmma rung's dgrad reads when the filter itself cannot serve (TcDgradB): [g][taps_h]
// [taps_w][kp][cp], rows k past K/g and columns c past C/g zero.
template <typename T>
at::Tensor tc_dgrad_weight(const at::Tensor& weight, const Conv2dShape& s, int64_t kp, int64_t step_h, int64_t step_w,
                           int64_t cp = 0) {
  at::Tensor b = at::empty({s.R * s.S * s.groups * (cp > 0 ? cp : s.Cg()) * kp}, weight.options());
  cuda::TcDgradWeightParams pr{};
  pr.ws0 = weight.stride(0), pr.ws1 = weight.stride(1), pr.ws2 = weight.stride(2), pr.ws3 = weight.stride(3);
  pr.kg = int(s.Kg()), pr.cg = int(s.Cg()), pr.kp = int(kp), pr.groups = int(s.groups), pr.cp = int(cp);
  pr.R = int(s.R), pr.S = int(s.S), pr.step_h = int(step_h), pr.step_w = int(step_w);
  check_launch(cuda::launch_tc_dgrad_weight<T>(reinterpret_cast<const T*>(weight.data_ptr()),
                                               reinterpret_cast<T*>(b.data_ptr()), pr, current_stream()),
               "conv2d_dgrad tensor_core (filter transpose)");
  tc_filter_copy_count().fetch_add(1);
  return b;
}
// Phase (r0, s0)'s matrix inside tc_dgrad_weight's buffer (a contiguous slice: its offset is a multiple of kp, so it
// keeps the 16-byte alignment the loader's copies need).
at::Tensor tc_dgrad_phase_matrix(const at::Tensor& b, const Conv2dShape& s, int64_t kp, int64_t r0, int64_t s0) {
  const int64_t tap = s.groups * s.Cg() * kp;  // one tap of every row
  const int64_t taps = int64_t(cuda::tc_phase_taps(int(r0), int(s.R), int(s.stride_h))) *
                       cuda::tc_phase_taps(int(s0), int(s.S), int(s.stride_w));
  return b.narrow(0, cuda::tc_dgrad_phase_offset(int(r0), int(s0), int(s.R), int(s.S), int(s.stride_h),
                                                 int(s.stride_w)) * tap, taps * tap);
}

// The TMA maps of a dgrad GEMM of shape `sp` (stride 1: the dgrad itself, or one sub-pixel phase of a strided one)
// over the out_h × out_w grid of dx, its B the filter `w` in place: true and `maps` made when `algo`'s tile for it is
// a TMA tile and the maps can describe it (tma_prepare), else false (the caller transposes the filter).
template <typename T>
bool tc_dgrad_tma_maps(const std::string& algo, const Conv2dShape& sp, const at::Tensor& dy, int64_t kp,
                       int64_t out_h, int64_t out_w, const at::Tensor& w, cuda::TcTmaMaps* maps) {
  const std::string tile = tc_tile(algo, sp.N * out_h * out_w, sp.Cg(), sp.groups);
  if (!is_tma(tile)) return false;
  const TcTileShape t = tc_tile_shape<T>(tile);
  return tma_prepare<T>(sp, dy, kp, out_h, out_w, sp.Cg(), at::Tensor(), &w, t.bm, t.bn, maps).empty();
}

template <typename T>
void dgrad_tc(const std::string& algo, const Conv2dShape& s, const at::Tensor& grad_output, const at::Tensor& weight,
              at::Tensor& dx) {
  const int64_t kp = round_up(s.Kg(), tc_vec(grad_output.scalar_type()));
  const at::Tensor dy = nhwc_padded(grad_output, s.groups, kp);
  // B. Rung 3 (mma.sync, ldmatrix) reads the transposed filter K-major (tc_dgrad_weight). The wgmma rung's kernels
  // read it MN-major (wgmma_dgrad_b_mn; the plain tiles unless told otherwise), which is the filter as it lies when
  // channels_last (TcDgradB): no transpose kernel before the GEMM (the TMA kernels through their maps, the cp.async
  // loaders through TcGatherLoader's kBMn); else a one-launch MN-major copy. The TMA kernels' maps need the filter's
  // channels contiguous: any other layout is copied to channels_last once (what the transpose would cost).
  const bool mn = wgmma_dgrad_b_mn(algo, s.Cg()), tma = is_tma(algo);
  const int64_t cp = round_up(s.Cg(), 8);
  // (only where the maps could then take it: C/g whole 16-byte chunks, 64-channel groups, no strided-dilated gather)
  at::Tensor wf = weight;
  if (tma && !filter_in_place(weight) && s.Cg() % 8 == 0 && (s.groups == 1 || kp % 64 == 0) &&
      !((s.stride_h != 1 || s.stride_w != 1) && (s.dil_h != 1 || s.dil_w != 1))) {
    wf = weight.contiguous(at::MemoryFormat::ChannelsLast);
    tc_filter_copy_count().fetch_add(1);
  }
  const bool in_place = mn && TcDgradB::in_place(wf, s, kp);
  if ((s.stride_h == 1 && s.stride_w == 1) || s.dil_h != 1 || s.dil_w != 1) {
    if (!mn) {
      const at::Tensor b = tc_dgrad_weight<T>(weight, s, kp, 1, 1);
      run_tc_gather<T>(algo, s, true, dy, kp, s.P, s.Q, s.H, s.W, b, s.Cg(), dx, nullptr, ConvEpilogue<T>{});
      return;
    }
    cuda::TcTmaMaps maps{};
    const bool mapped = tma && tc_dgrad_tma_maps<T>(algo, s, dy, kp, s.H, s.W, wf, &maps);
    const at::Tensor buf = mapped || in_place ? at::Tensor() : tc_dgrad_weight<T>(weight, s, kp, 1, 1, cp);
    // (the TMA kernel takes the filter's tap map from here too)
    const TcDgradB b = mapped || in_place ? TcDgradB::filter(wf, s, 0, 0, 1, 1)
                                          : TcDgradB::copy<T>(buf, s, kp, cp, 0, 0, 1, 1);
    run_tc_gather<T>(algo, s, true, dy, kp, s.P, s.Q, s.H, s.W, at::Tensor(), s.Cg(), dx, nullptr, ConvEpilogue<T>{},
                     current_stream(), mapped ? &maps : nullptr, &b);
    return;
  }
  // Strided dgrad, sub-pixel decomposition. Input row h receives tap r only when (h + pad − r) is a multiple of the
  // stride, so the rows of one phase ph = h mod stride all use the same taps r = r0, r0 + stride, … with
  // r0 = (ph + pad) mod stride, and for h = oh'·stride + ph, tap j (r = r0 + j·stride) reads output row
  // p = oh' + (ph + pad − r0)/stride − j: a stride-1 dgrad with R' = ⌈(R − r0)/stride⌉ taps and padding
  // (ph + pad − r0)/stride, written to the rows ph, ph + stride, … of dx. One launch per (row, column) phase, each
  // doing only the taps that contribute (the single strided launch multiplied zeros for 1 − 1/(stride_h·stride_w) of
  // its work: 3/4 at stride 2). A phase no tap reaches is zero: in the one-launch form below a GEMM of no taps, else
  // one fill of the whole (dense) dx before the phases instead of one strided fill per phase (on an H200 the three
  // strided fills of a 1×1 stride-2 dgrad took 11 µs, 2026-11-26, 1024 → 2048 channels at 14×14; a dense fill writes
  // at memset speed).
  //
  // The phases write disjoint rows and columns of dx and are independent: each is a small GEMM (1/stride² of the rows)
  // that alone leaves SMs idle (on an H100, 2026-11-26, the 3×3 stride-2 dgrads of ResNet-50 took 2.5-3× cuDNN's time
  // run one after another). On the plain tiles (phased_dgrad_ok: auto's, for these layers) they run as one launch,
  // one grid over every phase's row tiles (TcConvParams::phase). Elsewhere (the persistent warp-specialised and TMA
  // kernels, more than kTcMaxPhases phases) they run side by side on pool streams (StreamFork; one after another in
  // the emulator): the zero fill, the TMA maps and the filter copy (one launch for all phases, when the filter cannot
  // be read in place) run before the fork; every allocation (the split-K workspaces too) is made on the current
  // stream, only the phase GEMMs go to the side streams. Each phase reads its own taps (r0 + r'·stride,
  // c0 + s'·stride) of the filter. The fork costs host time that eager calls pay: H200 run 10 timed the 3×3 stride-2
  // dgrads of ResNet-50 at 57.7 µs eager against 46.6 µs replayed in a CUDA graph (128 channels at 56×56), run 11 at
  // 73-78 µs eager (cuDNN: 27).
  struct Phase {
    int64_t r0, c0;  // the phase's first filter tap (row, column)
    Conv2dShape sp;  // its stride-1 dgrad
    at::Tensor out;  // its rows and columns of dx
    cuda::TcTmaMaps maps;
    bool mapped;  // TMA maps made
  };
  std::vector<Phase> phases;        // the phases (ph, pw) some tap reaches
  std::vector<at::Tensor> unreached;  // the rows and columns of dx of the others: zeros
  bool all_mapped = true;
  for (int64_t ph = 0; ph < s.stride_h && ph < s.H; ++ph)
    for (int64_t pw = 0; pw < s.stride_w && pw < s.W; ++pw) {
      if (!dgrad_phase_reached(s, ph, pw)) {
        unreached.push_back(dx.slice(2, ph, s.H, s.stride_h).slice(3, pw, s.W, s.stride_w));
        continue;
      }
      Phase p{};
      p.r0 = (ph + s.pad_h) % s.stride_h, p.c0 = (pw + s.pad_w) % s.stride_w;
      p.sp = s;
      p.sp.R = ceil_div(s.R - p.r0, s.stride_h), p.sp.S = ceil_div(s.S - p.c0, s.stride_w);
      p.sp.stride_h = p.sp.stride_w = 1;
      p.sp.pad_h = (ph + s.pad_h - p.r0) / s.stride_h, p.sp.pad_w = (pw + s.pad_w - p.c0) / s.stride_w;
      p.out = dx.slice(2, ph, s.H, s.stride_h).slice(3, pw, s.W, s.stride_w);
      p.mapped = tma && tc_dgrad_tma_maps<T>(algo, p.sp, dy, kp, p.out.size(2), p.out.size(3), wf, &p.maps);
      all_mapped = all_mapped && p.mapped;
      phases.push_back(p);
    }
  // every phase's B, one launch, when some phase needs a copy: K-major, or MN-major
  const at::Tensor b_all = !mn                      ? tc_dgrad_weight<T>(weight, s, kp, s.stride_h, s.stride_w)
                           : all_mapped || in_place ? at::Tensor()
                                                    : tc_dgrad_weight<T>(weight, s, kp, s.stride_h, s.stride_w, cp);
  auto phase_b = [&](const Phase& p) {  // (the TMA kernel takes the phase's tap map from here too)
    return p.mapped || in_place ? TcDgradB::filter(wf, s, p.r0, p.c0, s.stride_h, s.stride_w)
                                : TcDgradB::copy<T>(b_all, s, kp, cp, p.r0, p.c0, s.stride_h, s.stride_w);
  };
  // One launch unless the reached phases' tiles are few enough for split-K (which the phased launch does not do:
  // then each phase splits its own reduction, forked as before). The tile for all the launch's rows, the longest
  // reduction.
  bool one_launch = phased_dgrad_ok(algo, int64_t(phases.size() + unreached.size()));
  if (one_launch) {
    int64_t m_reached = 0, m_zero = 0, taps_max = 0;
    for (const Phase& p : phases) {
      m_reached += s.N * p.out.size(2) * p.out.size(3);
      taps_max = std::max(taps_max, p.sp.R * p.sp.S);
    }
    for (const at::Tensor& z : unreached) m_zero += s.N * z.size(2) * z.size(3);
    const TcTileShape ts = tc_tile_shape<T>(tc_tile(algo, m_reached + m_zero, s.Cg(), s.groups));
    one_launch = tc_conv_splits(ceil_div(m_reached, ts.bm) * ceil_div(s.Cg(), ts.bn) * s.groups,
                                ceil_div(taps_max * kp, ts.bk), is_wgmma(algo) ? 8 : 16, s.groups,
                                ts.blocks_per_sm) == 1;
  }
  if (one_launch) {
    // The phases with the most taps first, so that their longer blocks start in the first wave and the one-tap
    // phase's short ones fill the tail; then the unreached phases as GEMMs of no taps (no reduction tiles: their
    // blocks store the zero accumulators), so that every element of dx is written once, by this launch — no fill of
    // dx before it (a 1×1 stride-2 dgrad wrote its dx twice: 51 MB of zeros, then a quarter of it again, for
    // ResNet-50's 256 channels at 56×56, batch 32).
    std::stable_sort(phases.begin(), phases.end(),
                     [](const Phase& x, const Phase& y) { return x.sp.R * x.sp.S > y.sp.R * y.sp.S; });
    std::vector<GatherPhase> gp(phases.size() + unreached.size());
    for (size_t i = 0; i < gp.size(); ++i) {
      if (i < phases.size()) {
        gp[i].sp = phases[i].sp, gp[i].out = phases[i].out;
        if (mn) gp[i].mn = phase_b(phases[i]);
        else gp[i].b = tc_dgrad_phase_matrix(b_all, s, kp, phases[i].r0, phases[i].c0);
      } else {  // (B: phase 0's, never read)
        gp[i].sp = gp[0].sp, gp[i].out = unreached[i - phases.size()];
        gp[i].sp.R = gp[i].sp.S = 0, gp[i].sp.pad_h = gp[i].sp.pad_w = 0;
        gp[i].mn = gp[0].mn, gp[i].b = gp[0].b;
      }
    }
    run_tc_gather<T>(algo, gp[0].sp, true, dy, kp, s.P, s.Q, gp[0].out.size(2), gp[0].out.size(3), gp[0].b, s.Cg(),
                     gp[0].out, nullptr, ConvEpilogue<T>{}, current_stream(), nullptr, mn ? &gp[0].mn : nullptr, &gp);
    return;
  }
  if (!unreached.empty()) dx.zero_();  // (one dense fill: cheaper than a strided one per unreached phase)
  StreamFork fork(int(phases.size()));
  std::vector<at::Tensor> keep;  // the phases' split-K workspaces, alive until the join
  for (size_t i = 0; i < phases.size(); ++i) {
    Phase& p = phases[i];
    TcDgradB b;
    if (mn) b = phase_b(p);
    keep.push_back(run_tc_gather<T>(algo, p.sp, true, dy, kp, s.P, s.Q, p.out.size(2), p.out.size(3),
                                    mn ? at::Tensor() : tc_dgrad_phase_matrix(b_all, s, kp, p.r0, p.c0), s.Cg(),
                                    p.out, nullptr, ConvEpilogue<T>{}, fork.stream(int(i)),
                                    p.mapped ? &p.maps : nullptr, mn ? &b : nullptr));
  }
  fork.join();
}

template <typename T>
void wgrad_tc(const std::string& algo, const Conv2dShape& s, const at::Tensor& grad_output, const at::Tensor& input,
              at::Tensor& dw) {
  const int64_t kp = round_up(s.Kg(), 8), cp = round_up(s.Cg(), 8);
  const at::Tensor dy = nhwc_padded(grad_output, s.groups, kp);
  const at::Tensor x = nhwc_padded(input, s.groups, cp);
  const int64_t gemm_n = s.R * s.S * cp;
  std::string tile = tc_wgrad_tile(algo, s.Kg(), gemm_n, s.groups, s.R * s.S);
  cuda::TcTmaMaps maps{};
  if (is_tma(tile) && !tma_prepare_wgrad<T>(s, dy, x, cp, &maps).empty()) tile = tma_to_ws(tile);
  const TcTileShape ts = tc_tile_shape<T>(tile);
  const bool wgmma = is_wgmma(tile);
  // Split-K: enough slices of the N·P·Q reduction to fill every SM (two blocks each for rung 3; the wgmma tile's
  // resident blocks), each slice at least 256 reduction rows long (8 tiles of rung 3's 32, 4 of the wgmma rung's 64).
  const int64_t tiles = ceil_div(s.Kg(), ts.bm) * ceil_div(gemm_n, ts.bn) * s.groups;
  const int64_t kt_all = ceil_div(s.npq(), ts.bk);
  const int64_t resident = (wgmma ? ts.blocks_per_sm : 2) * sm_count();
  int64_t splits = std::max<int64_t>(
      1, std::min<int64_t>({resident / std::max<int64_t>(tiles, 1), kt_all / (256 / ts.bk), 64, 65535 / s.groups}));
  const int64_t per = ceil_div(kt_all, splits);
  splits = ceil_div(kt_all, per);  // no empty slice
  cuda::TcWgradParams<T> pr{};
  T* dwp = reinterpret_cast<T*>(dw.data_ptr());
  at::Tensor ws;  // the slices' float partial sums; with one slice the kernel writes dw itself
  if (splits > 1) {
    ws = at::empty({splits, s.groups, s.Kg(), gemm_n}, grad_output.options().dtype(at::kFloat));
    pr.ws = ws.data_ptr<float>();
  } else {
    pr.dw = dwp, pr.dws = strides4(dw);
  }
  pr.dy = reinterpret_cast<const T*>(dy.data_ptr());
  pr.x = reinterpret_cast<const T*>(x.data_ptr());
  pr.x_sn = x.stride(0), pr.x_sh = x.stride(1), pr.x_sw = x.stride(2);
  pr.H = int(s.H), pr.W = int(s.W), pr.P = int(s.P), pr.Q = int(s.Q), pr.R = int(s.R), pr.S = int(s.S);
  pr.stride_h = int(s.stride_h), pr.stride_w = int(s.stride_w), pr.pad_h = int(s.pad_h), pr.pad_w = int(s.pad_w);
  pr.dil_h = int(s.dil_h), pr.dil_w = int(s.dil_w);
  pr.kp = int(kp), pr.cp = int(cp), pr.kg = int(s.Kg()), pr.cg = int(s.Cg());
  pr.N = s.N, pr.groups = s.groups, pr.splits = int(splits), pr.tiles_per_split = int(per);
  pr.pq_div = FastDiv::make(uint32_t(s.P * s.Q)), pr.q_div = FastDiv::make(uint32_t(s.Q));
  record_tc_launch(tile, splits);
  if (is_tma(tile) && maps.pix_tiled) tc_tma_tiled_pixel_count().fetch_add(1);
  if (wgmma) {
    if constexpr (!std::is_same<T, float>::value) {  // (float32 wgrad never gets here: it runs the SIMT implicit GEMM)
      auto run = [&](auto t) {
        return cuda::launch_tc_wgmma_wgrad<T, decltype(t)>(pr, dwp, strides4(dw), current_stream());
      };
      auto run_tma = [&](auto t) {
        return cuda::launch_tc_wgmma_tma_wgrad<T, decltype(t)>(pr, maps, dwp, strides4(dw), current_stream());
      };
      check_launch(is_tma(tile)  ? with_ws_tile(tma_to_ws(tile), run_tma)
                   : is_ws(tile) ? with_ws_tile(tile, run)
                                 : with_wg_tile(tile, run),
                   "conv2d_wgrad tensor_core_wgmma");
    }
    return;
  }
  check_launch(with_tile(tile, [&](auto t) {
                 return cuda::launch_tc_wgrad<T, decltype(t)>(pr, dwp, strides4(dw), current_stream());
               }),
               "conv2d_wgrad tensor_core");
}

// The depthwise kernels put the channel index fastest across threads when channels are the tensor's densest
// dimension (channels_last), the column strip otherwise: either way adjacent threads touch adjacent memory.
bool channels_fastest(const at::Tensor& t) { return t.stride(1) < t.stride(3); }

// The depthwise filter (K, 1, R, S) as a contiguous [R·S][K] matrix: the channels-last fast path loads one tap of 8
// adjacent channels as one 16-byte vector. K·R·S elements: a negligible copy next to the activations.
at::Tensor dw_taps_by_channel(const at::Tensor& weight, const Conv2dShape& s) {
  return weight.reshape({s.K, s.R * s.S}).t().contiguous();
}

// The channels-last depthwise fast path (fprop: in = x, out = y; dgrad: in = dy, out = dx). The windowed kernels
// stage their taps from the filter itself when they can (cuda::dw_window_stages), so the call is one launch; the
// others get the [R·S][K] copy.
template <typename scalar_t, bool kDgrad>
void dw_nhwc_vec(const Conv2dShape& s, const at::Tensor& in, const at::Tensor& weight,
                 const typename KernelType<scalar_t>::type* bias, const at::Tensor& out,
                 ConvEpilogue<typename KernelType<scalar_t>::type> epi, cudaStream_t stream, const char* what) {
  using KT = typename KernelType<scalar_t>::type;
  const at::Tensor w = weight.contiguous();  // [K][1][R][S] = [K][R·S]
  const bool staged = cuda::dw_window_stages<KT>(s, kptr<scalar_t>(w));
  const at::Tensor wt = staged ? at::Tensor() : dw_taps_by_channel(weight, s);
  check_launch(cuda::launch_dw_nhwc_vec<KT, kDgrad>(s, kptr<scalar_t>(in), strides4(in),
                                                    staged ? kptr<scalar_t>(w) : nullptr,
                                                    staged ? nullptr : kptr<scalar_t>(wt), bias,
                                                    kptr<scalar_t>(out), strides4(out), epi, stream),
               what);
}

at::Tensor fprop_fused_cuda(const at::Tensor& input, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
                            const std::optional<at::Tensor>& residual, at::IntArrayRef stride,
                            at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                            c10::string_view activation, double param, c10::string_view algo_name);

// The GEMM rung of the Winograd rung's 16·groups GEMMs (a grouped 1×1 convolution): the tensor cores for 16-bit
// types (wgmma on Hopper) and for float32 where TF32 is allowed, the SIMT implicit GEMM otherwise (float64 too).
std::string winograd_gemm_algo(const Conv2dShape& inner, at::ScalarType dt) {
  const bool tensor_cores = dt == at::kHalf || dt == at::kBFloat16 || (dt == at::kFloat && auto_tf32());
  if (tensor_cores && tc_unsupported(inner, dt).empty())
    return wgmma_unsupported(dt).empty() ? "tensor_core_wgmma" : "tensor_core";
  return "implicit_gemm";
}

// The Winograd rung (cuda_winograd.cuh): out = the 3×3 stride-1 convolution of `in` (fprop: x with w; dgrad: dy with
// w flipped and transposed, padding 2 − pad), through V (input transform), U (filter transform), M = the grouped
// 1×1 convolution of V with U (the GEMM rungs, via this file's own fprop entry), and the output transform, which adds
// bias and the fused epilogue.
template <typename KT>
void winograd_conv(const Conv2dShape& s, bool dgrad, const at::Tensor& in, const at::Tensor& weight, const KT* bias,
                   at::Tensor& out, const ConvEpilogue<KT>& epi) {
  cuda::WinogradParams p{};
  p.N = s.N, p.G = int(s.groups);
  p.ci = int(dgrad ? s.Kg() : s.Cg()), p.co = int(dgrad ? s.Cg() : s.Kg());
  p.IH = int(dgrad ? s.P : s.H), p.IW = int(dgrad ? s.Q : s.W), p.OH = int(dgrad ? s.H : s.P);
  p.OW = int(dgrad ? s.W : s.Q);
  p.pad_h = int(dgrad ? 2 - s.pad_h : s.pad_h), p.pad_w = int(dgrad ? 2 - s.pad_w : s.pad_w);
  p.TH = int(ceil_div(p.OH, 2)), p.TW = int(ceil_div(p.OW, 2));
  const int64_t tiles = p.N * p.TH * p.TW, gi = int64_t(p.G) * p.ci, go = int64_t(p.G) * p.co;
  const cudaStream_t stream = current_stream();
  // V: an NHWC image of one row of `tiles` pixels with 16·G·ci channels (position ξ, group, channel)
  at::Tensor v = at::empty({1, 1, tiles, 16 * gi}, in.options()).permute({0, 3, 1, 2});
  check_launch(cuda::launch_wino_input<KT>(p, reinterpret_cast<const KT*>(in.data_ptr()), strides4(in),
                                           reinterpret_cast<KT*>(v.data_ptr()), stream),
               "conv2d winograd (input transform)");
  at::Tensor u = at::empty({16 * go, p.ci, 1, 1}, in.options());
  check_launch(cuda::launch_wino_filter<KT>(p, dgrad, reinterpret_cast<const KT*>(weight.data_ptr()),
                                            strides4(weight), reinterpret_cast<KT*>(u.data_ptr()), stream),
               "conv2d winograd (filter transform)");
  const Conv2dShape inner = make_shape(v.sizes(), u.sizes(), check_geometry({1, 1}, {0, 0}, {1, 1}, 16 * p.G));
  const at::Tensor m = fprop_fused_cuda(v, u, std::nullopt, std::nullopt, {1, 1}, {0, 0}, {1, 1}, 16 * p.G, "none",
                                        0.0, winograd_gemm_algo(inner, in.scalar_type()));
  check_launch(cuda::launch_wino_output<KT>(p, reinterpret_cast<const KT*>(m.data_ptr()), m.stride(1), m.stride(3),
                                            bias, reinterpret_cast<KT*>(out.data_ptr()), strides4(out), epi, stream),
               "conv2d winograd (output transform)");
}

// Runs body<T>() with T = __half, __nv_bfloat16 or float (the tensor-core dtypes).
template <typename F>
void dispatch_tc(at::ScalarType dt, F&& body) {
  if (dt == at::kHalf)
    body(__half{});
  else if (dt == at::kBFloat16)
    body(__nv_bfloat16{});
  else
    body(float{});
}

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
  const std::string algo = resolve_algo(algo_name, s, input, "fprop");

  const DeviceGuard guard(input.device());
  at::Tensor y = at::empty({s.N, s.K, s.P, s.Q}, input.options().memory_format(conv_output_format(input)));
  const cudaStream_t stream = current_stream();
  if (y.numel() == 0) return y;
  at::Tensor b = bias ? bias->contiguous() : at::Tensor();
  if (is_tc(algo)) {
    dispatch_tc(input.scalar_type(), [&](auto tag) {
      using T = decltype(tag);
      ConvEpilogue<T> epi;
      epi.act = act;
      epi.param = static_cast<float>(param);
      if (residual) {
        epi.residual = reinterpret_cast<const T*>(residual->data_ptr());
        epi.rs = strides4(*residual);
      }
      fprop_tc<T>(algo, s, input, weight, b.defined() ? reinterpret_cast<const T*>(b.data_ptr()) : nullptr, y, epi);
    });
    return y;
  }
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
    if (algo == "winograd")
      winograd_conv<KT>(s, false, input, weight, bp, y, epi);
    else if (algo == "depthwise" && cuda::dw_vec_eligible<KT>(s, kptr<scalar_t>(input), strides4(input),
                                                              kptr<scalar_t>(y), strides4(y)))
      dw_nhwc_vec<scalar_t, false>(s, input, weight, bp, y, epi, stream, "conv2d_fprop depthwise");
    else if (algo == "depthwise")
      check_launch(cuda::launch_dw_fprop<KT>(s, kptr<scalar_t>(input), strides4(input), kptr<scalar_t>(weight),
                                             strides4(weight), bp, kptr<scalar_t>(y), strides4(y), channels_fastest(y),
                                             stream, epi),
                   "conv2d_fprop depthwise");
    else if (algo == "direct")
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
  const std::string algo = resolve_algo(algo_name, s, grad_output, "dgrad");

  const DeviceGuard guard(grad_output.device());
  at::Tensor dx = at::empty(input_size, grad_output.options().memory_format(conv_output_format(grad_output)));
  const cudaStream_t stream = current_stream();
  if (dx.numel() == 0) return dx;
  if (grad_output.numel() == 0 || s.Kg() == 0) return dx.zero_();
  if (is_tc(algo)) {
    dispatch_tc(grad_output.scalar_type(), [&](auto tag) { dgrad_tc<decltype(tag)>(algo, s, grad_output, weight, dx); });
    return dx;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "pyconv_conv2d_dgrad_cuda", [&] {
    using KT = typename KernelType<scalar_t>::type;
    if (algo == "winograd")
      winograd_conv<KT>(s, true, grad_output, weight, nullptr, dx, ConvEpilogue<KT>{});
    else if (algo == "depthwise" && cuda::dw_vec_eligible<KT>(s, kptr<scalar_t>(grad_output), strides4(grad_output),
                                                              kptr<scalar_t>(dx), strides4(dx)))
      dw_nhwc_vec<scalar_t, true>(s, grad_output, weight, nullptr, dx, ConvEpilogue<KT>{}, stream,
                                  "conv2d_dgrad depthwise");
    else if (algo == "depthwise")
      check_launch(cuda::launch_dw_dgrad<KT>(s, kptr<scalar_t>(grad_output), strides4(grad_output),
                                             kptr<scalar_t>(weight), strides4(weight), kptr<scalar_t>(dx), strides4(dx),
                                             channels_fastest(dx), stream),
                   "conv2d_dgrad depthwise");
    else if (algo == "direct")
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
  const std::string algo = resolve_algo(algo_name, s, grad_output, "wgrad");

  const DeviceGuard guard(grad_output.device());
  // dw in the input's layout (conv2d_glue.h: wgrad_format), as cuDNN gives a channels_last model's gradient
  at::Tensor dw = at::empty(weight_size, grad_output.options().memory_format(wgrad_format(input)));
  const cudaStream_t stream = current_stream();
  if (dw.numel() == 0) return dw;
  if (grad_output.numel() == 0) return dw.zero_();
  // wgrad's k-major tiles reach the mma fragments through ldmatrix.trans, which moves 16-bit elements only: float32
  // wgrad has no TF32 kernel and runs on the SIMT implicit GEMM (in full float32) under every tensor_core name.
  const std::string walgo = is_tc(algo) && grad_output.scalar_type() == at::kFloat ? "implicit_gemm" : algo;
  if (is_tc(walgo)) {
    if (grad_output.scalar_type() == at::kHalf)
      wgrad_tc<__half>(walgo, s, grad_output, input, dw);
    else
      wgrad_tc<__nv_bfloat16>(walgo, s, grad_output, input, dw);
    return dw;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, grad_output.scalar_type(), "pyconv_conv2d_wgrad_cuda", [&] {
    using KT = typename KernelType<scalar_t>::type;
    if (walgo == "depthwise" && cuda::dw_vec_eligible<KT>(s, kptr<scalar_t>(grad_output), strides4(grad_output),
                                                          kptr<scalar_t>(input), strides4(input))) {
      using Acc = acc_t<KT>;
      const int64_t splits = cuda::dw_wgrad_vec_splits<KT>(s, sm_count());
      at::Tensor work = at::empty({splits, s.K, s.R * s.S},
                                  grad_output.options().dtype(sizeof(Acc) == 8 ? at::kDouble : at::kFloat));
      check_launch(cuda::launch_dw_wgrad_nhwc_vec<KT>(s, kptr<scalar_t>(grad_output), strides4(grad_output),
                                                      kptr<scalar_t>(input), strides4(input), kptr<scalar_t>(dw),
                                                      strides4(dw), static_cast<Acc*>(work.data_ptr()), splits,
                                                      stream),
                   "conv2d_wgrad depthwise");
    } else if (walgo == "depthwise") {
      // Split the N·P·Q reduction when the channels alone leave SMs idle (≥ 1024 pixels a split).
      const int64_t blocks = s.K * ceil_div(s.R * s.S, cuda::kDwTaps);
      const int64_t splits = std::max<int64_t>(
          1, std::min<int64_t>({2 * sm_count() / std::max<int64_t>(blocks, 1), s.npq() / 1024, 64}));
      using Acc = acc_t<KT>;
      at::Tensor work = at::empty({splits, s.K, s.R * s.S},
                                  grad_output.options().dtype(sizeof(Acc) == 8 ? at::kDouble : at::kFloat));
      check_launch(cuda::launch_dw_wgrad<KT>(s, kptr<scalar_t>(grad_output), strides4(grad_output),
                                             kptr<scalar_t>(input), strides4(input), kptr<scalar_t>(dw), strides4(dw),
                                             static_cast<Acc*>(work.data_ptr()), splits, stream),
                   "conv2d_wgrad depthwise");
    } else if (walgo == "direct")
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
