"""DCNv3 modules: InternImage's channels-last block and an NCHW conv layer.

``DCNv3`` has InternImage's constructor arguments and state-dict keys, so an
InternImage ``DCNv3`` state dict loads with ``strict=True`` and gives the same
output. Both are registered under their class names in mmengine's root
``MODELS``, the registry mmcv's ``build_conv_layer`` searches, so
``conv_cfg=dict(type='DCNv3Conv2d', group=4)`` works in any OpenMMLab config.
"""
import math
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.registry import MODELS

from mmyolo_dcnv3.ops import dcnv3, sampling_locations
from mmyolo_dcnv3.ops.validation import output_size


class _ToChannelsLast(nn.Module):
    def forward(self, x):
        return x.permute(0, 2, 3, 1)


def _norm_to_channels_last(norm_layer: str, channels: int) -> nn.Sequential:
    """InternImage's norm of the offset branch: NCHW in, NHWC out."""
    if norm_layer == 'LN':
        return nn.Sequential(_ToChannelsLast(), nn.LayerNorm(channels, eps=1e-6))
    if norm_layer == 'BN':
        return nn.Sequential(nn.BatchNorm2d(channels), _ToChannelsLast())
    raise ValueError(f"DCNv3: norm_layer must be 'LN' or 'BN', got {norm_layer!r}")


def _activation(act_layer: str) -> nn.Module:
    layers = {'GELU': nn.GELU, 'ReLU': nn.ReLU, 'SiLU': nn.SiLU}
    if act_layer not in layers:
        raise ValueError(f'DCNv3: act_layer must be one of {", ".join(layers)}, got {act_layer!r}')
    return layers[act_layer]()


