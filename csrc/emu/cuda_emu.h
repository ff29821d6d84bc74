// pyconv's CPU emulation of CUDA: the *unchanged* kernel sources compile with the host compiler and run on the CPU.
//
// How a launch runs
//   * Every CUDA thread of a block is a fiber: a tiny coroutine with its own stack (64 KiB by default). Fibers of one
//     block run on one OS thread and switch only where CUDA threads must wait for each other: __syncthreads*,
//     __syncwarp and the warp collectives (__shfl*_sync, __ballot_sync, …, the mma helpers). Between two such points a
//     fiber runs alone, so everything a kernel does between barriers is checked exactly as written.
//   * A block-scheduler loop resumes every runnable fiber in turn (order: forward, reverse, or shuffled every sweep).
//     When every live fiber waits at a barrier it checks that they wait at the *same* barrier, then releases them.
//     A thread that returned while others wait, threads waiting at different barriers, a warp call whose mask names a
//     lane that does not exist or has exited: each is an error with a message, never a hang.
//   * Blocks are handed to `workers` OS threads (in forward, reverse or random order), so inter-block races and
//     order assumptions show up as different results, and atomics really are concurrent.
//   * `__shared__` becomes `thread_local`: one copy per OS thread, i.e. per running block, shared by its fibers.
//     Dynamic shared memory is declared with PYCONV_EXTERN_SHARED(T, name) (see cuda_common.cuh), not with
//     `extern __shared__`, which has no host-compiler equivalent.
//
// What is not modelled (README, "The CUDA emulator"): the memory model beyond barriers, warp lock-step (a warp's
// lanes do not run in lock-step here, which is what Volta's independent thread scheduling allows anyway), the exact
// rounding of fast-math intrinsics and of tensor-core accumulation, timing and occupancy. compute-sanitizer on a real
// GPU stays the final word.
//
// Sanitizers: under -fsanitize=address the fiber switches are announced to ASan (__sanitizer_*_switch_fiber); under
// -fsanitize=thread every fiber is a TSan fiber switched *without* synchronisation, and only the emulated barriers
// publish happens-before edges, so a missing __syncthreads shows up as a data race.
//
// Include order matters: CUDA and torch headers first, this header last, because it defines macros (threadIdx,
// __shared__, __syncthreads, …) that must not reach them.
#pragma once

#if defined(__CUDACC__)
#error "cuda_emu.h is for the host compiler; nvcc builds the real kernels"
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#if !defined(__x86_64__) || defined(PYCONV_EMU_UCONTEXT)
#define PYCONV_EMU_USE_UCONTEXT 1
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define PYCONV_EMU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define PYCONV_EMU_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PYCONV_EMU_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define PYCONV_EMU_TSAN 1
#endif
#endif

#ifdef PYCONV_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef PYCONV_EMU_TSAN
#include <sanitizer/tsan_interface.h>
extern "C" {
void AnnotateIgnoreReadsBegin(const char* file, int line);
void AnnotateIgnoreReadsEnd(const char* file, int line);
void AnnotateIgnoreWritesBegin(const char* file, int line);
void AnnotateIgnoreWritesEnd(const char* file, int line);
}
#endif

#define PYCONV_EMULATION 1

namespace pyconv_emu {

// ---- configuration --------------------------------------------------------------------------------------------

enum class Order { forward, reverse, random };

struct Config {
  int workers = 2;                 // OS threads that run blocks
  Order order = Order::forward;    // block start order and fiber resume order
  uint64_t seed = 0;               // for Order::random
  size_t stack_bytes = 64 * 1024;  // per fiber (per CUDA thread)
  size_t max_dynamic_smem = 48 * 1024;  // CUDA's default limit without cudaFuncSetAttribute opt-in
};

// Hopper's largest dynamic shared memory per block after opt-in (cudaFuncAttributeMaxDynamicSharedMemorySize).
constexpr size_t kMaxOptInSmem = 227 * 1024;
// Shared-window address of the first byte of dynamic shared memory. Not 1024-byte aligned on purpose: kernels whose
// swizzled tiles need an aligned base must align it themselves (the GPU promises only 16 bytes).
constexpr uint32_t kSmemWindowBase = 16;

// The emulator's tensor map (csrc/common/tma.cuh): what cuTensorMapEncodeIm2col / cuTensorMapEncodeTiled were asked
// for, kept in the 128 bytes of the kernel's CUtensorMap parameter. Dims and strides innermost first; strides[0] is
// the element size. im2col (rank 4, {C, W, H, N}): box[0] channels per pixel, box[1] pixels per load, lower/upper the
// bounding-box corners and estride the traversal strides of W and H. tiled: box[0..rank) the box.
struct TmaEmuMap {
  static constexpr uint32_t kMagic = 0x544D4145u;  // "EAMT": a map the host encoder made
  uint32_t magic;
  uint8_t im2col, rank, elem_bytes, pad_;
  const void* base;
  uint32_t dims[4];
  uint64_t strides[4];
  uint16_t box[4];
  int16_t lower[2], upper[2];
  uint8_t estride[2];
};

inline const char* order_name(Order o) {
  return o == Order::forward ? "forward" : o == Order::reverse ? "reverse" : "random";
}

inline bool parse_order(const std::string& s, Order* out) {
  if (s == "forward") *out = Order::forward;
  else if (s == "reverse") *out = Order::reverse;
  else if (s == "random") *out = Order::random;
  else return false;
  return true;
}

namespace detail {
inline Config config_from_env() {
  Config c;
#ifdef PYCONV_EMU_ASAN
  c.stack_bytes = 256 * 1024;  // ASan's redzones make frames several times larger
#endif
  if (const char* v = std::getenv("PYCONV_EMU_WORKERS")) c.workers = std::max(1, std::atoi(v));
  if (const char* v = std::getenv("PYCONV_EMU_ORDER")) parse_order(v, &c.order);
  if (const char* v = std::getenv("PYCONV_EMU_SEED")) c.seed = std::strtoull(v, nullptr, 10);
  if (const char* v = std::getenv("PYCONV_EMU_STACK_KIB")) c.stack_bytes = size_t(std::max(16, std::atoi(v))) * 1024;
  return c;
}
inline std::mutex& config_mutex() {
  static std::mutex m;
  return m;
}
inline Config& config_storage() {
  static Config c = config_from_env();
  return c;
}
}  // namespace detail

// The settings the next launch will use (read once at launch start; safe to change between launches).
inline Config get_config() {
  std::lock_guard<std::mutex> lock(detail::config_mutex());
  return detail::config_storage();
}
inline void set_config(const Config& c) {
  std::lock_guard<std::mutex> lock(detail::config_mutex());
  detail::config_storage() = c;
}

// ---- errors ---------------------------------------------------------------------------------------------------
// The emulator reports errors like the CUDA runtime does (a cudaError_t from the launch), and keeps the detailed
// message for cudaGetErrorString, which this header maps to error_string below.

namespace detail {
struct LastError {
  cudaError_t code = cudaSuccess;
  std::string message;
};
inline LastError& last_error() {
  thread_local LastError e;
  return e;
}
inline cudaError_t set_error(cudaError_t code, std::string msg) {
  last_error().code = code;
  last_error().message = std::move(msg);
  return code;
}
}  // namespace detail

inline cudaError_t get_last_error() {
  const cudaError_t e = detail::last_error().code;
  detail::last_error().code = cudaSuccess;  // like cudaGetLastError: reading resets a non-sticky error
  return e;
}
inline cudaError_t peek_last_error() { return detail::last_error().code; }

inline const char* error_string(cudaError_t e) {
  const detail::LastError& le = detail::last_error();
  if (e != cudaSuccess && !le.message.empty()) return le.message.c_str();
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "unknown error";
  }
}

// ---- fibers -----------------------------------------------------------------------------------------------------

namespace detail {

#ifndef PYCONV_EMU_USE_UCONTEXT
// Save the callee-saved registers of the System V x86-64 ABI on the current stack, store the stack pointer in *save,
// load `to` as the stack pointer and pop the registers saved there. Everything else is caller-saved, so the compiler
// has already spilled it around this call. A fresh fiber's stack is laid out (init_stack) so that the `ret` lands on
// its entry function.
__attribute__((naked, noinline)) inline void ctx_switch(void** /*save*/, void* /*to*/) {
  __asm__ volatile(
      "pushq %rbp\n\t"
      "pushq %rbx\n\t"
      "pushq %r12\n\t"
      "pushq %r13\n\t"
      "pushq %r14\n\t"
      "pushq %r15\n\t"
      "movq %rsp, (%rdi)\n\t"
      "movq %rsi, %rsp\n\t"
      "popq %r15\n\t"
      "popq %r14\n\t"
      "popq %r13\n\t"
      "popq %r12\n\t"
      "popq %rbx\n\t"
      "popq %rbp\n\t"
      "ret\n\t");
}
#endif

struct Context {
#ifdef PYCONV_EMU_USE_UCONTEXT
  ucontext_t uc;
#else
  void* sp = nullptr;
#endif
};

inline void switch_context(Context& from, Context& to) {
#ifdef PYCONV_EMU_USE_UCONTEXT
  swapcontext(&from.uc, &to.uc);
#else
  ctx_switch(&from.sp, to.sp);
#endif
}

enum class State : uint8_t { runnable, barrier, warp, mbar, named, done };
enum class BarrierKind : uint8_t { sync, count, all, any };

struct Fiber {
  Context ctx;
  char* stack = nullptr;  // lowest usable address (a guard page lies below it)
  size_t stack_size = 0;
  uint3 tid{};            // threadIdx
  int linear = 0;         // x + y·bx + z·bx·by
  State state = State::runnable;
  bool started = false;
  // where it waits, for barrier matching and error messages
  const char* file = nullptr;
  int line = 0;
  const char* what = nullptr;
  BarrierKind bar_kind = BarrierKind::sync;
  int pred = 0, result = 0;
  // warp collective operands (live on this fiber's stack while it waits)
  const void* in = nullptr;
  void* out = nullptr;
  // Lanes of this warp that had exited when this thread last synchronised (kernel start, a barrier, a collective):
  // __activemask() leaves out only those, as lanes that exit later would still be converged with it on a GPU.
  unsigned exited_at_sync = 0;
  // cp.async copies this thread issued and has not yet waited for: they land in shared memory only at the
  // cp.async.wait_group that covers their group, never earlier, so a kernel that reads a stage before waiting for it
  // reads the stale contents (NaN after launch) here, as it may on a GPU.
  struct CpAsync {
    void* dst;
    const void* src;
    int bytes, src_bytes;  // src_bytes < bytes: the rest is zero-filled (0 = pure zero fill, no read)
    int group;
  };
  std::vector<CpAsync> cp_pending;
  int cp_committed = 0;  // groups committed so far; uncommitted copies belong to group cp_committed
  // wgmma.mma_async issued by this thread and not yet covered by a wgmma.wait_group: like cp.async, performed at the
  // wait (each thread computes its own accumulator fragment from shared memory then), so a kernel that overwrites an
  // operand tile or reads the accumulators before the wait gets the wrong result here, as it may on a GPU.
  struct Wgmma {
    float* d;
    int n;
    uint64_t desc_a, desc_b;
    bool bf16, mn_a, mn_b;  // mn_a / mn_b: that operand MN-major (imm-trans-a / imm-trans-b = 1)
    int group;
    const char* file;
    int line;
  };
  std::vector<Wgmma> wg_pending;
  int wg_committed = 0;
  // TMA stores (cp.async.bulk.tensor shared → global, .bulk_group) this thread issued and has not yet waited for:
  // performed at the cp.async.bulk.wait_group that covers their bulk group, never earlier — the copy engine may read
  // the shared-memory source any time before that, so a kernel that rewrites the source before waiting stores the
  // new contents here, as it may on a GPU.
  struct BulkStore {
    TmaEmuMap map;
    const unsigned char* src;
    int32_t coords[3];
    int group;
    const char* file;
    int line;
  };
  std::vector<BulkStore> bulk_pending;
  int bulk_committed = 0;  // bulk groups committed so far; uncommitted stores belong to group bulk_committed
  // The mbarrier this thread waits on (State::mbar) and the parity of the phase it waits to see completed.
  const uint64_t* mbar = nullptr;
  int mbar_parity = 0;
  // The named barrier (bar.sync id, count) this thread waits at (State::named).
  int bar_id = 0, bar_count = 0;
#ifdef PYCONV_EMU_ASAN
  void* fake_stack = nullptr;
#endif
#ifdef PYCONV_EMU_TSAN
  void* tsan_fiber = nullptr;
#endif
};

// A warp collective in progress: lanes of `mask` arrive one by one; the last one computes everyone's result.
struct WarpGroup {
  unsigned mask = 0, arrived = 0;
  int kind = 0, width = 0;
  size_t tsize = 0;
  const char* file = nullptr;
  int line = 0;
  const char* what = nullptr;
};

struct Launch;

struct Block {
  Launch* launch = nullptr;
  uint3 idx{};
  dim3 dim{}, grid{};
  int nthreads = 0, alive = 0;
  std::vector<Fiber>* fibers = nullptr;
  Fiber* cur = nullptr;
  Context sched;
  bool failed = false;
  bool aborting = false;  // set after a failure: resumed fibers unwind instead of continuing
  std::string error;
  unsigned char* dyn_smem = nullptr;
  // Shared-memory byte ranges (window addresses) that issued, not yet waited-for wgmma will read, with how many
  // pending wgmma read each (a warpgroup's 128 threads issue the same operands): a cp.async into one is a hazard.
  struct WgRange {
    uint32_t lo, hi;
    int count;
    const char* file;
    int line;
  };
  std::vector<WgRange> wg_ranges;
  // cp.async.mbarrier.arrive.noinc: a thread's copies issued so far and the arrival on `bar` they trigger once landed.
  // Held here until nothing else in the block can run (run_block), so they land as late as a GPU may let them: a
  // consumer that reads a stage before its mbarrier says the copies are in reads stale data here too.
  struct AsyncArrive {
    std::vector<Fiber::CpAsync> copies;
    uint64_t* bar;
    const char* file;
    int line;
  };
  std::vector<AsyncArrive> async_arrivals;
  // TMA loads (cp.async.bulk.tensor) issued and not yet landed: like the cp.async arrivals, they land only when nothing
  // else in the block can run, and count their bytes down on their mbarrier then. mbar_tx: the transaction bytes each
  // mbarrier still waits for in its current phase (mbarrier.arrive.expect_tx adds, a landed load subtracts); a phase
  // completes when its arrivals and its bytes are both done.
  struct TmaLoad {
    TmaEmuMap map;
    unsigned char* dst;
    int32_t coords[4];
    uint16_t offs[2];
    uint64_t* bar;
    uint32_t bytes;
    const char* file;
    int line;
  };
  std::vector<TmaLoad> tma_loads;
  std::vector<std::pair<const uint64_t*, int64_t>> mbar_tx;
  std::vector<std::vector<WarpGroup>> warps;
  std::vector<unsigned> warp_exited;  // per warp: lanes that have returned
  std::mt19937_64 rng;
#ifdef PYCONV_EMU_ASAN
  void* sched_fake_stack = nullptr;
  const void* sched_stack_bottom = nullptr;
  size_t sched_stack_size = 0;
#endif
#ifdef PYCONV_EMU_TSAN
  void* sched_tsan_fiber = nullptr;
  std::vector<char> warp_tokens;    // one per warp, for __syncwarp
  char* prev_blocks_token = nullptr;  // released by the previous block on this OS thread
  char* this_block_token = nullptr;
#endif
};

struct Launch {
  dim3 grid{}, block{};
  size_t smem = 0;
  void (*run)(const void*) = nullptr;  // runs the kernel body for the current fiber
  const void* thunk = nullptr;
  Config cfg;
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::string error;
  cudaError_t error_code = cudaSuccess;
#ifdef PYCONV_EMU_TSAN
  char start_token = 0, done_token = 0;
#endif
  void fail(cudaError_t code, const std::string& msg) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!failed.exchange(true)) {
      error = msg;
      error_code = code;
    }
  }
};

