"""Pure-PyTorch DCNv3: the reference the kernels are tested against.

Runs on any device and dtype, is differentiable through autograd, and serves
as the fallback where no compiled kernel is available (ONNX export translates
the compiled op, not this). It follows the operator contract
(docs/operator.md) literally: explicit floor and
four-neighbour gathers (not grid_sample, whose coordinate normalisation moves
integer locations off the integers and so changes the one-sided derivatives
there).
"""
import torch
import torch.nn.functional as F

from .point_order import point_taps
from .validation import check_dcnv3_args


def sampling_locations(offset: torch.Tensor, kernel_h: int, kernel_w: int, stride_h: int, stride_w: int,
                       pad_h: int, pad_w: int, dilation_h: int, dilation_w: int, group: int,
                       offset_scale: float, remove_center: bool = False):
    """Where each point samples, in input pixel coordinates (pixel centres at integers).

    Args:
        offset: (N, H_out, W_out, group * P * 2), the op's offsets.
        the rest: as for :func:`dcnv3_reference`.

    Returns:
        (x, y), each of shape (N, H_out, W_out, group, P), in offset's dtype.
    """
    n, height_out, width_out, _ = offset.shape
    device, dtype = offset.device, offset.dtype
    taps = torch.tensor(point_taps(kernel_h, kernel_w, dilation_h, dilation_w, remove_center), device=device)
    tap_x, tap_y = taps[:, 0].to(dtype), taps[:, 1].to(dtype)
    centre_x = (dilation_w * (kernel_w - 1)) // 2
    centre_y = (dilation_h * (kernel_h - 1)) // 2
    origin_x = (torch.arange(width_out, device=device) * stride_w - pad_w + centre_x).to(dtype)
    origin_y = (torch.arange(height_out, device=device) * stride_h - pad_h + centre_y).to(dtype)
    offset = offset.reshape(n, height_out, width_out, group, len(taps), 2)
    x = origin_x.view(1, 1, -1, 1, 1) + (tap_x + offset[..., 0]) * offset_scale
    y = origin_y.view(1, -1, 1, 1, 1) + (tap_y + offset[..., 1]) * offset_scale
    return x, y


def dcnv3_reference(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, kernel_h: int,
                    kernel_w: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                    dilation_h: int, dilation_w: int, group: int, group_channels: int,
                    offset_scale: float, im2col_step: int = 256,
                    remove_center: bool = False) -> torch.Tensor:
    """DCNv3 in plain PyTorch; same arguments as :func:`mmyolo_dcnv3.ops.dcnv3`.

    ``im2col_step`` is accepted and ignored. Float16 and bfloat16 inputs are
    computed in float32 and the result is rounded back, as the kernels do.

    Returns:
        Tensor of shape (N, H_out, W_out, group * group_channels).
    """
    height_out, width_out, points = check_dcnv3_args(
        input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
        dilation_w, group, group_channels, offset_scale, im2col_step, remove_center)
    out_dtype = input.dtype
    dtype = torch.float64 if out_dtype == torch.float64 else torch.float32
    input, offset, mask = input.to(dtype), offset.to(dtype), mask.to(dtype)
    n, height_in, width_in, _ = input.shape

    x, y = sampling_locations(offset, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                              dilation_w, group, offset_scale, remove_center)
    mask = mask.reshape(x.shape)
    inside = (x > -1) & (y > -1) & (x < width_in) & (y < height_in)
    x0 = torch.where(inside, x, torch.zeros_like(x)).detach().floor()
    y0 = torch.where(inside, y, torch.zeros_like(y)).detach().floor()
    lx, ly = x - x0, y - y0

    # Zero border of one pixel: neighbours at -1 or H_in/W_in read zeros.
    padded = F.pad(input, (0, 0, 1, 1, 1, 1))
    padded = padded.reshape(n, (height_in + 2) * (width_in + 2), group, group_channels)
    padded = padded.permute(0, 2, 1, 3)  # (N, group, pixels, group_channels)

    def gather(rows_, cols_):
        index = ((rows_ + 1) * (width_in + 2) + (cols_ + 1)).long()
        index = torch.where(inside, index, torch.zeros_like(index))
        index = index.permute(0, 3, 1, 2, 4).reshape(n, group, height_out * width_out * points, 1)
        values = torch.gather(padded, 2, index.expand(-1, -1, -1, group_channels))
        return values.view(n, group, height_out, width_out, points, group_channels)

    def to_points(weight):  # (N, H_out, W_out, group, P) -> broadcastable to gathered values
        weight = torch.where(inside, weight * mask, torch.zeros_like(weight))
        return weight.permute(0, 3, 1, 2, 4).unsqueeze(-1)

    sampled = (to_points((1 - ly) * (1 - lx)) * gather(y0, x0)
               + to_points((1 - ly) * lx) * gather(y0, x0 + 1)
               + to_points(ly * (1 - lx)) * gather(y0 + 1, x0)
               + to_points(ly * lx) * gather(y0 + 1, x0 + 1))
    output = sampled.sum(dim=4)  # (N, group, H_out, W_out, group_channels)
    output = output.permute(0, 2, 3, 1, 4).reshape(n, height_out, width_out, group * group_channels)
    return output.to(out_dtype)
