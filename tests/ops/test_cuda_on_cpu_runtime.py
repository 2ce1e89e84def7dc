"""The CUDA-on-CPU runtime's own rules (tests/ops/cuda_on_cpu/cuda_on_cpu.h), on small kernels of
cuda_on_cpu/runtime_checks.cpp: CUDA's __shfl_down_sync semantics where they are defined, an abort with a
diagnosis where the device's result would be undefined."""
import subprocess

import pytest

from tests.ops.conftest import skip_without_compiler
from tests.ops.cuda_on_cpu import build

WARP = 32


@pytest.fixture(scope='module')
def runtime_checks():
    skip_without_compiler()
    program = build.build_runtime_checks()
    return lambda scenario: subprocess.run([str(program), scenario], capture_output=True, text=True, timeout=60)


def shfl_down(values, delta, width):
    """CUDA's definition: lane l gets lane l + delta's value if that lane is in its segment of `width`
    lanes, else its own."""
    return [values[lane + delta] if lane % width + delta < width else values[lane] for lane in range(WARP)]


@pytest.mark.parametrize('width', [1, 2, 4, 8, 16, 32])
def test_shuffle_reduction_sums_each_segment_into_its_first_lane(runtime_checks, width):
    result = runtime_checks(f'segment_sums_{width}')
    assert result.returncode == 0, result.stderr
    expected = [float(lane) for lane in range(WARP)]
    delta = width // 2
    while delta > 0:
        expected = [a + b for a, b in zip(expected, shfl_down(expected, delta, width))]
        delta //= 2
    assert [float(line) for line in result.stdout.split()] == expected
    assert expected[::width] == [sum(range(first, first + width)) for first in range(0, WARP, width)]


@pytest.mark.parametrize('delta', [0, 1, 3, 31])
def test_shuffle_of_a_double_reads_delta_lanes_down_within_the_warp(runtime_checks, delta):
    result = runtime_checks(f'shift_down_{delta}')
    assert result.returncode == 0, result.stderr
    assert [float(line) for line in result.stdout.split()] == shfl_down([0.5 + lane for lane in range(WARP)],
                                                                        delta, WARP)


@pytest.mark.parametrize('scenario,diagnosis', [
    ('lane_exits_before_the_shuffle', 'lane 5, named in mask 0xffffffff, has exited'),
    ('lanes_at_different_calls', 'lanes 0 and 16 meet at different __shfl_down_sync calls'),
    ('width_not_a_power_of_two', 'width 6 is not a power of two <= 32'),
    ('read_outside_the_mask', 'lane 15 reads lane 16, which is not in mask 0x0000ffff'),
    ('misaligned_atomic_add', 'which is not 4-byte aligned'),
    ('misaligned_vector_store', 'which is not 16-byte aligned'),
])
def test_undefined_device_behaviour_aborts_with_a_diagnosis(runtime_checks, scenario, diagnosis):
    result = runtime_checks(scenario)
    assert result.returncode != 0 and diagnosis in result.stderr, result.stderr
