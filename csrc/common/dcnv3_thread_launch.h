// Host side of the thread-body kernels (dcnv3_thread_bodies.h): checks,
// dtype dispatch, channels-per-thread choice, gradient accumulators, for the
// CUDA launcher (cuda/dcnv3_cuda.cu); `Executor` runs the bodies:
//
//   Executor::forward<scalar_t, acc_t, V>(shape, threads, input, offset, mask, output)
//   Executor::backward<scalar_t, acc_t, V>(shape, threads, input, offset, mask, grad_output,
//                                          grad_input_acc, grad_offset_acc, grad_mask_acc)
//
// Gradients are accumulated in acc_t (float32 for float16/bfloat16, else the
// input's dtype) in zero-initialised buffers, then rounded once.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <tuple>
#include <type_traits>

#include "common/dcnv3_tensor_checks.h"
#include "common/dcnv3_thread_bodies.h"

namespace mmyolo_dcnv3 {

// Calls f(std::integral_constant<int, V>) for the runtime width v.
template <typename scalar_t, typename F>
void with_pack_width(int v, F&& f) {
  switch (v) {
    case 8:
      if constexpr (8 * sizeof(scalar_t) <= 16) return f(std::integral_constant<int, 8>{});
      break;
    case 4:
      if constexpr (4 * sizeof(scalar_t) <= 16) return f(std::integral_constant<int, 4>{});
      break;
    case 2:
      return f(std::integral_constant<int, 2>{});
    default:
      break;
  }
  f(std::integral_constant<int, 1>{});
}

template <typename Executor>
at::Tensor thread_bodies_forward(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                                 int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                                 int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t group,
                                 int64_t group_channels, double offset_scale, int64_t /*im2col_step*/,
                                 bool remove_center) {
  const Dcnv3Shape s = checked_shape(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                                     dilation_h, dilation_w, group, group_channels, offset_scale, remove_center);
  const at::Tensor in = input.contiguous(), off = offset.contiguous(), msk = mask.contiguous();
  at::Tensor output = at::empty({s.batch, s.height_out, s.width_out, s.channels()}, in.options());
  if (output.numel() == 0) return output;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.scalar_type(), "dcnv3_forward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const void* pointers[] = {in.const_data_ptr(), output.const_data_ptr()};
    const int v = pack_width(s.group_channels, sizeof(scalar_t), pointers, 2);
    with_pack_width<scalar_t>(v, [&](auto width) {
      constexpr int V = decltype(width)::value;
      Executor::template forward<scalar_t, acc_t, V>(
          s, s.pixels_out() * s.group * (s.group_channels / V), in.const_data_ptr<scalar_t>(),
          off.const_data_ptr<scalar_t>(), msk.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>());
    });
  });
  return output;
}

template <typename Executor>
std::tuple<at::Tensor, at::Tensor, at::Tensor> thread_bodies_backward(
    const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask, const at::Tensor& grad_output,
    int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h, int64_t pad_w,
    int64_t dilation_h, int64_t dilation_w, int64_t group, int64_t group_channels, double offset_scale,
    int64_t /*im2col_step*/, bool remove_center) {
  const Dcnv3Shape s = checked_shape(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                                     dilation_h, dilation_w, group, group_channels, offset_scale, remove_center);
  check_grad_output(s, input, grad_output);
  const at::Tensor in = input.contiguous(), off = offset.contiguous(), msk = mask.contiguous();
  const at::Tensor go = grad_output.contiguous();
  const auto acc_dtype = at::toOpMathType(in.scalar_type());
  at::Tensor grad_input = at::zeros(in.sizes(), in.options().dtype(acc_dtype));
  at::Tensor grad_offset = at::zeros(off.sizes(), off.options().dtype(acc_dtype));
  at::Tensor grad_mask = at::zeros(msk.sizes(), msk.options().dtype(acc_dtype));
  if (s.pixels_out() > 0) {
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.scalar_type(), "dcnv3_backward", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const void* pointers[] = {in.const_data_ptr(), go.const_data_ptr()};
      const int v = pack_width(s.group_channels, sizeof(scalar_t), pointers, 2);
      with_pack_width<scalar_t>(v, [&](auto width) {
        constexpr int V = decltype(width)::value;
        Executor::template backward<scalar_t, acc_t, V>(
            s, s.pixels_out() * s.group * (s.group_channels / V), in.const_data_ptr<scalar_t>(),
            off.const_data_ptr<scalar_t>(), msk.const_data_ptr<scalar_t>(), go.const_data_ptr<scalar_t>(),
            grad_input.mutable_data_ptr<acc_t>(), grad_offset.mutable_data_ptr<acc_t>(),
            grad_mask.mutable_data_ptr<acc_t>());
      });
    });
  }
  return {grad_input.to(input.scalar_type()), grad_offset.to(offset.scalar_type()), grad_mask.to(mask.scalar_type())};
}

}  // namespace mmyolo_dcnv3
