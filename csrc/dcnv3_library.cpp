// The mmyolo_dcnv3 operator library: schemas and autocast rules.
//
// Kernels are registered per device in cpu/dcnv3_cpu.cpp and
// cuda/dcnv3_cuda.cu; autograd and the fake (meta) kernels are registered
// from Python (mmyolo_dcnv3/ops/dcnv3_op.py), so torch.compile and torch.export
// see dcnv3_forward as one op.
#include <ATen/autocast_mode.h>
#include <torch/library.h>

#include "common/dcnv3_op_schemas.h"

namespace mmyolo_dcnv3 {
namespace {

// Under autocast the op runs in the dtype of `input`: offset and mask are cast
// to it. So a float16/bfloat16 feature map (e.g. from an autocast Linear) runs
// the kernel in that dtype even if the mask came out of a float32 softmax; a
// float32 input keeps float32. The same rule holds on CPU and CUDA.
at::Tensor dcnv3_forward_autocast(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                                  int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                  int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t group,
                                  int64_t group_channels, double offset_scale, int64_t im2col_step,
                                  bool remove_center) {
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mmyolo_dcnv3::dcnv3_forward", "")
                       .typed<decltype(dcnv3_forward_autocast)>();
  const auto dtype = input.scalar_type();
  return op.call(input, offset.to(dtype), mask.to(dtype), kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                 dilation_h, dilation_w, group, group_channels, offset_scale, im2col_step, remove_center);
}

}  // namespace

TORCH_LIBRARY(mmyolo_dcnv3, m) {
  m.def(kForwardSchema);
  m.def(kBackwardSchema);
}

TORCH_LIBRARY_IMPL(mmyolo_dcnv3, AutocastCPU, m) { m.impl("dcnv3_forward", dcnv3_forward_autocast); }

TORCH_LIBRARY_IMPL(mmyolo_dcnv3, AutocastCUDA, m) { m.impl("dcnv3_forward", dcnv3_forward_autocast); }

}  // namespace mmyolo_dcnv3
