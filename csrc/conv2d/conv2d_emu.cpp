// The CUDA conv2d backend built for the CPU emulator: the `pyconv_emu::conv2d_*` ops on CPU tensors run the very
// kernels and host wrappers of conv2d_cuda.cu (unchanged) on csrc/emu/cuda_emu.h. Built into pyconv._C_emu.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../emu/cuda_emu.h"  // after every torch header: it defines CUDA's names as macros

#include "conv2d_cuda.cu"