inline Block*& current_block() {
  thread_local Block* b = nullptr;
  return b;
}

inline Block& block() { return *current_block(); }
inline Fiber& fiber() { return *current_block()->cur; }

// TSan: emulator bookkeeping (fiber states, warp groups) is written by one fiber and read by another without any
// happens-before edge (fibers switch without synchronisation, deliberately). It is not kernel memory, so it is
// excluded from race detection.
struct IgnoreScope {
#ifndef PYCONV_EMU_TSAN
  IgnoreScope() {}  // user-provided, so that an unused scope object draws no warning
#else
  IgnoreScope() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~IgnoreScope() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
#endif
};

inline void tsan_release(const void* addr) {
#ifdef PYCONV_EMU_TSAN
  __tsan_release(const_cast<void*>(addr));
#else
  (void)addr;
#endif
}
inline void tsan_acquire(const void* addr) {
#ifdef PYCONV_EMU_TSAN
  __tsan_acquire(const_cast<void*>(addr));
#else
  (void)addr;
#endif
}

inline std::string fmt_idx(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}
inline std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}
inline std::string where(const char* file, int line) {
  if (!file) return "?";
  const char* slash = std::strrchr(file, '/');
  return std::string(slash ? slash + 1 : file) + ":" + std::to_string(line);
}

// Thrown by fail() (and into every waiting thread once a block has failed) and caught at the bottom of the fiber
// (fiber_entry): unwinding runs the destructors of everything on the thread's stack, so an error leaks nothing and
// leaves no sanitizer state behind.
struct FiberAbort {};

// Fiber → scheduler. `exiting`: the fiber will never run again (its ASan fake stack can be freed).
inline void yield_to_scheduler(bool exiting = false) {
  Block& b = block();
  Fiber& f = *b.cur;
#ifdef PYCONV_EMU_ASAN
  __sanitizer_start_switch_fiber(exiting ? nullptr : &f.fake_stack, b.sched_stack_bottom, b.sched_stack_size);
#else
  (void)exiting;
#endif
#ifdef PYCONV_EMU_TSAN
  // Between fibers there is no synchronisation (that is what lets TSan see a missing barrier). The final switch of
  // a finished fiber does synchronise with its OS thread: everything the fiber did happens before the launch returns.
  __tsan_switch_to_fiber(b.sched_tsan_fiber, exiting ? 0 : __tsan_switch_to_fiber_no_sync);
#endif
  switch_context(f.ctx, b.sched);
  // resumed by the scheduler
#ifdef PYCONV_EMU_ASAN
  __sanitizer_finish_switch_fiber(f.fake_stack, &b.sched_stack_bottom, &b.sched_stack_size);
#endif
  if (b.aborting) throw FiberAbort{};  // the block failed elsewhere: unwind this thread's stack and end it
}

// Record an error for this block and end the calling CUDA thread; the scheduler then abandons the block.
[[noreturn]] inline void fail(const std::string& msg) {
  Block& b = block();
  {
    IgnoreScope ig;
    if (!b.failed) {
      b.failed = true;
      b.error = msg;
    }
  }
  throw FiberAbort{};
}

inline std::string thread_desc(const Fiber& f) {
  return "thread " + fmt_idx(f.tid) + " of block " + fmt_idx(block().idx);
}

inline void fiber_entry() {
  Block& b = block();
  Fiber& f = *b.cur;
#ifdef PYCONV_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &b.sched_stack_bottom, &b.sched_stack_size);
#endif
#ifdef PYCONV_EMU_TSAN
  tsan_acquire(&b.launch->start_token);  // inputs written before the launch
  tsan_acquire(b.prev_blocks_token);      // shared memory last used by the previous block on this OS thread
#endif
  try {
    b.launch->run(b.launch->thunk);  // the kernel body, as this CUDA thread
  } catch (const FiberAbort&) {
    // fail() recorded the error (b.failed makes the scheduler stop the block), or the block is being aborted.
  }
  if (b.aborting) {
    IgnoreScope ig;
    f.state = State::done;
  } else {
    IgnoreScope ig;
    f.state = State::done;
    --b.alive;
    b.warp_exited[size_t(f.linear / 32)] |= 1u << (f.linear % 32);
    // A lane that exits while its warp-mates wait for it in a collective would hang a GPU.
    const int w = f.linear / 32, lane = f.linear % 32;
    for (const WarpGroup& g : b.warps[w])
      if (g.mask & (1u << lane)) {
        const std::string msg = thread_desc(f) + " exited while lanes of its warp wait for it in " + g.what + " at " +
                                where(g.file, g.line) + " (mask " + hex(g.mask) + ")";
        if (!b.failed) {
          b.failed = true;
          b.error = msg;
        }
      }
    // An exit with wgmma still in flight: its accumulators (and its reads of shared memory) are never waited for.
    if (!f.wg_pending.empty() && !b.failed) {
      b.failed = true;
      b.error = thread_desc(f) + " exited with " + std::to_string(f.wg_pending.size()) +
                " wgmma.mma_async not covered by a wgmma.wait_group (issued at " +
                where(f.wg_pending[0].file, f.wg_pending[0].line) + ")";
    }
    // An exit with TMA stores not waited for: the block's shared memory (their source) is gone while they read it.
    if (!f.bulk_pending.empty() && !b.failed) {
      b.failed = true;
      b.error = thread_desc(f) + " exited with " + std::to_string(f.bulk_pending.size()) +
                " TMA store(s) not covered by a cp.async.bulk.wait_group (issued at " +
                where(f.bulk_pending[0].file, f.bulk_pending[0].line) + ")";
    }
  }
#ifdef PYCONV_EMU_TSAN
  tsan_release(b.this_block_token);
  tsan_release(&b.launch->done_token);
#endif
  yield_to_scheduler(true);
  std::abort();  // a finished fiber is never resumed
}

#ifdef PYCONV_EMU_USE_UCONTEXT
inline void fiber_entry_uc() { fiber_entry(); }
#endif

// Lay out a fresh stack so that the first switch into it starts fiber_entry.
inline void init_fiber_context(Fiber& f, Context& sched) {
#ifdef PYCONV_EMU_USE_UCONTEXT
  getcontext(&f.ctx.uc);
  f.ctx.uc.uc_stack.ss_sp = f.stack;
  f.ctx.uc.uc_stack.ss_size = f.stack_size;
  f.ctx.uc.uc_link = &sched.uc;
  makecontext(&f.ctx.uc, &fiber_entry_uc, 0);
#else
  (void)sched;
  uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + f.stack_size) & ~uintptr_t(15);
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                                       // fiber_entry's (never used) return address
  *--sp = reinterpret_cast<void*>(&fiber_entry);         // where ctx_switch's `ret` goes
  for (int i = 0; i < 6; ++i) *--sp = nullptr;           // rbp rbx r12 r13 r14 r15
  f.ctx.sp = sp;  // at fiber_entry's first instruction rsp = top − 8: aligned as right after a `call`
#endif
}

// Fiber stacks for one OS thread: one mapping, a PROT_NONE guard page below each stack so that a stack overflow
// faults instead of silently overwriting the neighbouring fiber.
struct StackPool {
  char* base = nullptr;
  size_t slot = 0, count = 0, usable = 0;
  StackPool(size_t n, size_t stack_bytes) {
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    usable = (stack_bytes + page - 1) / page * page;
    slot = usable + page;
    count = n;
    void* p = mmap(nullptr, slot * n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
      base = nullptr;
      return;
    }
    base = static_cast<char*>(p);
    for (size_t i = 0; i < n; ++i) mprotect(base + i * slot, page, PROT_NONE);
  }
  ~StackPool() {
    if (!base) return;
#ifdef PYCONV_EMU_ASAN
    for (size_t i = 0; i < count; ++i) __asan_unpoison_memory_region(stack(i), usable);
#endif
    munmap(base, slot * count);
  }
  char* stack(size_t i) const { return base + i * slot + (slot - usable); }
};

// Mapping stacks and their guard pages costs about a millisecond per launch (and first-touch page faults), which
// dominates small launches, so pools are kept for reuse across launches.
inline std::mutex& pool_mutex() {
  static std::mutex m;
  return m;
}
inline std::vector<std::unique_ptr<StackPool>>& pool_cache() {
  static std::vector<std::unique_ptr<StackPool>> c;
  return c;
}
inline std::unique_ptr<StackPool> acquire_pool(size_t n, size_t stack_bytes) {
  {
    std::lock_guard<std::mutex> lock(pool_mutex());
    auto& c = pool_cache();
    for (size_t i = 0; i < c.size(); ++i)
      if (c[i]->count >= n && c[i]->usable >= stack_bytes && c[i]->usable < 2 * stack_bytes + 4096) {
        std::unique_ptr<StackPool> p = std::move(c[i]);
        c.erase(c.begin() + std::ptrdiff_t(i));
        return p;
      }
  }
  return std::unique_ptr<StackPool>(new StackPool(n, stack_bytes));
}
inline void release_pool(std::unique_ptr<StackPool> p) {
  if (!p->base) return;
  std::lock_guard<std::mutex> lock(pool_mutex());
  if (pool_cache().size() < 8) pool_cache().push_back(std::move(p));
}

