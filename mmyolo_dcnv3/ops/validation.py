"""Argument checks of the DCNv3 op, with messages that name the argument."""
from typing import NamedTuple

import torch


class Dcnv3Geometry(NamedTuple):
    """Sizes derived from validated arguments."""

    height_out: int
    width_out: int
    points: int  # sampling points per group: kernel_h * kernel_w - remove_center


def output_size(size_in: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Output length of one spatial dimension (same rule as a convolution)."""
    return (size_in + 2 * pad - (dilation * (kernel - 1) + 1)) // stride + 1


def check_dcnv3_args(input: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, kernel_h: int,
                     kernel_w: int, stride_h: int, stride_w: int, pad_h: int, pad_w: int, dilation_h: int,
                     dilation_w: int, group: int, group_channels: int, offset_scale: float,
                     im2col_step: int, remove_center: bool) -> Dcnv3Geometry:
    """Raises ValueError/TypeError naming the first bad argument; returns the geometry."""
    for name, tensor in (('input', input), ('offset', offset), ('mask', mask)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f'dcnv3: {name} must be a torch.Tensor, got {type(tensor).__name__}')
        if tensor.dim() != 4:
            raise ValueError(f'dcnv3: {name} must be 4-D channels-last (N, H, W, C), '
                             f'got shape {tuple(tensor.shape)}')
        if not tensor.is_floating_point():
            raise TypeError(f'dcnv3: {name} must be a floating-point tensor, got {tensor.dtype}')
    for name, value in (('kernel_h', kernel_h), ('kernel_w', kernel_w), ('stride_h', stride_h),
                        ('stride_w', stride_w), ('dilation_h', dilation_h), ('dilation_w', dilation_w),
                        ('group', group), ('group_channels', group_channels), ('im2col_step', im2col_step)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f'dcnv3: {name} must be a positive int, got {value!r}')
    for name, value in (('pad_h', pad_h), ('pad_w', pad_w)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f'dcnv3: {name} must be a non-negative int, got {value!r}')
    if isinstance(offset_scale, bool) or not isinstance(offset_scale, (int, float)):
        raise TypeError(f'dcnv3: offset_scale must be a float, got {offset_scale!r}')
    if not isinstance(remove_center, bool):
        raise TypeError(f'dcnv3: remove_center must be a bool, got {remove_center!r}')
    if remove_center and (kernel_h != kernel_w or kernel_h % 2 == 0 or kernel_h < 3):
        raise ValueError('dcnv3: remove_center=True needs an odd, square kernel of at least 3x3, '
                         f'got kernel_h={kernel_h}, kernel_w={kernel_w}')

    if offset.device != input.device or mask.device != input.device:
        raise ValueError('dcnv3: input, offset and mask must be on the same device, got '
                         f'{input.device}, {offset.device} and {mask.device}')
    if offset.dtype != input.dtype or mask.dtype != input.dtype:
        raise TypeError('dcnv3: input, offset and mask must have the same dtype, got '
                        f'{input.dtype}, {offset.dtype} and {mask.dtype}')

    n, height_in, width_in, channels = input.shape
    if channels != group * group_channels:
        raise ValueError(f'dcnv3: input has {channels} channels (last dimension) but group * '
                         f'group_channels = {group} * {group_channels} = {group * group_channels}')
    height_out = output_size(height_in, kernel_h, stride_h, pad_h, dilation_h)
    width_out = output_size(width_in, kernel_w, stride_w, pad_w, dilation_w)
    if height_out <= 0 or width_out <= 0:
        raise ValueError(f'dcnv3: input of {height_in}x{width_in} pixels is too small for kernel '
                         f'{kernel_h}x{kernel_w}, dilation ({dilation_h}, {dilation_w}) and padding '
                         f'({pad_h}, {pad_w}): the output would be {height_out}x{width_out}')
    points = kernel_h * kernel_w - int(remove_center)
    for name, tensor, per_point in (('offset', offset, 2), ('mask', mask, 1)):
        expected = (n, height_out, width_out, group * points * per_point)
        if tuple(tensor.shape) != expected:
            what = 'group * points * 2' if per_point == 2 else 'group * points'
            raise ValueError(f'dcnv3: {name} must have shape (N, H_out, W_out, {what}) = {expected} '
                             f'for input {tuple(input.shape)} with {points} points per group, '
                             f'got {tuple(tensor.shape)}')
    return Dcnv3Geometry(height_out, width_out, points)
