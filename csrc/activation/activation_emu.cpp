// The CUDA activation backend built for the CPU emulator (pyconv._C_emu): activation_cuda.cu, unchanged, on
// csrc/emu/cuda_emu.h; the ops are pyconv_emu::* on CPU tensors.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "../emu/cuda_emu.h"  // after every torch header: it defines CUDA's names as macros

#include "activation_cuda.cu"