// ---- the block scheduler ----------------------------------------------------------------------------------------

inline void resume(Block& b, Fiber& f) {
  b.cur = &f;
#ifdef PYCONV_EMU_ASAN
  __sanitizer_start_switch_fiber(&b.sched_fake_stack, f.stack, f.stack_size);
#endif
#ifdef PYCONV_EMU_TSAN
  __tsan_switch_to_fiber(f.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
  switch_context(b.sched, f.ctx);
#ifdef PYCONV_EMU_ASAN
  __sanitizer_finish_switch_fiber(b.sched_fake_stack, nullptr, nullptr);
#endif
}

// Every live fiber waits somewhere and nothing is runnable: either all wait at one barrier (release them), or the
// block is stuck, which on a GPU is a hang or undefined behaviour. Returns false (with b.error) when stuck.
inline bool resolve_barrier(Block& b) {
  std::vector<Fiber>& fs = *b.fibers;
  const Fiber* first = nullptr;
  int at_barrier = 0, at_warp = 0;
  const Fiber* first_warp = nullptr;
  const Fiber* first_done = nullptr;
  for (const Fiber& f : fs) {
    if (f.state == State::barrier) {
      ++at_barrier;
      if (!first) first = &f;
    } else if (f.state == State::warp) {
      ++at_warp;
      if (!first_warp) first_warp = &f;
    } else if (f.state == State::done && !first_done) {
      first_done = &f;
    }
  }
  const std::string blk = "block " + fmt_idx(b.idx);
  if (at_warp > 0) {
    b.error = "deadlock in " + blk + ": " + std::to_string(at_warp) + " thread(s) (first: thread " +
              fmt_idx(first_warp->tid) + ") wait in " + first_warp->what + " at " +
              where(first_warp->file, first_warp->line) + " for lanes that never arrive" +
              (first ? " (they wait at " + std::string(first->what) + " at " + where(first->file, first->line) + ")"
                     : std::string());
    return false;
  }
  if (at_barrier < b.nthreads) {
    b.error = std::string("divergent barrier in ") + blk + ": thread " + fmt_idx(first_done->tid) +
              " returned while " + std::to_string(at_barrier) + " thread(s) wait at " + first->what + " at " +
              where(first->file, first->line) +
              "; every thread of a block must reach every __syncthreads (an early return before a barrier)";
    return false;
  }
  int count = 0;
  for (const Fiber& f : fs) {
    if (f.file != first->file || f.line != first->line || f.bar_kind != first->bar_kind) {
      b.error = std::string("divergent barrier in ") + blk + ": thread " + fmt_idx(first->tid) + " waits at " +
                first->what + " at " + where(first->file, first->line) + " but thread " + fmt_idx(f.tid) +
                " waits at " + f.what + " at " + where(f.file, f.line);
      return false;
    }
    count += f.pred != 0;
  }
  for (Fiber& f : fs) {
    switch (first->bar_kind) {
      case BarrierKind::sync: f.result = 0; break;
      case BarrierKind::count: f.result = count; break;
      case BarrierKind::all: f.result = count == b.nthreads; break;
      case BarrierKind::any: f.result = count != 0; break;
    }
    f.exited_at_sync = b.warp_exited[size_t(f.linear / 32)];
    f.state = State::runnable;
  }
  return true;
}

// After an error: resume every thread that started and has not finished, so that it unwinds (FiberAbort) and ends.
inline void abort_block(Block& b) {
  b.aborting = true;
  for (Fiber& f : *b.fibers)
    if (f.started && f.state != State::done) {
      f.state = State::runnable;
      resume(b, f);
    }
  b.aborting = false;
}

// ---- mbarrier (shared-memory arrive/wait barriers, csrc/common/mbarrier.cuh) ------------------------------------
// The 8 bytes of an mbarrier hold the emulator's own encoding (the hardware's is opaque): a marker that says
// mbarrier.init ran (shared memory starts as 0xff bytes, so a barrier used before its init is caught), the phase
// parity (bit 63), the arrivals still expected in the current phase (bits 22-41) and the count per phase (bits 0-21).
constexpr uint64_t kMbarMagic = uint64_t(0x1B3F) << 44, kMbarMagicMask = uint64_t(0xFFFF) << 44;
inline bool mbar_valid(uint64_t w) { return (w & kMbarMagicMask) == kMbarMagic; }
inline uint32_t mbar_count(uint64_t w) { return uint32_t(w & 0x3FFFFF); }
inline uint32_t mbar_pending(uint64_t w) { return uint32_t((w >> 22) & 0xFFFFF); }
inline int mbar_phase(uint64_t w) { return int(w >> 63); }
inline uint64_t mbar_word(uint32_t count, uint32_t pending, int phase) {
  return kMbarMagic | (uint64_t(phase & 1) << 63) | (uint64_t(pending) << 22) | count;
}
// Whether the phase of parity `parity` has completed (mbarrier.try_wait.parity): the current phase has the other
// parity. (A waiter that falls a whole phase behind would be wrong on a GPU too: it cannot tell the phases apart.)
inline bool mbar_done(uint64_t w, int parity) { return mbar_phase(w) != (parity & 1); }

// The transaction bytes `bar` still waits for in its current phase (an entry is made on first use).
inline int64_t& mbar_tx(Block& b, const uint64_t* bar) {
  for (auto& e : b.mbar_tx)
    if (e.first == bar) return e.second;
  b.mbar_tx.emplace_back(bar, 0);
  return b.mbar_tx.back().second;
}

// Completes the current phase once no arrival and no transaction byte is left (parity flips, the count re-arms).
inline void mbar_try_complete(Block& b, uint64_t* bar) {
  const uint64_t w = *bar;
  if (mbar_pending(w) == 0 && mbar_tx(b, bar) == 0) *bar = mbar_word(mbar_count(w), mbar_count(w), mbar_phase(w) ^ 1);
}

// One arrival; the last one of a phase completes it, unless transaction bytes are still on their way (then the
// landing of the last of them does). Returns "" or the error.
inline std::string mbar_arrive_on(Block& b, uint64_t* bar) {
  IgnoreScope ig;  // the barrier word is the emulator's bookkeeping (its happens-before edges are explicit)
  const uint64_t w = *bar;
  if (!mbar_valid(w)) return "arrive on an mbarrier that mbarrier.init has not initialised";
  const uint32_t pending = mbar_pending(w);
  if (pending == 0) return "arrive on an mbarrier whose phase has no arrival left (more arrivals than its count)";
  *bar = mbar_word(mbar_count(w), pending - 1, mbar_phase(w));
  mbar_try_complete(b, bar);
  return "";
}

inline bool wake_mbar_waiters(Block& b) {
  bool woke = false;
  IgnoreScope ig;
  for (Fiber& f : *b.fibers)
    if (f.state == State::mbar && mbar_done(*f.mbar, f.mbar_parity)) {
      f.state = State::runnable;
      woke = true;
    }
  return woke;
}

// Lands every tracked cp.async (in issue order) and performs the arrivals they trigger. A copy into shared memory
// that an issued, not yet waited-for wgmma reads is an error: that wgmma was issued before the mbarrier said its
// operands were in (on a GPU it may read the old or the new data).
inline bool land_async_arrivals(Block& b) {
  std::vector<Block::AsyncArrive> arrivals;
  arrivals.swap(b.async_arrivals);
  for (const Block::AsyncArrive& a : arrivals) {
    for (const Fiber::CpAsync& c : a.copies) {
      const unsigned char* d = static_cast<const unsigned char*>(c.dst);
      if (d >= b.dyn_smem && d < b.dyn_smem + b.launch->smem) {
        const uint32_t addr = kSmemWindowBase + uint32_t(d - b.dyn_smem);
        for (const Block::WgRange& r : b.wg_ranges)
          if (addr < r.hi && addr + uint32_t(c.bytes) > r.lo) {
            b.failed = true;
            b.error = "a cp.async tracked by the mbarrier arrive at " + where(a.file, a.line) +
                      " lands in shared memory (window bytes " + std::to_string(r.lo) + ".." + std::to_string(r.hi) +
                      ") that a wgmma issued at " + where(r.file, r.line) + " still reads in block " + fmt_idx(b.idx) +
                      ": wait on the mbarrier before issuing the wgmma";
            return false;
          }
      }
      if (c.src_bytes > 0) std::memcpy(c.dst, c.src, size_t(c.src_bytes));
      if (c.src_bytes < c.bytes) std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0, size_t(c.bytes - c.src_bytes));
    }
    tsan_release(a.bar);  // the landed data happen before whatever the waiter on this barrier does next
    const std::string err = mbar_arrive_on(b, a.bar);
    if (!err.empty()) {
      b.failed = true;
      b.error = "cp.async.mbarrier.arrive at " + where(a.file, a.line) + " in block " + fmt_idx(b.idx) + ": " + err;
      return false;
    }
  }
  return true;
}

// Performs one TMA load (csrc/common/tma.cuh describes the semantics): rows of 128 bytes into ld.dst, each row's
// 16-byte chunk c at chunk position c ^ (window address bits [7, 10)) — the 128-byte swizzle, by address as on the
// GPU — elements outside the tensor as zeros.
inline void tma_perform(Block& b, const Block::TmaLoad& ld) {
  const TmaEmuMap& m = ld.map;
  const uint32_t dst_addr = kSmemWindowBase + uint32_t(ld.dst - b.dyn_smem);
  const unsigned char* base = static_cast<const unsigned char*>(m.base);
  unsigned char row[128];
  auto put_row = [&](uint32_t r) {
    const uint32_t a = dst_addr + r * 128u, sw = (a >> 7) & 7u;
    for (uint32_t c = 0; c < 8; ++c) std::memcpy(ld.dst + r * 128u + ((c ^ sw) << 4), row + (c << 4), 16);
  };
  if (m.im2col) {
    const int64_t lo_w = m.lower[0] + ld.offs[0], hi_w = int64_t(m.dims[1]) + m.upper[0] + ld.offs[0];
    const int64_t lo_h = m.lower[1] + ld.offs[1], hi_h = int64_t(m.dims[2]) + m.upper[1] + ld.offs[1];
    int64_t w = int64_t(ld.coords[1]) + ld.offs[0], h = int64_t(ld.coords[2]) + ld.offs[1], n = ld.coords[3];
    for (uint32_t p = 0; p < m.box[1]; ++p) {
      const bool in = w >= 0 && w < m.dims[1] && h >= 0 && h < m.dims[2] && n >= 0 && n < m.dims[3];
      for (int e = 0; e < 64; ++e) {
        const int64_t c = int64_t(ld.coords[0]) + e;
        if (in && c >= 0 && c < m.dims[0])
          std::memcpy(row + 2 * e, base + c * 2 + w * int64_t(m.strides[1]) + h * int64_t(m.strides[2]) +
                                       n * int64_t(m.strides[3]), 2);
        else
          std::memset(row + 2 * e, 0, 2);
      }
      put_row(p);
      // the walk: along W by its traversal stride inside the bounding box, then the next row of H, then the next image
      w += m.estride[0];
      if (w >= hi_w) {
        w = lo_w;
        h += m.estride[1];
        if (h >= hi_h) h = lo_h, ++n;
      }
    }
  } else {
    uint32_t r = 0;
    for (uint32_t i2 = 0; i2 < m.box[2]; ++i2)
      for (uint32_t i1 = 0; i1 < m.box[1]; ++i1, ++r) {
        const int64_t c1 = int64_t(ld.coords[1]) + i1, c2 = int64_t(ld.coords[2]) + i2;
        const bool in = c1 >= 0 && c1 < m.dims[1] && c2 >= 0 && c2 < m.dims[2];
        for (int e = 0; e < 64; ++e) {
          const int64_t c0 = int64_t(ld.coords[0]) + e;
          if (in && c0 >= 0 && c0 < m.dims[0])
            std::memcpy(row + 2 * e, base + c0 * 2 + c1 * int64_t(m.strides[1]) + c2 * int64_t(m.strides[2]), 2);
          else
            std::memset(row + 2 * e, 0, 2);
        }
        put_row(r);
      }
  }
}

