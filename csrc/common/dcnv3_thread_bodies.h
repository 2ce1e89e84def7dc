// Per-thread bodies of the CUDA kernels, compilable for host and device.
//
// A CUDA thread handles `V` consecutive channels (one vector load) of one
// group of one output pixel; thread index = (pixel * G + g) * (GC / V) + chunk.
// cuda/dcnv3_cuda_kernels.cuh wraps these bodies in __global__ kernels; what
// only the device does (atomics, warp shuffles) lives in the `Sink` policy
// passed to the backward body. The CPU test suite runs the kernels, device
// branches included, on the host (tests/ops/cuda_on_cpu/, docs/cuda.md).
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>

#include "common/dcnv3_math.h"

namespace mmyolo_dcnv3 {

// V elements of T, loaded and stored as one aligned vector.
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T value[V];
};

// An unsigned type of `Bytes` bytes that the device moves with one
// instruction (ld/st.global.v4.u32 for 16 bytes): packs are loaded and stored
// through it.
template <int Bytes>
struct PackWord;
#if defined(__CUDACC__)
template <>
struct PackWord<16> {
  using type = uint4;
};
template <>
struct PackWord<8> {
  using type = uint2;
};
#else
template <>
struct PackWord<16> {
  struct alignas(16) type {
    uint32_t part[4];
  };
};
template <>
struct PackWord<8> {
  struct alignas(8) type {
    uint32_t part[2];
  };
};
#endif
template <>
struct PackWord<4> {
  using type = uint32_t;
};
template <>
struct PackWord<2> {
  using type = uint16_t;
};

template <typename T, int V>
using PackWordOf = typename PackWord<sizeof(Pack<T, V>)>::type;

template <typename T, int V>
DCNV3_HOST_DEVICE Pack<T, V> load_pack(const T* p) {
  const PackWordOf<T, V> word = *reinterpret_cast<const PackWordOf<T, V>*>(p);
  Pack<T, V> pack;
  memcpy(&pack, &word, sizeof(pack));
  return pack;
}

// On the device the store is the __stwb intrinsic (one st.global.wb
// instruction): a plain assignment, even of a uint4, was split by nvcc 13.0
// into one store per element in forward_thread.
template <typename T, int V>
DCNV3_HOST_DEVICE void store_pack(T* p, const Pack<T, V>& pack) {
  PackWordOf<T, V> word;
  memcpy(&word, &pack, sizeof(word));
#if defined(__CUDA_ARCH__)
  __stwb(reinterpret_cast<PackWordOf<T, V>*>(p), word);
#else
  *reinterpret_cast<PackWordOf<T, V>*>(p) = word;
#endif
}

// Channels per thread: the widest V in {8, 4, 2, 1} with V * element_size <=
// 16 bytes that divides group_channels and keeps every pointer aligned.
inline int pack_width(int64_t group_channels, int64_t element_size, const void* const* pointers, int count) {
  for (int v = 8; v > 1; v /= 2) {
    if (v * element_size > 16 || group_channels % v != 0) continue;
    bool aligned = true;
    for (int k = 0; k < count; ++k) {
      aligned = aligned && reinterpret_cast<uintptr_t>(pointers[k]) % (v * element_size) == 0;
    }
    if (aligned) return v;
  }
  return 1;
}

// The backward's threads of one (pixel, group), `lanes` = group_channels / V
// consecutive threads, share each point's grad_offset/grad_mask. The device
// sums their partials with warp shuffles and one store (deterministic) when
// the lanes tile a warp in aligned power-of-two segments; otherwise every lane
// adds its partials with atomics (rounding varies between runs).
constexpr int kWarpSize = 32;

DCNV3_HOST_DEVICE bool reduces_by_warp_shuffle(int64_t lanes) {
  return lanes <= kWarpSize && (lanes & (lanes - 1)) == 0;
}

struct ThreadIndex {
  int64_t n, ho, wo, pixel, g, channel;  // channel: first channel of the thread within C

  DCNV3_HOST_DEVICE ThreadIndex(const Dcnv3Shape& s, int64_t thread, int v) {
    const int64_t chunks = s.group_channels / v;
    const int64_t chunk = thread % chunks;
    g = (thread / chunks) % s.group;
    pixel = thread / (chunks * s.group);
    wo = pixel % s.width_out;
    ho = (pixel / s.width_out) % s.height_out;
    n = pixel / (s.width_out * s.height_out);
    channel = g * s.group_channels + chunk * v;
  }

  // Index of this thread's (pixel, group, point 0) in mask; offset is twice that.
  DCNV3_HOST_DEVICE int64_t point0(const Dcnv3Shape& s) const { return (pixel * s.group + g) * s.points; }
};

