// The CPU kernels' loops, compiled once per instruction set.
//
// This header holds plain C++ over raw pointers (no ATen, no std containers),
// so that each dcnv3_cpu_kernel_<isa>.cpp can compile it under its own
// `#pragma GCC target` without compiling any shared inline code for that
// target. Each includer defines DCNV3_CPU_ISA (the namespace of its variant)
// first; dcnv3_cpu.cpp picks the variant at run time, drives the threads and
// owns the scratch memory.
//
// For each (pixel, group) the kernels first resolve the P points into a short
// list of (corner pointer, weight) pairs, skipping points outside the image,
// then sweep the group's channels in blocks of kBlock (the rest in blocks of
// 8, 4 and 1), keeping a block's sums in registers across all points (kBlock
// is one 64-byte vector on AVX-512).
//
// Work split (T is float or double; reduced precision is upcast by the caller):
// * forward: one task per output pixel; it writes only that pixel's channels.
// * backward: one task per (image n, group g, block of channels). A task
//   writes grad_input only in image n, group g, its channels, so no two tasks
//   write the same element and the result does not depend on the number of
//   threads. Its partial sums of grad_offset and grad_mask over its channels
//   go to a per-block slice that the caller sums in a fixed order.
#pragma once

#ifndef DCNV3_CPU_ISA
#error "define DCNV3_CPU_ISA before including dcnv3_cpu_kernel.h"
#endif

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/dcnv3_math.h"
#include "cpu/dcnv3_cpu_kernel_api.h"