// Lands every issued TMA load (in issue order) and counts its bytes down on its mbarrier. A load into shared memory
// that an issued, not yet waited-for wgmma reads is an error (the stage was refilled before its readers released it).
inline bool land_tma_loads(Block& b) {
  std::vector<Block::TmaLoad> loads;
  loads.swap(b.tma_loads);
  for (const Block::TmaLoad& ld : loads) {
    const uint32_t addr = kSmemWindowBase + uint32_t(ld.dst - b.dyn_smem);
    for (const Block::WgRange& r : b.wg_ranges)
      if (addr < r.hi && addr + ld.bytes > r.lo) {
        b.error = "a TMA load issued at " + where(ld.file, ld.line) + " lands in shared memory (window bytes " +
                  std::to_string(r.lo) + ".." + std::to_string(r.hi) + ") that a wgmma issued at " +
                  where(r.file, r.line) + " still reads in block " + fmt_idx(b.idx);
        return false;
      }
    tma_perform(b, ld);
    IgnoreScope ig;
    tsan_release(ld.bar);  // the landed data happen before whatever the waiter on this barrier does next
    mbar_tx(b, ld.bar) -= int64_t(ld.bytes);
    if (mbar_tx(b, ld.bar) < 0) {
      b.error = "a TMA load issued at " + where(ld.file, ld.line) + " in block " + fmt_idx(b.idx) +
                " completes more bytes than its mbarrier's phase expects (mbarrier.arrive.expect_tx)";
      return false;
    }
    mbar_try_complete(b, ld.bar);
  }
  return true;
}

// Threads wait on mbarriers that nothing left in the block can complete, or at a named barrier that too few
// threads will reach: a hang on a GPU.
inline bool mbar_deadlock_check(Block& b) {
  int n = 0, named = 0;
  const Fiber* first = nullptr;
  const Fiber* first_named = nullptr;
  for (const Fiber& f : *b.fibers)
    if (f.state == State::mbar) {
      ++n;
      if (!first) first = &f;
    } else if (f.state == State::named) {
      ++named;
      if (!first_named) first_named = &f;
    }
  if (named > 0) {
    b.error = "deadlock in block " + fmt_idx(b.idx) + ": " + std::to_string(named) + " thread(s) (first: thread " +
              fmt_idx(first_named->tid) + ") wait at bar.sync " + std::to_string(first_named->bar_id) + ", " +
              std::to_string(first_named->bar_count) + " at " + where(first_named->file, first_named->line) +
              ", which no other thread will reach";
    return false;
  }
  if (n == 0) return true;
  b.error = "deadlock in block " + fmt_idx(b.idx) + ": " + std::to_string(n) + " thread(s) (first: thread " +
            fmt_idx(first->tid) + ") wait on an mbarrier at " + where(first->file, first->line) +
            " (phase parity " + std::to_string(first->mbar_parity) + ") whose phase no remaining arrival completes";
  return false;
}

// Runs one block to completion (or to its first error). `order` permutes the resume order of fibers each sweep.
inline void run_block(Block& b) {
  std::vector<Fiber>& fs = *b.fibers;
  for (int i = 0; i < b.nthreads; ++i) {
    Fiber& f = fs[i];
    f.linear = i;
    f.tid = uint3{unsigned(i % b.dim.x), unsigned((i / b.dim.x) % b.dim.y), unsigned(i / (b.dim.x * b.dim.y))};
    f.state = State::runnable;
    f.started = false;
    f.file = nullptr;
    f.exited_at_sync = 0;
    f.cp_pending.clear();
    f.cp_committed = 0;
    f.wg_pending.clear();
    f.wg_committed = 0;
    f.bulk_pending.clear();
    f.bulk_committed = 0;
    f.mbar = nullptr;
#ifdef PYCONV_EMU_ASAN
    __asan_unpoison_memory_region(f.stack, f.stack_size);  // an abandoned fiber may have left poisoned frames
#endif
    init_fiber_context(f, b.sched);
  }
  b.alive = b.nthreads;
  b.wg_ranges.clear();
  b.async_arrivals.clear();
  b.tma_loads.clear();
  b.mbar_tx.clear();
  b.failed = false;
  b.error.clear();
  for (auto& w : b.warps) w.clear();
  std::fill(b.warp_exited.begin(), b.warp_exited.end(), 0u);
  if (b.launch->smem) std::memset(b.dyn_smem, 0xff, b.launch->smem);  // uninitialised shared memory reads as NaN
  std::vector<int> perm(b.nthreads);
  for (int i = 0; i < b.nthreads; ++i) perm[i] = b.launch->cfg.order == Order::reverse ? b.nthreads - 1 - i : i;
  while (true) {
    bool ran = false;
    if (b.launch->cfg.order == Order::random) std::shuffle(perm.begin(), perm.end(), b.rng);
    for (int i : perm) {
      Fiber& f = fs[i];
      if (f.state != State::runnable) continue;
      f.started = true;
      resume(b, f);
      ran = true;
      if (b.failed) return abort_block(b);
    }
    if (b.alive == 0) {
      if (!b.tma_loads.empty()) {  // the block's shared memory is gone while the copy engine still writes into it
        b.failed = true;
        b.error = "block " + fmt_idx(b.idx) + " exited with a TMA load (issued at " +
                  where(b.tma_loads.front().file, b.tma_loads.front().line) + ") still in flight";
      }
      return;
    }
    if (ran) {
      bool any_runnable = false;
      for (const Fiber& f : fs) any_runnable |= f.state == State::runnable;
      if (any_runnable) continue;  // released by a warp collective during this sweep
    }
    // Nothing can run: threads whose mbarrier phase has completed go on; else the copies tracked by
    // cp.async.mbarrier.arrive land now (as late as possible) and their arrivals count; else it is a barrier.
    if (wake_mbar_waiters(b)) continue;
    if (!b.async_arrivals.empty()) {
      if (!land_async_arrivals(b)) return abort_block(b);
      if (wake_mbar_waiters(b)) continue;
    }
    if (!b.tma_loads.empty()) {
      if (!land_tma_loads(b)) {
        b.failed = true;
        return abort_block(b);
      }
      if (wake_mbar_waiters(b)) continue;
    }
    if (!mbar_deadlock_check(b)) {
      b.failed = true;
      return abort_block(b);
    }
    if (!resolve_barrier(b)) {
      b.failed = true;
      return abort_block(b);
    }
  }
}

// One OS thread's share of a launch: take block indices from a shared counter until none are left.
inline void worker(Launch& L, const std::vector<uint64_t>* order, std::atomic<uint64_t>* next, uint64_t nblocks,
                   int worker_id) {
  const int nthreads = int(L.block.x * L.block.y * L.block.z);
  std::unique_ptr<StackPool> pool = acquire_pool(size_t(nthreads), L.cfg.stack_bytes);
  if (!pool->base) {
    L.fail(cudaErrorMemoryAllocation, "pyconv emulator: could not allocate fiber stacks");
    return;
  }
  std::vector<Fiber> fibers(static_cast<size_t>(nthreads));
  for (int i = 0; i < nthreads; ++i) {
    fibers[i].stack = pool->stack(size_t(i));
    fibers[i].stack_size = pool->usable;
  }
  std::vector<unsigned char> smem(L.smem + 16);
  Block b;
  b.launch = &L;
  b.dim = L.block;
  b.grid = L.grid;
  b.nthreads = nthreads;
  b.fibers = &fibers;
  b.dyn_smem = smem.data();
  b.warps.resize(size_t((nthreads + 31) / 32));
  b.warp_exited.resize(b.warps.size());
  b.rng.seed(L.cfg.seed * 0x9E3779B97F4A7C15ull + uint64_t(worker_id) + 1);
#ifdef PYCONV_EMU_TSAN
  b.sched_tsan_fiber = __tsan_get_current_fiber();
  for (Fiber& f : fibers) f.tsan_fiber = __tsan_create_fiber(0);
  b.warp_tokens.resize(b.warps.size());
  char block_tokens[2] = {0, 0};
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);  // the scheduler's own bookkeeping is not kernel memory
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
  Block*& cur = current_block();
  Block* saved = cur;  // a kernel launched from inside an emulated kernel is not supported, but keep the slot sane
  cur = &b;
  uint64_t parity = 0;
  while (!L.failed.load(std::memory_order_relaxed)) {
    const uint64_t i = next->fetch_add(1);
    if (i >= nblocks) break;
    const uint64_t lin = order ? (*order)[i] : i;
    b.idx = uint3{unsigned(lin % L.grid.x), unsigned((lin / L.grid.x) % L.grid.y),
                  unsigned(lin / (uint64_t(L.grid.x) * L.grid.y))};
#ifdef PYCONV_EMU_TSAN
    b.prev_blocks_token = &block_tokens[(parity + 1) & 1];
    b.this_block_token = &block_tokens[parity & 1];
#endif
    ++parity;
    run_block(b);
    if (b.failed) L.fail(cudaErrorLaunchFailure, "pyconv emulator: " + b.error);
  }
  cur = saved;
#ifdef PYCONV_EMU_TSAN
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  for (Fiber& f : fibers) __tsan_destroy_fiber(f.tsan_fiber);
#endif
  release_pool(std::move(pool));
}

// Per-kernel dynamic shared memory limits raised by func_set_max_dynamic_smem (cudaFuncSetAttribute's opt-in).
struct SmemOptIn {
  std::mutex mu;
  std::vector<std::pair<const void*, size_t>> limits;
};
inline SmemOptIn& smem_opt_in() {
  static SmemOptIn s;
  return s;
}
inline size_t opted_in_smem(const void* kernel) {
  SmemOptIn& s = smem_opt_in();
  std::lock_guard<std::mutex> lock(s.mu);
  for (const auto& kv : s.limits)
    if (kv.first == kernel) return kv.second;
  return 0;
}

inline cudaError_t run_launch(dim3 grid, dim3 blockd, size_t smem, void (*run)(const void*), const void* thunk,
                              const void* kernel = nullptr) {
  Launch L;
  L.cfg = get_config();
  L.grid = grid;
  L.block = blockd;
  L.smem = smem;
  L.run = run;
  L.thunk = thunk;
  // The CUDA runtime's launch checks, with its error codes.
  const uint64_t nthreads = uint64_t(blockd.x) * blockd.y * blockd.z;
  if (blockd.x == 0 || blockd.y == 0 || blockd.z == 0 || blockd.x > 1024 || blockd.y > 1024 || blockd.z > 64 ||
      nthreads > 1024)
    return set_error(cudaErrorInvalidConfiguration,
                     "pyconv emulator: invalid block dimensions (" + std::to_string(blockd.x) + ", " +
                         std::to_string(blockd.y) + ", " + std::to_string(blockd.z) +
                         "): each must be ≥ 1, x,y ≤ 1024, z ≤ 64, and x·y·z ≤ 1024");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    return set_error(cudaErrorInvalidConfiguration,
                     "pyconv emulator: invalid grid dimensions (" + std::to_string(grid.x) + ", " +
                         std::to_string(grid.y) + ", " + std::to_string(grid.z) +
                         "): each must be ≥ 1, x ≤ 2^31−1, y,z ≤ 65535");
  const size_t smem_limit = std::max(L.cfg.max_dynamic_smem, opted_in_smem(kernel));
  if (smem > smem_limit)
    return set_error(cudaErrorInvalidValue, "pyconv emulator: " + std::to_string(smem) +
                                                " bytes of dynamic shared memory requested; the limit is " +
                                                std::to_string(smem_limit) +
                                                " (raise it per kernel with cudaFuncSetAttribute)");
  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  std::vector<uint64_t> order;
  if (L.cfg.order != Order::forward) {
    if (nblocks > (uint64_t(1) << 24))
      return set_error(cudaErrorInvalidConfiguration,
                       "pyconv emulator: reverse/random block order supports grids of up to 2^24 blocks");
    order.resize(nblocks);
    for (uint64_t i = 0; i < nblocks; ++i) order[i] = L.cfg.order == Order::reverse ? nblocks - 1 - i : i;
    if (L.cfg.order == Order::random) {
      std::mt19937_64 rng(L.cfg.seed);
      std::shuffle(order.begin(), order.end(), rng);
    }
  }
  std::atomic<uint64_t> next{0};
  const int nworkers = int(std::min<uint64_t>(uint64_t(std::max(1, L.cfg.workers)), nblocks));
#ifdef PYCONV_EMU_TSAN
  tsan_release(&L.start_token);
#endif
  const std::vector<uint64_t>* ord = order.empty() ? nullptr : &order;
  std::vector<std::thread> threads;
  for (int w = 1; w < nworkers; ++w) threads.emplace_back(worker, std::ref(L), ord, &next, nblocks, w);
  worker(L, ord, &next, nblocks, 0);  // the launching thread is worker 0 (no extra thread with workers = 1)
  for (std::thread& t : threads) t.join();
#ifdef PYCONV_EMU_TSAN
  tsan_acquire(&L.done_token);
#endif
  if (L.failed) return set_error(L.error_code, L.error);
  return set_error(cudaSuccess, std::string());
}

}  // namespace detail

