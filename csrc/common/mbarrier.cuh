// mbarrier (and named barriers, at the end): the shared-memory arrive/wait barrier that lets one set of warps hand
// shared-memory stages to another without stopping the whole block (a __syncthreads makes every warp wait for the
// slowest). Inline PTX on a GPU of compute capability 9.0 (try_wait.parity is Hopper's; the warp-specialised kernels
// that use these run only there), the emulator's model (csrc/emu/cuda_emu.h: phases, counts, the cp.async-tracked
// arrivals landing as late as possible, deadlocks reported) in the emulated build, a trap elsewhere.
//
// A barrier counts arrivals; when `count` of them have arrived its current phase completes, its phase parity flips
// and it re-arms for the next phase. A waiter names the parity of the phase it waits for: in a ring of S stages, use
// u of stage s (u = tile / S) is phase u of that stage's barrier, so the waiter passes u & 1.
//
// Producer/consumer ring (cuda_tensor_core_sm90.cuh, tc_wgmma_ws_conv_kernel):
//   full[s]   count = producer threads. Each producer thread issues its cp.async copies of a tile into stage s, then
//             cp.async.mbarrier.arrive.noinc: its arrival fires when those copies have landed.
//   empty[s]  count = consumer threads. Each consumer arrives once the wgmma that read stage s has completed
//             (wgmma.wait_group), so the producers may overwrite it.
#pragma once
#include <cstdint>

#include "warp_mma.cuh"
#include "warpgroup_mma.cuh"

namespace pyconv {

// mbarrier.init.shared::cta.b64: `count` arrivals complete each phase. One thread initialises (then
// mbarrier_init_fence); a __syncthreads must follow before any other thread uses the barrier.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, int count PYCONV_CALL_SITE) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::mbarrier_init(bar, count, call_file, call_line);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_window_addr(bar)), "r"(count) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// fence.mbarrier_init.release.cluster: makes the initialising thread's mbarrier.init visible before the barrier that
// hands the barriers to the other threads (a block is a cluster of one here). The thread that initialised calls it.
__device__ __forceinline__ void mbarrier_init_fence() {
#if !defined(PYCONV_EMULATION) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

// mbarrier.arrive (release semantics: this thread's earlier shared-memory accesses, and the completion of its
// wgmma groups that it waited for, happen before the phase completes for any waiter).
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar PYCONV_CALL_SITE) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::mbarrier_arrive(bar, call_file, call_line);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(smem_window_addr(bar))
               : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// cp.async.mbarrier.arrive.noinc.shared::cta.b64: an arrival on `bar` that fires once every cp.async this thread has
// issued so far has landed. .noinc: the barrier's count already includes this arrival (init with the number of
// threads that do this), rather than the instruction raising the count and needing a second, ordinary arrive.
__device__ __forceinline__ void cp_async_mbarrier_arrive_noinc(uint64_t* bar PYCONV_CALL_SITE) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::cp_async_mbarrier_arrive_noinc(bar, call_file, call_line);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smem_window_addr(bar)) : "memory");
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// Spins on mbarrier.try_wait.parity until the phase of parity `parity` has completed (acquire semantics: what the
// arriving threads did before arriving, and the copies a cp.async arrival tracked, are visible afterwards). try_wait
// itself suspends the thread for a while before reporting failure, so the loop is not a hot spin.
__device__ __forceinline__ void mbarrier_wait_parity(uint64_t* bar, int parity PYCONV_CALL_SITE) {
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::mbarrier_wait_parity(bar, parity, call_file, call_line);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const uint32_t addr = smem_window_addr(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(addr), "r"(uint32_t(parity))
        : "memory");
  } while (!done);
#elif defined(__CUDA_ARCH__)
  __trap();
#endif
}

// bar.sync id, count: a barrier among `count` threads (whole warps) of the block, not all of them — for the consumer
// warpgroups of a warp-specialised kernel, whose producer warps have left. Barrier 0 is __syncthreads'; use 1-15.
template <int kId>
__device__ __forceinline__ void named_barrier_sync(int count PYCONV_CALL_SITE) {
  static_assert(kId >= 1 && kId <= 15, "named barriers 1-15 (0 is __syncthreads')");
#if defined(PYCONV_EMULATION)
  ::pyconv_emu::detail::named_barrier_sync(kId, count, call_file, call_line);
#elif defined(__CUDA_ARCH__)
  asm volatile("bar.sync %0, %1;\n" ::"n"(kId), "r"(count) : "memory");
#endif
}

}  // namespace pyconv
