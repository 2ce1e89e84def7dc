"""RTMDet's CSPNeXt backbone with DCNv3 in the CSP layers of chosen stages."""
from typing import Optional, Sequence

from mmcv.cnn import ConvModule
from mmdet.models.layers import CSPLayer
from mmyolo.models.backbones import CSPNeXt
from mmyolo.registry import MODELS

from .dcnv3_stages import DCNv3StagesMixin


@MODELS.register_module()
class CSPNeXtLayerDCNv3(CSPLayer):
    """RTMDet's CSP layer (mmdet's ``CSPLayer`` with CSPNeXt blocks) with DCNv3 in every block.

    (N, C_in, H, W) -> (N, C_out, H, W). Each CSPNeXt block's ``conv2``, a 5x5
    depthwise-separable conv, becomes a 3x3 DCNv3 conv (``dcnv3_cfg``) with
    norm and activation; its ``conv1``, the 1x1 ``main_conv``/``short_conv``,
    the channel attention and ``final_conv`` are the plain layer's, with its
    names, so an RTMDet checkpoint loads into all of them.
    """

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: float = 0.5,
                 num_blocks: int = 1, add_identity: bool = True, channel_attention: bool = True,
                 dcnv3_cfg: Optional[dict] = None, norm_cfg: dict = dict(type='BN'),
                 act_cfg: dict = dict(type='SiLU', inplace=True), init_cfg=None):
        super().__init__(in_channels, out_channels, expand_ratio=expand_ratio, num_blocks=num_blocks,
                         add_identity=add_identity, use_cspnext_block=True,
                         channel_attention=channel_attention, norm_cfg=norm_cfg, act_cfg=act_cfg,
                         init_cfg=init_cfg)
        for block in self.blocks:
            block.conv2 = ConvModule(block.conv1.out_channels, block.conv2.pointwise_conv.out_channels, 3,
                                     padding=1, conv_cfg=dict(type='DCNv3Conv2d', **(dcnv3_cfg or {})),
                                     norm_cfg=norm_cfg, act_cfg=act_cfg)


@MODELS.register_module()
class CSPNeXtDCNv3(DCNv3StagesMixin, CSPNeXt):
    """MMYOLO's ``CSPNeXt`` (RTMDet's backbone) whose chosen stages use :class:`CSPNeXtLayerDCNv3`.

    Args:
        dcn_stages: one boolean per stage (four for ``arch='P5'``, strides 4
            to 32; five for ``'P6'``): which stages use DCNv3 CSP layers;
            default: the last two stages.
        dcn_downsample_stages: one boolean per stage: which stages replace
            their stride-2 downsampling conv by a :class:`DCNv3ConvModule`;
            default none.
        dcnv3_cfg: arguments of every DCNv3 conv layer (``group``, ...); every
            DCNv3 stage's block width (half its output channels) must be
            divisible by ``group``.
        **kwargs: ``CSPNeXt``'s arguments.
    """

    plain_csp_layer = CSPLayer

    def __init__(self, dcn_stages: Optional[Sequence[bool]] = None,
                 dcn_downsample_stages: Optional[Sequence[bool]] = None, dcnv3_cfg: Optional[dict] = None,
                 arch: str = 'P5', arch_ovewrite: Optional[list] = None, **kwargs):
        num_stages = len(arch_ovewrite or self.arch_settings[arch])
        if dcn_stages is None:
            dcn_stages = (False,) * (num_stages - 2) + (True, True)
        if dcn_downsample_stages is None:
            dcn_downsample_stages = (False,) * num_stages
        self.set_dcnv3_stages(dcn_stages, dcn_downsample_stages, dcnv3_cfg, num_stages=num_stages)
        super().__init__(arch=arch, arch_ovewrite=arch_ovewrite, **kwargs)

    def build_dcnv3_csp_layer(self, plain, setting):
        return CSPNeXtLayerDCNv3(
            plain.main_conv.in_channels, plain.final_conv.out_channels, expand_ratio=self.expand_ratio,
            num_blocks=len(plain.blocks), add_identity=setting[3], channel_attention=self.channel_attention,
            dcnv3_cfg=self.dcnv3_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
