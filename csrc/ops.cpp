// The pyconv op library (schemas in conv2d/conv2d_schema.h); backends add implementations with TORCH_LIBRARY_IMPL in
// their own files.
// Also the small pybind11 module `pyconv._C` that reports build facts (pyconv.build_info()).
#include <torch/extension.h>
#include <torch/library.h>

#include "build_config.h"
#include "conv2d/algos.h"
#include "conv2d/conv2d_glue.h"
#include "conv2d/tuning.h"
#include "activation/activation_schema.h"
#include "conv2d/conv2d_schema.h"
#include "pooling/pooling_schema.h"

#ifdef PYCONV_WITH_CUDA
#include <cuda_runtime_api.h>  // CUDART_VERSION
#endif

TORCH_LIBRARY(pyconv, m) {
  pyconv::define_conv2d_ops(m);
  pyconv::define_pooling_ops(m);
  pyconv::define_activation_ops(m);
}

#ifdef PYCONV_WITH_CUDA
namespace pyconv {
std::string gpu_selftest(const std::string& name);  // csrc/emu/selftests_cuda.cu
std::vector<std::string> gpu_selftests();
}
#endif

namespace {

#define PYCONV_STR2(x) #x
#define PYCONV_STR(x) PYCONV_STR2(x)

pybind11::dict build_info() {
  namespace py = pybind11;
  py::dict d;
  d["version"] = PYCONV_VERSION;
#ifdef PYCONV_WITH_CUDA
  d["cuda"] = true;
  d["cuda_version"] = PYCONV_STR(CUDART_VERSION);  // e.g. 13000
#else
  d["cuda"] = false;
  d["cuda_version"] = py::none();
#endif
  d["arch_list"] = PYCONV_ARCH_LIST;
#if defined(__clang__)
  d["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
  d["compiler"] = std::string("gcc ") + __VERSION__;
#else
  d["compiler"] = "unknown";
#endif
  d["torch_version_built"] = PYCONV_TORCH_VERSION;
  py::list ops;
  for (const char* op : {"conv2d_fprop", "conv2d_fprop_fused", "conv2d_dgrad", "conv2d_wgrad", "conv2d_bgrad", "max_pool2d",
                         "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "adaptive_avg_pool2d",
                         "adaptive_avg_pool2d_backward", "adaptive_max_pool2d", "adaptive_max_pool2d_backward",
                         "activation", "activation_", "activation_backward"})
    ops.append(op);
  d["ops"] = ops;
  py::dict algos, cpu, cuda;
  cpu["conv2d"] = pyconv::conv2d_cpu_algos();
  algos["cpu"] = cpu;
#ifdef PYCONV_WITH_CUDA
  cuda["conv2d"] = pyconv::conv2d_cuda_algos();
  algos["cuda"] = cuda;
#endif
  d["algorithms"] = algos;
  d["algorithm_dtypes"] = py::dict(py::arg("conv2d") = pyconv::conv2d_algo_dtypes());
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyconv native extension: registers the pyconv:: torch ops and reports build facts";
  m.def("build_info", &build_info, "Facts about how this pyconv extension was built");
  // The autotuner's table (csrc/conv2d/tuning.h); pyconv.tuning is its only user.
  m.def(
      "conv2d_tuning_key",
      [](const std::string& direction, const at::Tensor& layout_src, std::vector<int64_t> x_size,
         std::vector<int64_t> w_size, std::vector<int64_t> stride, std::vector<int64_t> padding,
         std::vector<int64_t> dilation, int64_t groups) {
        const pyconv::Conv2dShape s =
            pyconv::make_shape(x_size, w_size, pyconv::check_geometry(stride, padding, dilation, groups));
        return pyconv::tuning_key(direction, s, layout_src.scalar_type(), pyconv::tuning_layout(layout_src));
      },
      "The tuning-table key of one conv2d call (direction fprop/dgrad/wgrad; layout_src: the tensor whose dtype and "
      "layout the op sees first: input for fprop, grad_output for dgrad/wgrad)");
  m.def("conv2d_set_tuned", &pyconv::set_tuned_algo, pybind11::arg("device"), pybind11::arg("key"),
        pybind11::arg("algo"), "Installs (or with algo='' removes) the rung 'auto' runs for this key on this device");
  m.def("conv2d_clear_tuned", &pyconv::clear_tuned_algos, "Empties the tuning table");
  m.def("conv2d_tc_launches", &pyconv::take_tc_launches,
        "(tile, split-K slices) of each tensor-core GEMM this process launched since the last call (at most the last 64; "
        "autograd's backward thread included)");
  m.def("conv2d_tc_filter_copies", &pyconv::take_tc_filter_copies,
        "How many times tensor-core dgrad copied its filter into a GEMM layout since the last call (then 0)");
  m.def("conv2d_tc_tma_tiled_pixels", &pyconv::take_tc_tma_tiled_pixels,
        "How many TMA tensor-core launches read their pixel operand by tiled loads (1x1, stride 1, no padding) since the "
        "last call (then 0)");
  m.def("conv2d_tc_tma_stores", &pyconv::take_tc_tma_stores,
        "How many TMA tensor-core fprop/dgrad launches stored their output tiles by TMA since the last call (then 0)");
#ifdef PYCONV_WITH_CUDA
  m.def("gpu_selftest", &pyconv::gpu_selftest, pybind11::arg("name"),
        "Runs one of the CUDA emulator's feature self-tests on the current GPU: '' on success, else what differed",
        pybind11::call_guard<pybind11::gil_scoped_release>());
  m.def("gpu_selftests", &pyconv::gpu_selftests,
        "The names of the feature self-tests gpu_selftest runs (also in a build without the emulator module)");
#endif
}
