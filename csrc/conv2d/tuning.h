// The autotuner's table: which rung "auto" runs for a given convolution, as measured by pyconv.tuning (Python times
// the candidates and installs the winner here). The kernels' host code consults it before its heuristic, so a tuned
// choice applies wherever the op is called with algo="auto": eager code, autograd's backward and compiled graphs.
// Keys are built here only (pyconv._C.conv2d_tuning_key calls the same function), so Python and C++ cannot disagree.
// Glue, not kernel code.
#pragma once
#include <ATen/ATen.h>

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../common/conv_params.h"

namespace pyconv {

// "nhwc" when the tensor's channels are its densest dimension (channels_last), else "nchw".
inline const char* tuning_layout(const at::Tensor& t) {
  return t.dim() == 4 && t.size(1) > 1 && t.stride(1) == 1 ? "nhwc" : "nchw";
}

// direction | every size and geometry number | dtype | layout. The device is not part of it: the table is keyed by
// device separately (tuned_algo's `device`).
inline std::string tuning_key(const std::string& direction, const Conv2dShape& s, at::ScalarType dtype,
                              const char* layout) {
  std::string k = direction;
  for (int64_t v : {s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.P, s.Q, s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dil_h,
                    s.dil_w, s.groups})
    k += "," + std::to_string(v);
  return k + "," + c10::toString(dtype) + "," + layout;
}

struct TuningTable {
  std::mutex mu;
  std::unordered_map<std::string, std::string> algo;  // device + "|" + key → rung
};
inline TuningTable& tuning_table() {
  static TuningTable t;
  return t;
}
inline std::string tuned_algo(const std::string& device, const std::string& key) {
  TuningTable& t = tuning_table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.algo.find(device + "|" + key);
  return it == t.algo.end() ? std::string() : it->second;
}
inline void set_tuned_algo(const std::string& device, const std::string& key, const std::string& algo) {
  TuningTable& t = tuning_table();
  std::lock_guard<std::mutex> lock(t.mu);
  if (algo.empty())
    t.algo.erase(device + "|" + key);
  else
    t.algo[device + "|" + key] = algo;
}
inline void clear_tuned_algos() {
  TuningTable& t = tuning_table();
  std::lock_guard<std::mutex> lock(t.mu);
  t.algo.clear();
}
inline bool tuning_table_empty() {
  TuningTable& t = tuning_table();
  std::lock_guard<std::mutex> lock(t.mu);
  return t.algo.empty();
}
// The table entry for this op call, or "" (then the heuristic decides). With nothing tuned (the default) no key is
// built: its 16 numbers formatted and joined are host time on every op call.
inline std::string tuned_for(const char* direction, const Conv2dShape& s, const at::Tensor& layout_src) {
  if (tuning_table_empty()) return "";
  return tuned_algo(layout_src.device().str(), tuning_key(direction, s, layout_src.scalar_type(),
                                                          tuning_layout(layout_src)));
}

// The tensor-core GEMM launches of this process's recent conv2d calls, oldest first: (tile, split-K slices) each (a
// strided dgrad launches one GEMM per sub-pixel phase). The CUDA glue appends; pyconv._C.conv2d_tc_launches() returns
// and clears it, so tests can assert which configuration actually ran and benchmarks can report it. Process-wide, not
// per thread: autograd runs a CUDA backward on its own device thread, whose launches the caller must see too (a
// thread_local log left them invisible: the first H100 run, 2026-11-26). Bounded: only the last 64 launches are kept,
// so a program that never reads it does not grow.
using TcLaunch = std::pair<std::string, int64_t>;  // (tile, split-K slices)
struct TcLaunchLog {
  std::mutex mu;
  std::vector<TcLaunch> launches;
};
inline TcLaunchLog& tc_launch_log() {
  static TcLaunchLog log;
  return log;
}
// What pyconv._C(_emu).conv2d_tc_launches() returns: the log, which it leaves empty.
inline std::vector<TcLaunch> take_tc_launches() {
  TcLaunchLog& log = tc_launch_log();
  std::vector<TcLaunch> out;
  std::lock_guard<std::mutex> lock(log.mu);
  out.swap(log.launches);
  return out;
}
inline void record_tc_launch(const std::string& tile, int64_t splits) {
  TcLaunchLog& log = tc_launch_log();
  std::lock_guard<std::mutex> lock(log.mu);
  if (log.launches.size() >= 64) log.launches.erase(log.launches.begin());
  log.launches.emplace_back(tile, splits);
}

// How many times tensor-core dgrad copied its filter into a GEMM's B layout (tc_dgrad_weight: the transposed filter of
// rung 3, or the MN-major copy of the wgmma rung when the filter cannot be read in place) since the last call of
// pyconv._C(_emu).conv2d_tc_filter_copies(), which returns and resets it: tests assert that a channels_last filter is
// read where it lies.
inline std::atomic<int64_t>& tc_filter_copy_count() {
  static std::atomic<int64_t> count{0};
  return count;
}
inline int64_t take_tc_filter_copies() { return tc_filter_copy_count().exchange(0); }

// How many TMA launches (fprop, dgrad, wgrad) read their pixel operand by tiled loads (TcTmaMaps::pix_tiled: a 1×1,
// stride-1, unpadded convolution over a pixel-dense source) since the last call of
// pyconv._C(_emu).conv2d_tc_tma_tiled_pixels(), which returns and resets it.
inline std::atomic<int64_t>& tc_tma_tiled_pixel_count() {
  static std::atomic<int64_t> count{0};
  return count;
}
inline int64_t take_tc_tma_tiled_pixels() { return tc_tma_tiled_pixel_count().exchange(0); }
// How many TMA fprop/dgrad launches stored their output tiles by TMA (TcTmaMaps::y_tiled) since the last call of
// pyconv._C(_emu).conv2d_tc_tma_stores(), which returns and resets it.
inline std::atomic<int64_t>& tc_tma_store_count() {
  static std::atomic<int64_t> count{0};
  return count;
}
inline int64_t take_tc_tma_stores() { return tc_tma_store_count().exchange(0); }

}  // namespace pyconv
