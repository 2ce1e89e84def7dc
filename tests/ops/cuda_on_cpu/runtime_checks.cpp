// Small kernels that keep or break the rules cuda_on_cpu.h checks, for
// tests/ops/test_cuda_on_cpu_runtime.py. `runtime_checks SCENARIO` launches
// one warp of 32 threads: a kept rule prints the lanes' results, one per line;
// a broken rule ends the process with the runtime's diagnosis.
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>

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
  const auto one_warp = [](auto kernel) { return ::cuda_on_cpu::launch(dim3(1), dim3(warpSize), 0, {}, kernel); };
  static float floats[warpSize];
  static double doubles[warpSize];
  alignas(16) static char bytes[64];
  // Each scenario's kernels; the ones with an argument take it from the scenario's name, after its stem.
  const std::map<std::string, std::function<void(int)>> scenarios = {
      {"segment_sums_",
       [&](int width) {
         one_warp(segment_sums)(width, floats);
         for (float value : floats) std::printf("%g\n", value);
       }},
      {"shift_down_",
       [&](int delta) {
         one_warp(shift_down)(static_cast<unsigned>(delta), doubles);
         for (double value : doubles) std::printf("%g\n", value);
       }},
      {"lane_exits_before_the_shuffle", [&](int) { one_warp(lane_exits_before_the_shuffle)(floats); }},
      {"lanes_at_different_calls", [&](int) { one_warp(lanes_at_different_calls)(floats); }},
      {"width_not_a_power_of_two", [&](int) { one_warp(width_not_a_power_of_two)(floats); }},
      {"read_outside_the_mask", [&](int) { one_warp(read_outside_the_mask)(floats); }},
      {"misaligned_atomic_add", [&](int) { one_warp(misaligned_atomic_add)(bytes); }},
      {"misaligned_vector_store", [&](int) { one_warp(misaligned_vector_store)(bytes); }},
  };
  const std::string scenario = argc == 2 ? argv[1] : "";
  for (const auto& [stem, run] : scenarios) {
    const bool takes_argument = stem.back() == '_';
    if (takes_argument ? scenario.rfind(stem, 0) == 0 : scenario == stem) {
      run(takes_argument ? std::atoi(scenario.c_str() + stem.size()) : 0);
      return 0;
    }
  }
  std::fprintf(stderr, "usage: %s SCENARIO (one of the kernels' names in runtime_checks.cpp)\n", argv[0]);
  return 2;
}
