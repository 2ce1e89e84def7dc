// CPU implementation of mmyolo_dcnv3::dcnv3_forward / dcnv3_backward.
//
// dtypes: float32 and float64 natively; bfloat16 and float16 are computed in
// float32 (inputs upcast once, results rounded once at the end).
// Threads: at::parallel_for over output pixels (forward) and over
// (image, run of groups, channel block) tasks (backward). The backward is
// deterministic: tasks write disjoint parts of grad_input, and each channel
// block its own partial of grad_offset and grad_mask, summed in a fixed order. The instruction set is detected at run
// time; MMYOLO_DCNV3_CPU_ISA=baseline|avx2|avx512 forces one (for tests and benchmarks).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/dcnv3_tensor_checks.h"
#include "cpu/dcnv3_cpu_kernel_api.h"

namespace mmyolo_dcnv3 {
namespace {

// Channels of a group handled by one backward task: bounds the repeated
// sampling arithmetic (once per block) while keeping tasks for wide groups.
constexpr int64_t kBackwardChannelBlock = 64;

enum class Isa { baseline, avx2, avx512 };

Isa detected_isa() {
#if DCNV3_CPU_X86_VARIANTS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq")) {
    return Isa::avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return Isa::avx2;
  }
#endif
  return Isa::baseline;
}

Isa selected_isa() {
  static const Isa best = detected_isa();
  const char* forced = std::getenv("MMYOLO_DCNV3_CPU_ISA");
  if (forced == nullptr || *forced == '\0') {
    return best;
  }
  const std::string name(forced);
  Isa wanted;
  if (name == "baseline") {
    wanted = Isa::baseline;
  } else if (name == "avx2") {
    wanted = Isa::avx2;
  } else if (name == "avx512") {
    wanted = Isa::avx512;
  } else {
    TORCH_CHECK_VALUE(false, "MMYOLO_DCNV3_CPU_ISA must be baseline, avx2 or avx512, got '", name, "'");
  }
  TORCH_CHECK_VALUE(static_cast<int>(wanted) <= static_cast<int>(best), "MMYOLO_DCNV3_CPU_ISA=", name,
                    " is not supported by this CPU or build");
  return wanted;
}

// Calls the variant of `kernel` for the selected instruction set.
#if DCNV3_CPU_X86_VARIANTS
#define DCNV3_CALL_CPU_KERNEL(kernel, ...) \
  switch (selected_isa()) {                \
    case Isa::avx512:                      \
      cpu::avx512::kernel(__VA_ARGS__);    \
      break;                               \
    case Isa::avx2:                        \
      cpu::avx2::kernel(__VA_ARGS__);      \
      break;                               \
    default:                               \
      cpu::baseline::kernel(__VA_ARGS__);  \
  }
#else
#define DCNV3_CALL_CPU_KERNEL(kernel, ...) cpu::baseline::kernel(__VA_ARGS__)
#endif

// Owns one thread's PointScratch, for `points` = G * P points; each array is
// padded to a multiple of kPointPadding. The backward-only arrays (dots, the
// per-axis taps, the mask) are allocated only `for_backward`, null otherwise.
template <typename T>
class ScratchBuffers {
 public:
  ScratchBuffers(int64_t points, bool for_backward)
      // Arrays of T: taps (2) and per resolved buffer (2) the weights (4);
      // for the backward also dots (4) and per buffer the x and y taps (8)
      // and the mask (1).
      : stride_(padded(points)),
        values_((2 + 2 * 4 + (for_backward ? 4 + 2 * 9 : 0)) * stride_),
        indices_(3 * stride_) {
    T* v = values_.data();
    const auto take = [&](int64_t arrays) {
      T* first = v;
      v += arrays * stride_;
      return first;
    };
    const auto take_axis = [&] { return cpu::ResolvedAxis<T>{take(1), take(1), take(1), take(1)}; };
    scratch_.tap_x = take(1);
    scratch_.tap_y = take(1);
    scratch_.group_start = indices_.data();
    for (int b = 0; b < 2; ++b) {
      cpu::ResolvedPoints<T>& r = scratch_.resolved[b];
      r.offset = indices_.data() + (1 + b) * stride_;
      r.weight = take(4);
      if (for_backward) {
        r.x = take_axis();
        r.y = take_axis();
        r.mask = take(1);
      }
    }
    if (for_backward) scratch_.dots = take(4);
    TORCH_INTERNAL_ASSERT(v == values_.data() + values_.size());
  }
  const cpu::PointScratch<T>& get() const { return scratch_; }

 private:
  static int64_t padded(int64_t points) {
    constexpr int64_t lanes = cpu::kPointPadding<T>;
    return (points + lanes - 1) / lanes * lanes;
  }