// The emulated `kernel<<<grid, block, smem, stream>>>(args...)`. Each CUDA thread gets its own copy of the
// arguments, as kernel parameters are per thread on a GPU. Runs synchronously: emulated streams are in order anyway.
template <typename... KArgs, typename... Args>
cudaError_t launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t /*stream*/,
                   Args&&... args) {
  using Tuple = std::tuple<std::decay_t<KArgs>...>;
  struct Thunk {
    void (*kernel)(KArgs...);
    Tuple args;
    static void run(const void* self) {
      const Thunk* t = static_cast<const Thunk*>(self);
      Tuple mine = t->args;
      std::apply(t->kernel, mine);
    }
  };
  const Thunk thunk{kernel, Tuple(static_cast<KArgs>(std::forward<Args>(args))...)};
  return detail::run_launch(grid, block, smem, &Thunk::run, &thunk, reinterpret_cast<const void*>(kernel));
}

// cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes): raises that kernel's limit, up
// to Hopper's 227 KiB.
template <typename... KArgs>
cudaError_t func_set_max_dynamic_smem(void (*kernel)(KArgs...), size_t bytes) {
  if (bytes > kMaxOptInSmem)
    return detail::set_error(cudaErrorInvalidValue, "pyconv emulator: " + std::to_string(bytes) +
                                                        " bytes of dynamic shared memory exceed the device's " +
                                                        std::to_string(kMaxOptInSmem));
  detail::SmemOptIn& s = detail::smem_opt_in();
  std::lock_guard<std::mutex> lock(s.mu);
  for (auto& kv : s.limits)
    if (kv.first == reinterpret_cast<const void*>(kernel)) {
      kv.second = bytes;
      return cudaSuccess;
    }
  s.limits.emplace_back(reinterpret_cast<const void*>(kernel), bytes);
  return cudaSuccess;
}

// ---- what kernels call --------------------------------------------------------------------------------------------

namespace detail {

inline const uint3& thread_idx() { return fiber().tid; }
inline const uint3& block_idx() { return block().idx; }
inline const dim3& block_dim() { return block().dim; }
inline const dim3& grid_dim() { return block().grid; }

inline int block_barrier(BarrierKind kind, int pred, const char* what, const char* file, int line) {
  Block& b = block();
  Fiber& f = *b.cur;
  {
    IgnoreScope ig;
    f.state = State::barrier;
    f.bar_kind = kind;
    f.pred = pred;
    f.what = what;
    f.file = file;
    f.line = line;
  }
  tsan_release(&b);  // everything this thread wrote before the barrier …
  yield_to_scheduler();
  tsan_acquire(&b);  // … is visible to every thread after it
  return f.result;
}

inline void* dynamic_smem() { return block().dyn_smem; }


// Rendezvous of the lanes named in `mask`. Every lane passes pointers to its operand and result; the last lane to
// arrive calls combine(lanes) with the Fiber* of each participating lane (nullptr elsewhere), which reads each lane's
// `in` and writes each lane's `out`. Checks CUDA's rules: the caller is in its mask, the mask names only lanes that
// exist and have not exited, and all lanes of one mask execute the same collective.
template <typename Combine>
void warp_collective(int kind, const char* what, unsigned mask, int width, size_t tsize, const void* in, void* out,
                     const char* file, int line, bool sync_memory, Combine&& combine) {
  Block& b = block();
  Fiber& f = *b.cur;
  const int w = f.linear / 32, lane = f.linear % 32;
  const int lanes_in_warp = std::min(32, b.nthreads - w * 32);
  const unsigned existing = lanes_in_warp == 32 ? 0xffffffffu : ((1u << lanes_in_warp) - 1);
  bool last = false;
  void* token = nullptr;  // TSan sync object of this warp, for __syncwarp
  {
    IgnoreScope ig;
#ifdef PYCONV_EMU_TSAN
    token = &b.warp_tokens[size_t(w)];
#endif
    const std::string at = std::string(what) + " at " + where(file, line) + " (" + thread_desc(f) + ")";
    if (width < 1 || width > 32 || (width & (width - 1)))
      fail(at + ": width " + std::to_string(width) + " is not a power of two in [1, 32]");
    if (!(mask & (1u << lane))) fail(at + ": the calling lane " + std::to_string(lane) + " is not in mask " + hex(mask));
    if (mask & ~existing)
      fail(at + ": mask " + hex(mask) + " names lanes that do not exist; this warp has only " +
           std::to_string(lanes_in_warp) + " thread(s) (blockDim " + fmt_idx(uint3{b.dim.x, b.dim.y, b.dim.z}) +
           "), so use mask " + hex(existing) + " or __activemask()");
    for (int l = 0; l < lanes_in_warp; ++l) {
      const Fiber& o = (*b.fibers)[size_t(w * 32 + l)];
      if ((mask & (1u << l)) && o.state == State::done)
        fail(at + ": lane " + std::to_string(l) + " named in mask " + hex(mask) + " has already exited");
    }
    std::vector<WarpGroup>& groups = b.warps[size_t(w)];
    WarpGroup* g = nullptr;
    for (WarpGroup& x : groups) {
      if (x.mask == mask) {
        g = &x;
      } else if (x.mask & mask) {
        fail(at + ": mask " + hex(mask) + " overlaps mask " + hex(x.mask) + " of " + x.what + " at " +
             where(x.file, x.line) + " that other lanes of this warp wait in");
      }
    }
    if (!g) {
      groups.push_back(WarpGroup{mask, 0u, kind, width, tsize, file, line, what});
      g = &groups.back();
    } else if (g->kind != kind || g->width != width || g->tsize != tsize) {
      fail(at + ": divergent warp collective: other lanes of mask " + hex(mask) + " wait in " + g->what + " at " +
           where(g->file, g->line));
    }
    f.in = in;
    f.out = out;
    g->arrived |= 1u << lane;
    if (g->arrived == mask) {
      Fiber* lanes[32] = {};
      for (int l = 0; l < 32; ++l)
        if (mask & (1u << l)) lanes[l] = &(*b.fibers)[size_t(w * 32 + l)];
      combine(lanes);
      for (int l = 0; l < 32; ++l)
        if (lanes[l]) {
          lanes[l]->exited_at_sync = b.warp_exited[size_t(w)];
          if (l != lane) lanes[l]->state = State::runnable;
        }
      groups.erase(groups.begin() + (g - groups.data()));
      last = true;
    } else {
      f.state = State::warp;
      f.what = what;
      f.file = file;
      f.line = line;
    }
  }
  // __syncwarp orders memory among its lanes: each releases before it waits, and acquires once all have arrived.
  if (sync_memory) tsan_release(token);
  if (!last) yield_to_scheduler();
  if (sync_memory) tsan_acquire(token);
}

enum WarpKind { kSyncwarp = 1, kShfl, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kMma, kMmaBf16, kLdmatrix,
                kLdmatrixTrans, kMmaTf32 };

inline int lane_id() { return fiber().linear % 32; }

template <typename T>
T shfl(int kind, const char* what, unsigned mask, T var, int arg, int width, const char* file, int line) {
  static_assert(std::is_trivially_copyable<T>::value, "__shfl*_sync needs a trivially copyable type");
  struct In {
    T var;
    int arg;  // srcLane / delta / laneMask: per lane, as in PTX
  } in{var, arg};
  T result = var;
  warp_collective(kind, what, mask, width, sizeof(T), &in, &result, file, line, false, [&](Fiber** lanes) {
    for (int l = 0; l < 32; ++l) {
      if (!lanes[l]) continue;
      const int a = static_cast<const In*>(lanes[l]->in)->arg;
      // PTX shfl.sync: lanes form segments of `width`; a source outside the segment → the lane's own value.
      const int seg_lo = l & ~(width - 1), seg_hi = seg_lo + width - 1;
      int src = l;
      bool valid = true;
      switch (kind) {
        case kShfl: src = seg_lo + (a & (width - 1)); break;  // srcLane mod width, inside the segment
        case kShflUp: src = l - a; valid = src >= seg_lo; break;
        case kShflDown: src = l + a; valid = src <= seg_hi; break;
        case kShflXor: src = l ^ a; valid = src <= seg_hi && src >= 0 && src < 32; break;
      }
      if (!valid) src = l;
      if (!lanes[src])
        fail(std::string(what) + " at " + where(file, line) + ": lane " + std::to_string(l) + " reads lane " +
             std::to_string(src) + ", which is not in mask " + hex(mask) + " (its value is undefined on a GPU)");
      std::memcpy(static_cast<void*>(lanes[l]->out), &static_cast<const In*>(lanes[src]->in)->var, sizeof(T));
    }
  });
  return result;
}

inline unsigned vote(int kind, const char* what, unsigned mask, int pred, const char* file, int line) {
  unsigned result = 0;
  warp_collective(kind, what, mask, 32, sizeof(int), &pred, &result, file, line, false, [&](Fiber** lanes) {
    unsigned ballot = 0;
    for (int l = 0; l < 32; ++l)
      if (lanes[l] && *static_cast<const int*>(lanes[l]->in)) ballot |= 1u << l;
    unsigned r = ballot;
    if (kind == kAny) r = ballot != 0;
    if (kind == kAll) r = ballot == mask;
    for (int l = 0; l < 32; ++l)
      if (lanes[l]) *static_cast<unsigned*>(lanes[l]->out) = r;
  });
  return result;
}

inline void syncwarp(unsigned mask, const char* file, int line) {
  warp_collective(kSyncwarp, "__syncwarp", mask, 32, 0, nullptr, nullptr, file, line, true, [](Fiber**) {});
}

inline unsigned activemask() {
  // No lock-step here, so "converged lanes" is approximated by: the warp's lanes minus those that had exited when the
  // caller last synchronised (see Fiber::exited_at_sync).
  Block& b = block();
  const Fiber& f = *b.cur;
  const int w = f.linear / 32, n = std::min(32, b.nthreads - w * 32);
  const unsigned existing = n == 32 ? 0xffffffffu : ((1u << n) - 1);
  return existing & ~f.exited_at_sync;
}

// mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32, per the PTX ISA's fragment layouts (groupID = lane / 4,
// tig = lane % 4):  A (16×16, row-major) a[0..3] = half2 pairs at rows {g, g+8, g, g+8}, cols {2tig, 2tig, 2tig+8,
// 2tig+8} (+0/+1);  B (16×8, "col") b[0..1] = half2 pairs at rows {2tig, 2tig+8} (+0/+1), col g;  C/D (16×8 f32)
// c[0..3] at rows {g, g, g+8, g+8}, cols 2tig + {0, 1, 0, 1}. Accumulates in float in k order: tensor cores round
// differently, so compare with a tolerance.
struct MmaIn {
  uint32_t a[4], b[2];
  float c[4];
};
// bf16 = true: the .bf16 variant (same layouts, bfloat16 operands).
inline void mma_m16n8k16_f32(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], bool bf16,
                             const char* file, int line) {
  MmaIn in;
  std::memcpy(in.a, a, sizeof in.a);
  std::memcpy(in.b, b, sizeof in.b);
  std::memcpy(in.c, c, sizeof in.c);
  float out[4];
  warp_collective(bf16 ? kMmaBf16 : kMma, bf16 ? "mma.sync.m16n8k16.bf16" : "mma.sync.m16n8k16.f16", 0xffffffffu,
                  32, sizeof(MmaIn), &in, out, file, line, false, [&](Fiber** lanes) {
                    float A[16][16], B[16][8], C[16][8];
                    auto h = [bf16](uint32_t pair, int hi) {
                      const uint32_t bits = hi ? pair >> 16 : pair & 0xffff;
                      if (bf16) {  // bfloat16 is the top half of a float
                        const uint32_t f32 = bits << 16;
                        float v;
                        std::memcpy(&v, &f32, 4);
                        return v;
                      }
                      __half_raw r;
                      r.x = static_cast<unsigned short>(bits);
                      return __half2float(__half(r));
                    };
                    for (int l = 0; l < 32; ++l) {
                      const MmaIn& v = *static_cast<const MmaIn*>(lanes[l]->in);
                      const int g = l / 4, t = l % 4;
                      for (int i = 0; i < 4; ++i) {
                        const int row = g + ((i & 1) ? 8 : 0), col = 2 * t + ((i & 2) ? 8 : 0);
                        A[row][col] = h(v.a[i], 0);
                        A[row][col + 1] = h(v.a[i], 1);
                      }
                      for (int i = 0; i < 2; ++i) {
                        const int row = 2 * t + (i ? 8 : 0);
                        B[row][g] = h(v.b[i], 0);
                        B[row + 1][g] = h(v.b[i], 1);
                      }
                      for (int i = 0; i < 4; ++i) C[g + ((i & 2) ? 8 : 0)][2 * t + (i & 1)] = v.c[i];
                    }
                    for (int l = 0; l < 32; ++l) {
                      const int g = l / 4, t = l % 4;
                      float* o = static_cast<float*>(lanes[l]->out);
                      for (int i = 0; i < 4; ++i) {
                        const int row = g + ((i & 2) ? 8 : 0), col = 2 * t + (i & 1);
                        float acc = C[row][col];
                        for (int k = 0; k < 16; ++k) acc += A[row][k] * B[k][col];
                        o[i] = acc;
                      }
                    }
                  });
  std::memcpy(d, out, sizeof out);
}

