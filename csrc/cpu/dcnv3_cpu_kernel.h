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
//   forward, those of the task's groups in the backward), the location, the
//   int32 element offset of a 2x2 block of neighbours inside the image and
//   their four weights (zero for taps outside), a vector of points at a time
//   (GCC/Clang vector extensions: structure-of-arrays scratch, a floor from
//   truncation), without branches. Every point reads four real pixels, so
//   the channel sweep has no bounds checks and one address per point.
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
  template <typename Vec>
  static Vec load(const void* from) {
    Vec v;
    std::memcpy(&v, from, sizeof(Vec));
    return v;
  }
  template <typename Vec>
  static void store(void* to, const Vec& v) {
    std::memcpy(to, &v, sizeof(Vec));
  }
  // Lanes 0, 2, 4, ... (even) or 1, 3, 5, ... (odd) of the 2N lanes of a then b.
  static Real even_lanes(const Real& a, const Real& b) { return permute<EvenLanes>(a, b); }
  static Real odd_lanes(const Real& a, const Real& b) { return permute<OddLanes>(a, b); }
  // Stores a[0] b[0] c[0] d[0] a[1] b[1] ... for v = {a, b, c, d} (4N values).
  static void store_interleaved4(T* to, const Real (&v)[4]) {
    static_assert(N >= 2, "interleaving needs two lanes or more");
    const Real ac_low = permute<ZipLow>(v[0], v[2]), ac_high = permute<ZipHigh>(v[0], v[2]);
    const Real bd_low = permute<ZipLow>(v[1], v[3]), bd_high = permute<ZipHigh>(v[1], v[3]);
    store(to, permute<ZipLow>(ac_low, bd_low));
    store(to + N, permute<ZipHigh>(ac_low, bd_low));
    store(to + 2 * N, permute<ZipLow>(ac_high, bd_high));
    store(to + 3 * N, permute<ZipHigh>(ac_high, bd_high));
  }
  // a where the lane of m is true (-1), else b.
  static Real select(const Index& m, const Real& a, const Real& b) { return __builtin_convertvector(m, Mask) ? a : b; }
  static Index clamp(const Index& v, int32_t low, int32_t high) {
    const Index above = v < low ? Index{} + low : v;
    return above > high ? Index{} + high : above;
  }
  // A vector of lanes of -1 (true) or 0, of any width, as Index lanes.
  template <typename M>
  static Index as_index(const M& m) {
    return __builtin_convertvector(m, Index);
  }

 private:
  using Lane = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  typedef Lane Mask __attribute__((vector_size(N * sizeof(T))));
  // Lane i of a permutation picks lane lane(i) of the 2N lanes of a then b.
  struct EvenLanes {
    static constexpr int lane(int i) { return 2 * i; }
  };
  struct OddLanes {
    static constexpr int lane(int i) { return 2 * i + 1; }
  };
  struct ZipLow {  // a[0] b[0] a[1] b[1] ... from the low halves
    static constexpr int lane(int i) { return i / 2 + (i % 2) * N; }
  };
  struct ZipHigh {  // the same from the high halves
    static constexpr int lane(int i) { return N / 2 + i / 2 + (i % 2) * N; }
  };
  template <typename Order>
  static Real permute(const Real& a, const Real& b) {
    return permute<Order>(a, b, std::make_index_sequence<N>{});
  }
  template <typename Order, size_t... I>
  static Real permute(const Real& a, const Real& b, std::index_sequence<I...>) {
#if defined(__clang__) || __GNUC__ >= 12
    return __builtin_shufflevector(a, b, Order::lane(I)...);
#else  // GCC before 12 has only __builtin_shuffle
    return __builtin_shuffle(a, b, Mask{Order::lane(I)...});
#endif
  }
};

