// CUDA-on-CPU: a small runtime that runs CUDA kernel source on the host.
//
// Enough of CUDA for csrc/cuda/dcnv3_cuda.cu, compiled by a host compiler
// with __CUDACC__ and __CUDA_ARCH__ defined (tests/ops/cuda_on_cpu/
// dcnv3_cuda_on_cpu.cpp):
//
// - launches run block after block, each block warp after warp, and the 32
//   threads of a warp as fibers (ucontext), so that a warp-synchronous
//   intrinsic is a real meeting of the warp's lanes;
// - __shfl_down_sync exchanges values with CUDA's segment rules (width) and
//   aborts where the device's result would be undefined: a lane named in the
//   mask has exited, lanes meet at different calls (call site, mask, width,
//   type, or number of earlier shuffles), the width is not a power of two
//   <= 32, or a lane reads a lane outside the shuffle;
// - atomicAdd and __stwb abort on an address not aligned to the type;
// - test controls: a cap on the number of blocks launched (so grid-stride
//   loops loop) and the order of blocks, warps and lanes (so atomics add in
//   another order), and counters of what ran.
//
// A failed check prints "cuda_on_cpu: <what> (block B, thread T)" and aborts,
// as a device trap ends the process. Vector loads through uint4/uint2 are
// checked by UBSan (-fsanitize=alignment) and bounds by AddressSanitizer in
// the sanitizer build; fiber switches are annotated for ASan.
#pragma once

#include <ucontext.h>

#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CUDA_ON_CPU_ASAN 1
#else
#define CUDA_ON_CPU_ASAN 0
#endif

// The language's qualifiers: everything is host code here.
#define __host__
#define __device__
#define __global__
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

struct alignas(16) uint4 {
  unsigned x, y, z, w;
};

struct alignas(8) uint2 {
  unsigned x, y;
};

constexpr int warpSize = 32;

// The built-in variables of the thread that runs (one launch runs at a time).
inline uint3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;

namespace cuda_on_cpu {

[[noreturn]] inline void fail(const char* format, ...) {
  std::va_list args;
  va_start(args, format);
  std::fputs("cuda_on_cpu: ", stderr);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fprintf(stderr, " (block %u, thread %u)\n", blockIdx.x, threadIdx.x);
  std::fflush(stderr);
  std::abort();
}

// How the next launches run; set by the tests.
struct Options {
  int64_t max_blocks = 0;  // > 0: launch at most this many blocks, whatever the grid asked
  bool reversed = false;   // run blocks, the warps of a block and the lanes of a warp last to first
};

// What ran since the last reset.
struct Stats {
  int64_t launches = 0;
  int64_t requested_blocks = 0;  // of the last launch, before max_blocks
  int64_t blocks = 0;
  int64_t threads = 0;
  int64_t shuffles = 0;  // warp-wide __shfl_down_sync meetings
  int64_t atomics = 0;
  int64_t vector_stores = 0;  // __stwb calls
};

inline Options options;
inline Stats stats;
// A launch configuration the device would refuse, as cudaGetLastError reports it.
inline std::string launch_error;

struct Stream {};

// One lane's pending __shfl_down_sync.
struct Shuffle {
  const char* file;
  int line;
  unsigned mask;
  unsigned delta;
  int width;
  size_t bytes;
  uint64_t value;   // the lane's var
  uint64_t result;  // what the lane receives
};

enum class LaneState { kRunnable, kAtShuffle, kExited };

constexpr size_t kLaneStackBytes = CUDA_ON_CPU_ASAN ? (size_t(1) << 20) : (size_t(256) << 10);

struct Lane {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  LaneState state = LaneState::kRunnable;
  Shuffle shuffle{};
  int64_t shuffles_done = 0;
};

class Warp {
 public:
  // Runs `body` as lanes first_thread .. first_thread + count - 1 of the current block.
  void run(void (*body)(void*), void* argument, unsigned first_thread, int count) {
    body_ = body;
    argument_ = argument;
    first_thread_ = first_thread;
    count_ = count;
    for (int l = 0; l < count; ++l) {
      Lane& lane = lanes_[l];
      if (!lane.stack) lane.stack.reset(new char[kLaneStackBytes]);
      lane.state = LaneState::kRunnable;
      lane.shuffles_done = 0;
      getcontext(&lane.context);
      lane.context.uc_stack.ss_sp = lane.stack.get();
      lane.context.uc_stack.ss_size = kLaneStackBytes;
      lane.context.uc_link = nullptr;
      makecontext(&lane.context, &Warp::lane_entry, 0);
    }
    for (;;) {
      // Every lane runs until it exits or reaches a shuffle; then the shuffles are resolved.
      for (int k = 0; k < count; ++k) {
        const int l = options.reversed ? count - 1 - k : k;
        if (lanes_[l].state == LaneState::kRunnable) resume(l);
      }
      bool waiting = false;
      for (int l = 0; l < count; ++l) waiting = waiting || lanes_[l].state == LaneState::kAtShuffle;
      if (!waiting) break;
      resolve_shuffles();
    }
    stats.threads += count;
  }