namespace mmyolo_dcnv3 {
namespace cpu {
namespace DCNV3_CPU_ISA {
namespace {

template <typename T>
constexpr int64_t kBlock = 64 / sizeof(T);

// The contributing points of one (pixel, group): for point q < count, the
// four neighbours' start of group (corner[4q + k]; `zeros` outside the image),
// their weights, the point's index p and mask value, and with kDerivatives
// the weights' derivatives. Forward folds the mask into the weights.
template <typename T, bool kDerivatives>
int64_t resolve_points(const Dcnv3Shape& s, const PointScratch<T>& sc, const T* input, const T* zeros,
                       const SamplingGrid<T>& grid, int64_t n, int64_t g, const T* off, const T* msk) {
  const int64_t C = s.channels();
  const int64_t row_stride = s.width_in * C;
  const T* image = input + n * s.height_in * row_stride + g * s.group_channels;
  int64_t count = 0;
  for (int64_t p = 0; p < s.points; ++p) {
    Bilinear<T> b;
    if (!bilinear_at(grid.y(sc.tap_y[p], off[2 * p + 1]), grid.x(sc.tap_x[p], off[2 * p]), s.height_in,
                     s.width_in, b)) {
      continue;
    }
    const T* top_left = image + b.y0 * row_stride + b.x0 * C;
    const int64_t step[4] = {0, C, row_stride, row_stride + C};
    const T m = msk[p];
    T* weight = sc.weight + 4 * count;
    const T** corner = sc.corner + 4 * count;
    for (int k = 0; k < 4; ++k) {
      corner[k] = b.inside[k] ? top_left + step[k] : zeros;
      weight[k] = kDerivatives ? b.weight[k] : b.weight[k] * m;
      if (kDerivatives) {
        sc.dweight_dx[4 * count + k] = b.dweight_dx[k];
        sc.dweight_dy[4 * count + k] = b.dweight_dy[k];
      }
    }
    sc.point[count] = p;
    sc.mask[count] = m;
    ++count;
  }
  return count;
}

// out[c + l] = sum over slots (point q, corner k) of weight * corner[c + l],
// for l < Width (weights already include the mask). One accumulator per
// corner k: four independent FMA chains instead of one long one.
template <typename T, int64_t Width>
inline void gather_block(const PointScratch<T>& sc, int64_t count, int64_t c, T* __restrict__ out) {
  T acc[4][Width] = {};
  for (int64_t q = 0; q < count; ++q) {
    for (int k = 0; k < 4; ++k) {
      const T w = sc.weight[4 * q + k];
      const T* __restrict__ src = sc.corner[4 * q + k] + c;
      for (int64_t l = 0; l < Width; ++l) acc[k][l] += w * src[l];
    }
  }
  for (int64_t l = 0; l < Width; ++l) out[c + l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
}

// Sum of a[l] * b[l] over l < Width, in a fixed tree order that vectorises.
template <typename T, int64_t Width>
inline T dot(const T* __restrict__ a, const T* __restrict__ b) {
  T prod[Width];
  for (int64_t l = 0; l < Width; ++l) prod[l] = a[l] * b[l];
  for (int64_t half = Width / 2; half > 0; half /= 2) {
    for (int64_t l = 0; l < half; ++l) prod[l] += prod[l + half];
  }
  return prod[0];
}

// For channels [c, c + Width) of one (pixel, group): adds each point-corner's
// <grad, corner> to dots[4q + k] and scatters mask * weight * grad into
// grad_input at the corner (skipped outside the image).
template <typename T, int64_t Width>
inline void scatter_block(const PointScratch<T>& sc, int64_t count, const T* input, T* grad_input, int64_t c,
                          const T* __restrict__ grad, T* dots) {
  for (int64_t q = 0; q < count; ++q) {
    for (int k = 0; k < 4; ++k) {
      const int64_t slot = 4 * q + k;
      // Neighbours outside the image (and those whose every coefficient is
      // zero, at exact integer locations) contribute nothing.
      if (sc.weight[slot] == T(0) && sc.dweight_dx[slot] == T(0) && sc.dweight_dy[slot] == T(0)) continue;
      const T* __restrict__ src = sc.corner[slot] + c;
      dots[slot] += dot<T, Width>(grad, src);
      T* __restrict__ dst = grad_input + (src - input);
      const T alpha = sc.mask[q] * sc.weight[slot];
      for (int64_t l = 0; l < Width; ++l) dst[l] += alpha * grad[l];
    }
  }
}

// Calls body(width, c) for channels [c, end) in blocks of kBlock, then of 8
// and 4 channels, then single ones (width a std::integral_constant), so that
// group widths that are not a multiple of kBlock still run vectorised.
template <typename T, typename Body>
inline void for_channel_blocks(int64_t c, int64_t end, Body&& body) {
  constexpr int64_t B = kBlock<T>;
  for (; c + B <= end; c += B) body(std::integral_constant<int64_t, B>{}, c);
  if constexpr (B > 8) {
    for (; c + 8 <= end; c += 8) body(std::integral_constant<int64_t, 8>{}, c);
  }
  for (; c + 4 <= end; c += 4) body(std::integral_constant<int64_t, 4>{}, c);
  for (; c < end; ++c) body(std::integral_constant<int64_t, 1>{}, c);
}

template <typename T>
void fill_taps(const Dcnv3Shape& s, const PointScratch<T>& sc) {
  for (int64_t p = 0; p < s.points; ++p) {
    int64_t i, j;
    point_position(s, p, i, j);
    sc.tap_x[p] = SamplingGrid<T>::tap_x(s, i);
    sc.tap_y[p] = SamplingGrid<T>::tap_y(s, j);
  }
}

}  // namespace

template <typename T>
void forward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, T* output, const T* zeros,
             const PointScratch<T>& scratch, int64_t pixel_begin, int64_t pixel_end) {
  const int64_t C = s.channels(), GC = s.group_channels, P = s.points;
  fill_taps(s, scratch);
  for (int64_t pixel = pixel_begin; pixel < pixel_end; ++pixel) {
    const int64_t wo = pixel % s.width_out;
    const int64_t ho = (pixel / s.width_out) % s.height_out;
    const int64_t n = pixel / (s.width_out * s.height_out);
    const SamplingGrid<T> grid(s, ho, wo);
    for (int64_t g = 0; g < s.group; ++g) {
      const int64_t point0 = (pixel * s.group + g) * P;
      const int64_t count =
          resolve_points<T, false>(s, scratch, input, zeros, grid, n, g, offset + 2 * point0, mask + point0);
      T* out = output + pixel * C + g * GC;
      for_channel_blocks<T>(0, GC, [&](auto width, int64_t c) {
        gather_block<T, decltype(width)::value>(scratch, count, c, out);
      });
    }
  }
}

template <typename T>
void backward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, const T* grad_output,
              const T* zeros, const PointScratch<T>& scratch, int64_t channel_block, T* grad_input,
              T* grad_offset_parts, T* grad_mask_parts, int64_t task_begin, int64_t task_end) {
  const int64_t C = s.channels(), GC = s.group_channels, P = s.points;
  const int64_t blocks = (GC + channel_block - 1) / channel_block;
  const int64_t pixels_per_image = s.height_out * s.width_out;
  const int64_t part_stride = s.pixels_out() * s.group * P;  // one block's slice of grad_mask_parts
  fill_taps(s, scratch);
  for (int64_t task = task_begin; task < task_end; ++task) {
    const int64_t block = task % blocks;
    const int64_t g = (task / blocks) % s.group;
    const int64_t n = task / (blocks * s.group);
    const int64_t c_begin = block * channel_block;
    const int64_t c_end = std::min(c_begin + channel_block, GC);
    T* grad_offset_part = grad_offset_parts + block * part_stride * 2;
    T* grad_mask_part = grad_mask_parts + block * part_stride;
    for (int64_t pixel = n * pixels_per_image; pixel < (n + 1) * pixels_per_image; ++pixel) {
      const int64_t wo = pixel % s.width_out;
      const int64_t ho = (pixel / s.width_out) % s.height_out;
      const SamplingGrid<T> grid(s, ho, wo);
      const int64_t point0 = (pixel * s.group + g) * P;
      const int64_t count =
          resolve_points<T, true>(s, scratch, input, zeros, grid, n, g, offset + 2 * point0, mask + point0);
      const T* go = grad_output + pixel * C + g * GC;
      T* dots = scratch.dots;
      std::fill(dots, dots + 4 * count, T(0));
      for_channel_blocks<T>(c_begin, c_end, [&](auto width, int64_t c) {
        scatter_block<T, decltype(width)::value>(scratch, count, input, grad_input, c, go + c, dots);
      });
      std::fill(grad_mask_part + point0, grad_mask_part + point0 + P, T(0));
      std::fill(grad_offset_part + 2 * point0, grad_offset_part + 2 * (point0 + P), T(0));
      for (int64_t q = 0; q < count; ++q) {
        T d_mask = 0, d_x = 0, d_y = 0;
        for (int k = 0; k < 4; ++k) {
          d_mask += scratch.weight[4 * q + k] * dots[4 * q + k];
          d_x += scratch.dweight_dx[4 * q + k] * dots[4 * q + k];
          d_y += scratch.dweight_dy[4 * q + k] * dots[4 * q + k];
        }
        const int64_t p = point0 + scratch.point[q];
        grad_mask_part[p] = d_mask;
        grad_offset_part[2 * p] = d_x * scratch.mask[q] * grid.scale;
        grad_offset_part[2 * p + 1] = d_y * scratch.mask[q] * grid.scale;
      }
    }
  }
}

#define DCNV3_INSTANTIATE_CPU_KERNELS(T)                                                                       \
  template void forward<T>(const Dcnv3Shape&, const T*, const T*, const T*, T*, const T*, const PointScratch<T>&, \
                           int64_t, int64_t);                                                                  \
  template void backward<T>(const Dcnv3Shape&, const T*, const T*, const T*, const T*, const T*,               \
                            const PointScratch<T>&, int64_t, T*, T*, T*, int64_t, int64_t);
DCNV3_INSTANTIATE_CPU_KERNELS(float)
DCNV3_INSTANTIATE_CPU_KERNELS(double)
#undef DCNV3_INSTANTIATE_CPU_KERNELS

}  // namespace DCNV3_CPU_ISA
}  // namespace cpu
}  // namespace mmyolo_dcnv3