inline void mma_m16n8k16_f16_f32(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4],
                                 const char* file, int line) {
  mma_m16n8k16_f32(d, a, b, c, false, file, line);
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32: A 16×8 a[0..3] at (g, t), (g+8, t), (g, t+4), (g+8, t+4);
// B 8×8 b[0..1] at (k t, n g), (k t+4, n g); C/D as for m16n8k16. Operands are float bit patterns (already rounded
// to TF32 by the kernel); products are exact in float for TF32 inputs, accumulated in k order.
inline void mma_m16n8k8_tf32(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], const char* file,
                             int line) {
  MmaIn in;
  std::memcpy(in.a, a, sizeof in.a);
  std::memcpy(in.b, b, sizeof in.b);
  std::memcpy(in.c, c, sizeof in.c);
  float out[4];
  warp_collective(kMmaTf32, "mma.sync.m16n8k8.tf32", 0xffffffffu, 32, sizeof(MmaIn), &in, out, file, line, false,
                  [&](Fiber** lanes) {
                    float A[16][8], B[8][8], C[16][8];
                    auto f = [](uint32_t bits) {
                      float v;
                      std::memcpy(&v, &bits, 4);
                      return v;
                    };
                    for (int l = 0; l < 32; ++l) {
                      const MmaIn& v = *static_cast<const MmaIn*>(lanes[l]->in);
                      const int g = l / 4, t = l % 4;
                      A[g][t] = f(v.a[0]), A[g + 8][t] = f(v.a[1]), A[g][t + 4] = f(v.a[2]), A[g + 8][t + 4] = f(v.a[3]);
                      B[t][g] = f(v.b[0]), B[t + 4][g] = f(v.b[1]);
                      for (int i = 0; i < 4; ++i) C[g + ((i & 2) ? 8 : 0)][2 * t + (i & 1)] = v.c[i];
                    }
                    for (int l = 0; l < 32; ++l) {
                      const int g = l / 4, t = l % 4;
                      float* o = static_cast<float*>(lanes[l]->out);
                      for (int i = 0; i < 4; ++i) {
                        const int row = g + ((i & 2) ? 8 : 0), col = 2 * t + (i & 1);
                        float acc = C[row][col];
                        for (int k = 0; k < 8; ++k) acc += A[row][k] * B[k][col];
                        o[i] = acc;
                      }
                    }
                  });
  std::memcpy(d, out, sizeof out);
}

// ldmatrix.sync.aligned.m8n8.x4[.trans].shared.b16: four 8×8 matrices of 16-bit elements, each row 16 contiguous
// bytes in shared memory. Lanes 8i..8i+7 give the row addresses of matrix i; every lane receives one 32-bit register
// per matrix: without .trans the pair (row lane/4, cols 2·(lane%4) + {0, 1}), with .trans the pair (rows
// 2·(lane%4) + {0, 1}, col lane/4), i.e. the fragment of the transposed matrix. Rows must be 16-byte aligned.
inline void ldmatrix_x4(uint32_t r[4], const void* row_addr, bool trans, const char* file, int line) {
  uint32_t out[4];
  warp_collective(trans ? kLdmatrixTrans : kLdmatrix, trans ? "ldmatrix.x4.trans" : "ldmatrix.x4", 0xffffffffu, 32,
                  sizeof(const void*), &row_addr, out, file, line, false, [&](Fiber** lanes) {
                    const uint16_t* rows[32];
                    for (int l = 0; l < 32; ++l) {
                      const void* a = *static_cast<const void* const*>(lanes[l]->in);
                      if (reinterpret_cast<uintptr_t>(a) % 16 != 0)
                        fail(std::string("ldmatrix at ") + where(file, line) + ": lane " + std::to_string(l) +
                             " gives a row address that is not 16-byte aligned");
                      rows[l] = static_cast<const uint16_t*>(a);
                    }
                    for (int l = 0; l < 32; ++l) {
                      uint32_t* o = static_cast<uint32_t*>(lanes[l]->out);
                      for (int i = 0; i < 4; ++i) {
                        const uint16_t* const* m = rows + 8 * i;  // matrix i's eight rows
                        uint32_t lo, hi;
                        if (!trans) {
                          lo = m[l / 4][2 * (l % 4)], hi = m[l / 4][2 * (l % 4) + 1];
                        } else {
                          lo = m[2 * (l % 4)][l / 4], hi = m[2 * (l % 4) + 1][l / 4];
                        }
                        o[i] = lo | (hi << 16);
                      }
                    }
                  });
  std::memcpy(r, out, sizeof out);
}

// The shared-memory bytes a wgmma operand of `rows` rows (M or N) and 16 reduction elements reads through `desc`:
// whole 1024-byte swizzle atoms, from the one holding its start address. K-major: rows/8 atoms SBO apart. MN-major:
// rows/64 blocks LBO apart, each two atoms (16 reduction rows) SBO apart.
inline void wgmma_operand_range(uint64_t desc, bool mn, int rows, uint32_t* lo, uint32_t* hi) {
  const uint32_t start = uint32_t(desc & 0x3FFF) << 4, lbo = uint32_t((desc >> 16) & 0x3FFF) << 4,
                 sbo = uint32_t((desc >> 32) & 0x3FFF) << 4;
  *lo = start & ~1023u;
  *hi = mn ? *lo + uint32_t(rows / 64 - 1) * lbo + 2 * sbo : *lo + uint32_t(rows / 8) * sbo;
}

inline void wgmma_ranges_update(Block& b, uint64_t desc, bool mn, int rows, int delta, const char* file, int line) {
  IgnoreScope ig;  // the emulator's bookkeeping, shared by the block's fibers: not kernel memory
  uint32_t lo, hi;
  wgmma_operand_range(desc, mn, rows, &lo, &hi);
  for (size_t i = 0; i < b.wg_ranges.size(); ++i) {
    Block::WgRange& r = b.wg_ranges[i];
    if (r.lo == lo && r.hi == hi) {
      r.count += delta;
      if (r.count == 0) b.wg_ranges.erase(b.wg_ranges.begin() + std::ptrdiff_t(i));
      return;
    }
  }
  if (delta > 0) b.wg_ranges.push_back(Block::WgRange{lo, hi, delta, file, line});
}

// A cp.async into shared memory that a pending wgmma still reads (a write-after-read hazard the deferred copies would
// otherwise hide: the copy lands only at its own wait, which may come after the wgmma's): on a GPU the tensor cores may
// read the new data. The fix is a wgmma.wait_group covering that group and a barrier before the stage is reused.
inline void wgmma_hazard_check(Block& b, const void* dst, int bytes, const char* file, int line,
                               const char* what = "cp.async") {
  const unsigned char* c = static_cast<const unsigned char*>(dst);
  if (c < b.dyn_smem || c >= b.dyn_smem + b.launch->smem) return;
  const uint32_t a = kSmemWindowBase + uint32_t(c - b.dyn_smem);
  IgnoreScope ig;  // bookkeeping, not kernel memory
  for (const Block::WgRange& r : b.wg_ranges)
    if (a < r.hi && a + uint32_t(bytes) > r.lo)
      fail(std::string(what) + " at " + where(file, line) + " (" + thread_desc(fiber()) +
           ") writes shared memory (window bytes " + std::to_string(r.lo) + ".." + std::to_string(r.hi) +
           ") that a wgmma issued at " + where(r.file, r.line) + " still reads: wait for its group " +
           "(wgmma.wait_group) and synchronise before reusing the stage");
}

// cp.async.cg.shared.global [dst], [src], 16, src_bytes: recorded, and performed at the wait that covers it.
inline void cp_async(void* dst, const void* src, int bytes, int src_bytes, const char* file, int line) {
  Fiber& f = fiber();
  if (reinterpret_cast<uintptr_t>(dst) % bytes != 0 || (src_bytes > 0 && reinterpret_cast<uintptr_t>(src) % bytes))
    fail(std::string("cp.async at ") + where(file, line) + " (" + thread_desc(f) + "): a " + std::to_string(bytes) +
         "-byte copy needs " + std::to_string(bytes) + "-byte aligned addresses");
  wgmma_hazard_check(block(), dst, bytes, file, line);
  f.cp_pending.push_back(Fiber::CpAsync{dst, src, bytes, src_bytes, f.cp_committed});
}
inline void cp_async_commit() { ++fiber().cp_committed; }
// cp.async.wait_group n: every copy of all but the n most recently committed groups has landed.
inline void cp_async_wait(int n) {
  Fiber& f = fiber();
  const int limit = f.cp_committed - n;  // groups < limit must be complete
  size_t keep = 0;
  for (size_t i = 0; i < f.cp_pending.size(); ++i) {
    const Fiber::CpAsync& c = f.cp_pending[i];
    if (c.group < limit) {
      if (c.src_bytes > 0) std::memcpy(c.dst, c.src, size_t(c.src_bytes));
      if (c.src_bytes < c.bytes) std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0, size_t(c.bytes - c.src_bytes));
    } else {
      f.cp_pending[keep++] = c;
    }
  }
  f.cp_pending.resize(keep);
}

// ---- Hopper warpgroup MMA (csrc/common/warpgroup_mma.cuh) --------------------------------------------------------

// The shared-window address of p, which must point into this block's dynamic shared memory.
inline uint32_t smem_window(const void* p) {
  Block& b = block();
  const unsigned char* c = static_cast<const unsigned char*>(p);
  if (c < b.dyn_smem || c > b.dyn_smem + b.launch->smem)
    fail("shared-window address of a pointer outside the block's dynamic shared memory (" + thread_desc(fiber()) + ")");
  return kSmemWindowBase + uint32_t(c - b.dyn_smem);
}

// The pointer behind window address `addr` of this block's dynamic shared memory (the inverse of smem_window).
inline void* smem_window_ptr(uint32_t addr) {
  Block& b = block();
  if (addr < kSmemWindowBase || addr > kSmemWindowBase + b.launch->smem)
    fail("shared-window address " + std::to_string(addr) + " outside the block's " +
         std::to_string(b.launch->smem) + " bytes of dynamic shared memory (" + thread_desc(fiber()) + ")");
  return b.dyn_smem + (addr - kSmemWindowBase);
}

// The 16-bit element at window address `addr`, bounds-checked.
inline uint16_t smem_u16(uint32_t addr, const char* file, int line) {
  Block& b = block();
  if (addr < kSmemWindowBase || addr + 2 > kSmemWindowBase + b.launch->smem || addr % 2)
    fail(std::string("wgmma at ") + where(file, line) + " (" + thread_desc(fiber()) + "): operand address " +
         std::to_string(addr) + " is outside the block's " + std::to_string(b.launch->smem) +
         " bytes of dynamic shared memory (window base " + std::to_string(kSmemWindowBase) + ")");
  uint16_t v;
  std::memcpy(&v, b.dyn_smem + (addr - kSmemWindowBase), 2);
  return v;
}