@MODELS.register_module()
class DCNv3(nn.Module):
    """The DCNv3 block of InternImage, channels-last: (N, H, W, C) -> (N, H_out, W_out, C).

    ``x = input_proj(input)`` is sampled by the DCNv3 op at offsets and with
    weights (softmax over each group's points) predicted from the block's
    input by a depthwise conv, norm and activation (``dw_conv``) followed by
    the ``offset`` and ``mask`` linear layers; ``output_proj`` mixes the
    result. Offsets and masks start at zero (a plain average of the kernel's
    points). With ``stride > 1`` (which InternImage's module does not
    support) the offset branch is read at each output pixel's kernel centre,
    so offsets and masks are predicted at the output resolution.

    Args:
        channels: C, a multiple of ``group``.
        kernel_size: kernel size (square).
        dw_kernel_size: kernel of the depthwise conv (default: kernel_size).
        stride, pad, dilation: of the deformable sampling grid.
        group: channel groups; each has its own offsets and mask.
        offset_scale: scales the grid and the offsets.
        act_layer: 'GELU' (default), 'ReLU' or 'SiLU'.
        norm_layer: 'LN' (default) or 'BN'.
        center_feature_scale: blend the output with ``input_proj(input)`` by a
            learned per-group gate, ``center_feature_scale_proj`` (an
            ``nn.Linear``, so that optimizer constructors which group
            parameters by module see it; InternImage's checkpoint keys
            ``center_feature_scale_proj_weight``/``_bias`` load into it).
        remove_center: drop the kernel's centre point.
        bias: whether ``output_proj`` has a bias (InternImage: always).
    """

    def __init__(self, channels: int = 64, kernel_size: int = 3, dw_kernel_size: Optional[int] = None,
                 stride: int = 1, pad: int = 1, dilation: int = 1, group: int = 4,
                 offset_scale: float = 1.0, act_layer: str = 'GELU', norm_layer: str = 'LN',
                 center_feature_scale: bool = False, remove_center: bool = False, bias: bool = True):
        super().__init__()
        for name, value in (('channels', channels), ('kernel_size', kernel_size), ('stride', stride),
                            ('dilation', dilation), ('group', group)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f'DCNv3: {name} must be a positive int, got {value!r}')
        if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
            raise ValueError(f'DCNv3: pad must be a non-negative int, got {pad!r}')
        if channels % group != 0:
            raise ValueError(f'DCNv3: channels ({channels}) must be divisible by group ({group})')
        if remove_center and (kernel_size % 2 == 0 or kernel_size < 3):
            raise ValueError('DCNv3: remove_center=True needs an odd kernel_size of at least 3, '
                             f'got {kernel_size}')
        if center_feature_scale and (stride != 1 or 2 * pad != dilation * (kernel_size - 1)):
            raise ValueError('DCNv3: center_feature_scale blends the output with the input, so it needs '
                             f'stride 1 and "same" padding (pad = {dilation * (kernel_size - 1) // 2}), '
                             f'got stride={stride}, pad={pad}')
        dw_kernel_size = kernel_size if dw_kernel_size is None else dw_kernel_size
        self.channels = channels
        self.kernel_size = kernel_size
        self.dw_kernel_size = dw_kernel_size
        self.stride = stride
        self.pad = pad
        self.dilation = dilation
        self.group = group
        self.group_channels = channels // group
        self.offset_scale = offset_scale
        self.center_feature_scale = center_feature_scale
        self.remove_center = int(remove_center)
        self.points = kernel_size * kernel_size - self.remove_center

        self.dw_conv = nn.Sequential(
            nn.Conv2d(channels, channels, dw_kernel_size, stride=1, padding=(dw_kernel_size - 1) // 2,
                      groups=channels),
            _norm_to_channels_last(norm_layer, channels),
            _activation(act_layer))
        self.offset = nn.Linear(channels, group * self.points * 2)
        self.mask = nn.Linear(channels, group * self.points)
        self.input_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels, bias=bias)
        if center_feature_scale:
            self.center_feature_scale_proj = nn.Linear(channels, group)
            self.register_load_state_dict_pre_hook(_rename_internimage_gate_keys)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Offsets and masks to zero, projections Xavier-uniform with zero bias."""
        for layer in (self.offset, self.mask):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        for layer in (self.input_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        if self.center_feature_scale:
            nn.init.zeros_(self.center_feature_scale_proj.weight)
            nn.init.zeros_(self.center_feature_scale_proj.bias)

    def _branch_at_outputs(self, branch: torch.Tensor, height_out: int, width_out: int) -> torch.Tensor:
        """The offset branch (N, H, W, C) at each output pixel's kernel centre."""
        centre = (self.dilation * (self.kernel_size - 1)) // 2
        if self.stride == 1 and self.pad == centre:
            return branch
        branch = F.pad(branch, (0, 0, self.pad, self.pad, self.pad, self.pad))
        rows = slice(centre, centre + self.stride * (height_out - 1) + 1, self.stride)
        cols = slice(centre, centre + self.stride * (width_out - 1) + 1, self.stride)
        return branch[:, rows, cols]

    def output_size(self, height: int, width: int) -> Tuple[int, int]:
        return tuple(output_size(size, self.kernel_size, self.stride, self.pad, self.dilation)
                     for size in (height, width))

    def predict_offsets(self, input: torch.Tensor):
        """The offset branch on input (N, H, W, C).

        Returns:
            (branch, offset, mask): branch (N, H_out, W_out, C) features at the
            output pixels; offset (N, H_out, W_out, group * P * 2); mask
            (N, H_out, W_out, group * P), softmax-normalised over each group's
            points.
        """
        if input.dim() != 4 or input.shape[-1] != self.channels:
            raise ValueError(f'DCNv3: input must be (N, H, W, {self.channels}) channels-last, '
                             f'got shape {tuple(input.shape)}')
        n, height, width, _ = input.shape
        height_out, width_out = self.output_size(height, width)
        branch = self.dw_conv(input.permute(0, 3, 1, 2))
        branch = self._branch_at_outputs(branch, height_out, width_out)
        offset = self.offset(branch)
        mask = self.mask(branch).reshape(n, height_out, width_out, self.group, self.points)
        mask = mask.softmax(-1).reshape(n, height_out, width_out, self.group * self.points)
        return branch, offset, mask

    def sampling_locations(self, input: torch.Tensor):
        """Where the block samples for input (N, H, W, C).

        Returns:
            (x, y, weight), each (N, H_out, W_out, group, P): locations in the
            input's pixel coordinates and the normalised mask weights.
        """
        _, offset, mask = self.predict_offsets(input)
        x, y = sampling_locations(offset, self.kernel_size, self.kernel_size, self.stride, self.stride,
                                  self.pad, self.pad, self.dilation, self.dilation, self.group,
                                  self.offset_scale, bool(self.remove_center))
        return x, y, mask.reshape(x.shape)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """(N, H, W, C) -> (N, H_out, W_out, C)."""
        branch, offset, mask = self.predict_offsets(input)
        x = self.input_proj(input)
        y = dcnv3(x, offset, mask, self.kernel_size, self.kernel_size, self.stride, self.stride, self.pad,
                  self.pad, self.dilation, self.dilation, self.group, self.group_channels,
                  self.offset_scale, 256, bool(self.remove_center))
        if self.center_feature_scale:
            gate = self.center_feature_scale_proj(branch).sigmoid()
            gate = gate.repeat_interleave(self.group_channels, dim=-1)
            y = y * (1 - gate) + x * gate
        return self.output_proj(y)

    def extra_repr(self) -> str:
        return (f'channels={self.channels}, kernel_size={self.kernel_size}, stride={self.stride}, '
                f'pad={self.pad}, dilation={self.dilation}, group={self.group}, '
                f'offset_scale={self.offset_scale}, remove_center={bool(self.remove_center)}')


