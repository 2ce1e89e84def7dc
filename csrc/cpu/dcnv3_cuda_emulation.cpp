// Host emulation of the CUDA kernels, for tests on machines without a GPU.
//
// mmyolo_dcnv3::emulate_cuda_forward / emulate_cuda_backward (CPU tensors)
// run the CUDA kernels' per-thread bodies (common/dcnv3_thread_bodies.h)
// through the CUDA launcher's host logic (common/dcnv3_thread_launch.h). The
// backward runs warp by warp, as the device does: padding threads past the
// end included, grad_input added in place of atomics, and grad_offset/grad_mask
// either reduced over each group's lanes in the order of the device's warp
// shuffles and stored by the group's first lane, or added per lane in place of
// atomics (reduces_by_warp_shuffle decides, as on the device). Slow; not for
// production use.
#include <torch/library.h>

#include <vector>

#include "common/dcnv3_thread_launch.h"

namespace mmyolo_dcnv3 {
namespace {

// What one emulated thread hands to its sink: grad_input directly, and per
// point its partial (d_mask, d_x, d_y) with the point's index, for the warp
// step that follows.
template <typename acc_t>
struct LaneRecord {
  acc_t* grad_input;
  int64_t* point_index;  // [points]
  acc_t* partials;       // [points][3]
  int64_t calls = 0;

  void add_input(int64_t index, acc_t value) { grad_input[index] += value; }
  void add_point(int64_t point, acc_t d_mask, acc_t d_x, acc_t d_y) {
    point_index[calls] = point;
    partials[3 * calls] = d_mask;
    partials[3 * calls + 1] = d_x;
    partials[3 * calls + 2] = d_y;
    ++calls;
  }
};

struct WarpExecutor {
  template <typename scalar_t, typename acc_t, int V>
  static void forward(const Dcnv3Shape& s, int64_t threads, const scalar_t* input, const scalar_t* offset,
                      const scalar_t* mask, scalar_t* output) {
    for (int64_t t = 0; t < threads; ++t) forward_thread<scalar_t, acc_t, V>(s, t, input, offset, mask, output);
  }

  template <typename scalar_t, typename acc_t, int V>
  static void backward(const Dcnv3Shape& s, int64_t threads, const scalar_t* input, const scalar_t* offset,
                       const scalar_t* mask, const scalar_t* grad_output, acc_t* grad_input, acc_t* grad_offset,
                       acc_t* grad_mask) {
    const int64_t lanes = s.group_channels / V;
    const bool shuffle = reduces_by_warp_shuffle(lanes);
    TORCH_CHECK(!shuffle || (lanes <= kWarpSize && kWarpSize % lanes == 0), "emulate_cuda_backward: ", lanes,
                " lanes cannot reduce by warp shuffles (the width must divide the warp size ", kWarpSize, ")");
    std::vector<int64_t> point_index(kWarpSize * s.points);
    std::vector<acc_t> partials(kWarpSize * s.points * 3);
    for (int64_t warp = 0; warp < threads; warp += kWarpSize) {
      bool active[kWarpSize];
      for (int lane = 0; lane < kWarpSize; ++lane) {
        const int64_t t = warp + lane;
        active[lane] = t < threads;
        LaneRecord<acc_t> record{grad_input, &point_index[lane * s.points], &partials[lane * s.points * 3]};
        backward_thread<scalar_t, acc_t, V>(s, active[lane] ? t : threads - 1, active[lane], input, offset, mask,
                                            grad_output, record);
        TORCH_CHECK(record.calls == s.points, "emulate_cuda_backward: thread ", t, " reported ", record.calls,
                    " points, expected ", s.points);
      }
      for (int64_t p = 0; p < s.points; ++p) {
        if (shuffle) {
          for (int first = 0; first < kWarpSize; first += static_cast<int>(lanes)) {
            store_group_sum(first, static_cast<int>(lanes), p, s.points, warp, active, point_index, partials,
                            grad_offset, grad_mask);
          }
        } else {
          for (int lane = 0; lane < kWarpSize; ++lane) {
            if (!active[lane]) continue;
            const int64_t point = point_index[lane * s.points + p];
            const acc_t* partial = &partials[(lane * s.points + p) * 3];
            grad_mask[point] += partial[0];
            grad_offset[2 * point] += partial[1];
            grad_offset[2 * point + 1] += partial[2];
          }
        }
      }
    }
  }

  // The shuffle path of AtomicSink::add_point (cuda/dcnv3_cuda_kernels.cuh) for the
  // group of `lanes` threads starting at warp lane `first`, point p:
  // __shfl_down_sync(value, delta, lanes) hands lane l the value of lane
  // l + delta of its segment (its own value past the segment's end); after
  // the rounds delta = lanes/2 .. 1 the first lane (the device's leader,
  // t % lanes == 0) holds the sum and stores it.
  template <typename acc_t>
  static void store_group_sum(int first, int lanes, int64_t p, int64_t points, int64_t warp, const bool* active,
                              const std::vector<int64_t>& point_index, const std::vector<acc_t>& partials,
                              acc_t* grad_offset, acc_t* grad_mask) {
    const int64_t point = point_index[first * points + p];
    acc_t sums[3][kWarpSize];
    for (int l = 0; l < lanes; ++l) {
      // Shuffling lanes must handle the same point, or their sum means nothing.
      TORCH_CHECK(point_index[(first + l) * points + p] == point, "emulate_cuda_backward: lanes ", first, " and ",
                  first + l, " of the warp at thread ", warp, " reduce different points");
      for (int k = 0; k < 3; ++k) sums[k][l] = partials[((first + l) * points + p) * 3 + k];
    }
    for (int delta = lanes / 2; delta > 0; delta /= 2) {
      for (int k = 0; k < 3; ++k) {
        acc_t before[kWarpSize];
        for (int l = 0; l < lanes; ++l) before[l] = sums[k][l];
        for (int l = 0; l < lanes; ++l) sums[k][l] += l + delta < lanes ? before[l + delta] : before[l];
      }
    }
    if (active[first]) {
      grad_mask[point] = sums[0][0];
      grad_offset[2 * point] = sums[1][0];
      grad_offset[2 * point + 1] = sums[2][0];
    }
  }
};

}  // namespace

TORCH_LIBRARY_IMPL(mmyolo_dcnv3, CPU, m) {
  m.impl("emulate_cuda_forward", thread_bodies_forward<WarpExecutor>);
  m.impl("emulate_cuda_backward", thread_bodies_backward<WarpExecutor>);
}

}  // namespace mmyolo_dcnv3