inline float bits16_to_float(uint16_t v, bool bf16) {
  if (bf16) {
    const uint32_t u = uint32_t(v) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  __half h;
  std::memcpy(static_cast<void*>(&h), &v, 2);
  return __half2float(h);
}

// Element (row, k) of a 128-byte-swizzled operand tile described by `desc` (row: the M or N index), as the hardware
// addresses it (PTX ISA canonical layouts, see warpgroup_mma.cuh), then address bits [4, 7) XOR-ed with bits [7, 10):
//   K-major   start + (row / 8)·SBO + (row mod 8)·128 + 2k
//   MN-major  start + (row / 64)·LBO + 2·(row mod 64) + (k / 8)·SBO + (k mod 8)·128
inline float wgmma_operand(uint64_t desc, bool mn, int row, int k, bool bf16, const char* file, int line) {
  const uint32_t start = uint32_t(desc & 0x3FFF) << 4, lbo = uint32_t((desc >> 16) & 0x3FFF) << 4,
                 sbo = uint32_t((desc >> 32) & 0x3FFF) << 4;
  uint32_t a = mn ? start + uint32_t(row / 64) * lbo + uint32_t(row % 64) * 2 + uint32_t(k / 8) * sbo +
                        uint32_t(k % 8) * 128
                  : start + uint32_t(row / 8) * sbo + uint32_t(row % 8) * 128 + uint32_t(k) * 2;
  a ^= ((a >> 7) & 7) << 4;
  return bits16_to_float(smem_u16(a, file, line), bf16);
}

inline void wgmma_check_desc(uint64_t desc, const char* file, int line) {
  if ((desc >> 62) != 1 || ((desc >> 49) & 7) != 0)
    fail(std::string("wgmma at ") + where(file, line) + ": the emulator models 128-byte-swizzled operands " +
         "with base offset 0 only (descriptor swizzle mode " + std::to_string(desc >> 62) + ")");
}

// wgmma.mma_async.sync.aligned.m64nNk16.f32.{f16,bf16}: recorded; performed at the wait that covers its group.
inline void wgmma_m64k16(float* d, int n, uint64_t desc_a, uint64_t desc_b, bool bf16, bool mn_a, bool mn_b,
                         const char* file, int line) {
  Block& b = block();
  Fiber& f = fiber();
  if (b.nthreads % 128 != 0)
    fail(std::string("wgmma at ") + where(file, line) + ": needs whole warpgroups (a multiple of 128 threads per " +
         "block), the block has " + std::to_string(b.nthreads));
  wgmma_check_desc(desc_a, file, line);
  wgmma_check_desc(desc_b, file, line);
  f.wg_pending.push_back(Fiber::Wgmma{d, n, desc_a, desc_b, bf16, mn_a, mn_b, f.wg_committed, file, line});
  wgmma_ranges_update(b, desc_a, mn_a, 64, 1, file, line);
  wgmma_ranges_update(b, desc_b, mn_b, n, 1, file, line);
}
inline void wgmma_commit() { ++fiber().wg_committed; }

// This thread's share of one wgmma: its N/2 accumulators (layout in warpgroup_mma.cuh), k ascending in float.
inline void wgmma_run(const Fiber& f, const Fiber::Wgmma& op) {
  const int t = f.linear % 128, w = t / 32, l = t % 32, g = l / 4, t4 = l % 4;
  float a[2][16];
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 16; ++k)
      a[h][k] = wgmma_operand(op.desc_a, op.mn_a, 16 * w + g + 8 * h, k, op.bf16, op.file, op.line);
  for (int j = 0; j < op.n / 8; ++j)
    for (int c = 0; c < 2; ++c) {
      float bcol[16];
      for (int k = 0; k < 16; ++k)
        bcol[k] = wgmma_operand(op.desc_b, op.mn_b, 8 * j + 2 * t4 + c, k, op.bf16, op.file, op.line);
      for (int h = 0; h < 2; ++h) {
        float acc = op.d[4 * j + 2 * h + c];
        for (int k = 0; k < 16; ++k) acc += a[h][k] * bcol[k];
        op.d[4 * j + 2 * h + c] = acc;
      }
    }
}

// wgmma.wait_group n: every wgmma of all but the n most recently committed groups is complete.
inline void wgmma_wait(int n) {
  Fiber& f = fiber();
  const int limit = f.wg_committed - n;
  size_t keep = 0;
  for (size_t i = 0; i < f.wg_pending.size(); ++i) {
    const Fiber::Wgmma op = f.wg_pending[i];
    if (op.group < limit) {
      wgmma_run(f, op);
      wgmma_ranges_update(block(), op.desc_a, op.mn_a, 64, -1, op.file, op.line);
      wgmma_ranges_update(block(), op.desc_b, op.mn_b, op.n, -1, op.file, op.line);
    } else {
      f.wg_pending[keep++] = op;
    }
  }
  f.wg_pending.resize(keep);
}

// bar.sync id, count (a named barrier; __syncthreads is barrier 0 with every thread): the calling thread waits until
// `count` threads (a multiple of 32) have arrived at barrier `id`; those are released together.
inline void named_barrier_sync(int id, int count, const char* file, int line) {
  Block& b = block();
  Fiber& f = *b.cur;
  if (id < 1 || id > 15 || count < 32 || count % 32 != 0 || count > b.nthreads)
    fail(std::string("bar.sync at ") + where(file, line) + " (" + thread_desc(f) + "): barrier " + std::to_string(id) +
         " with " + std::to_string(count) + " threads (ids 1-15 — 0 is __syncthreads' — and a multiple of 32" +
         " threads, at most the block's " + std::to_string(b.nthreads) + ")");
  int arrived = 0;
  {
    IgnoreScope ig;
    f.state = State::named;
    f.bar_id = id;
    f.bar_count = count;
    f.what = "bar.sync";
    f.file = file;
    f.line = line;
    for (const Fiber& o : *b.fibers)
      if (o.state == State::named && o.bar_id == id) {
        if (o.bar_count != count)
          fail(std::string("bar.sync at ") + where(file, line) + " (" + thread_desc(f) + ") names " +
               std::to_string(count) + " threads for barrier " + std::to_string(id) + ", thread " + fmt_idx(o.tid) +
               " at " + where(o.file, o.line) + " named " + std::to_string(o.bar_count));
        ++arrived;
      }
    if (arrived == count)
      for (Fiber& o : *b.fibers)
        if (o.state == State::named && o.bar_id == id) o.state = State::runnable;
  }
  tsan_release(&b.warps);  // (any per-block address serves as the token: the barrier's threads sync through it)
  yield_to_scheduler();
  tsan_acquire(&b.warps);
}

// ---- mbarrier operations (csrc/common/mbarrier.cuh) ---------------------------------------------------------------

inline uint64_t* mbar_checked(void* bar, const char* op, const char* file, int line) {
  const unsigned char* c = static_cast<const unsigned char*>(bar);
  Block& b = block();
  if (c < b.dyn_smem || c + 8 > b.dyn_smem + b.launch->smem || (kSmemWindowBase + (c - b.dyn_smem)) % 8 != 0)
    fail(std::string(op) + " at " + where(file, line) + " (" + thread_desc(fiber()) +
         "): the mbarrier must be 8-byte aligned in the block's dynamic shared memory");
  return static_cast<uint64_t*>(bar);
}

// mbarrier.init: `count` arrivals complete each phase; the barrier starts in phase 0.
inline void mbarrier_init(void* bar, int count, const char* file, int line) {
  uint64_t* w = mbar_checked(bar, "mbarrier.init", file, line);
  if (count < 1 || count > (1 << 20) - 1)
    fail(std::string("mbarrier.init at ") + where(file, line) + ": count " + std::to_string(count) + " out of range");
  IgnoreScope ig;
  *w = mbar_word(uint32_t(count), uint32_t(count), 0);
  mbar_tx(block(), w) = 0;
}

// mbarrier.arrive (release: this thread's earlier writes are visible to whoever sees the phase complete).
inline void mbarrier_arrive(void* bar, const char* file, int line) {
  uint64_t* w = mbar_checked(bar, "mbarrier.arrive", file, line);
  tsan_release(w);
  const std::string err = mbar_arrive_on(block(), w);
  if (!err.empty()) fail("mbarrier.arrive at " + where(file, line) + " (" + thread_desc(fiber()) + "): " + err);
}

// cp.async.mbarrier.arrive.noinc: one arrival on `bar` once every cp.async this thread issued so far has landed
// (.noinc: the barrier's count includes these arrivals). The copies leave the thread's cp.async groups.
inline void cp_async_mbarrier_arrive_noinc(void* bar, const char* file, int line) {
  uint64_t* w = mbar_checked(bar, "cp.async.mbarrier.arrive", file, line);
  Fiber& f = fiber();
  IgnoreScope ig;
  block().async_arrivals.push_back(Block::AsyncArrive{std::move(f.cp_pending), w, file, line});
  f.cp_pending.clear();
}

// mbarrier.try_wait.parity in a loop: returns once the phase of parity `parity` has completed (acquire).
inline void mbarrier_wait_parity(void* bar, int parity, const char* file, int line) {
  uint64_t* w = mbar_checked(bar, "mbarrier.try_wait", file, line);
  Fiber& f = fiber();
  while (true) {
    {
      IgnoreScope ig;
      if (!mbar_valid(*w))
        fail(std::string("mbarrier.try_wait at ") + where(file, line) + " (" + thread_desc(f) +
             "): the mbarrier has not been initialised (mbarrier.init, then a barrier, before any wait)");
      if (mbar_done(*w, parity)) break;
      f.state = State::mbar;
      f.mbar = w;
      f.mbar_parity = parity;
      f.what = "mbarrier.try_wait";
      f.file = file;
      f.line = line;
    }
    yield_to_scheduler();
  }
  tsan_acquire(w);
}

// mbarrier.arrive.expect_tx: `bytes` more transaction bytes for the current phase, then one arrival.
inline void mbarrier_arrive_expect_tx(void* bar, uint32_t bytes, const char* file, int line) {
  uint64_t* w = mbar_checked(bar, "mbarrier.arrive.expect_tx", file, line);
  Block& b = block();
  tsan_release(w);
  {
    IgnoreScope ig;
    if (mbar_valid(*w)) mbar_tx(b, w) += int64_t(bytes);
  }
  const std::string err = mbar_arrive_on(b, w);
  if (!err.empty())
    fail("mbarrier.arrive.expect_tx at " + where(file, line) + " (" + thread_desc(fiber()) + "): " + err);
}

// cp.async.bulk.tensor (tile or im2col, by the map) into window address dst_addr, completing its bytes on `bar`:
// checked now (map, destination, alignment, a wgmma still reading the destination), performed when the block has
// nothing else to run (land_tma_loads).
inline void tma_load(uint32_t dst_addr, const void* map, void* bar, const int32_t* coords, int ncoords,
                     const uint16_t* offs, const char* file, int line) {
  Block& b = block();
  auto bad = [&](const std::string& why) {
    fail("cp.async.bulk.tensor at " + where(file, line) + " (" + thread_desc(fiber()) + "): " + why);
  };
  TmaEmuMap m;
  std::memcpy(&m, map, sizeof m);
  if (m.magic != TmaEmuMap::kMagic) bad("the tensor map was not made by tma_encode_im2col / tma_encode_tiled");
  if (int(m.rank) != ncoords || bool(m.im2col) != (offs != nullptr))
    bad("the instruction's dimensionality or mode does not match the tensor map");
  if (m.elem_bytes != 2 || m.box[0] * 2u != 128u) bad("the emulator models 64 16-bit elements (128 bytes) per row");
  const uint32_t rows = m.im2col ? m.box[1] : uint32_t(m.box[1]) * m.box[2], bytes = rows * 128u;
  if (dst_addr % 1024 != 0)
    bad("a 128-byte-swizzled destination must be 1024-byte aligned (window address " + std::to_string(dst_addr) + ")");
  unsigned char* dst = static_cast<unsigned char*>(smem_window_ptr(dst_addr));
  if (dst + bytes > b.dyn_smem + b.launch->smem) bad("the load's " + std::to_string(bytes) + " bytes overrun shared memory");
  uint64_t* w = mbar_checked(bar, "cp.async.bulk.tensor", file, line);
  if (m.im2col) {  // the first pixel must lie in the bounding box (shifted by the tap offsets)
    const int64_t w0 = int64_t(coords[1]) + offs[0], h0 = int64_t(coords[2]) + offs[1];
    if (w0 < m.lower[0] + offs[0] || w0 >= int64_t(m.dims[1]) + m.upper[0] + offs[0] ||
        h0 < m.lower[1] + offs[1] || h0 >= int64_t(m.dims[2]) + m.upper[1] + offs[1])
      bad("the first pixel (w " + std::to_string(w0) + ", h " + std::to_string(h0) +
          ") lies outside the im2col bounding box");
  }
  wgmma_hazard_check(b, dst, int(bytes), file, line, "cp.async.bulk.tensor");
  Block::TmaLoad ld{};
  ld.map = m;
  ld.dst = dst;
  for (int i = 0; i < ncoords; ++i) ld.coords[i] = coords[i];
  if (offs) ld.offs[0] = offs[0], ld.offs[1] = offs[1];
  ld.bar = w;
  ld.bytes = bytes;
  ld.file = file;
  ld.line = line;
  IgnoreScope ig;
  b.tma_loads.push_back(ld);
}

