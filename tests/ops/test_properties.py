"""Property-based: random valid shapes and parameters, the compiled CPU kernels and the CUDA source run on
the CPU (test_cuda_on_cpu.py) vs the reference."""
import pytest

from mmyolo_dcnv3.ops._library import compiled_kernels
from tests.ops.dcnv3_testing import Case
from tests.ops.test_cuda_on_cpu import differentiable
from tests.ops.test_dcnv3_cpu import assert_matches_reference

hypothesis = pytest.importorskip('hypothesis')
st = hypothesis.strategies

pytestmark = pytest.mark.skipif(not compiled_kernels().available('cpu'),
                                reason='kernels not built')


@st.composite
def cases(draw):
    kernel_h = draw(st.integers(1, 5))
    kernel_w = draw(st.integers(1, 5))
    dilation = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # Smallest input giving a non-empty output.
    min_h = max(1, dilation[0] * (kernel_h - 1) + 1 - 2 * pad[0])
    min_w = max(1, dilation[1] * (kernel_w - 1) + 1 - 2 * pad[1])
    return Case(
        batch=draw(st.integers(0, 3)),
        height=draw(st.integers(min_h, min_h + 6)),
        width=draw(st.integers(min_w, min_w + 6)),
        group=draw(st.integers(1, 4)),
        group_channels=draw(st.integers(1, 20)),
        kernel=(kernel_h, kernel_w), stride=stride, pad=pad, dilation=dilation,
        offset_scale=draw(st.sampled_from([0.25, 0.5, 1.0, 1.5, 2.0])),
        remove_center=kernel_h == kernel_w and kernel_h in (3, 5) and draw(st.booleans()),
        im2col_step=draw(st.integers(1, 4)),
        offset_std=draw(st.sampled_from([0.0, 0.5, 2.0, 6.0])))


@hypothesis.settings(max_examples=60, deadline=None, derandomize=True)
@hypothesis.given(case=cases())
def test_compiled_matches_reference_on_random_cases(case):
    assert_matches_reference(case)


@hypothesis.settings(max_examples=30, deadline=None, derandomize=True)
@hypothesis.given(case=cases())
def test_cuda_source_run_on_the_cpu_matches_reference_on_random_cases(cuda_on_cpu, case):
    assert_matches_reference(case, fn=differentiable(cuda_on_cpu))
