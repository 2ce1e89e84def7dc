"""DCNv3 through ``F.grid_sample``: what users run without compiled kernels.

InternImage's pure-PyTorch fallback samples every point of every group with
one ``grid_sample`` call and leaves the backward to autograd. This is the same
approach, written for the op's contract; the benchmark measures the compiled
kernels against it, since it is the fastest alternative a user has.

``grid_sample`` with ``align_corners=False`` and zero padding is exactly the
contract's "bilinear, neighbours outside the image count as zero" (a location
at or beyond one pixel outside reads only zeros). Its coordinate
normalisation rounds, so results agree with the kernels to rounding error,
and the one-sided derivatives at exactly integer locations may differ.
"""
import torch
import torch.nn.functional as F

from .reference import sampling_locations
from .validation import check_dcnv3_args


def dcnv3_grid_sample(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, kernel_h: int,
                      kernel_w: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int,
                      dilation_h: int, dilation_w: int, group: int, group_channels: int,
                      offset_scale: float, im2col_step: int = 256,
                      remove_center: bool = False) -> torch.Tensor:
    """DCNv3 with one ``F.grid_sample`` over all points; arguments as :func:`mmyolo_dcnv3.ops.dcnv3`.

    Returns:
        (N, H_out, W_out, group * group_channels), in input's dtype.
    """
    height_out, width_out, points = check_dcnv3_args(
        input, offset, mask, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
        dilation_w, group, group_channels, offset_scale, im2col_step, remove_center)
    n, height_in, width_in, _ = input.shape
    x, y = sampling_locations(offset, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, dilation_h,
                              dilation_w, group, offset_scale, remove_center)
    # Pixel centres at integers -> grid_sample's [-1, 1] over the image's outer edges.
    grid = torch.stack(((2 * x + 1) / width_in - 1, (2 * y + 1) / height_in - 1), dim=-1)
    # (N, H_out, W_out, group, P, 2) -> (N * group, H_out * W_out, P, 2)
    grid = grid.permute(0, 3, 1, 2, 4, 5).reshape(n * group, height_out * width_out, points, 2)
    # (N, H_in, W_in, group * gc) -> (N * group, gc, H_in, W_in)
    features = input.view(n, height_in, width_in, group, group_channels).permute(0, 3, 4, 1, 2)
    features = features.reshape(n * group, group_channels, height_in, width_in)
    sampled = F.grid_sample(features, grid.to(input.dtype), mode='bilinear', padding_mode='zeros',
                            align_corners=False)  # (N * group, gc, H_out * W_out, P)
    weights = mask.view(n, height_out * width_out, group, 1, points).permute(0, 2, 3, 1, 4)
    output = (sampled * weights.reshape(n * group, 1, height_out * width_out, points)).sum(-1)
    # (N * group, gc, H_out * W_out) -> (N, H_out, W_out, group * gc)
    output = output.view(n, group, group_channels, height_out, width_out).permute(0, 3, 4, 1, 2)
    return output.reshape(n, height_out, width_out, group * group_channels)