def _rename_internimage_gate_keys(module, state_dict, prefix, *_):
    """Load pre-hook: InternImage's ``center_feature_scale_proj_{weight,bias}``
    keys -> this block's ``center_feature_scale_proj.{weight,bias}``."""
    for name in ('weight', 'bias'):
        key = f'{prefix}center_feature_scale_proj_{name}'
        if key in state_dict:
            state_dict[f'{prefix}center_feature_scale_proj.{name}'] = state_dict.pop(key)


def square_pair(value, arg: str, owner: str) -> Tuple[int, int]:
    """``value`` (an int or a pair of equal ints) as a pair: DCNv3's grid is square."""
    pair = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else ()
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f'{owner}: {arg} must be an int or a pair of ints, got {value!r}')
    if pair[0] != pair[1]:
        raise ValueError(f'{owner}: {arg} must be the same along height and width, got {pair}')
    return pair


@MODELS.register_module()
class DCNv3Conv2d(nn.Module):
    """A DCNv3 block as an NCHW convolution layer: (N, C_in, H, W) -> (N, C_out, H_out, W_out).

    Accepts the arguments mmcv's ``build_conv_layer``/``ConvModule`` pass
    (``in_channels, out_channels, kernel_size, stride, padding, dilation,
    groups, bias``) plus the DCNv3 block's own (``group``, ``offset_scale``,
    ``dw_kernel_size``, ``act_layer``, ``norm_layer``,
    ``center_feature_scale``, ``remove_center``), and exposes the attributes
    ``ConvModule`` reads. When ``in_channels != out_channels`` a 1x1
    convolution projects to ``out_channels`` first. ``groups`` must be 1:
    DCNv3 groups its channels with ``group``.
    """

    transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Union[int, Tuple[int, int]],
                 stride: Union[int, Tuple[int, int]] = 1, padding: Union[int, Tuple[int, int]] = 0,
                 dilation: Union[int, Tuple[int, int]] = 1, groups: int = 1, bias: bool = True,
                 group: int = 4, offset_scale: float = 1.0, dw_kernel_size: Optional[int] = None,
                 act_layer: str = 'GELU', norm_layer: str = 'LN', center_feature_scale: bool = False,
                 remove_center: bool = False):
        super().__init__()
        kernel_size, stride, padding, dilation = (
            square_pair(value, arg, 'DCNv3Conv2d') for value, arg in (
                (kernel_size, 'kernel_size'), (stride, 'stride'), (padding, 'padding'), (dilation, 'dilation')))
        if groups != 1:
            raise ValueError(f'DCNv3Conv2d: groups must be 1 (DCNv3 groups channels with `group`), '
                             f'got groups={groups}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.output_padding = (0, 0)
        self.input_proj = (nn.Conv2d(in_channels, out_channels, 1, bias=False)
                           if in_channels != out_channels else None)
        self.dcnv3 = DCNv3(out_channels, kernel_size[0], dw_kernel_size=dw_kernel_size, stride=stride[0],
                           pad=padding[0], dilation=dilation[0], group=group, offset_scale=offset_scale,
                           act_layer=act_layer, norm_layer=norm_layer,
                           center_feature_scale=center_feature_scale, remove_center=remove_center,
                           bias=bias)

    def init_weights(self) -> None:
        """Keeps the offset and mask predictors at zero (mmengine calls this)."""
        if self.input_proj is not None:
            nn.init.kaiming_uniform_(self.input_proj.weight, a=math.sqrt(5))
        self.dcnv3.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_proj is not None:
            x = self.input_proj(x)
        # One copy into channels-last memory (none if x already is one), so
        # that the block's (N, H, W, C) view is contiguous and its linear
        # layers, depthwise conv and norm need no copies of their own.
        x = x.contiguous(memory_format=torch.channels_last)
        return self.dcnv3(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
