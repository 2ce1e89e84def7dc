// Host emulation of the CUDA kernels, for tests on machines without a GPU.
//
// mmyolo_dcnv3::emulate_cuda_forward / emulate_cuda_backward (CPU tensors)
// run the CUDA kernels' per-thread bodies (common/dcnv3_thread_bodies.h)
// through the CUDA launcher's host logic (common/dcnv3_thread_launch.h), one
// thread after another, with plain additions where the device uses atomics
// and warp shuffles. Slow; not for production use.
#include <torch/library.h>

#include "common/dcnv3_thread_launch.h"

namespace mmyolo_dcnv3 {
namespace {

template <typename acc_t>
struct SequentialSink {
  acc_t* grad_input;
  acc_t* grad_offset;
  acc_t* grad_mask;

  void add_input(int64_t index, acc_t value) { grad_input[index] += value; }
  void add_point(int64_t point, acc_t d_mask, acc_t d_x, acc_t d_y) {
    grad_mask[point] += d_mask;
    grad_offset[2 * point] += d_x;
    grad_offset[2 * point + 1] += d_y;
  }
};

struct SequentialExecutor {
  template <typename scalar_t, typename acc_t, int V>
  static void forward(const Dcnv3Shape& s, int64_t threads, const scalar_t* input, const scalar_t* offset,
                      const scalar_t* mask, scalar_t* output) {
    for (int64_t t = 0; t < threads; ++t) forward_thread<scalar_t, acc_t, V>(s, t, input, offset, mask, output);
  }

  template <typename scalar_t, typename acc_t, int V>
  static void backward(const Dcnv3Shape& s, int64_t threads, const scalar_t* input, const scalar_t* offset,
                       const scalar_t* mask, const scalar_t* grad_output, acc_t* grad_input, acc_t* grad_offset,
                       acc_t* grad_mask) {
    SequentialSink<acc_t> sink{grad_input, grad_offset, grad_mask};
    for (int64_t t = 0; t < threads; ++t) {
      backward_thread<scalar_t, acc_t, V>(s, t, true, input, offset, mask, grad_output, sink);
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(mmyolo_dcnv3, CPU, m) {
  m.impl("emulate_cuda_forward", thread_bodies_forward<SequentialExecutor>);
  m.impl("emulate_cuda_backward", thread_bodies_backward<SequentialExecutor>);
}

}  // namespace mmyolo_dcnv3
