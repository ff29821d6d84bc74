// pyconv._C_emu: the CUDA backend compiled for the CPU emulator. Declares the `pyconv_emu` op library (the same
// schemas as `pyconv`; implementations in csrc/*/..._emu.cpp) and a small pybind11 module to configure the emulator
// and run its self-tests.
#include <torch/extension.h>
#include <torch/library.h>

#include "../conv2d/algos.h"
#include "../activation/activation_schema.h"
#include "../conv2d/conv2d_schema.h"
#include "../conv2d/tuning.h"
#include "../pooling/pooling_schema.h"
#include "cuda_emu.h"  // after every torch header

#include "selftests.h"

TORCH_LIBRARY(pyconv_emu, m) {
  pyconv::define_conv2d_ops(m);
  pyconv::define_pooling_ops(m);
  pyconv::define_activation_ops(m);
}

namespace {

namespace py = pybind11;

py::dict get_config() {
  const pyconv_emu::Config c = pyconv_emu::get_config();
  py::dict d;
  d["workers"] = c.workers;
  d["order"] = pyconv_emu::order_name(c.order);
  d["seed"] = c.seed;
  d["stack_kib"] = c.stack_bytes / 1024;
  d["max_dynamic_smem"] = c.max_dynamic_smem;
  return d;
}

void set_config(int workers, const std::string& order, uint64_t seed, int64_t stack_kib, int64_t max_dynamic_smem) {
  pyconv_emu::Config c;
  TORCH_CHECK(workers >= 1 && workers <= 256, "pyconv emulator: workers must be in [1, 256], got ", workers);
  TORCH_CHECK(pyconv_emu::parse_order(order, &c.order), "pyconv emulator: order must be 'forward', 'reverse' or ",
              "'random', got '", order, "'");
  TORCH_CHECK(stack_kib >= 16 && stack_kib <= 65536, "pyconv emulator: stack_kib must be in [16, 65536], got ",
              stack_kib);
  TORCH_CHECK(max_dynamic_smem >= 0, "pyconv emulator: max_dynamic_smem must be ≥ 0, got ", max_dynamic_smem);
  c.workers = workers;
  c.seed = seed;
  c.stack_bytes = size_t(stack_kib) * 1024;
  c.max_dynamic_smem = size_t(max_dynamic_smem);
  pyconv_emu::set_config(c);
}

py::list selftest_list() {
  py::list l;
  for (const auto& t : pyconv::emu_selftest::selftests()) l.append(py::make_tuple(t.name, t.kind, t.expect));
  return l;
}

// Runs one self-test; returns "" on success (feature) or the emulator's error text (seeded bug).
std::string run_selftest(const std::string& name) {
  for (const auto& t : pyconv::emu_selftest::selftests())
    if (name == t.name) {
      py::gil_scoped_release no_gil;
      return t.run();
    }
  TORCH_CHECK(false, "pyconv emulator: no self-test named '", name, "'");
}

py::dict build_info() {
  py::dict d;
  d["algorithms"] = py::dict(py::arg("conv2d") = pyconv::conv2d_cuda_algos());
  d["algorithm_dtypes"] = py::dict(py::arg("conv2d") = pyconv::conv2d_algo_dtypes());
  d["sanitizer"] =
#if defined(PYCONV_EMU_ASAN)
      "address";
#elif defined(PYCONV_EMU_TSAN)
      "thread";
#else
      py::none();
#endif
#ifdef PYCONV_EMU_USE_UCONTEXT
  d["context_switch"] = "ucontext";
#else
  d["context_switch"] = "x86-64 assembly";
#endif
  d["cuda_headers"] = std::to_string(CUDART_VERSION);
  return d;
}

}  // namespace

PYBIND11_MODULE(_C_emu, m) {
  m.doc() = "pyconv's CUDA backend compiled for the CPU emulator (the pyconv_emu:: ops) and the emulator's controls";
  m.def("build_info", &build_info);
  m.def("get_config", &get_config);
  m.def("set_config", &set_config, py::arg("workers"), py::arg("order"), py::arg("seed"), py::arg("stack_kib"),
        py::arg("max_dynamic_smem"));
  m.def("selftests", &selftest_list);
  m.def("selftest", &run_selftest, py::arg("name"));
  m.def("conv2d_tc_launches", &pyconv::take_tc_launches,
        "(tile, split-K slices) of each tensor-core GEMM this thread launched since the last call (at most the last 64)");
  m.def("conv2d_tc_filter_copies", &pyconv::take_tc_filter_copies,
        "How many times tensor-core dgrad copied its filter into a GEMM layout since the last call (then 0)");
  m.def("conv2d_tc_tma_tiled_pixels", &pyconv::take_tc_tma_tiled_pixels,
        "How many TMA tensor-core launches read their pixel operand by tiled loads (1x1, stride 1, no padding) since the "
        "last call (then 0)");
  m.def("conv2d_tc_tma_stores", &pyconv::take_tc_tma_stores,
        "How many TMA tensor-core fprop/dgrad launches stored their output tiles by TMA since the last call (then 0)");
}
