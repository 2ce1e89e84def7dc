// The CPU kernels' loops, compiled once per instruction set.
//
// This header holds plain C++ over raw pointers (no ATen), so that each
// dcnv3_cpu_kernel_<isa>.cpp can compile it under its own `#pragma GCC
// target` without compiling any shared inline code for that target. Each
// includer defines DCNV3_CPU_ISA (the namespace of its variant) first;
// dcnv3_cpu.cpp picks the variant at run time and drives the threads.
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

#include "common/dcnv3_math.h"
#include "cpu/dcnv3_cpu_kernel_api.h"

namespace mmyolo_dcnv3 {
namespace cpu {
namespace DCNV3_CPU_ISA {
namespace {

// Partial sums kept in this many independent lanes so that dot products
// vectorise without reassociating floating-point additions.
template <typename T>
constexpr int64_t kLanes = 64 / sizeof(T);

// out[c] += sum_k weight[k] * corner[k][c] for c < count.
template <typename T>
inline void accumulate_bilinear(T* __restrict__ out, const T* __restrict__ c0, const T* __restrict__ c1,
                                const T* __restrict__ c2, const T* __restrict__ c3, const T w[4], int64_t count) {
  const T w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  for (int64_t c = 0; c < count; ++c) {
    out[c] += w0 * c0[c] + w1 * c1[c] + w2 * c2[c] + w3 * c3[c];
  }
}

// dot[k] = sum_c grad[c] * corner[k][c] for c < count.
template <typename T>
inline void dot_corners(const T* __restrict__ grad, const T* const corner[4], int64_t count, T dot[4]) {
  constexpr int64_t L = kLanes<T>;
  T lanes[4][L] = {};
  const T* __restrict__ c0 = corner[0];
  const T* __restrict__ c1 = corner[1];
  const T* __restrict__ c2 = corner[2];
  const T* __restrict__ c3 = corner[3];
  int64_t c = 0;
  for (; c + L <= count; c += L) {
    for (int64_t l = 0; l < L; ++l) {
      const T go = grad[c + l];
      lanes[0][l] += go * c0[c + l];
      lanes[1][l] += go * c1[c + l];
      lanes[2][l] += go * c2[c + l];
      lanes[3][l] += go * c3[c + l];
    }
  }
  for (int64_t l = 0; c < count; ++c, ++l) {
    const T go = grad[c];
    lanes[0][l] += go * c0[c];
    lanes[1][l] += go * c1[c];
    lanes[2][l] += go * c2[c];
    lanes[3][l] += go * c3[c];
  }
  for (int k = 0; k < 4; ++k) {
    T sum = 0;
    for (int64_t l = 0; l < L; ++l) sum += lanes[k][l];
    dot[k] = sum;
  }
}

// dst[c] += alpha * src[c] for c < count.
template <typename T>
inline void axpy(T* __restrict__ dst, const T* __restrict__ src, T alpha, int64_t count) {
  for (int64_t c = 0; c < count; ++c) dst[c] += alpha * src[c];
}

}  // namespace

template <typename T>
void forward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, T* output, const T* zeros,
                  int64_t pixel_begin, int64_t pixel_end) {
  const int64_t C = s.channels(), GC = s.group_channels, P = s.points;
  for (int64_t pixel = pixel_begin; pixel < pixel_end; ++pixel) {
    const int64_t wo = pixel % s.width_out;
    const int64_t ho = (pixel / s.width_out) % s.height_out;
    const int64_t n = pixel / (s.width_out * s.height_out);
    const SamplingGrid<T> grid(s, ho, wo);
    T* out = output + pixel * C;
    std::fill(out, out + C, T(0));
    for (int64_t g = 0; g < s.group; ++g) {
      const T* off = offset + (pixel * s.group + g) * P * 2;
      const T* msk = mask + (pixel * s.group + g) * P;
      for (int64_t p = 0; p < P; ++p) {
        int64_t i, j;
        point_position(s, p, i, j);
        Bilinear<T> b;
        if (!bilinear_at(grid.y(grid.tap_y(s, j), off[2 * p + 1]), grid.x(grid.tap_x(s, i), off[2 * p]),
                         s.height_in, s.width_in, b)) {
          continue;
        }
        const T* corner[4];
        T w[4];
        for (int k = 0; k < 4; ++k) {
          corner[k] = b.inside[k] ? input + input_index(s, n, b.row(k), b.col(k), g) : zeros;
          w[k] = b.weight[k] * msk[p];
        }
        accumulate_bilinear(out + g * GC, corner[0], corner[1], corner[2], corner[3], w, GC);
      }
    }
  }
}

template <typename T>
void backward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, const T* grad_output,
                   const T* zeros, int64_t channel_block, T* grad_input, T* grad_offset_parts, T* grad_mask_parts,
                   int64_t task_begin, int64_t task_end) {
  const int64_t C = s.channels(), GC = s.group_channels, P = s.points;
  const int64_t blocks = (GC + channel_block - 1) / channel_block;
  const int64_t pixels_per_image = s.height_out * s.width_out;
  const int64_t part_stride = s.pixels_out() * s.group * P;  // one block's slice of grad_mask_parts
  for (int64_t task = task_begin; task < task_end; ++task) {
    const int64_t block = task % blocks;
    const int64_t g = (task / blocks) % s.group;
    const int64_t n = task / (blocks * s.group);
    const int64_t c_begin = block * channel_block;
    const int64_t count = std::min(channel_block, GC - c_begin);
    T* grad_offset_part = grad_offset_parts + block * part_stride * 2;
    T* grad_mask_part = grad_mask_parts + block * part_stride;
    for (int64_t pixel = n * pixels_per_image; pixel < (n + 1) * pixels_per_image; ++pixel) {
      const int64_t wo = pixel % s.width_out;
      const int64_t ho = (pixel / s.width_out) % s.height_out;
      const SamplingGrid<T> grid(s, ho, wo);
      const T* go = grad_output + pixel * C + g * GC + c_begin;
      const int64_t point0 = (pixel * s.group + g) * P;
      const T* off = offset + point0 * 2;
      const T* msk = mask + point0;
      for (int64_t p = 0; p < P; ++p) {
        int64_t i, j;
        point_position(s, p, i, j);
        Bilinear<T> b;
        T d_mask = 0, d_x = 0, d_y = 0;
        if (bilinear_at(grid.y(grid.tap_y(s, j), off[2 * p + 1]), grid.x(grid.tap_x(s, i), off[2 * p]),
                        s.height_in, s.width_in, b)) {
          const T* corner[4];
          int64_t index[4];
          for (int k = 0; k < 4; ++k) {
            index[k] = b.inside[k] ? input_index(s, n, b.row(k), b.col(k), g) + c_begin : 0;
            corner[k] = b.inside[k] ? input + index[k] : zeros;
          }
          T dot[4];
          dot_corners(go, corner, count, dot);
          for (int k = 0; k < 4; ++k) {
            d_mask += b.weight[k] * dot[k];
            d_x += b.dweight_dx[k] * dot[k];
            d_y += b.dweight_dy[k] * dot[k];
            if (b.inside[k]) axpy(grad_input + index[k], go, msk[p] * b.weight[k], count);
          }
          d_x *= msk[p] * grid.scale;
          d_y *= msk[p] * grid.scale;
        }
        grad_mask_part[point0 + p] = d_mask;
        grad_offset_part[(point0 + p) * 2] = d_x;
        grad_offset_part[(point0 + p) * 2 + 1] = d_y;
      }
    }
  }
}

#define DCNV3_INSTANTIATE_CPU_KERNELS(T)                                                                 \
  template void forward<T>(const Dcnv3Shape&, const T*, const T*, const T*, T*, const T*, int64_t, int64_t); \
  template void backward<T>(const Dcnv3Shape&, const T*, const T*, const T*, const T*, const T*, int64_t, T*, \
                            T*, T*, int64_t, int64_t);
DCNV3_INSTANTIATE_CPU_KERNELS(float)
DCNV3_INSTANTIATE_CPU_KERNELS(double)
#undef DCNV3_INSTANTIATE_CPU_KERNELS

}  // namespace DCNV3_CPU_ISA
}  // namespace cpu
}  // namespace mmyolo_dcnv3