  // Called by the running lane: hands its shuffle to the warp and waits for the result.
  uint64_t shuffle(const Shuffle& request) {
    Lane& lane = lanes_[current_];
    lane.shuffle = request;
    lane.state = LaneState::kAtShuffle;
    suspend(false);
    ++lane.shuffles_done;
    return lane.shuffle.result;
  }

  static Warp*& running() {
    static Warp* warp = nullptr;
    return warp;
  }

 private:
  static void lane_entry() {
    Warp& warp = *running();
#if CUDA_ON_CPU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &warp.scheduler_stack_bottom_, &warp.scheduler_stack_size_);
#endif
    warp.body_(warp.argument_);
    warp.lanes_[warp.current_].state = LaneState::kExited;
    warp.suspend(true);
  }

  void resume(int l) {
    current_ = l;
    threadIdx.x = first_thread_ + l;
    Lane& lane = lanes_[l];
#if CUDA_ON_CPU_ASAN
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(&fake_stack, lane.stack.get(), kLaneStackBytes);
    swapcontext(&scheduler_, &lane.context);
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#else
    swapcontext(&scheduler_, &lane.context);
#endif
  }

  // Back to the scheduler; an exited lane is never resumed.
  void suspend(bool exiting) {
    Lane& lane = lanes_[current_];
#if CUDA_ON_CPU_ASAN
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(exiting ? nullptr : &fake_stack, scheduler_stack_bottom_, scheduler_stack_size_);
    swapcontext(&lane.context, &scheduler_);
    __sanitizer_finish_switch_fiber(fake_stack, &scheduler_stack_bottom_, &scheduler_stack_size_);
#else
    swapcontext(&lane.context, &scheduler_);
#endif
    if (exiting) fail("an exited lane was resumed");
  }

  // Every lane that has not exited waits at a shuffle: each group of lanes
  // named by one mask exchanges its values.
  void resolve_shuffles() {
    unsigned resolved = 0;
    for (int l = 0; l < count_; ++l) {
      if (lanes_[l].state != LaneState::kAtShuffle || ((resolved >> l) & 1u)) continue;
      const unsigned mask = lanes_[l].shuffle.mask;
      check_group(l, mask);
      for (int k = 0; k < count_; ++k) {
        if ((mask >> k) & 1u) exchange(k, mask);
      }
      for (int k = 0; k < count_; ++k) {
        if ((mask >> k) & 1u) lanes_[k].state = LaneState::kRunnable;
      }
      resolved |= mask;
      ++stats.shuffles;
    }
  }

  void check_group(int first, unsigned mask) {
    const Lane& a = lanes_[first];
    threadIdx.x = first_thread_ + first;
    if (!((mask >> first) & 1u))
      fail("__shfl_down_sync at %s:%d: mask 0x%08x leaves out the calling lane %d", a.shuffle.file, a.shuffle.line,
           mask, first);
    const int width = a.shuffle.width;
    if (width <= 0 || width > warpSize || (width & (width - 1)) != 0) {
      fail("__shfl_down_sync at %s:%d: width %d is not a power of two <= 32", a.shuffle.file, a.shuffle.line, width);
    }
    for (int k = 0; k < warpSize; ++k) {
      if (!((mask >> k) & 1u)) continue;
      if (k >= count_) fail("__shfl_down_sync mask 0x%08x names lane %d, which this warp does not have", mask, k);
      const Lane& b = lanes_[k];
      if (b.state == LaneState::kExited) {
        fail("__shfl_down_sync at %s:%d: lane %d, named in mask 0x%08x, has exited", a.shuffle.file, a.shuffle.line, k,
             mask);
      }
      if (b.shuffle.line != a.shuffle.line || std::strcmp(b.shuffle.file, a.shuffle.file) != 0 ||
          b.shuffle.mask != mask || b.shuffle.width != width || b.shuffle.bytes != a.shuffle.bytes) {
        fail(
            "lanes %d and %d meet at different __shfl_down_sync calls (%s:%d mask 0x%08x width %d, %s:%d mask 0x%08x "
            "width %d)",
            first, k, a.shuffle.file, a.shuffle.line, mask, width, b.shuffle.file, b.shuffle.line, b.shuffle.mask,
            b.shuffle.width);
      }
      if (b.shuffles_done != a.shuffles_done) {
        fail("lanes %d and %d meet at __shfl_down_sync (%s:%d) after %lld and %lld earlier shuffles", first, k,
             a.shuffle.file, a.shuffle.line, static_cast<long long>(a.shuffles_done),
             static_cast<long long>(b.shuffles_done));
      }
    }
  }

  // Lane l gets the value of lane l + delta if that lane is in l's segment of
  // `width` lanes, else its own.
  void exchange(int l, unsigned mask) {
    Shuffle& request = lanes_[l].shuffle;
    const unsigned in_segment = static_cast<unsigned>(l) % static_cast<unsigned>(request.width);
    request.result = request.value;
    if (in_segment + request.delta < static_cast<unsigned>(request.width)) {
      const int source = l + static_cast<int>(request.delta);
      if (!((mask >> source) & 1u)) {
        threadIdx.x = first_thread_ + l;
        fail("__shfl_down_sync at %s:%d: lane %d reads lane %d, which is not in mask 0x%08x", request.file,
             request.line, l, source, mask);
      }
      request.result = lanes_[source].shuffle.value;
    }
  }

