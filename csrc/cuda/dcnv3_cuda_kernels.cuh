// The __global__ kernels of the CUDA library: thin wrappers around the
// per-thread bodies of common/dcnv3_thread_bodies.h. Needs no CUDA library
// headers beyond the compiler's, so tests can compile it to PTX on their own
// (tests/ops/test_cuda_ptx.py); cuda/dcnv3_cuda.cu launches the kernels.
#pragma once

#include "common/dcnv3_thread_bodies.h"

namespace mmyolo_dcnv3 {

constexpr int kThreadsPerBlock = 256;

template <typename scalar_t, typename acc_t, int V>
__global__ void __launch_bounds__(kThreadsPerBlock)
    forward_kernel(const Dcnv3Shape s, int64_t threads, const scalar_t* __restrict__ input,
                   const scalar_t* __restrict__ offset, const scalar_t* __restrict__ mask,
                   scalar_t* __restrict__ output) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < threads; t += int64_t(gridDim.x) * blockDim.x) {
    forward_thread<scalar_t, acc_t, V>(s, t, input, offset, mask, output);
  }
}

// Adds the backward's partials to the gradient accumulators: grad_input with
// atomics, grad_offset/grad_mask by warp shuffles or atomics (see
// reduces_by_warp_shuffle).
template <typename acc_t>
struct AtomicSink {
  acc_t* grad_input;
  acc_t* grad_offset;
  acc_t* grad_mask;
  int lanes;     // threads per group
  bool shuffle;  // reduces_by_warp_shuffle(lanes)
  bool leader;   // first lane of its group: writes the reduced sums
  bool active;   // false for padding threads past the end

  __device__ void add_input(int64_t index, acc_t value) { atomicAdd(grad_input + index, value); }

  __device__ void add_point(int64_t point, acc_t d_mask, acc_t d_x, acc_t d_y) {
    if (shuffle) {
      for (int delta = lanes / 2; delta > 0; delta /= 2) {
        d_mask += __shfl_down_sync(0xffffffffu, d_mask, delta, lanes);
        d_x += __shfl_down_sync(0xffffffffu, d_x, delta, lanes);
        d_y += __shfl_down_sync(0xffffffffu, d_y, delta, lanes);
      }
      if (leader && active) {
        grad_mask[point] = d_mask;
        grad_offset[2 * point] = d_x;
        grad_offset[2 * point + 1] = d_y;
      }
    } else if (active) {
      atomicAdd(grad_mask + point, d_mask);
      atomicAdd(grad_offset + 2 * point, d_x);
      atomicAdd(grad_offset + 2 * point + 1, d_y);
    }
  }
};

template <typename scalar_t, typename acc_t, int V>
__global__ void __launch_bounds__(kThreadsPerBlock)
    backward_kernel(const Dcnv3Shape s, int64_t threads, const scalar_t* __restrict__ input,
                    const scalar_t* __restrict__ offset, const scalar_t* __restrict__ mask,
                    const scalar_t* __restrict__ grad_output, acc_t* grad_input, acc_t* grad_offset, acc_t* grad_mask) {
  const int lanes = static_cast<int>(s.group_channels / V);
  const bool shuffle = reduces_by_warp_shuffle(lanes);
  // Every thread of a block runs the same number of iterations (threads past
  // the end are inactive), so warp shuffles see full warps.
  for (int64_t base = int64_t(blockIdx.x) * blockDim.x; base < threads; base += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = base + threadIdx.x;
    const bool active = t < threads;
    AtomicSink<acc_t> sink{grad_input, grad_offset, grad_mask, lanes, shuffle, (t % lanes) == 0, active};
    backward_thread<scalar_t, acc_t, V>(s, active ? t : threads - 1, active, input, offset, mask, grad_output, sink);
  }
}

}  // namespace mmyolo_dcnv3
