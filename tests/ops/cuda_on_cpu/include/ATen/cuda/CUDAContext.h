// Stand-in for ATen's CUDA context in the CUDA-on-CPU build (see
// ../../../cuda_on_cpu.h): the runtime's stream, and the launch check.
#pragma once

#include <c10/util/Exception.h>

#include <string>
#include <utility>

#include "cuda_on_cpu.h"

namespace at::cuda {

inline ::cuda_on_cpu::Stream getCurrentCUDAStream() { return {}; }

}  // namespace at::cuda

namespace cuda_on_cpu {

// What C10_CUDA_KERNEL_LAUNCH_CHECK does with cudaGetLastError: a launch the
// device refused becomes an error of the calling op.
inline void check_last_launch() {
  std::string error;
  std::swap(error, launch_error);
  TORCH_CHECK(error.empty(), "CUDA kernel launch failed: ", error);
}

}  // namespace cuda_on_cpu

#define C10_CUDA_KERNEL_LAUNCH_CHECK() ::cuda_on_cpu::check_last_launch()
