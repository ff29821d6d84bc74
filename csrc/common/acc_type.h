// Accumulation type per element type, and the conversions to and from it. float accumulates in float, double in
// double; cuda_common.cuh adds __half / __nv_bfloat16 (accumulated in float, as cuDNN does). No torch or CUDA header,
// so CPU-only code shares the same per-element functions as the CUDA kernels.
#pragma once
#include "macros.h"

namespace pyconv {

template <typename T> struct AccType { using type = float; };
template <> struct AccType<double> { using type = double; };
template <typename T> using acc_t = typename AccType<T>::type;

template <typename T> PYCONV_HD acc_t<T> to_acc(T v) { return static_cast<acc_t<T>>(v); }
template <typename T> PYCONV_HD T from_acc(acc_t<T> v) { return static_cast<T>(v); }

}  // namespace pyconv