// The two taps of one axis of a bilinear sample, moved inside the image: a
// sample at x (floor x0, fraction l = x - x0, h = 1 - l) reads pixels x0 and
// x0 + 1, either of which may lie outside; the kernels read pixels xb and
// xb + 1 instead, with xb = x0 clamped to [0, W - 2], which are always inside
// (for W = 1 the second tap's step is zero and its weight zero). The weights
// and their derivatives d/dx are those of the original taps that landed on
// xb and xb + 1; an outside tap has none. shift = x0 - xb is -1, 0 or 1.
// (So a non-finite pixel at the border can meet a zero weight and give NaN
// where a bounds check would have skipped it; every implementation already
// does that at integer locations, where a neighbour's weight is zero.)
template <typename V>
struct ClampedTaps {
  using Real = typename V::Real;
  using Index = typename V::Index;
  Real weight_a, weight_b, slope_a, slope_b;

  ClampedTaps(const Index& shift, const Real& l, bool has_b) {
    const Real h = 1 - l, zero{}, one = zero + 1, minus_one = zero - 1;
    const Index centred = shift == 0, low = shift < 0, high = shift > 0;
    weight_a = V::select(centred, h, V::select(low, l, zero));
    slope_a = V::select(centred, minus_one, V::select(low, one, zero));
    weight_b = has_b ? V::select(centred, l, V::select(high, h, zero)) : zero;
    slope_b = has_b ? V::select(centred, one, V::select(high, minus_one, zero)) : zero;
  }
};

// Resolves points q < count sampled around (origin_x, origin_y) into `out`:
// off holds their (dx, dy) pairs, msk their mask values, sc.tap_x/tap_y
// their grid displacements and sc.group_start the channel offset of their
// group. Element offsets are from pixel (0, 0) of the first group's channels
// of the image; they fit int32 (the caller checks H * W * C). A point
// outside, y <= -1, x <= -1, y >= height, x >= width or not a number, gets
// zero weights. Works a vector of points at a time, so the scratch arrays are
// padded (kPointPadding); the padding lanes hold garbage: the points after the
// last one, read from off and msk while `readable` (the points left in those
// tensors) allows, else zeros.
template <typename T, bool kDerivatives>
void resolve_points(const Dcnv3Shape& s, const PointScratch<T>& sc, const ResolvedPoints<T>& out, int64_t count,
                    int64_t readable, T origin_x, T origin_y, const T* __restrict__ off, const T* __restrict__ msk) {
  using V = ResolveLanes<T>;
  using Real = typename V::Real;
  using Index = typename V::Index;
  constexpr int64_t N = V::N;
  const T scale = static_cast<T>(s.offset_scale);
  const T height = static_cast<T>(s.height_in), width = static_cast<T>(s.width_in);
  const int32_t H = static_cast<int32_t>(s.height_in), W = static_cast<int32_t>(s.width_in);
  const int32_t C = static_cast<int32_t>(s.channels()), row = W * C;
  const int32_t last_x = std::max(W - 2, 0), last_y = std::max(H - 2, 0);
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
    const Index valid = V::as_index((y > T(-1)) & (x > T(-1)) & (y < height) & (x < width));
    const Real xs = V::select(valid, x, Real{}), ys = V::select(valid, y, Real{});
    // floor of a value in (-1, limit): truncate, then step down (a true lane is -1).
    const Index xt = __builtin_convertvector(xs, Index), yt = __builtin_convertvector(ys, Index);
    const Index x0 = xt + V::as_index(__builtin_convertvector(xt, Real) > xs);
    const Index y0 = yt + V::as_index(__builtin_convertvector(yt, Real) > ys);
    const Index xb = V::clamp(x0, 0, last_x), yb = V::clamp(y0, 0, last_y);
    const ClampedTaps<V> tx(x0 - xb, xs - __builtin_convertvector(x0, Real), W > 1);
    ClampedTaps<V> ty(y0 - yb, ys - __builtin_convertvector(y0, Real), H > 1);
    ty.weight_a = V::select(valid, ty.weight_a, Real{});  // an outside point has no weights
    ty.weight_b = V::select(valid, ty.weight_b, Real{});
    const Real m = V::select(valid, mk, Real{});
    V::store(out.offset + q0, yb * row + xb * C + V::template load<Index>(sc.group_start + q0));
    V::store_interleaved4(out.weight + 4 * q0, {ty.weight_a * tx.weight_a * m, ty.weight_a * tx.weight_b * m,
                                                ty.weight_b * tx.weight_a * m, ty.weight_b * tx.weight_b * m});
    if (kDerivatives) {
      V::store(out.x.weight_a + q0, tx.weight_a);
      V::store(out.x.weight_b + q0, tx.weight_b);
      V::store(out.x.slope_a + q0, tx.slope_a);
      V::store(out.x.slope_b + q0, tx.slope_b);
      V::store(out.y.weight_a + q0, ty.weight_a);
      V::store(out.y.weight_b + q0, ty.weight_b);
      V::store(out.y.slope_a + q0, ty.slope_a);
      V::store(out.y.slope_b + q0, ty.slope_b);
      V::store(out.mask + q0, m);
    }
  }
}

