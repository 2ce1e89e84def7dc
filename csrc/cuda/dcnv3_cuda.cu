// CUDA implementation of mmyolo_dcnv3::dcnv3_forward / dcnv3_backward.
//
// dtypes: float32, float64, float16, bfloat16 (accumulated in float32).
// One thread per (output pixel, group, V channels); V is chosen so that each
// thread reads its channels with one 16-byte (or narrower) vector load. The
// per-thread arithmetic is common/dcnv3_thread_bodies.h; the __global__
// kernels are in cuda/dcnv3_cuda_kernels.cuh. The CPU test suite compiles this
// very file for the host and runs it (tests/ops/cuda_on_cpu/, docs/cuda.md).
//
// Backward: grad_input is a scatter and always uses atomicAdd, so its rounding
// may vary from run to run. grad_offset and grad_mask sum over a group's
// channels: when the threads of a group can reduce by warp shuffles
// (reduces_by_warp_shuffle) they are written once and are bitwise
// reproducible; otherwise they are added with atomics too. Either way the
// backward calls at::globalContext().alertNotDeterministic, so
// torch.use_deterministic_algorithms(True) refuses it (or warns).
#include <ATen/Context.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "common/dcnv3_thread_launch.h"
#include "cuda/dcnv3_cuda_kernels.cuh"

// The CUDA-on-CPU test build (tests/ops/cuda_on_cpu/) compiles this file with a
// host compiler: it defines DCNV3_CUDA_ON_CPU and these two macros itself, to
// launch without `<<<...>>>` and to register into a test namespace instead.
#if !defined(DCNV3_CUDA_ON_CPU)
#define DCNV3_LAUNCH(blocks, threads_per_block, stream, ...) __VA_ARGS__<<<blocks, threads_per_block, 0, stream>>>
#define DCNV3_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(mmyolo_dcnv3, CUDA, m)
#endif

namespace mmyolo_dcnv3 {
namespace {

int64_t blocks_for(int64_t threads) {
  const int64_t max_blocks = int64_t(1) << 30;
  const int64_t blocks = (threads + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return blocks < max_blocks ? blocks : max_blocks;
}

struct CudaExecutor {
  template <typename scalar_t, typename acc_t, int V>
  static void forward(const Dcnv3Shape& s, int64_t threads, const scalar_t* input, const scalar_t* offset,
                      const scalar_t* mask, scalar_t* output) {
    DCNV3_LAUNCH(blocks_for(threads), kThreadsPerBlock, at::cuda::getCurrentCUDAStream(),
                 forward_kernel<scalar_t, acc_t, V>)(s, threads, input, offset, mask, output);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }

  template <typename scalar_t, typename acc_t, int V>
  static void backward(const Dcnv3Shape& s, int64_t threads, const scalar_t* input, const scalar_t* offset,
                       const scalar_t* mask, const scalar_t* grad_output, acc_t* grad_input, acc_t* grad_offset,
                       acc_t* grad_mask) {
    at::globalContext().alertNotDeterministic(
        reduces_by_warp_shuffle(s.group_channels / V)
            ? "mmyolo_dcnv3::dcnv3_backward on CUDA (grad_input is accumulated with atomicAdd)"
            : "mmyolo_dcnv3::dcnv3_backward on CUDA (grad_input, grad_offset and grad_mask are accumulated "
              "with atomicAdd)");
    DCNV3_LAUNCH(blocks_for(threads), kThreadsPerBlock, at::cuda::getCurrentCUDAStream(),
                 backward_kernel<scalar_t, acc_t, V>)(s, threads, input, offset, mask, grad_output, grad_input,
                                                      grad_offset, grad_mask);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

at::Tensor dcnv3_forward_cuda(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                              int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                              int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t group,
                              int64_t group_channels, double offset_scale, int64_t im2col_step, bool remove_center) {
  const c10::cuda::CUDAGuard device_guard(input.device());
  return thread_bodies_forward<CudaExecutor>(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                                             dilation_h, dilation_w, group, group_channels, offset_scale, im2col_step,
                                             remove_center);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dcnv3_backward_cuda(
    const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& grad_output,
    int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
    int64_t dilation_h, int64_t dilation_w, int64_t group, int64_t group_channels, double offset_scale,
    int64_t im2col_step, bool remove_center) {
  const c10::cuda::CUDAGuard device_guard(input.device());
  return thread_bodies_backward<CudaExecutor>(input, offset, mask, grad_output, kernel_h, kernel_w, stride_h, stride_w,
                                              pad_h, pad_w, dilation_h, dilation_w, group, group_channels, offset_scale,
                                              im2col_step, remove_center);
}

}  // namespace

DCNV3_CUDA_LIBRARY_IMPL(m) {
  m.impl("dcnv3_forward", dcnv3_forward_cuda);
  m.impl("dcnv3_backward", dcnv3_backward_cuda);
}

}  // namespace mmyolo_dcnv3
