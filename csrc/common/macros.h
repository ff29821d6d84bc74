// Portable qualifiers so one header compiles under nvcc, the host compiler, and (later) the CPU emulation of CUDA.
// No torch header here or in any kernel file.
#pragma once

#if defined(__CUDACC__)
#define PYCONV_HD __host__ __device__ __forceinline__
#else
#define PYCONV_HD inline
#endif
