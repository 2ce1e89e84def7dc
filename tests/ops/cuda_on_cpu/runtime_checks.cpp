// Small kernels that keep or break the rules cuda_on_cpu.h checks, for
// tests/ops/test_cuda_on_cpu_runtime.py. `runtime_checks SCENARIO` launches
// one warp of 32 threads: a kept rule prints the lanes' results, one per line;
// a broken rule ends the process with the runtime's diagnosis.
#include <cstdio>
#include <cstring>

#include "cuda_on_cpu.h"

namespace {

constexpr unsigned kFullMask = 0xffffffffu;

// Sums of segments of `width` lanes, as a warp reduction does (lane l starts with l).
__global__ void segment_sums(int width, float* out) {
  float value = static_cast<float>(threadIdx.x);
  for (int delta = width / 2; delta > 0; delta /= 2) value += __shfl_down_sync(kFullMask, value, delta, width);
  out[threadIdx.x] = value;
}

// A shuffle by `delta` over the whole warp, in double (8 bytes move).
__global__ void shift_down(unsigned delta, double* out) {
  out[threadIdx.x] = __shfl_down_sync(kFullMask, 0.5 + threadIdx.x, delta);
}

__global__ void lane_exits_before_the_shuffle(float* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_down_sync(kFullMask, 1.0f, 1);
}

__global__ void lanes_at_different_calls(float* out) {
  if (threadIdx.x < 16) {
    out[threadIdx.x] = __shfl_down_sync(kFullMask, 1.0f, 1);
  } else {
    out[threadIdx.x] = __shfl_down_sync(kFullMask, 2.0f, 1);
  }
}

__global__ void width_not_a_power_of_two(float* out) { out[threadIdx.x] = __shfl_down_sync(kFullMask, 1.0f, 1, 6); }

// Lanes 0-15 shuffle among themselves; lane 15 reads lane 16, outside the mask.
__global__ void read_outside_the_mask(float* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, 1.0f, 1);
}

__global__ void misaligned_atomic_add(char* bytes) { atomicAdd(reinterpret_cast<float*>(bytes + 2), 1.0f); }

__global__ void misaligned_vector_store(char* bytes) { __stwb(reinterpret_cast<uint4*>(bytes + 8), uint4{1, 2, 3, 4}); }

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SCENARIO\n", argv[0]);
    return 2;
  }
  const char* scenario = argv[1];
  const auto one_warp = [](auto kernel) { return ::cuda_on_cpu::launch(dim3(1), dim3(warpSize), 0, {}, kernel); };
  float floats[warpSize] = {};
  double doubles[warpSize] = {};
  alignas(16) char bytes[64] = {};
  if (std::strncmp(scenario, "segment_sums_", 13) == 0) {
    one_warp(segment_sums)(std::atoi(scenario + 13), floats);
    for (float value : floats) std::printf("%g\n", value);
  } else if (std::strncmp(scenario, "shift_down_", 11) == 0) {
    one_warp(shift_down)(static_cast<unsigned>(std::atoi(scenario + 11)), doubles);
    for (double value : doubles) std::printf("%g\n", value);
  } else if (std::strcmp(scenario, "lane_exits_before_the_shuffle") == 0) {
    one_warp(lane_exits_before_the_shuffle)(floats);
  } else if (std::strcmp(scenario, "lanes_at_different_calls") == 0) {
    one_warp(lanes_at_different_calls)(floats);
  } else if (std::strcmp(scenario, "width_not_a_power_of_two") == 0) {
    one_warp(width_not_a_power_of_two)(floats);
  } else if (std::strcmp(scenario, "read_outside_the_mask") == 0) {
    one_warp(read_outside_the_mask)(floats);
  } else if (std::strcmp(scenario, "misaligned_atomic_add") == 0) {
    one_warp(misaligned_atomic_add)(bytes);
  } else if (std::strcmp(scenario, "misaligned_vector_store") == 0) {
    one_warp(misaligned_vector_store)(bytes);
  } else {
    std::fprintf(stderr, "unknown scenario %s\n", scenario);
    return 2;
  }
  return 0;
}
