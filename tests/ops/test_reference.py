"""The pure-PyTorch reference against a naive loop written from the contract."""
import math

import pytest
import torch

from mmyolo_dcnv3.ops import dcnv3_reference
from tests.ops.dcnv3_testing import Case


def naive_dcnv3(input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w,
                dilation_h, dilation_w, group, group_channels, offset_scale, im2col_step,
                remove_center):
    """The operator contract (docs/operator.md), one scalar at a time."""
    n_batch, height, width, _ = input.shape
    _, h_out, w_out, _ = mask.shape
    taps = [(i, j) for i in range(kernel_w) for j in range(kernel_h)
            if not (remove_center and i == kernel_w // 2 and j == kernel_h // 2)]
    cx = (dilation_w * (kernel_w - 1)) // 2
    cy = (dilation_h * (kernel_h - 1)) // 2

    def pixel(n, row, col, channel):
        if 0 <= row < height and 0 <= col < width:
            return input[n, row, col, channel]
        return input.new_zeros(())

    rows = []
    for n in range(n_batch):
        for ho in range(h_out):
            for wo in range(w_out):
                values = []
                for g in range(group):
                    acc = [input.new_zeros(()) for _ in range(group_channels)]
                    for p, (i, j) in enumerate(taps):
                        dx = offset[n, ho, wo, (g * len(taps) + p) * 2]
                        dy = offset[n, ho, wo, (g * len(taps) + p) * 2 + 1]
                        x = wo * stride_w - pad_w + cx + (i * dilation_w - cx + dx) * offset_scale
                        y = ho * stride_h - pad_h + cy + (j * dilation_h - cy + dy) * offset_scale
                        if y <= -1 or x <= -1 or y >= height or x >= width:
                            continue
                        y0, x0 = math.floor(y.item()), math.floor(x.item())
                        ly, lx = y - y0, x - x0
                        m = mask[n, ho, wo, g * len(taps) + p]
                        for c in range(group_channels):
                            channel = g * group_channels + c
                            value = ((1 - ly) * (1 - lx) * pixel(n, y0, x0, channel)
                                     + (1 - ly) * lx * pixel(n, y0, x0 + 1, channel)
                                     + ly * (1 - lx) * pixel(n, y0 + 1, x0, channel)
                                     + ly * lx * pixel(n, y0 + 1, x0 + 1, channel))
                            acc[c] = acc[c] + m * value
                    values += acc
                rows.append(torch.stack(values))
    return torch.stack(rows).view(n_batch, h_out, w_out, group * group_channels)


TINY_CASES = [
    Case(batch=1, height=4, width=5, group=2, group_channels=2),
    Case(batch=2, height=5, width=4, group=1, group_channels=3, kernel=(2, 3), pad=(1, 0),
         stride=(2, 1), offset_scale=0.5),
    Case(batch=1, height=6, width=6, group=2, group_channels=1, kernel=(3, 3), dilation=(2, 1),
         pad=(2, 1), remove_center=True, offset_scale=2.0),
    Case(batch=1, height=3, width=3, group=1, group_channels=2, kernel=(1, 1), pad=(0, 0),
         offset_std=2.0),
]


@pytest.mark.parametrize('case', TINY_CASES, ids=str)
def test_reference_matches_naive_loop_forward_and_gradients(case):
    tensors = case.tensors(requires_grad=True)
    expected = naive_dcnv3(*tensors, *case.op_args())
    actual = dcnv3_reference(*tensors, *case.op_args())
    torch.testing.assert_close(actual, expected, rtol=1e-12, atol=1e-12)
    weight = torch.randn_like(expected)
    grads_expected = torch.autograd.grad(expected, tensors, weight)
    grads_actual = torch.autograd.grad(actual, tensors, weight)
    for name, a, e in zip(('input', 'offset', 'mask'), grads_actual, grads_expected):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12, msg=lambda m: f'grad {name}: {m}')


def test_reference_samples_zero_outside_the_image():
    case = Case(batch=1, height=4, width=4, group=1, group_channels=3)
    input, offset, mask = case.tensors()
    offset = torch.full_like(offset, 100.0)  # every point far outside
    output = dcnv3_reference(input, offset, mask, *case.op_args())
    assert torch.count_nonzero(output) == 0


def test_reference_with_zero_offsets_and_one_hot_mask_is_a_shifted_copy():
    # Point p = i * kernel_h + j with i = 2 (right column), j = 1 (middle row)
    # samples input[y, x + 1] exactly.
    case = Case(batch=1, height=5, width=6, group=1, group_channels=4)
    input, offset, mask = case.tensors()
    offset.zero_()
    mask.zero_()
    mask[..., 2 * 3 + 1] = 1.0
    output = dcnv3_reference(input, offset, mask, *case.op_args())
    torch.testing.assert_close(output[:, :, :-1], input[:, :, 1:])
    assert torch.count_nonzero(output[:, :, -1]) == 0