// cp.async.bulk.tensor (tiled, shared::cta → global, .bulk_group): the box at `coords` from the 128-byte-swizzled rows
// at `src_addr`, recorded now and performed at the covering cp.async.bulk.wait_group (bulk_wait). Elements outside
// the tensor are not written (the box is clipped).
inline void tma_store(uint32_t src_addr, const void* map, const int32_t* coords, int ncoords, const char* file,
                      int line) {
  Fiber& f = fiber();
  Block& b = block();
  auto bad = [&](const std::string& why) {
    fail("cp.async.bulk.tensor store at " + where(file, line) + " (" + thread_desc(f) + "): " + why);
  };
  TmaEmuMap m;
  std::memcpy(&m, map, sizeof m);
  if (m.magic != TmaEmuMap::kMagic) bad("the tensor map was not made by tma_encode_tiled");
  if (m.im2col || int(m.rank) != ncoords || ncoords != 3) bad("stores take a tiled map of rank 3 here");
  if (m.elem_bytes != 2 || m.box[0] * 2u != 128u) bad("the emulator models 64 16-bit elements (128 bytes) per row");
  if (src_addr % 1024 != 0)
    bad("a 128-byte-swizzled source must be 1024-byte aligned (window address " + std::to_string(src_addr) + ")");
  const uint32_t bytes = uint32_t(m.box[1]) * m.box[2] * 128u;
  const unsigned char* src = static_cast<const unsigned char*>(smem_window_ptr(src_addr));
  if (src + bytes > b.dyn_smem + b.launch->smem) bad("the store's " + std::to_string(bytes) + " bytes overrun shared memory");
  Fiber::BulkStore st{};
  st.map = m;
  st.src = src;
  for (int i = 0; i < 3; ++i) st.coords[i] = coords[i];
  st.group = f.bulk_committed;
  st.file = file;
  st.line = line;
  IgnoreScope ig;
  f.bulk_pending.push_back(st);
}

// One TMA store: row r of the box (dims 1 and 2 of the box, dim 1 fastest) from the swizzled source row r — chunk c at
// chunk position c ^ (window address bits [7, 10)), as the loads lay it down — to global memory, in-bounds elements
// only.
inline void bulk_store_perform(const Fiber::BulkStore& st) {
  const TmaEmuMap& m = st.map;
  const uint32_t src_addr = smem_window(st.src);
  unsigned char* base = static_cast<unsigned char*>(const_cast<void*>(m.base));
  unsigned char row[128];
  uint32_t r = 0;
  for (uint32_t i2 = 0; i2 < m.box[2]; ++i2)
    for (uint32_t i1 = 0; i1 < m.box[1]; ++i1, ++r) {
      const uint32_t a = src_addr + r * 128u, sw = (a >> 7) & 7u;
      for (uint32_t c = 0; c < 8; ++c) std::memcpy(row + (c << 4), st.src + r * 128u + ((c ^ sw) << 4), 16);
      const int64_t c1 = int64_t(st.coords[1]) + i1, c2 = int64_t(st.coords[2]) + i2;
      if (c1 < 0 || c1 >= int64_t(m.dims[1]) || c2 < 0 || c2 >= int64_t(m.dims[2])) continue;
      for (int e = 0; e < 64; ++e) {
        const int64_t c0 = int64_t(st.coords[0]) + e;
        if (c0 >= 0 && c0 < int64_t(m.dims[0]))
          std::memcpy(base + c0 * 2 + c1 * int64_t(m.strides[1]) + c2 * int64_t(m.strides[2]), row + 2 * e, 2);
      }
    }
}

inline void bulk_commit() { ++fiber().bulk_committed; }
// cp.async.bulk.wait_group(.read) n: every store of all but the n most recently committed bulk groups has been
// performed (the emulator does not tell .read from the full wait: both perform the stores here).
inline void bulk_wait(int n) {
  Fiber& f = fiber();
  const int limit = f.bulk_committed - n;
  size_t keep = 0;
  for (size_t i = 0; i < f.bulk_pending.size(); ++i) {
    const Fiber::BulkStore& st = f.bulk_pending[i];
    if (st.group < limit)
      bulk_store_perform(st);
    else
      f.bulk_pending[keep++] = st;
  }
  f.bulk_pending.resize(keep);
}

// ---- atomics: real atomics, since blocks run on several OS threads -----------------------------------------------

template <typename T>
T atomic_add(T* p, T v) {
  if constexpr (std::is_integral<T>::value) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
  } else {
    // float/double/__half: compare-and-swap on the bit pattern.
    using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint16_t>>;
    Bits* bp = reinterpret_cast<Bits*>(p);
    Bits old_bits = __atomic_load_n(bp, __ATOMIC_RELAXED);
    while (true) {
      T old_v;
      std::memcpy(static_cast<void*>(&old_v), &old_bits, sizeof(T));
      const T new_v = T(old_v + v);
      Bits new_bits;
      std::memcpy(&new_bits, static_cast<const void*>(&new_v), sizeof(T));
      if (__atomic_compare_exchange_n(bp, &old_bits, new_bits, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return old_v;
    }
  }
}

template <typename T, typename Op>
T atomic_rmw_cas(T* p, Op op) {
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, op(old), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}

}  // namespace detail

// Thread-block and warp intrinsics as functions, for code that wants to call them explicitly.
inline unsigned activemask() { return detail::activemask(); }

}  // namespace pyconv_emu

// ---- the CUDA names, mapped onto the emulator --------------------------------------------------------------------

#undef __shared__
#define __shared__ thread_local
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif
#undef __constant__
#define __constant__
#undef __managed__
#define __managed__
#undef __grid_constant__
#define __grid_constant__

#define threadIdx (::pyconv_emu::detail::thread_idx())
#define blockIdx (::pyconv_emu::detail::block_idx())
#define blockDim (::pyconv_emu::detail::block_dim())
#define gridDim (::pyconv_emu::detail::grid_dim())
#define warpSize 32

#define __syncthreads() \
  ((void)::pyconv_emu::detail::block_barrier(::pyconv_emu::detail::BarrierKind::sync, 0, "__syncthreads", __FILE__, __LINE__))
#define __syncthreads_count(p) \
  ::pyconv_emu::detail::block_barrier(::pyconv_emu::detail::BarrierKind::count, (p) ? 1 : 0, "__syncthreads_count", __FILE__, __LINE__)
#define __syncthreads_and(p) \
  ::pyconv_emu::detail::block_barrier(::pyconv_emu::detail::BarrierKind::all, (p) ? 1 : 0, "__syncthreads_and", __FILE__, __LINE__)
#define __syncthreads_or(p) \
  ::pyconv_emu::detail::block_barrier(::pyconv_emu::detail::BarrierKind::any, (p) ? 1 : 0, "__syncthreads_or", __FILE__, __LINE__)
#define __syncwarp(...) ::pyconv_emu::detail::syncwarp_at(__FILE__, __LINE__, ##__VA_ARGS__)

#define __shfl_sync(mask, var, ...) \
  ::pyconv_emu::detail::shfl_at(::pyconv_emu::detail::kShfl, "__shfl_sync", __FILE__, __LINE__, mask, var, __VA_ARGS__)
#define __shfl_up_sync(mask, var, ...) \
  ::pyconv_emu::detail::shfl_at(::pyconv_emu::detail::kShflUp, "__shfl_up_sync", __FILE__, __LINE__, mask, var, __VA_ARGS__)
#define __shfl_down_sync(mask, var, ...) \
  ::pyconv_emu::detail::shfl_at(::pyconv_emu::detail::kShflDown, "__shfl_down_sync", __FILE__, __LINE__, mask, var, __VA_ARGS__)
#define __shfl_xor_sync(mask, var, ...) \
  ::pyconv_emu::detail::shfl_at(::pyconv_emu::detail::kShflXor, "__shfl_xor_sync", __FILE__, __LINE__, mask, var, __VA_ARGS__)
#define __ballot_sync(mask, p) \
  ::pyconv_emu::detail::vote(::pyconv_emu::detail::kBallot, "__ballot_sync", mask, (p) ? 1 : 0, __FILE__, __LINE__)
#define __any_sync(mask, p) \
  int(::pyconv_emu::detail::vote(::pyconv_emu::detail::kAny, "__any_sync", mask, (p) ? 1 : 0, __FILE__, __LINE__))
#define __all_sync(mask, p) \
  int(::pyconv_emu::detail::vote(::pyconv_emu::detail::kAll, "__all_sync", mask, (p) ? 1 : 0, __FILE__, __LINE__))
#define __activemask() ::pyconv_emu::detail::activemask()

#define cudaGetLastError() ::pyconv_emu::get_last_error()
#define cudaPeekAtLastError() ::pyconv_emu::peek_last_error()
#define cudaGetErrorString(e) ::pyconv_emu::error_string(e)

namespace pyconv_emu {
namespace detail {
inline void syncwarp_at(const char* file, int line, unsigned mask = 0xffffffffu) { syncwarp(mask, file, line); }
template <typename T>
T shfl_at(int kind, const char* what, const char* file, int line, unsigned mask, T var, int arg, int width = 32) {
  return shfl(kind, what, mask, var, arg, width, file, line);
}
}  // namespace detail
}  // namespace pyconv_emu

// ---- device functions with no host definition in CUDA's headers ---------------------------------------------------

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
template <typename T>
inline T __ldg(const T* p) { return *p; }

#define PYCONV_EMU_ATOMIC_ADD(T) \
  inline T atomicAdd(T* p, T v) { return ::pyconv_emu::detail::atomic_add(p, v); }
PYCONV_EMU_ATOMIC_ADD(int)
PYCONV_EMU_ATOMIC_ADD(unsigned int)
PYCONV_EMU_ATOMIC_ADD(unsigned long long)
PYCONV_EMU_ATOMIC_ADD(float)
PYCONV_EMU_ATOMIC_ADD(double)
PYCONV_EMU_ATOMIC_ADD(__half)
#undef PYCONV_EMU_ATOMIC_ADD
#define PYCONV_EMU_ATOMIC_INT(T)                                                                                    \
  inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }                               \
  inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }                             \
  inline T atomicMax(T* p, T v) {                                                                                   \
    return ::pyconv_emu::detail::atomic_rmw_cas(p, [v](T o) { return o < v ? v : o; });                             \
  }                                                                                                                 \
  inline T atomicMin(T* p, T v) {                                                                                   \
    return ::pyconv_emu::detail::atomic_rmw_cas(p, [v](T o) { return v < o ? v : o; });                             \
  }                                                                                                                 \
  inline T atomicCAS(T* p, T expected, T desired) {                                                                 \
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);                  \
    return expected;                                                                                                \
  }                                                                                                                 \
  inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }                               \
  inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }                                 \
  inline T atomicXor(T* p, T v) { return __atomic_fetch_xor(p, v, __ATOMIC_RELAXED); }
PYCONV_EMU_ATOMIC_INT(int)
PYCONV_EMU_ATOMIC_INT(unsigned int)
PYCONV_EMU_ATOMIC_INT(unsigned long long)
PYCONV_EMU_ATOMIC_INT(long long)
#undef PYCONV_EMU_ATOMIC_INT
inline unsigned short atomicCAS(unsigned short* p, unsigned short expected, unsigned short desired) {
  __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return expected;
}

// min/max: CUDA device code calls them unqualified for any mix of arithmetic types.
template <typename A, typename B,
          typename = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> min(A a, B b) {
  return b < a ? std::common_type_t<A, B>(b) : std::common_type_t<A, B>(a);
}
template <typename A, typename B,
          typename = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline std::common_type_t<A, B> max(A a, B b) {
  return a < b ? std::common_type_t<A, B>(b) : std::common_type_t<A, B>(a);
}

// Fast-math intrinsics: computed at full precision here (the GPU's approximations are not modelled).
inline float __expf(float x) { return std::exp(x); }
inline float __exp10f(float x) { return std::pow(10.0f, x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : (x == x ? x : 0.0f)); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline unsigned __float_as_uint(float x) { unsigned i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline float __uint_as_float(unsigned i) { float x; std::memcpy(&x, &i, 4); return x; }
inline long long __double_as_longlong(double x) { long long i; std::memcpy(&i, &x, 8); return i; }
inline double __longlong_as_double(long long i) { double x; std::memcpy(&x, &i, 8); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
inline unsigned __umulhi(unsigned a, unsigned b) { return unsigned((uint64_t(a) * b) >> 32); }
inline int __mulhi(int a, int b) { return int((int64_t(a) * b) >> 32); }
inline int __mul24(int a, int b) { return a * b; }
inline unsigned __umul24(unsigned a, unsigned b) { return a * b; }
inline float atomicExch(float* p, float v) {
  return __uint_as_float(__atomic_exchange_n(reinterpret_cast<unsigned*>(p), __float_as_uint(v), __ATOMIC_RELAXED));
}
