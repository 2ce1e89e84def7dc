// The CPU kernels' loops, compiled once per instruction set.
//
// This header holds plain C++ over raw pointers (no ATen, no std containers),
// so that each dcnv3_cpu_kernel_<isa>.cpp can compile it under its own
// `#pragma GCC target` without compiling any shared inline code for that
// target. Each includer defines DCNV3_CPU_ISA (the namespace of its variant)
// and DCNV3_CPU_VECTOR_BYTES (its native vector width) first; dcnv3_cpu.cpp
// picks the variant at run time, drives the threads and owns the scratch
// memory.
//
// Two phases per output pixel:
// * resolve: for a run of sampling points (all G * P of the pixel in the
//   forward, those of the task's groups in the backward), the location and
//   its four neighbours' addresses and weights, a vector of points at a time
//   (GCC/Clang vector extensions: structure-of-arrays scratch, int32 element
//   offsets, a floor from truncation), without branches.
// * channels: sweep a group's channels in blocks of kBlock (the rest in
//   blocks of 8, 4 and 1), keeping a block's sums in registers across all
//   points (kBlock is one 64-byte vector on AVX-512, two on AVX2).
// Pixels are pipelined: the next pixel's points are resolved and their
// neighbours' cache lines prefetched before the current pixel's channels
// are swept, so that the sweep's scattered loads find them in cache.
//
// Work split (T is float or double; reduced precision is upcast by the caller):
// * forward: one task per output pixel; it writes only that pixel's channels.
// * backward: one task per (image n, run of groups, block of channels). A
//   task writes grad_input only in image n, its groups, its channels, so no
//   two tasks write the same element. Each element gets its contributions in
//   pixel order whatever the runs, so the caller may size the runs by the
//   number of threads and the result stays the same bit for bit. A task's
//   partial sums of grad_offset and grad_mask over its channels go to a
//   per-block slice that the caller sums in a fixed order.
#pragma once

#if !defined(DCNV3_CPU_ISA) || !defined(DCNV3_CPU_VECTOR_BYTES)
#error "define DCNV3_CPU_ISA and DCNV3_CPU_VECTOR_BYTES before including dcnv3_cpu_kernel.h"
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "common/dcnv3_math.h"
#include "cpu/dcnv3_cpu_kernel_api.h"

