// CUDA implementation of mmyolo_dcnv3::dcnv3_forward / dcnv3_backward.
//
// dtypes: float32, float64, float16, bfloat16 (accumulated in float32).
// One thread per (output pixel, group, V channels); V is chosen so that each
// thread reads its channels with one 16-byte (or narrower) vector load. The
// per-thread arithmetic is common/dcnv3_thread_bodies.h, shared with the host
// emulation that the CPU test suite runs.
//
// Backward: grad_input is a scatter and uses atomicAdd, so its rounding may
// vary from run to run (nondeterministic). grad_offset and grad_mask sum over
// a group's channels: with a power-of-two number of threads per group (<= 32)
// they are reduced by warp shuffles and written once (deterministic);
// otherwise they are added with atomics.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/dcnv3_thread_launch.h"

namespace mmyolo_dcnv3 {
namespace {

constexpr int kThreadsPerBlock = 256;

int64_t blocks_for(int64_t threads) {
  const int64_t max_blocks = int64_t(1) << 30;
  const int64_t blocks = (threads + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return blocks < max_blocks ? blocks : max_blocks;
}

template <typename scalar_t, typename acc_t, int V>
__global__ void __launch_bounds__(kThreadsPerBlock)
    forward_kernel(const Dcnv3Shape s, int64_t threads, const scalar_t* __restrict__ input,
                   const scalar_t* __restrict__ offset, const scalar_t* __restrict__ mask,
                   scalar_t* __restrict__ output) {
  for (int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; t < threads;
       t += int64_t(gridDim.x) * blockDim.x) {
    forward_thread<scalar_t, acc_t, V>(s, t, input, offset, mask, output);
  }
}

// Threads per group (`lanes`) that share a point's grad_offset/grad_mask.
template <typename acc_t>
struct AtomicSink {
  acc_t* grad_input;
  acc_t* grad_offset;
  acc_t* grad_mask;
  int lanes;          // threads per group
  bool shuffle;       // lanes is a power of two <= 32: reduce in the warp
  bool leader;        // this thread writes the reduced sums
  bool active;

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
                    const scalar_t* __restrict__ grad_output, acc_t* grad_input, acc_t* grad_offset,
                    acc_t* grad_mask) {
  const int lanes = static_cast<int>(s.group_channels / V);
  const bool shuffle = lanes <= 32 && (lanes & (lanes - 1)) == 0;
  // Every thread of a block runs the same number of iterations (threads past
  // the end are inactive), so warp shuffles see full warps.
  for (int64_t base = int64_t(blockIdx.x) * blockDim.x; base < threads; base += int64_t(gridDim.x) * blockDim.x) {
    const int64_t t = base + threadIdx.x;
    const bool active = t < threads;
    AtomicSink<acc_t> sink{grad_input, grad_offset, grad_mask, lanes, shuffle, (t % lanes) == 0, active};
    backward_thread<scalar_t, acc_t, V>(s, active ? t : threads - 1, active, input, offset, mask, grad_output,
                                        sink);
  }
}

struct CudaExecutor {
  template <typename scalar_t, typename acc_t, int V>
  static void forward(const Dcnv3Shape& s, int64_t threads, const scalar_t* input, const scalar_t* offset,
                      const scalar_t* mask, scalar_t* output) {
    forward_kernel<scalar_t, acc_t, V><<<blocks_for(threads), kThreadsPerBlock, 0,
                                         at::cuda::getCurrentCUDAStream()>>>(s, threads, input, offset, mask,
                                                                             output);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <typename scalar_t, typename acc_t, int V>
  static void backward(const Dcnv3Shape& s, int64_t threads, const scalar_t* input, const scalar_t* offset,
                       const scalar_t* mask, const scalar_t* grad_output, acc_t* grad_input, acc_t* grad_offset,
                       acc_t* grad_mask) {
    backward_kernel<scalar_t, acc_t, V><<<blocks_for(threads), kThreadsPerBlock, 0,
                                          at::cuda::getCurrentCUDAStream()>>>(
        s, threads, input, offset, mask, grad_output, grad_input, grad_offset, grad_mask);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

at::Tensor dcnv3_forward_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                              int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                              int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t group,
                              int64_t group_channels, double offset_scale, int64_t im2col_step,
                              bool remove_center) {
  const c10::cuda::CUDAGuard device_guard(input.device());
  return thread_bodies_forward<CudaExecutor>(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h,
                                             pad_w, dilation_h, dilation_w, group, group_channels, offset_scale,
                                             im2col_step, remove_center);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dcnv3_backward_cuda(
    const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& grad_output,
    int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
    int64_t dilation_h, int64_t dilation_w, int64_t group, int64_t group_channels, double offset_scale,
    int64_t im2col_step, bool remove_center) {
  const c10::cuda::CUDAGuard device_guard(input.device());
  return thread_bodies_backward<CudaExecutor>(input, offset, mask, grad_output, kernel_h, kernel_w, stride_h,
                                              stride_w, pad_h, pad_w, dilation_h, dilation_w, group, group_channels,
                                              offset_scale, im2col_step, remove_center);
}

}  // namespace

TORCH_LIBRARY_IMPL(mmyolo_dcnv3, CUDA, m) {
  m.impl("dcnv3_forward", dcnv3_forward_cuda);
  m.impl("dcnv3_backward", dcnv3_backward_cuda);
}

}  // namespace mmyolo_dcnv3