NeighbourSteps neighbour_steps(const Dcnv3Shape& s) {
  const std::ptrdiff_t right = s.width_in > 1 ? s.channels() : 0;
  const std::ptrdiff_t down = s.height_in > 1 ? s.width_in * s.channels() : 0;
  return NeighbourSteps{{0, right, down, down + right}};
}

// Asks for the first cache line of every neighbour of points q < count and,
// with a nonzero `gradient_shift`, of the element that far from it (the
// backward's grad_input, for writing).
template <typename T>
inline void prefetch_neighbours(const ResolvedPoints<T>& r, const T* image, const NeighbourSteps& steps, int64_t count,
                                std::ptrdiff_t gradient_shift) {
  for (int64_t q = 0; q < count; ++q) {
    const T* first = image + r.offset[q];
    for (int k = 0; k < 4; ++k) {
      __builtin_prefetch(first + steps.k[k]);
      if (gradient_shift != 0) __builtin_prefetch(first + steps.k[k] + gradient_shift, 1);
    }
  }
}

// Calls process(pixel, points, image) for pixels [begin, end), with
// `points` the pixel's resolved points from image = resolve(pixel, points)
// (the pointer that their offsets are from); resolves the next pixel and
// prefetches its neighbours (see prefetch_neighbours) before processing the
// current one.
template <typename T, typename Resolve, typename Process>
void for_pixels_pipelined(const PointScratch<T>& sc, const NeighbourSteps& steps, int64_t count,
                          std::ptrdiff_t gradient_shift, int64_t begin, int64_t end, Resolve&& resolve,
                          Process&& process) {
  if (begin >= end) return;
  const T* image[2];
  image[0] = resolve(begin, sc.resolved[0]);
  for (int64_t pixel = begin; pixel < end; ++pixel) {
    const int current = (pixel - begin) & 1, next = current ^ 1;
    if (pixel + 1 < end) {
      image[next] = resolve(pixel + 1, sc.resolved[next]);
      prefetch_neighbours(sc.resolved[next], image[next], steps, count, gradient_shift);
    }
    process(pixel, sc.resolved[current], image[current]);
  }
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

// out[c + l] = sum over points q in [first, first + count) and neighbours k
// of weight * neighbour[c + l], for l < Width. One accumulator per neighbour
// k: four independent FMA chains instead of one long one. Written with
// vectors: left to itself, the compiler vectorises over the points instead,
// with a gather per neighbour.
template <typename T, int64_t Width>
inline void gather_block(const ResolvedPoints<T>& r, const T* image, const NeighbourSteps& steps, int64_t first,
                         int64_t count, int64_t c, T* __restrict__ out) {
  using V = ChannelLanes<T, Width>;
  constexpr int64_t L = Width / V::N;
  typename V::Vec acc[4][L] = {};
  for (int64_t q = first; q < first + count; ++q) {
    const T* neighbour0 = image + r.offset[q] + c;
    const T* weight = r.weight + 4 * q;
#pragma GCC unroll 4  // constant indices keep acc in registers
    for (int k = 0; k < 4; ++k) {
      const T w = weight[k];
      const T* src = neighbour0 + steps.k[k];
      for (int64_t j = 0; j < L; ++j) acc[k][j] += w * V::load(src + j * V::N);
    }
  }
  for (int64_t j = 0; j < L; ++j) V::store(out + c + j * V::N, (acc[0][j] + acc[1][j]) + (acc[2][j] + acc[3][j]));
}

// For channels [c, c + Width) of one (pixel, group) with points q in
// [first, first + count): adds <grad, neighbour k> to dots[4 q + k] and
// scatters weight * grad into grad_image at the neighbour (the element at
// the same offset from grad_image as the neighbour from image).
template <typename T, int64_t Width>
inline void scatter_block(const ResolvedPoints<T>& r, const NeighbourSteps& steps, T* dots, int64_t first,
                          int64_t count, const T* image, T* grad_image, int64_t c, const T* __restrict__ grad) {
  using V = ChannelLanes<T, Width>;
  constexpr int64_t L = Width / V::N;
  // Everything a point needs is read into registers before its stores:
  // the compiler cannot prove that grad_image does not alias the scratch
  // or grad (vectors rather than a loop over T for the same reason: it
  // would not vectorise).
  typename V::Vec g[L];
  for (int64_t j = 0; j < L; ++j) g[j] = V::load(grad + j * V::N);
  const int32_t* offsets = r.offset;
  const T* weights = r.weight;
  const std::ptrdiff_t step[4] = {steps.k[0], steps.k[1], steps.k[2], steps.k[3]};
  for (int64_t q = first; q < first + count; ++q) {
    const std::ptrdiff_t at = offsets[q] + c;
    const T alpha[4] = {weights[4 * q], weights[4 * q + 1], weights[4 * q + 2], weights[4 * q + 3]};
    typename V::Vec products[4] = {};
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const T* src = image + at + step[k];
      T* dst = grad_image + at + step[k];
      for (int64_t j = 0; j < L; ++j) {
        products[k] += g[j] * V::load(src + j * V::N);
        V::store(dst + j * V::N, V::load(dst + j * V::N) + alpha[k] * g[j]);
      }
    }
    V::add_sums4(products, dots + 4 * q);
  }
}