  int64_t stride_;
  std::vector<T> values_;
  std::vector<int32_t> indices_;  // group_start, then each buffer's offsets
  cpu::PointScratch<T> scratch_;
};

// The kernels address a neighbour by its int32 element offset within one image.
void check_image_size(const Dcnv3Shape& s) {
  const int64_t image_elements = s.height_in * s.width_in * s.channels();
  TORCH_CHECK_VALUE(image_elements <= std::numeric_limits<int32_t>::max(),
                    "dcnv3 on CPU: input must have at most 2^31 - 1 elements per image (H * W * C), got ",
                    image_elements);
}

// The dtype the kernels compute in for a tensor of dtype `dtype`.
at::ScalarType compute_dtype(at::ScalarType dtype) {
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble || dtype == at::kBFloat16 || dtype == at::kHalf,
              "dcnv3 on CPU supports float32, float64, bfloat16 and float16, got ", dtype);
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor dcnv3_forward_cpu(const at::Tensor& input, const at::Tensor& offset, const at::Tensor& mask,
                             int64_t kernel_h, int64_t kernel_w, int64_t stride_h, int64_t stride_w, int64_t pad_h,
                             int64_t pad_w, int64_t dilation_h, int64_t dilation_w, int64_t group,
                             int64_t group_channels, double offset_scale, int64_t /*im2col_step*/, bool remove_center) {
  const Dcnv3Shape s = checked_shape(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                                     dilation_h, dilation_w, group, group_channels, offset_scale, remove_center);
  check_image_size(s);
  const auto dtype = compute_dtype(input.scalar_type());
  const at::Tensor in = input.to(dtype).contiguous();
  const at::Tensor off = offset.to(dtype).contiguous();
  const at::Tensor msk = mask.to(dtype).contiguous();
  at::Tensor output = at::empty({s.batch, s.height_out, s.width_out, s.channels()}, in.options());
  if (output.numel() == 0) {
    return output.to(input.scalar_type());
  }
  // About 16k multiply-adds per chunk of pixels.
  const int64_t grain = std::max<int64_t>(1, 16384 / (s.channels() * s.points));
  AT_DISPATCH_FLOATING_TYPES(dtype, "dcnv3_forward_cpu", [&] {
    at::parallel_for(0, s.pixels_out(), grain, [&](int64_t begin, int64_t end) {
      const ScratchBuffers<scalar_t> scratch(s.group * s.points, /*for_backward=*/false);
      DCNV3_CALL_CPU_KERNEL(forward<scalar_t>, s, in.const_data_ptr<scalar_t>(), off.const_data_ptr<scalar_t>(),
                            msk.const_data_ptr<scalar_t>(), output.mutable_data_ptr<scalar_t>(), scratch.get(), begin,
                            end);
    });
  });
  return output.to(input.scalar_type());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> dcnv3_backward_cpu(const at::Tensor& input, const at::Tensor& offset,
                                                                  const at::Tensor& mask, const at::Tensor& grad_output,
                                                                  int64_t kernel_h, int64_t kernel_w, int64_t stride_h,
                                                                  int64_t stride_w, int64_t pad_h, int64_t pad_w,
                                                                  int64_t dilation_h, int64_t dilation_w, int64_t group,
                                                                  int64_t group_channels, double offset_scale,
                                                                  int64_t /*im2col_step*/, bool remove_center) {
  const Dcnv3Shape s = checked_shape(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                                     dilation_h, dilation_w, group, group_channels, offset_scale, remove_center);
  check_image_size(s);
  check_grad_output(s, input, grad_output);
  const auto dtype = compute_dtype(input.scalar_type());
  const at::Tensor in = input.to(dtype).contiguous();
  const at::Tensor off = offset.to(dtype).contiguous();
  const at::Tensor msk = mask.to(dtype).contiguous();
  const at::Tensor go = grad_output.to(dtype).contiguous();
  const int64_t blocks = (s.group_channels + kBackwardChannelBlock - 1) / kBackwardChannelBlock;
  // As many groups per task as still gives every thread a task: a task
  // resolves its groups' points together, a vector at a time.
  const int64_t groups_per_task = std::clamp<int64_t>(s.batch * s.group * blocks / at::get_num_threads(), 1, s.group);
  at::Tensor grad_input = at::zeros_like(in);
  at::Tensor grad_offset_parts =
      at::empty({blocks, s.batch, s.height_out, s.width_out, s.group * s.points * 2}, in.options());
  at::Tensor grad_mask_parts =
      at::empty({blocks, s.batch, s.height_out, s.width_out, s.group * s.points}, in.options());
  if (s.pixels_out() > 0) {
    AT_DISPATCH_FLOATING_TYPES(dtype, "dcnv3_backward_cpu", [&] {
      const int64_t runs = (s.group + groups_per_task - 1) / groups_per_task;
      at::parallel_for(0, s.batch * runs * blocks, 1, [&](int64_t begin, int64_t end) {
        const ScratchBuffers<scalar_t> scratch(s.group * s.points, /*for_backward=*/true);
        DCNV3_CALL_CPU_KERNEL(backward<scalar_t>, s, in.const_data_ptr<scalar_t>(), off.const_data_ptr<scalar_t>(),
                              msk.const_data_ptr<scalar_t>(), go.const_data_ptr<scalar_t>(), scratch.get(),
                              groups_per_task, kBackwardChannelBlock, grad_input.mutable_data_ptr<scalar_t>(),
                              grad_offset_parts.mutable_data_ptr<scalar_t>(),
                              grad_mask_parts.mutable_data_ptr<scalar_t>(), begin, end);
      });
    });
  }
  // Summing the per-block partials over dim 0 runs in a fixed order.
  const at::Tensor grad_offset = blocks == 1 ? grad_offset_parts[0] : grad_offset_parts.sum(0);
  const at::Tensor grad_mask = blocks == 1 ? grad_mask_parts[0] : grad_mask_parts.sum(0);
  return {grad_input.to(input.scalar_type()), grad_offset.to(offset.scalar_type()), grad_mask.to(mask.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(mmyolo_dcnv3, CPU, m) {
  m.impl("dcnv3_forward", dcnv3_forward_cpu);
  m.impl("dcnv3_backward", dcnv3_backward_cpu);
}

}  // namespace mmyolo_dcnv3
