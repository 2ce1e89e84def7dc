// The CUDA-on-CPU test library: csrc/cuda/dcnv3_cuda.cu as it is, with the
// headers it includes and their device branches (__CUDA_ARCH__: uint4/uint2
// packs, __stwb stores), compiled for the host against cuda_on_cpu.h.
//
// Its ops, in the namespace mmyolo_dcnv3_cuda_on_cpu on CPU tensors:
// dcnv3_forward and dcnv3_backward (the CUDA kernels, schemas as in
// mmyolo_dcnv3), set_options(max_blocks, reversed) and take_stats() (the
// runtime's controls and counters). Built by build.py for the tests only.
//
// Torch's headers come first, before __CUDACC__ is defined: with it, c10
// would include CUDA's own headers. The .cu's includes of them are then
// no-ops, and its two CUDA library headers are the stand-ins in include/.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <torch/library.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>

#include "ATen/cuda/CUDAContext.h"
#include "c10/cuda/CUDAGuard.h"
#include "common/dcnv3_op_schemas.h"
#include "cuda_on_cpu.h"

// The hooks of dcnv3_cuda.cu: launch through the runtime, register the
// kernels for CPU tensors in the test namespace.
#define DCNV3_CUDA_ON_CPU
#define DCNV3_LAUNCH(blocks, threads_per_block, stream, ...) \
  ::cuda_on_cpu::launch(blocks, threads_per_block, 0, stream, __VA_ARGS__)
#define DCNV3_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(mmyolo_dcnv3_cuda_on_cpu, CPU, m)

// From here on the project's headers see a device compilation for sm_90.
#define __CUDACC__ 1
#define __CUDA_ARCH__ 900
#include "cuda/dcnv3_cuda.cu"
#undef __CUDA_ARCH__
#undef __CUDACC__

namespace {

void set_options(int64_t max_blocks, bool reversed) {
  TORCH_CHECK(max_blocks >= 0, "set_options: max_blocks must be >= 0 (0: no cap), got ", max_blocks);
  const std::lock_guard<std::mutex> lock(cuda_on_cpu::launch_mutex());
  cuda_on_cpu::options = cuda_on_cpu::Options{max_blocks, reversed};
}

// The runtime's counters since the last call.
c10::Dict<std::string, int64_t> take_stats() {
  const std::lock_guard<std::mutex> lock(cuda_on_cpu::launch_mutex());
  const cuda_on_cpu::Stats s = cuda_on_cpu::stats;
  cuda_on_cpu::stats = cuda_on_cpu::Stats{};
  c10::Dict<std::string, int64_t> counters;
  counters.insert("launches", s.launches);
  counters.insert("requested_blocks", s.requested_blocks);
  counters.insert("blocks", s.blocks);
  counters.insert("threads", s.threads);
  counters.insert("shuffles", s.shuffles);
  counters.insert("atomics", s.atomics);
  counters.insert("vector_stores", s.vector_stores);
  return counters;
}

}  // namespace

TORCH_LIBRARY(mmyolo_dcnv3_cuda_on_cpu, m) {
  m.def(mmyolo_dcnv3::kForwardSchema);
  m.def(mmyolo_dcnv3::kBackwardSchema);
  m.def("set_options(int max_blocks, bool reversed) -> ()", set_options);
  m.def("take_stats() -> Dict(str, int)", take_stats);
}