// The gradients of points q < count from their dots (dots[4 q + k] for
// neighbour k = 2 i + j, tap i along y and j along x): grad_mask[q] and the
// (x, y) pairs grad_offset[2q], grad_offset[2q + 1].
template <typename T>
void point_gradients(const ResolvedPoints<T>& r, const T* __restrict__ dots, int64_t count, T scale,
                     T* __restrict__ grad_offset, T* __restrict__ grad_mask) {
  const ResolvedAxis<T> x = r.x, y = r.y;
  const T* __restrict__ mask = r.mask;
  for (int64_t q = 0; q < count; ++q) {
    const T* d = dots + 4 * q;
    const T xa = x.weight_a[q], xb = x.weight_b[q], ya = y.weight_a[q], yb = y.weight_b[q];
    const T m = mask[q] * scale;
    grad_mask[q] = (ya * xa * d[0] + ya * xb * d[1]) + (yb * xa * d[2] + yb * xb * d[3]);
    grad_offset[2 * q] =
        (ya * (x.slope_a[q] * d[0] + x.slope_b[q] * d[1]) + yb * (x.slope_a[q] * d[2] + x.slope_b[q] * d[3])) * m;
    grad_offset[2 * q + 1] =
        (xa * (y.slope_a[q] * d[0] + y.slope_b[q] * d[2]) + xb * (y.slope_a[q] * d[1] + y.slope_b[q] * d[3])) * m;
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
void forward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, T* output,
             const PointScratch<T>& scratch, int64_t pixel_begin, int64_t pixel_end) {
  const int64_t C = s.channels(), GC = s.group_channels, P = s.points, GP = s.group * P;
  const int64_t image_size = s.height_in * s.width_in * C;
  const NeighbourSteps steps = neighbour_steps(s);
  fill_taps(s, scratch);
  const auto resolve = [&](int64_t pixel, const ResolvedPoints<T>& points) {
    const int64_t n = pixel / (s.width_out * s.height_out);
    const SamplingGrid<T> grid = pixel_grid<T>(s, pixel);
    resolve_points<T, false>(s, scratch, points, GP, (s.pixels_out() - pixel) * GP, grid.origin_x, grid.origin_y,
                             offset + 2 * pixel * GP, mask + pixel * GP);
    return input + n * image_size;
  };
  const auto gather = [&](int64_t pixel, const ResolvedPoints<T>& points, const T* image) {
    for (int64_t g = 0; g < s.group; ++g) {
      T* out = output + pixel * C + g * GC;
      for_channel_blocks<T>(0, GC, [&](auto width, int64_t c) {
        gather_block<T, decltype(width)::value>(points, image, steps, g * P, P, c, out);
      });
    }
  };
  for_pixels_pipelined(scratch, steps, GP, 0, pixel_begin, pixel_end, resolve, gather);
}

template <typename T>
void backward(const Dcnv3Shape& s, const T* input, const T* offset, const T* mask, const T* grad_output,
              const PointScratch<T>& scratch, int64_t groups_per_task, int64_t channel_block, T* grad_input,
              T* grad_offset_parts, T* grad_mask_parts, int64_t task_begin, int64_t task_end) {
  const int64_t C = s.channels(), GC = s.group_channels, P = s.points;
  const int64_t blocks = (GC + channel_block - 1) / channel_block;
  const int64_t group_runs = (s.group + groups_per_task - 1) / groups_per_task;
  const int64_t pixels_per_image = s.height_out * s.width_out;
  const int64_t image_size = s.height_in * s.width_in * C;
  const int64_t part_stride = s.pixels_out() * s.group * P;  // one block's slice of grad_mask_parts
  const NeighbourSteps steps = neighbour_steps(s);
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
    // The run's first group's channels of image n, and of its gradient.
    const T* image = input + n * image_size + g_begin * GC;
    T* grad_image = grad_input + n * image_size + g_begin * GC;
    T* grad_offset_part = grad_offset_parts + block * part_stride * 2;
    T* grad_mask_part = grad_mask_parts + block * part_stride;
    const auto resolve = [&](int64_t pixel, const ResolvedPoints<T>& points) {
      const SamplingGrid<T> grid = pixel_grid<T>(s, pixel);
      const int64_t point0 = (pixel * s.group + g_begin) * P;
      resolve_points<T, true>(s, scratch, points, count, s.pixels_out() * s.group * P - point0, grid.origin_x,
                              grid.origin_y, offset + 2 * point0, mask + point0);
      return image;
    };
    const auto scatter = [&](int64_t pixel, const ResolvedPoints<T>& points, const T*) {
      std::fill(scratch.dots, scratch.dots + 4 * count, T(0));
      for (int64_t g = g_begin; g < g_end; ++g) {
        const T* go = grad_output + pixel * C + g * GC;
        for_channel_blocks<T>(c_begin, c_end, [&](auto width, int64_t c) {
          scatter_block<T, decltype(width)::value>(points, steps, scratch.dots, (g - g_begin) * P, P, image, grad_image,
                                                   c, go + c);
        });
      }
      const int64_t point0 = (pixel * s.group + g_begin) * P;
      point_gradients(points, scratch.dots, count, static_cast<T>(s.offset_scale), grad_offset_part + 2 * point0,
                      grad_mask_part + point0);
    };
    for_pixels_pipelined(scratch, steps, count, grad_image - image, n * pixels_per_image, (n + 1) * pixels_per_image,
                         resolve, scatter);
  }
}

#define DCNV3_INSTANTIATE_CPU_KERNELS(T)                                                                         \
  template void forward<T>(const Dcnv3Shape&, const T*, const T*, const T*, T*, const PointScratch<T>&, int64_t, \
                           int64_t);                                                                             \
  template void backward<T>(const Dcnv3Shape&, const T*, const T*, const T*, const T*, const PointScratch<T>&,   \
                            int64_t, int64_t, T*, T*, T*, int64_t, int64_t);
DCNV3_INSTANTIATE_CPU_KERNELS(float)
DCNV3_INSTANTIATE_CPU_KERNELS(double)
#undef DCNV3_INSTANTIATE_CPU_KERNELS

}  // namespace DCNV3_CPU_ISA
}  // namespace cpu
}  // namespace mmyolo_dcnv3