namespace mmyolo_dcnv3 {
namespace cpu {
namespace DCNV3_CPU_ISA {
namespace {

template <typename T>
constexpr int64_t kBlock = 64 / sizeof(T);

// Points resolved at once: one native vector of T (DCNV3_CPU_VECTOR_BYTES,
// set by the includer). Vectors wider than the target's would be split by
// the compiler, some operations lane by lane.
template <typename T>
struct ResolveLanes {
  static constexpr int64_t N = DCNV3_CPU_VECTOR_BYTES / sizeof(T);
  static_assert(kPointPadding<T> % N == 0, "the scratch padding must be a multiple of the lanes");
  typedef T Real __attribute__((vector_size(N * sizeof(T))));
  typedef int32_t Index __attribute__((vector_size(N * sizeof(int32_t))));
  typedef int64_t Address __attribute__((vector_size(N * sizeof(int64_t))));
  template <typename V>
  static V load(const void* from) {
    V v;
    std::memcpy(&v, from, sizeof(V));
    return v;
  }
  template <typename V>
  static void store(void* to, const V& v) {
    std::memcpy(to, &v, sizeof(V));
  }
  // Lanes 0, 2, 4, ... (even) or 1, 3, 5, ... (odd) of the 2N lanes of a then b.
  static Real even_lanes(const Real& a, const Real& b) { return pick(a, b, std::make_index_sequence<N>{}, 0); }
  static Real odd_lanes(const Real& a, const Real& b) { return pick(a, b, std::make_index_sequence<N>{}, 1); }
  template <size_t... I>
  static Real pick(const Real& a, const Real& b, std::index_sequence<I...>, int parity) {
#if defined(__clang__) || __GNUC__ >= 12
    return parity ? __builtin_shufflevector(a, b, (2 * I + 1)...) : __builtin_shufflevector(a, b, (2 * I)...);
#else  // GCC before 12 has only __builtin_shuffle
    using Lane = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    typedef Lane Lanes __attribute__((vector_size(N * sizeof(T))));
    const Lanes lanes = {static_cast<Lane>(2 * I + parity)...};
    return __builtin_shuffle(a, b, lanes);
#endif
  }
  // A vector of lanes of -1 (true) or 0, of any width, as Index lanes.
  template <typename M>
  static Index as_index(const M& m) {
    return __builtin_convertvector(m, Index);
  }
};

// Resolves points q < count sampled around (origin_x, origin_y) into `out`:
// off holds their (dx, dy) pairs, msk their mask values, sc.tap_x/tap_y
// their grid displacements and sc.group_start the channel offset of their
// group from `image` (pixel (0, 0) of the first group's channels).
// A point outside, y <= -1, x <= -1, y >= height, x >= width or not a number,
// has all four neighbours outside. Element offsets fit int32: the caller
// checks H * W * C. Works a vector of points at a time, so the scratch
// arrays are padded (kPointPadding); the padding lanes hold garbage: the
// points after the last one, read from off and msk while `readable` (the
// points left in those tensors) allows, else zeros.
template <typename T, bool kDerivatives>
void resolve_points(const Dcnv3Shape& s, const PointScratch<T>& sc, const ResolvedPoints<T>& out, int64_t count,
                    int64_t readable, T origin_x, T origin_y, const T* __restrict__ off, const T* __restrict__ msk,
                    const T* image, const T* zeros) {
  using V = ResolveLanes<T>;
  using Real = typename V::Real;
  using Index = typename V::Index;
  using Address = typename V::Address;
  constexpr int64_t N = V::N;
  const T scale = static_cast<T>(s.offset_scale);
  const T height = static_cast<T>(s.height_in), width = static_cast<T>(s.width_in);
  const int32_t H = static_cast<int32_t>(s.height_in), W = static_cast<int32_t>(s.width_in);
  const int32_t C = static_cast<int32_t>(s.channels()), row = W * C;
  const int64_t image_address = reinterpret_cast<int64_t>(image);
  const int64_t zeros_address = reinterpret_cast<int64_t>(zeros);
  for (int64_t q0 = 0; q0 < count; q0 += N) {
    Real dx, dy, mk;
    if (q0 + N <= readable) {
      const Real first = V::template load<Real>(off + 2 * q0), second = V::template load<Real>(off + 2 * q0 + N);
      dx = V::even_lanes(first, second);
      dy = V::odd_lanes(first, second);
      mk = V::template load<Real>(msk + q0);
    } else {  // the tensors' last, partial vector: zeros after the points
      T pairs[2 * N] = {}, masks[N] = {};
      std::copy(off + 2 * q0, off + 2 * count, pairs);
      std::copy(msk + q0, msk + count, masks);
      const Real first = V::template load<Real>(pairs), second = V::template load<Real>(pairs + N);
      dx = V::even_lanes(first, second);
      dy = V::odd_lanes(first, second);
      mk = V::template load<Real>(masks);
    }
    const Real x = origin_x + (V::template load<Real>(sc.tap_x + q0) + dx) * scale;
    const Real y = origin_y + (V::template load<Real>(sc.tap_y + q0) + dy) * scale;
    // Comparisons with NaN are false, so NaN locations are not valid.
    const auto valid_real = (y > T(-1)) & (x > T(-1)) & (y < height) & (x < width);
    using RealMask = decltype(valid_real);
    const Index valid = V::as_index(valid_real);
    const Real xs = valid_real ? x : T(0);
    const Real ys = valid_real ? y : T(0);
    // floor of a value in (-1, limit): truncate, then step down (a true lane is -1).
    const Index xt = __builtin_convertvector(xs, Index), yt = __builtin_convertvector(ys, Index);
    const Index x0 = xt + V::as_index(__builtin_convertvector(xt, Real) > xs);
    const Index y0 = yt + V::as_index(__builtin_convertvector(yt, Real) > ys);
    const Real lx = xs - __builtin_convertvector(x0, Real), ly = ys - __builtin_convertvector(y0, Real);
    const Real hx = T(1) - lx, hy = T(1) - ly;
    const Real m = valid_real ? mk : T(0);
    const Index top = valid & (y0 >= 0), bottom = valid & (y0 + 1 < H);
    const Index left = x0 >= 0, right = x0 + 1 < W;
    const Index base = y0 * row + x0 * C + V::template load<Index>(sc.group_start + q0);
    const Index inside[4] = {top & left, top & right, bottom & left, bottom & right};
    const Index offset[4] = {base, base + C, base + row, base + row + C};
    const Real weight[4] = {hy * hx * m, hy * lx * m, ly * hx * m, ly * lx * m};
    for (int k = 0; k < 4; ++k) {
      const Address address = __builtin_convertvector(offset[k], Address) * static_cast<int64_t>(sizeof(T)) +
                              image_address;
      // A select by bitwise ops: `?:` on these (wider than native) vectors
      // is compiled lane by lane.
      const Address use = __builtin_convertvector(inside[k], Address);
      V::store(out.corner[k] + q0, (use & address) | (~use & zeros_address));
      V::store(out.weight[k] + q0, __builtin_convertvector(inside[k], RealMask) ? weight[k] : T(0));
    }
    if (kDerivatives) {
      V::store(out.frac_x + q0, lx);
      V::store(out.frac_y + q0, ly);
      V::store(out.mask + q0, m);
    }
  }
}

// Asks for the first cache line of every neighbour of points q < count and,
// with a nonzero `gradient_shift`, of the element that far from it (the
// backward's grad_input, for writing). Outside neighbours prefetch `zeros`.
template <typename T>
inline void prefetch_neighbours(const ResolvedPoints<T>& r, int64_t count, std::ptrdiff_t gradient_shift) {
  for (int64_t q = 0; q < count; ++q) {
    for (int k = 0; k < 4; ++k) {
      __builtin_prefetch(r.corner[k][q]);
      if (gradient_shift != 0) __builtin_prefetch(r.corner[k][q] + gradient_shift, 1);
    }
  }
}

// Calls process(pixel, points) for pixels [begin, end), with `points` the
// pixel's resolved points from resolve(pixel, points); resolves the next
// pixel and prefetches its neighbours (see prefetch_neighbours) before
// processing the current one.
template <typename T, typename Resolve, typename Process>
void for_pixels_pipelined(const PointScratch<T>& sc, int64_t count, std::ptrdiff_t gradient_shift, int64_t begin,
                          int64_t end, Resolve&& resolve, Process&& process) {
  if (begin >= end) return;
  resolve(begin, sc.resolved[0]);
  for (int64_t pixel = begin; pixel < end; ++pixel) {
    const ResolvedPoints<T>& current = sc.resolved[(pixel - begin) & 1];
    if (pixel + 1 < end) {
      const ResolvedPoints<T>& next = sc.resolved[(pixel + 1 - begin) & 1];
      resolve(pixel + 1, next);
      prefetch_neighbours(next, count, gradient_shift);
    }
    process(pixel, current);
  }
}

// out[c + l] = sum over points q in [first, first + count) and neighbours k
// of weight * neighbour[c + l], for l < Width. One accumulator per neighbour
// k: four independent FMA chains instead of one long one.
template <typename T, int64_t Width>
inline void gather_block(const ResolvedPoints<T>& r, int64_t first, int64_t count, int64_t c, T* __restrict__ out) {
  T acc[4][Width] = {};
  for (int64_t q = first; q < first + count; ++q) {
#pragma GCC unroll 4  // constant indices keep acc in registers
    for (int k = 0; k < 4; ++k) {
      const T w = r.weight[k][q];
      const T* __restrict__ src = r.corner[k][q] + c;
      for (int64_t l = 0; l < Width; ++l) acc[k][l] += w * src[l];
    }
  }
  for (int64_t l = 0; l < Width; ++l) out[c + l] = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
}

// Up to one native vector of T (GCC/Clang vector extension), for Width values.
template <typename T, int64_t Width>
struct ChannelLanes {
  static constexpr int64_t N = std::min<int64_t>(Width, DCNV3_CPU_VECTOR_BYTES / sizeof(T));
  typedef T Vec __attribute__((vector_size(N * sizeof(T))));
  static Vec load(const T* from) {
    Vec v;
    std::memcpy(&v, from, sizeof(Vec));
    return v;
  }
  static void store(T* to, const Vec& v) { std::memcpy(to, &v, sizeof(Vec)); }
  // Sum of the lanes: add the vector's halves until one lane is left.
  static T sum(const Vec& v) {
    if constexpr (N == 1) {
      return v[0];
    } else {
      return Half::sum(fold(v));
    }
  }
  // Adds sum(v[k]) to to[k], k < 4. Each vector is folded to four lanes, then
  // the four are reduced together (a 4x4 transpose interleaved with adds):
  // six shuffles for the four sums instead of a serial chain for each.
  static void add_sums4(const Vec (&v)[4], T* to) {
    if constexpr (N < 4) {
      for (int k = 0; k < 4; ++k) to[k] += sum(v[k]);
    } else {
      using Q = ChannelLanes<T, 4>;
      const typename Q::Vec a = Q::quad(v[0]), b = Q::quad(v[1]), c = Q::quad(v[2]), d = Q::quad(v[3]);
      const typename Q::Vec ab = Q::template shuffle<0, 4, 1, 5>(a, b) + Q::template shuffle<2, 6, 3, 7>(a, b);
      const typename Q::Vec cd = Q::template shuffle<0, 4, 1, 5>(c, d) + Q::template shuffle<2, 6, 3, 7>(c, d);
      Q::store(to, Q::load(to) + (Q::template shuffle<0, 1, 4, 5>(ab, cd) + Q::template shuffle<2, 3, 6, 7>(ab, cd)));
    }
  }

