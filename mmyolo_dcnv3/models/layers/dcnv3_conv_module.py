"""The DCNv3 conv block of the YOLOv8-DCNv3 write-ups, built to take a ``ConvModule``'s place.

The recipe: a 1x1 conv with norm and activation to the output width, then
InternImage's DCNv3 block (channels-last inside) with the layer's kernel,
stride, padding, dilation and group, then norm and activation. Registered as
``'DCNv3ConvModule'`` in mmengine's root ``MODELS``, so any OpenMMLab config
can build it where it builds a ``ConvModule``.
"""
from typing import Optional, Tuple, Union

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.registry import MODELS

from .csp_layer import YOLOV8_ACT, YOLOV8_NORM

# Arguments the block sets from its own constructor; dcnv3_cfg may not repeat them.
_SET_BY_THE_BLOCK = ('in_channels', 'out_channels', 'kernel_size', 'stride', 'padding', 'dilation', 'groups',
                     'bias', 'group')


@MODELS.register_module()
class DCNv3ConvModule(nn.Module):
    """1x1 conv + norm + act, then DCNv3 + norm + act: (N, C_in, H, W) -> (N, C_out, H_out, W_out).

    H_out = (H + 2 padding - dilation (kernel_size - 1) - 1) // stride + 1, as
    for ``ConvModule``; stride 2 works (the offsets and mask are predicted at
    the output pixels, see :class:`DCNv3`).

    Two ``ConvModule``s: ``pointwise`` (C_in -> C_out, 1x1) and ``deform``
    (C_out -> C_out) whose conv is the ``DCNv3`` conv layer
    (:class:`DCNv3Conv2d`; the block itself is ``deform.conv.dcnv3``). Their
    names differ from a plain ``ConvModule``'s (``conv``, ``bn``), so a
    checkpoint of the plain model never loads a 3x3 conv's weights or
    statistics into this block.

    Args:
        in_channels, out_channels: C_in, C_out; C_out must be divisible by ``group``.
        kernel_size, stride, padding, dilation: of the deformable sampling grid
            (an int or an equal pair, as DCNv3 is square).
        groups: must be 1 (DCNv3 groups its channels with ``group``); accepted
            so that a ``ConvModule``'s arguments pass unchanged.
        bias: as ``ConvModule``'s, for both convs ('auto': only without a norm).
        conv_cfg: must be None; accepted like ``groups``.
        norm_cfg, act_cfg: of both parts (default YOLOv8's BN and SiLU); None drops them.
        group: DCNv3's channel groups, each with its own offsets and mask.
        dcnv3_cfg: the rest of the DCNv3 block's arguments (``offset_scale``,
            ``dw_kernel_size``, ``act_layer``, ``norm_layer``,
            ``center_feature_scale``, ``remove_center``).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Union[int, Tuple[int, int]],
                 stride: Union[int, Tuple[int, int]] = 1, padding: Union[int, Tuple[int, int]] = 0,
                 dilation: Union[int, Tuple[int, int]] = 1, groups: int = 1, bias: Union[bool, str] = 'auto',
                 conv_cfg: Optional[dict] = None, norm_cfg: Optional[dict] = YOLOV8_NORM,
                 act_cfg: Optional[dict] = YOLOV8_ACT, group: int = 4, dcnv3_cfg: Optional[dict] = None):
        super().__init__()
        name = type(self).__name__
        for arg, value in (('in_channels', in_channels), ('out_channels', out_channels), ('group', group)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f'{name}: {arg} must be a positive int, got {value!r}')
        if out_channels % group != 0:
            raise ValueError(f'{name}: out_channels ({out_channels}) must be divisible by group ({group})')
        if conv_cfg is not None:
            raise ValueError(f'{name}: conv_cfg must be None (the block is its own conv), got {conv_cfg!r}')
        if bias not in ('auto', True, False):
            raise ValueError(f"{name}: bias must be 'auto', True or False, got {bias!r}")
        dcnv3_cfg = dict(dcnv3_cfg or {})
        repeated = sorted(set(dcnv3_cfg) & set(_SET_BY_THE_BLOCK))
        if repeated:
            raise ValueError(f'{name}: dcnv3_cfg may not set {", ".join(repeated)} (the block sets them from '
                             'its own arguments)')
        self.pointwise = ConvModule(in_channels, out_channels, 1, bias=bias, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.deform = ConvModule(out_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                 dilation=dilation, groups=groups, bias=bias,
                                 conv_cfg=dict(type='DCNv3Conv2d', group=group, **dcnv3_cfg), norm_cfg=norm_cfg,
                                 act_cfg=act_cfg)
        # The attributes mmcv and mmdet read from a ConvModule.
        self.in_channels = in_channels
        self.out_channels = out_channels
        for attribute in ('kernel_size', 'stride', 'padding', 'dilation', 'groups', 'with_norm',
                          'with_activation'):
            setattr(self, attribute, getattr(self.deform, attribute))

    def init_weights(self) -> None:
        """Both parts as ``ConvModule`` initialises them (norms to 1 and 0); DCNv3's offsets and mask at zero."""
        self.pointwise.init_weights()
        self.deform.init_weights()
        self.deform.conv.init_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deform(self.pointwise(x))
