// The schemas of the DCNv3 operators (contract: docs/operator.md), registered
// by dcnv3_library.cpp in the mmyolo_dcnv3 namespace and by the CUDA-on-CPU
// test library (tests/ops/cuda_on_cpu/) in a namespace of its own.
#pragma once

namespace mmyolo_dcnv3 {

constexpr char kForwardSchema[] =
    "dcnv3_forward(Tensor input, Tensor offset, Tensor mask, int kernel_h, int kernel_w, int stride_h, "
    "int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, int group, int group_channels, "
    "float offset_scale, int im2col_step, bool remove_center) -> Tensor";

constexpr char kBackwardSchema[] =
    "dcnv3_backward(Tensor input, Tensor offset, Tensor mask, Tensor grad_output, int kernel_h, int kernel_w, "
    "int stride_h, int stride_w, int pad_h, int pad_w, int dilation_h, int dilation_w, int group, "
    "int group_channels, float offset_scale, int im2col_step, bool remove_center) -> (Tensor, Tensor, Tensor)";

}  // namespace mmyolo_dcnv3