 private:
  template <typename, int64_t>
  friend struct ChannelLanes;
  using Half = ChannelLanes<T, (N > 1 ? N / 2 : 1)>;
  // The lane-wise sum of the vector's two halves.
  static typename Half::Vec fold(const Vec& v) {
    typename Half::Vec low, high;
    std::memcpy(&low, &v, sizeof(low));
    std::memcpy(&high, reinterpret_cast<const char*>(&v) + sizeof(low), sizeof(high));
    return low + high;
  }
  // A vector of N >= 4 lanes folded to four (this is ChannelLanes<T, 4>).
  template <typename W>
  static Vec quad(const W& v) {
    static_assert(N == 4, "quad() folds into a four-lane vector");
    if constexpr (sizeof(W) == sizeof(Vec)) {
      return v;
    } else {
      using Wide = ChannelLanes<T, sizeof(W) / sizeof(T)>;
      return quad(Wide::fold(v));
    }
  }
  // Lanes I of the eight lanes of a then b.
  template <int... I>
  static Vec shuffle(const Vec& a, const Vec& b) {
#if defined(__clang__) || __GNUC__ >= 12
    return __builtin_shufflevector(a, b, I...);
#else  // GCC before 12 has only __builtin_shuffle
    using Lane = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
    typedef Lane Lanes __attribute__((vector_size(N * sizeof(T))));
    return __builtin_shuffle(a, b, Lanes{I...});
#endif
  }
};

// For channels [c, c + Width) of one (pixel, group) with points q in
// [first, first + count): adds <grad, neighbour k> to dots[4 q + k] and
// scatters weight * grad into grad_image at the neighbour (the element at
// the same offset from grad_image as the neighbour from image); neighbours
// outside the image (`zeros`) are skipped.
template <typename T, int64_t Width>
inline void scatter_block(const ResolvedPoints<T>& r, T* dots, int64_t first, int64_t count, const T* image,
                          T* grad_image, const T* zeros, int64_t c, const T* __restrict__ grad) {
  using V = ChannelLanes<T, Width>;
  for (int64_t q = first; q < first + count; ++q) {
    typename V::Vec products[4] = {};
    for (int k = 0; k < 4; ++k) {
      const T* src = r.corner[k][q];
      if (src == zeros) continue;
      // Vectors rather than a loop over T: the compiler cannot prove that
      // grad_image does not alias the scratch, and would not vectorise.
      T* dst = grad_image + (src - image) + c;
      const T alpha = r.weight[k][q];
      for (int64_t l = 0; l < Width; l += V::N) {
        const typename V::Vec g = V::load(grad + l);
        products[k] += g * V::load(src + c + l);
        V::store(dst + l, V::load(dst + l) + alpha * g);
      }
    }
    V::add_sums4(products, dots + 4 * q);
  }
}

// The gradients of points q < count from their dots (dots[4 q + k] for
// neighbour k): grad_mask[q] and the (x, y) pairs grad_offset[2q],
// grad_offset[2q + 1]. d weight_k / d x and / d y are written with the
// fractional parts; dots and weights of neighbours outside the image are zero.
template <typename T>
void point_gradients(const ResolvedPoints<T>& r, const T* __restrict__ dots, int64_t count, T scale,
                     T* __restrict__ grad_offset, T* __restrict__ grad_mask) {
  const T* __restrict__ frac_x = r.frac_x;
  const T* __restrict__ frac_y = r.frac_y;
  const T* __restrict__ mask = r.mask;
  for (int64_t q = 0; q < count; ++q) {
    const T* d = dots + 4 * q;
    const T lx = frac_x[q], ly = frac_y[q], hx = T(1) - lx, hy = T(1) - ly;
    const T m = mask[q] * scale;
    grad_mask[q] = (hy * hx * d[0] + hy * lx * d[1]) + (ly * hx * d[2] + ly * lx * d[3]);
    grad_offset[2 * q] = (hy * (d[1] - d[0]) + ly * (d[3] - d[2])) * m;
    grad_offset[2 * q + 1] = (hx * (d[2] - d[0]) + lx * (d[3] - d[1])) * m;
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

// The sampling grid of output pixel `pixel` (flat index over N, H_out, W_out).
template <typename T>
SamplingGrid<T> pixel_grid(const Dcnv3Shape& s, int64_t pixel) {
  return SamplingGrid<T>(s, (pixel / s.width_out) % s.height_out, pixel % s.width_out);
}

// tap_x, tap_y and group_start of the points q = g * P + p of every group g.
template <typename T>
void fill_taps(const Dcnv3Shape& s, const PointScratch<T>& sc) {
  for (int64_t p = 0; p < s.points; ++p) {
    int64_t i, j;
    point_position(s, p, i, j);
    for (int64_t g = 0; g < s.group; ++g) {
      sc.tap_x[g * s.points + p] = SamplingGrid<T>::tap_x(s, i);
      sc.tap_y[g * s.points + p] = SamplingGrid<T>::tap_y(s, j);
      sc.group_start[g * s.points + p] = static_cast<int32_t>(g * s.group_channels);
    }
  }
}

}  // namespace

template <typename T>
void forward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, T* output, const T* zeros,
             const PointScratch<T>& scratch, int64_t pixel_begin, int64_t pixel_end) {
  const int64_t C = s.channels(), GC = s.group_channels, P = s.points, GP = s.group * P;
  const int64_t image_size = s.height_in * s.width_in * C;
  fill_taps(s, scratch);
  const auto resolve = [&](int64_t pixel, const ResolvedPoints<T>& points) {
    const int64_t n = pixel / (s.width_out * s.height_out);
    const SamplingGrid<T> grid = pixel_grid<T>(s, pixel);
    resolve_points<T, false>(s, scratch, points, GP, (s.pixels_out() - pixel) * GP, grid.origin_x, grid.origin_y,
                             offset + 2 * pixel * GP,
                             mask + pixel * GP, input + n * image_size, zeros);
  };
  const auto gather = [&](int64_t pixel, const ResolvedPoints<T>& points) {
    for (int64_t g = 0; g < s.group; ++g) {
      T* out = output + pixel * C + g * GC;
      for_channel_blocks<T>(0, GC, [&](auto width, int64_t c) {
        gather_block<T, decltype(width)::value>(points, g * P, P, c, out);
      });
    }
  };
  for_pixels_pipelined(scratch, GP, 0, pixel_begin, pixel_end, resolve, gather);
}

template <typename T>
void backward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, const T* grad_output,
              const T* zeros, const PointScratch<T>& scratch, int64_t groups_per_task, int64_t channel_block,
              T* grad_input, T* grad_offset_parts, T* grad_mask_parts, int64_t task_begin, int64_t task_end) {
  const int64_t C = s.channels(), GC = s.group_channels, P = s.points;
  const int64_t blocks = (GC + channel_block - 1) / channel_block;
  const int64_t group_runs = (s.group + groups_per_task - 1) / groups_per_task;
  const int64_t pixels_per_image = s.height_out * s.width_out;
  const int64_t image_size = s.height_in * s.width_in * C;
  const int64_t part_stride = s.pixels_out() * s.group * P;  // one block's slice of grad_mask_parts
  fill_taps(s, scratch);
  for (int64_t task = task_begin; task < task_end; ++task) {
    const int64_t block = task % blocks;
    const int64_t run = (task / blocks) % group_runs;
    const int64_t n = task / (blocks * group_runs);
    const int64_t g_begin = run * groups_per_task;
    const int64_t g_end = std::min(g_begin + groups_per_task, s.group);
    const int64_t count = (g_end - g_begin) * P;
    const int64_t c_begin = block * channel_block;
    const int64_t c_end = std::min(c_begin + channel_block, GC);
    const T* image = input + n * image_size;
    T* grad_image = grad_input + n * image_size;
    T* grad_offset_part = grad_offset_parts + block * part_stride * 2;
    T* grad_mask_part = grad_mask_parts + block * part_stride;
    const auto resolve = [&](int64_t pixel, const ResolvedPoints<T>& points) {
      const SamplingGrid<T> grid = pixel_grid<T>(s, pixel);
      const int64_t point0 = (pixel * s.group + g_begin) * P;
      resolve_points<T, true>(s, scratch, points, count, s.pixels_out() * s.group * P - point0, grid.origin_x,
                              grid.origin_y, offset + 2 * point0,
                              mask + point0, image + g_begin * GC, zeros);
    };
    const auto scatter = [&](int64_t pixel, const ResolvedPoints<T>& points) {
      std::fill(scratch.dots, scratch.dots + 4 * count, T(0));
      for (int64_t g = g_begin; g < g_end; ++g) {
        const T* go = grad_output + pixel * C + g * GC;
        for_channel_blocks<T>(c_begin, c_end, [&](auto width, int64_t c) {
          scatter_block<T, decltype(width)::value>(points, scratch.dots, (g - g_begin) * P, P, image, grad_image,
                                                   zeros, c, go + c);
        });
      }
      const int64_t point0 = (pixel * s.group + g_begin) * P;
      point_gradients(points, scratch.dots, count, static_cast<T>(s.offset_scale), grad_offset_part + 2 * point0,
                      grad_mask_part + point0);
    };
    for_pixels_pipelined(scratch, count, grad_image - image, n * pixels_per_image, (n + 1) * pixels_per_image,
                         resolve, scatter);
  }
}

#define DCNV3_INSTANTIATE_CPU_KERNELS(T)                                                                       \
  template void forward<T>(const Dcnv3Shape&, const T*, const T*, const T*, T*, const T*, const PointScratch<T>&, \
                           int64_t, int64_t);                                                                  \
  template void backward<T>(const Dcnv3Shape&, const T*, const T*, const T*, const T*, const T*,               \
                            const PointScratch<T>&, int64_t, int64_t, T*, T*, T*, int64_t, int64_t);
DCNV3_INSTANTIATE_CPU_KERNELS(float)
DCNV3_INSTANTIATE_CPU_KERNELS(double)
#undef DCNV3_INSTANTIATE_CPU_KERNELS

}  // namespace DCNV3_CPU_ISA
}  // namespace cpu
}  // namespace mmyolo_dcnv3
