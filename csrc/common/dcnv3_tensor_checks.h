// Checks shared by the CPU and CUDA entry points: they guard memory safety when
// the registered op is called directly. The Python API (mmyolo_dcnv3.ops)
// validates first, with messages aimed at users.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "common/dcnv3_math.h"

namespace mmyolo_dcnv3 {

// Output length of one spatial dimension, rounded down like the Python side
// (mmyolo_dcnv3/ops/validation.py, output_size): C++ division truncates
// toward zero, which would turn a negative span into one output row.
inline int64_t output_size(int64_t size_in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation) {
  const int64_t span = size_in + 2 * pad - (dilation * (kernel - 1) + 1);
  const int64_t floor_quotient = span >= 0 ? span / stride : -((-span + stride - 1) / stride);
  return floor_quotient + 1;
}

inline Dcnv3Shape checked_shape(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                                int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t group,
                                int64_t group_channels, double offset_scale, bool remove_center) {
  TORCH_CHECK(input.dim() == 4 && offset.dim() == 4 && mask.dim() == 4,
              "dcnv3: input, offset and mask must be 4-D (channels-last), got ", input.dim(), ", ", offset.dim(),
              " and ", mask.dim(), " dimensions");
  TORCH_CHECK(kernel_h > 0 && kernel_w > 0 && stride_h > 0 && stride_w > 0 && dilation_h > 0 && dilation_w > 0 &&
                  group > 0 && group_channels > 0,
              "dcnv3: kernel, stride, dilation, group and group_channels must be positive");
  TORCH_CHECK(pad_h >= 0 && pad_w >= 0, "dcnv3: pad_h and pad_w must be non-negative");
  TORCH_CHECK(!remove_center || (kernel_h == kernel_w && kernel_h % 2 == 1 && kernel_h >= 3),
              "dcnv3: remove_center needs an odd, square kernel of at least 3x3, got ", kernel_h, "x", kernel_w);
  TORCH_CHECK(input.scalar_type() == offset.scalar_type() && input.scalar_type() == mask.scalar_type(),
              "dcnv3: input, offset and mask must share a dtype, got ", input.scalar_type(), ", ", offset.scalar_type(),
              " and ", mask.scalar_type());
  TORCH_CHECK(input.device() == offset.device() && input.device() == mask.device(),
              "dcnv3: input, offset and mask must be on one device");
  Dcnv3Shape s;
  s.batch = input.size(0);
  s.height_in = input.size(1);
  s.width_in = input.size(2);
  s.group = group;
  s.group_channels = group_channels;
  s.kernel_h = kernel_h;
  s.kernel_w = kernel_w;
  s.stride_h = stride_h;
  s.stride_w = stride_w;
  s.pad_h = pad_h;
  s.pad_w = pad_w;
  s.dilation_h = dilation_h;
  s.dilation_w = dilation_w;
  s.remove_center = remove_center;
  s.points = kernel_h * kernel_w - (remove_center ? 1 : 0);
  s.offset_scale = offset_scale;
  s.height_out = output_size(s.height_in, kernel_h, stride_h, pad_h, dilation_h);
  s.width_out = output_size(s.width_in, kernel_w, stride_w, pad_w, dilation_w);
  TORCH_CHECK(s.height_out > 0 && s.width_out > 0, "dcnv3: input of ", s.height_in, "x", s.width_in,
              " pixels is too small for kernel ", kernel_h, "x", kernel_w, ", stride (", stride_h, ", ", stride_w,
              "), dilation (", dilation_h, ", ", dilation_w, ") and padding (", pad_h, ", ", pad_w,
              "): the output would be ", s.height_out, "x", s.width_out);
  TORCH_CHECK(input.size(3) == s.channels(), "dcnv3: input has ", input.size(3),
              " channels, expected group * group_channels = ", s.channels());
  const std::vector<int64_t> offset_shape = {s.batch, s.height_out, s.width_out, group * s.points * 2};
  const std::vector<int64_t> mask_shape = {s.batch, s.height_out, s.width_out, group * s.points};
  TORCH_CHECK(offset.sizes() == at::IntArrayRef(offset_shape), "dcnv3: offset must have shape ",
              at::IntArrayRef(offset_shape), ", got ", offset.sizes());
  TORCH_CHECK(mask.sizes() == at::IntArrayRef(mask_shape), "dcnv3: mask must have shape ", at::IntArrayRef(mask_shape),
              ", got ", mask.sizes());
  return s;
}

inline void check_grad_output(const Dcnv3Shape& s, const at::Tensor& input, const at::Tensor& grad_output) {
  const std::vector<int64_t> expected = {s.batch, s.height_out, s.width_out, s.channels()};
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(expected), "dcnv3: grad_output must have shape ",
              at::IntArrayRef(expected), ", got ", grad_output.sizes());
  TORCH_CHECK(grad_output.scalar_type() == input.scalar_type() && grad_output.device() == input.device(),
              "dcnv3: grad_output must match input's dtype and device");
}

}  // namespace mmyolo_dcnv3
