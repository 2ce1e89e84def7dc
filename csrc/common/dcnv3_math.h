// Device-agnostic arithmetic of DCNv3, written once: the shape, the point order
// and the sampling grid (used by the CPU and the CUDA kernels) and the bilinear
// interpolation (used by the CUDA kernels; the CPU kernels read a clamped 2x2
// block instead, see cpu/dcnv3_cpu_kernel.h).
//
// The contract (shapes, point order, sampling formula) is the one of
// InternImage's ops_dcnv3; see docs/operator.md.
// Layouts are channels-last:
//   input        (N, H_in, W_in, G * GC)
//   offset       (N, H_out, W_out, G * P * 2), pairs (dx, dy) per point
//   mask         (N, H_out, W_out, G * P)
//   output       (N, H_out, W_out, G * GC)
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DCNV3_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DCNV3_HOST_DEVICE inline
#endif

namespace mmyolo_dcnv3 {

// Geometry of one call: everything a kernel needs besides pointers and dtype.
struct Dcnv3Shape {
  int64_t batch;
  int64_t height_in, width_in;
  int64_t height_out, width_out;
  int64_t group, group_channels;
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  int64_t pad_h, pad_w;
  int64_t dilation_h, dilation_w;
  int64_t points;  // kernel_h * kernel_w - remove_center
  bool remove_center;
  double offset_scale;

  DCNV3_HOST_DEVICE int64_t channels() const { return group * group_channels; }
  DCNV3_HOST_DEVICE int64_t pixels_out() const { return batch * height_out * width_out; }
};

// Kernel column i and row j of sampling point p. Points run column-major
// (p = i * kernel_h + j); with remove_center the centre point is skipped and
// the later points shift down by one.
DCNV3_HOST_DEVICE void point_position(const Dcnv3Shape& s, int64_t p, int64_t& i, int64_t& j) {
  if (s.remove_center && p >= (s.kernel_w / 2) * s.kernel_h + s.kernel_h / 2) {
    ++p;
  }
  i = p / s.kernel_h;
  j = p - i * s.kernel_h;
}

// Floor of a value already known to lie in (-1, limit): cheaper than floor()
// on every target and exact for that range.
template <typename acc_t>
DCNV3_HOST_DEVICE int64_t floor_in_range(acc_t v) {
  const int64_t truncated = static_cast<int64_t>(v);
  return truncated - (static_cast<acc_t>(truncated) > v ? 1 : 0);
}

// Where one point of one output pixel samples, in input pixel coordinates
// (pixel centres at integers). offset_scale scales the fixed grid as well as
// the learned offset (dx, dy).
template <typename acc_t>
struct SamplingGrid {
  acc_t origin_x, origin_y;  // kernel centre of the output pixel
  acc_t scale;

  DCNV3_HOST_DEVICE SamplingGrid(const Dcnv3Shape& s, int64_t ho, int64_t wo)
      : origin_x(static_cast<acc_t>(wo * s.stride_w - s.pad_w + (s.dilation_w * (s.kernel_w - 1)) / 2)),
        origin_y(static_cast<acc_t>(ho * s.stride_h - s.pad_h + (s.dilation_h * (s.kernel_h - 1)) / 2)),
        scale(static_cast<acc_t>(s.offset_scale)) {}

  // Grid displacement of kernel column i (tap_x) or row j (tap_y) from the
  // kernel centre, in input pixels before scaling.
  DCNV3_HOST_DEVICE static acc_t tap_x(const Dcnv3Shape& s, int64_t i) {
    return static_cast<acc_t>(i * s.dilation_w - (s.dilation_w * (s.kernel_w - 1)) / 2);
  }
  DCNV3_HOST_DEVICE static acc_t tap_y(const Dcnv3Shape& s, int64_t j) {
    return static_cast<acc_t>(j * s.dilation_h - (s.dilation_h * (s.kernel_h - 1)) / 2);
  }

  DCNV3_HOST_DEVICE acc_t x(acc_t tap_x, acc_t dx) const { return origin_x + (tap_x + dx) * scale; }
  DCNV3_HOST_DEVICE acc_t y(acc_t tap_y, acc_t dy) const { return origin_y + (tap_y + dy) * scale; }
};

// Bilinear interpolation at (y, x): the four neighbours, their weights, and
// the derivatives of the weights with respect to x and y. A neighbour outside
// the image has weight zero (and so do its derivatives).
template <typename acc_t>
struct Bilinear {
  int64_t y0, x0;   // top-left neighbour; may be -1
  acc_t weight[4];  // neighbours (y0,x0), (y0,x0+1), (y0+1,x0), (y0+1,x0+1)
  acc_t dweight_dx[4];
  acc_t dweight_dy[4];
  bool inside[4];

  // Row and column of neighbour k.
  DCNV3_HOST_DEVICE int64_t row(int k) const { return y0 + (k >> 1); }
  DCNV3_HOST_DEVICE int64_t col(int k) const { return x0 + (k & 1); }
};

// Fills `b` for location (y, x) in an image of height x width. Returns false
// when the location contributes nothing: y <= -1, x <= -1, y >= height,
// x >= width, or a coordinate is not a number.
template <typename acc_t>
DCNV3_HOST_DEVICE bool bilinear_at(acc_t y, acc_t x, int64_t height, int64_t width, Bilinear<acc_t>& b) {
  if (!(y > acc_t(-1) && x > acc_t(-1) && y < static_cast<acc_t>(height) && x < static_cast<acc_t>(width))) {
    return false;
  }
  b.y0 = floor_in_range(y);
  b.x0 = floor_in_range(x);
  const acc_t ly = y - static_cast<acc_t>(b.y0);
  const acc_t lx = x - static_cast<acc_t>(b.x0);
  const acc_t hy = acc_t(1) - ly;
  const acc_t hx = acc_t(1) - lx;
  const bool top = b.y0 >= 0, bottom = b.y0 + 1 < height;
  const bool left = b.x0 >= 0, right = b.x0 + 1 < width;
  b.inside[0] = top && left;
  b.inside[1] = top && right;
  b.inside[2] = bottom && left;
  b.inside[3] = bottom && right;
  const acc_t w[4] = {hy * hx, hy * lx, ly * hx, ly * lx};
  const acc_t wx[4] = {-hy, hy, -ly, ly};
  const acc_t wy[4] = {-hx, -lx, hx, lx};
  for (int k = 0; k < 4; ++k) {
    b.weight[k] = b.inside[k] ? w[k] : acc_t(0);
    b.dweight_dx[k] = b.inside[k] ? wx[k] : acc_t(0);
    b.dweight_dy[k] = b.inside[k] ? wy[k] : acc_t(0);
  }
  return true;
}

// Element index of input[n, row, col, g * GC] (start of a group's channels).
DCNV3_HOST_DEVICE int64_t input_index(const Dcnv3Shape& s, int64_t n, int64_t row, int64_t col, int64_t g) {
  return ((n * s.height_in + row) * s.width_in + col) * s.channels() + g * s.group_channels;
}

}  // namespace mmyolo_dcnv3