template <typename scalar_t, typename acc_t, int V>
DCNV3_HOST_DEVICE void forward_thread(const Dcnv3Shape& s, int64_t thread, const scalar_t* input,
                                      const scalar_t* offset, const scalar_t* mask, scalar_t* output) {
  const ThreadIndex t(s, thread, V);
  const SamplingGrid<acc_t> grid(s, t.ho, t.wo);
  const scalar_t* off = offset + t.point0(s) * 2;
  const scalar_t* msk = mask + t.point0(s);
  const int64_t channel_in_group = t.channel - t.g * s.group_channels;
  acc_t acc[V] = {};
  for (int64_t p = 0; p < s.points; ++p) {
    int64_t i, j;
    point_position(s, p, i, j);
    Bilinear<acc_t> b;
    if (!bilinear_at(grid.y(grid.tap_y(s, j), static_cast<acc_t>(off[2 * p + 1])),
                     grid.x(grid.tap_x(s, i), static_cast<acc_t>(off[2 * p])), s.height_in, s.width_in, b)) {
      continue;
    }
    const acc_t m = static_cast<acc_t>(msk[p]);
    for (int k = 0; k < 4; ++k) {
      if (!b.inside[k]) continue;
      const Pack<scalar_t, V> v =
          load_pack<scalar_t, V>(input + input_index(s, t.n, b.row(k), b.col(k), t.g) + channel_in_group);
      const acc_t w = b.weight[k] * m;
      for (int e = 0; e < V; ++e) acc[e] += w * static_cast<acc_t>(v.value[e]);
    }
  }
  Pack<scalar_t, V> out;
  for (int e = 0; e < V; ++e) out.value[e] = static_cast<scalar_t>(acc[e]);
  store_pack<scalar_t, V>(output + t.pixel * s.channels() + t.channel, out);
}

// Sink: add_input(index, value) adds to the grad_input accumulator;
// add_point(point, d_mask, d_x, d_y) adds one thread's partial sums (over its
// V channels) to grad_mask[point] and grad_offset[2 point], [2 point + 1].
// Every thread calls add_point for every point, in the same order, also when
// `active` is false (a padding thread past the end, whose partials are zero),
// so a device sink may reduce across threads with warp shuffles.
template <typename scalar_t, typename acc_t, int V, typename Sink>
DCNV3_HOST_DEVICE void backward_thread(const Dcnv3Shape& s, int64_t thread, bool active, const scalar_t* input,
                                       const scalar_t* offset, const scalar_t* mask, const scalar_t* grad_output,
                                       Sink& sink) {
  const ThreadIndex t(s, thread, V);
  const SamplingGrid<acc_t> grid(s, t.ho, t.wo);
  const scalar_t* off = offset + t.point0(s) * 2;
  const scalar_t* msk = mask + t.point0(s);
  const int64_t channel_in_group = t.channel - t.g * s.group_channels;
  const Pack<scalar_t, V> go_pack = load_pack<scalar_t, V>(grad_output + t.pixel * s.channels() + t.channel);
  acc_t go[V];
  for (int e = 0; e < V; ++e) go[e] = static_cast<acc_t>(go_pack.value[e]);
  for (int64_t p = 0; p < s.points; ++p) {
    int64_t i, j;
    point_position(s, p, i, j);
    Bilinear<acc_t> b;
    acc_t d_mask = 0, d_x = 0, d_y = 0;
    if (active && bilinear_at(grid.y(grid.tap_y(s, j), static_cast<acc_t>(off[2 * p + 1])),
                              grid.x(grid.tap_x(s, i), static_cast<acc_t>(off[2 * p])), s.height_in, s.width_in, b)) {
      const acc_t m = static_cast<acc_t>(msk[p]);
      for (int k = 0; k < 4; ++k) {
        if (!b.inside[k]) continue;
        const int64_t index = input_index(s, t.n, b.row(k), b.col(k), t.g) + channel_in_group;
        const Pack<scalar_t, V> v = load_pack<scalar_t, V>(input + index);
        acc_t dot = 0;
        for (int e = 0; e < V; ++e) dot += go[e] * static_cast<acc_t>(v.value[e]);
        d_mask += b.weight[k] * dot;
        d_x += b.dweight_dx[k] * dot;
        d_y += b.dweight_dy[k] * dot;
        const acc_t mw = m * b.weight[k];
        for (int e = 0; e < V; ++e) sink.add_input(index + e, mw * go[e]);
      }
      d_x *= m * grid.scale;
      d_y *= m * grid.scale;
    }
    sink.add_point(t.point0(s) + p, d_mask, d_x, d_y);
  }
}

}  // namespace mmyolo_dcnv3
