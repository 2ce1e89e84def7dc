// Stand-in for c10's CUDA device guard in the CUDA-on-CPU build (see
// ../../../cuda_on_cpu.h): its tensors live on the CPU, the one device.
#pragma once

#include <c10/core/Device.h>
#include <c10/util/Exception.h>

namespace c10::cuda {

struct CUDAGuard {
  explicit CUDAGuard(c10::Device device) {
    TORCH_CHECK(device.is_cpu(), "the CUDA-on-CPU build runs on CPU tensors, got a tensor on ", device);
  }
};

}  // namespace c10::cuda