  Lane lanes_[warpSize];
  ucontext_t scheduler_;
  void (*body_)(void*) = nullptr;
  void* argument_ = nullptr;
  unsigned first_thread_ = 0;
  int count_ = 0;
  int current_ = 0;
#if CUDA_ON_CPU_ASAN
  const void* scheduler_stack_bottom_ = nullptr;
  size_t scheduler_stack_size_ = 0;
#endif
};

// Launches, and the tests' changes of options and stats, take turns.
inline std::mutex& launch_mutex() {
  static std::mutex mutex;
  return mutex;
}

// The one warp that runs every launch's warps in turn; its lanes' stacks are reused.
inline Warp& the_warp() {
  static Warp warp;
  return warp;
}

// kernel<<<grid, block, shared_bytes, stream>>>(arguments...) is
// KernelLaunch{kernel, grid, block, shared_bytes}(arguments...).
template <typename... Params>
struct KernelLaunch {
  void (*kernel)(Params...);
  dim3 grid, block;
  size_t shared_bytes;

  template <typename... Args>
  void operator()(Args&&... arguments) const {
    const std::lock_guard<std::mutex> lock(launch_mutex());
    if (grid.y != 1 || grid.z != 1 || block.y != 1 || block.z != 1 || shared_bytes != 0) {
      fail("only one-dimensional launches without dynamic shared memory are supported");
    }
    if (grid.x == 0 || grid.x > 2147483647u || block.x == 0 || block.x > 1024) {
      launch_error =
          "invalid configuration argument (grid " + std::to_string(grid.x) + ", block " + std::to_string(block.x) + ")";
      return;
    }
    // The arguments are copied once, as into the device's parameter memory.
    std::tuple<std::decay_t<Params>...> parameters(static_cast<std::decay_t<Params>>(arguments)...);
    struct Call {
      void (*kernel)(Params...);
      std::tuple<std::decay_t<Params>...>* parameters;
      static void run(void* self) {
        Call& call = *static_cast<Call*>(self);
        std::apply(call.kernel, *call.parameters);
      }
    } call{kernel, &parameters};
    const unsigned blocks =
        options.max_blocks > 0 && options.max_blocks < grid.x ? static_cast<unsigned>(options.max_blocks) : grid.x;
    ++stats.launches;
    stats.requested_blocks = grid.x;
    gridDim = dim3(blocks);
    blockDim = block;
    Warp& warp = the_warp();
    Warp::running() = &warp;
    const unsigned warps = (block.x + warpSize - 1) / warpSize;
    for (unsigned b = 0; b < blocks; ++b) {
      blockIdx.x = options.reversed ? blocks - 1 - b : b;
      for (unsigned w = 0; w < warps; ++w) {
        const unsigned first = (options.reversed ? warps - 1 - w : w) * warpSize;
        const unsigned count = block.x - first < unsigned(warpSize) ? block.x - first : unsigned(warpSize);
        warp.run(&Call::run, &call, first, static_cast<int>(count));
      }
      ++stats.blocks;
    }
    Warp::running() = nullptr;
  }
};

template <typename... Params>
KernelLaunch<Params...> launch(dim3 grid, dim3 block, size_t shared_bytes, Stream /*stream*/,
                               void (*kernel)(Params...)) {
  return {kernel, grid, block, shared_bytes};
}

inline void check_aligned(const void* address, size_t bytes, const char* what) {
  if (reinterpret_cast<uintptr_t>(address) % bytes != 0) {
    fail("%s at address %p, which is not %zu-byte aligned", what, address, bytes);
  }
}

template <typename T>
T shfl_down_sync(const char* file, int line, unsigned mask, T var, unsigned delta, int width = warpSize) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(uint64_t), "shuffles move at most 8 bytes");
  Warp* warp = Warp::running();
  if (warp == nullptr) fail("__shfl_down_sync outside a kernel");
  Shuffle request{file, line, mask, delta, width, sizeof(T), 0, 0};
  std::memcpy(&request.value, &var, sizeof(T));
  const uint64_t bits = warp->shuffle(request);
  T result;
  std::memcpy(&result, &bits, sizeof(T));
  return result;
}

}  // namespace cuda_on_cpu

#define __shfl_down_sync(...) ::cuda_on_cpu::shfl_down_sync(__FILE__, __LINE__, __VA_ARGS__)

template <typename T>
T atomicAdd(T* address, T value) {
  ::cuda_on_cpu::check_aligned(address, sizeof(T), "atomicAdd");
  ++::cuda_on_cpu::stats.atomics;
  const T old = *address;
  *address = old + value;
  return old;
}

template <typename T>
void __stwb(T* address, T value) {
  ::cuda_on_cpu::check_aligned(address, sizeof(T), "__stwb");
  ++::cuda_on_cpu::stats.vector_stores;
  *address = value;
}
