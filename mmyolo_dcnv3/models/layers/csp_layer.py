"""YOLOv8's bottleneck and C2f (CSP) layer with DCNv3 in the bottlenecks.

Attribute names follow MMYOLO's ``DarknetBottleneck`` and
``CSPLayerWithTwoConv`` (``conv1``, ``conv2``, ``main_conv``, ``final_conv``,
``blocks``), so a YOLOv8 checkpoint loads into every weight these layers share
with the plain ones; only ``blocks.N.conv2.conv`` (now DCNv3) differs.
"""
from typing import Optional

import torch
import torch.nn as nn
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from mmengine.registry import MODELS

YOLOV8_NORM = dict(type='BN', momentum=0.03, eps=0.001)
YOLOV8_ACT = dict(type='SiLU', inplace=True)


@MODELS.register_module()
class DarknetBottleneckDCNv3(BaseModule):
    """YOLOv8 bottleneck whose second 3x3 conv is DCNv3: (N, C_in, H, W) -> (N, C_out, H, W).

    ``conv1`` is a 3x3 ConvModule; ``conv2`` a ConvModule whose conv is the
    ``DCNv3`` conv layer (built with ``dcnv3_cfg``), followed by norm and
    activation. The input is added back when ``add_identity`` and the
    channel counts match.
    """

    def __init__(self, in_channels: int, out_channels: int, expansion: float = 1.0,
                 add_identity: bool = True, dcnv3_cfg: Optional[dict] = None,
                 norm_cfg: dict = YOLOV8_NORM, act_cfg: dict = YOLOV8_ACT, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        hidden_channels = int(out_channels * expansion)
        self.conv1 = ConvModule(in_channels, hidden_channels, 3, padding=1, norm_cfg=norm_cfg,
                                act_cfg=act_cfg)
        self.conv2 = ConvModule(hidden_channels, out_channels, 3, padding=1,
                                conv_cfg=dict(type='DCNv3Conv2d', **(dcnv3_cfg or {})), norm_cfg=norm_cfg,
                                act_cfg=act_cfg)
        self.add_identity = add_identity and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


@MODELS.register_module()
class CSPLayerWithTwoConvDCNv3(BaseModule):
    """YOLOv8's C2f layer built from DCNv3 bottlenecks: (N, C_in, H, W) -> (N, C_out, H, W).

    ``main_conv`` (1x1) makes 2 * mid channels, mid = out_channels *
    expand_ratio; the second half runs through ``num_blocks`` bottlenecks in
    sequence; both halves and every bottleneck's output are concatenated and
    fused by ``final_conv`` (1x1).
    """

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: float = 0.5,
                 num_blocks: int = 1, add_identity: bool = True, dcnv3_cfg: Optional[dict] = None,
                 norm_cfg: dict = YOLOV8_NORM, act_cfg: dict = YOLOV8_ACT, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        self.mid_channels = int(out_channels * expand_ratio)
        self.main_conv = ConvModule(in_channels, 2 * self.mid_channels, 1, norm_cfg=norm_cfg,
                                    act_cfg=act_cfg)
        self.final_conv = ConvModule((2 + num_blocks) * self.mid_channels, out_channels, 1,
                                     norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.blocks = nn.ModuleList(
            DarknetBottleneckDCNv3(self.mid_channels, self.mid_channels, add_identity=add_identity,
                                   dcnv3_cfg=dcnv3_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)
            for _ in range(num_blocks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = list(self.main_conv(x).chunk(2, dim=1))
        for block in self.blocks:
            outputs.append(block(outputs[-1]))
        return self.final_conv(torch.cat(outputs, dim=1))
