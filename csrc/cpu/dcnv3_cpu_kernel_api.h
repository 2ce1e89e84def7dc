// Entry points of the per-instruction-set CPU kernel variants.
//
// Each variant (baseline, avx2, avx512) is dcnv3_cpu_kernel.h compiled under
// its own target; dcnv3_cpu.cpp chooses one at run time. T is float or double.
//
// forward: output pixels [pixel_begin, pixel_end) (flat index over N, H_out,
//   W_out). `zeros` points to group_channels zeros, read in place of
//   neighbours outside the image. `scratch` belongs to the calling thread.
//   The input must have at most 2^31 - 1 elements per image.
// backward: tasks [task_begin, task_end), task = (n * runs + run) * blocks +
//   block, for runs = ceil(G / groups_per_task) runs of consecutive groups
//   and blocks = ceil(group_channels / channel_block). Adds into grad_input
//   (zero-initialised by the caller); writes grad_offset_parts
//   (blocks, N, H_out, W_out, G, P, 2) and grad_mask_parts
//   (blocks, N, H_out, W_out, G, P), the per-block partial sums.
#pragma once

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

// The resolved sampling points of one pixel (all its G * P points, or those
// of a run of groups), point q at index q.
template <typename T>
struct ResolvedPoints {
  const T** corner[4];  // neighbour k: its group's first channel, or `zeros` outside the image
  T* weight[4];         // its bilinear weight times the mask (0 outside)
  T* frac_x;            // backward: fractional parts of the sampling location
  T* frac_y;
  T* mask;              // backward: the mask, 0 for a point outside the image
};

// Per-thread scratch, owned by the caller; every array has G * P elements
// (dots: 4 G * P) rounded up to a multiple of kPointPadding<T>.
template <typename T>
struct PointScratch {
  T* tap_x;                     // grid displacement of point q = g * P + p
  T* tap_y;
  int32_t* group_start;         // g * group_channels for point q
  ResolvedPoints<T> resolved[2];  // the current pixel's and the next one's
  T* dots;                      // backward: <grad_output, neighbour k> of point q at 4 q + k
};

}  // namespace cpu
}  // namespace mmyolo_dcnv3

#define DCNV3_DECLARE_CPU_KERNELS(isa)                                                                    \
  namespace mmyolo_dcnv3 {                                                                                \
  namespace cpu {                                                                                         \
  namespace isa {                                                                                         \
  template <typename T>                                                                                   \
  void forward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, T* output,           \
               const T* zeros, const PointScratch<T>& scratch, int64_t pixel_begin, int64_t pixel_end);   \
  template <typename T>                                                                                   \
  void backward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, const T* grad_output, \
                const T* zeros, const PointScratch<T>& scratch, int64_t groups_per_task,                  \
                int64_t channel_block,                                                                    \
                T* grad_input, T* grad_offset_parts, T* grad_mask_parts, int64_t task_begin,               \
                int64_t task_end);                                                                        \
  }                                                                                                       \
  }                                                                                                       \
  }

DCNV3_DECLARE_CPU_KERNELS(baseline)
#if DCNV3_CPU_X86_VARIANTS
DCNV3_DECLARE_CPU_KERNELS(avx2)
DCNV3_DECLARE_CPU_KERNELS(avx512)
#endif
#undef DCNV3_DECLARE_CPU_KERNELS
