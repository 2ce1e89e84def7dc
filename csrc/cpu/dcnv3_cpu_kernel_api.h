// Entry points of the per-instruction-set CPU kernel variants.
//
// Each variant (baseline, avx2, avx512) is dcnv3_cpu_kernel.h compiled under
// its own target; dcnv3_cpu.cpp chooses one at run time. T is float or double.
//
// forward: output pixels [pixel_begin, pixel_end) (flat index over N, H_out,
//   W_out). `scratch` belongs to the calling thread.
//   The input must have at most 2^31 - 1 elements per image.
// backward: tasks [task_begin, task_end), task = (n * runs + run) * blocks +
//   block, for runs = ceil(G / groups_per_task) runs of consecutive groups
//   and blocks = ceil(group_channels / channel_block). Adds into grad_input
//   (zero-initialised by the caller); writes grad_offset_parts
//   (blocks, N, H_out, W_out, G, P, 2) and grad_mask_parts
//   (blocks, N, H_out, W_out, G, P), the per-block partial sums.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/dcnv3_math.h"

// The avx2 and avx512 variants exist where GCC-style target pragmas do (GCC
// and Clang on x86); elsewhere only the baseline is built.
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define DCNV3_CPU_X86_VARIANTS 1
#else
#define DCNV3_CPU_X86_VARIANTS 0
#endif

namespace mmyolo_dcnv3 {
namespace cpu {

// The scratch arrays' lengths are multiples of this: the kernels resolve
// points a vector at a time (up to 64 bytes of T).
template <typename T>
constexpr int64_t kPointPadding = 64 / sizeof(T);

// Per point q, the two taps along one axis of a resolved point (see
// ClampedTaps in dcnv3_cpu_kernel.h): the bilinear weights of pixels a (the
// clamped floor) and b = a + 1, and their derivatives along the axis.
template <typename T>
struct ResolvedAxis {
  T* weight_a = nullptr;
  T* weight_b = nullptr;
  T* slope_a = nullptr;
  T* slope_b = nullptr;
};

// The resolved sampling points of one pixel (all its G * P points, or those
// of a run of groups), point q at index q. Each point reads four neighbours
// inside the image: a 2x2 block whose top-left element is at offset[q] and
// neighbour k = 2 i + j is i rows down and j columns right (see
// NeighbourSteps); taps that fall outside the image have weight zero.
template <typename T>
struct ResolvedPoints {
  int32_t* offset;  // element offset of neighbour 0 (its group's first channel)
  T* weight;        // at 4 q + k: bilinear weight of neighbour k times the mask (0 outside)
  // Backward only (null in the forward's scratch):
  ResolvedAxis<T> x, y;  // the taps' weights and slopes along x and y
  T* mask = nullptr;     // the mask, 0 for a point outside the image
};

// Element steps from neighbour 0 (top left) of a resolved point to
// neighbour k: 0, right, down, down right; zero along an axis of one pixel.
struct NeighbourSteps {
  std::ptrdiff_t k[4];
};

// Per-thread scratch, owned by the caller; every array has G * P elements
// (dots: 4 G * P) rounded up to a multiple of kPointPadding<T>.
template <typename T>
struct PointScratch {
  T* tap_x;  // grid displacement of point q = g * P + p
  T* tap_y;
  int32_t* group_start;           // g * group_channels for point q
  ResolvedPoints<T> resolved[2];  // the current pixel's and the next one's
  T* dots = nullptr;              // backward: <grad_output, neighbour k> of point q at 4 q + k
};

}  // namespace cpu
}  // namespace mmyolo_dcnv3

#define DCNV3_DECLARE_CPU_KERNELS(isa)                                                                         \
  namespace mmyolo_dcnv3 {                                                                                     \
  namespace cpu {                                                                                              \
  namespace isa {                                                                                              \
  template <typename T>                                                                                        \
  void forward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, T* output,                 \
               const PointScratch<T>& scratch, int64_t pixel_begin, int64_t pixel_end);                        \
  template <typename T>                                                                                        \
  void backward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, const T* grad_output,     \
                const PointScratch<T>& scratch, int64_t groups_per_task, int64_t channel_block, T* grad_input, \
                T* grad_offset_parts, T* grad_mask_parts, int64_t task_begin, int64_t task_end);               \
  }                                                                                                            \
  }                                                                                                            \
  }

DCNV3_DECLARE_CPU_KERNELS(baseline)
#if DCNV3_CPU_X86_VARIANTS
DCNV3_DECLARE_CPU_KERNELS(avx2)
DCNV3_DECLARE_CPU_KERNELS(avx512)
#endif
#undef DCNV3_DECLARE_CPU_KERNELS
