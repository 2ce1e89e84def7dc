"""YOLOv8's CSP-Darknet backbone with DCNv3 C2f layers in chosen stages."""
import copy
from typing import Optional, Sequence

from mmyolo.models.backbones import YOLOv8CSPDarknet
from mmyolo.models.layers import CSPLayerWithTwoConv
from mmyolo.registry import MODELS

from ..layers import CSPLayerWithTwoConvDCNv3
from .dcnv3_stages import DCNv3StagesMixin


@MODELS.register_module()
class YOLOv8CSPDarknetDCNv3(DCNv3StagesMixin, YOLOv8CSPDarknet):
    """MMYOLO's ``YOLOv8CSPDarknet`` with DCNv3 in chosen stages, in either placement or both.

    Args:
        dcn_stages: four booleans, one per stage (strides 4, 8, 16, 32): which
            stages build their C2f layer from DCNv3 bottlenecks (the second
            3x3 conv of each). The default, the last two (P4, P5), puts the
            deformable sampling where objects are large and the feature maps
            small, so its cost stays low.
        dcn_downsample_stages: four booleans: which stages replace their
            stride-2 3x3 downsampling conv by a :class:`DCNv3ConvModule`
            (1x1 conv, stride-2 DCNv3, BN, SiLU); default none.
        dcnv3_cfg: arguments of every DCNv3 conv layer (``group``,
            ``offset_scale``, ``dw_kernel_size``, ...); every DCNv3 stage's
            bottleneck width must be divisible by ``group``.
        **kwargs: ``YOLOv8CSPDarknet``'s arguments.

    Unlike its parent, it works on its own copy of ``arch_settings``, so
    instances with different ``last_stage_out_channels`` do not affect each
    other or MMYOLO's class.
    """

    plain_csp_layer = CSPLayerWithTwoConv

    def __init__(self, dcn_stages: Sequence[bool] = (False, False, True, True),
                 dcn_downsample_stages: Sequence[bool] = (False, False, False, False),
                 dcnv3_cfg: Optional[dict] = None, arch: str = 'P5', **kwargs):
        # An instance attribute: the parent writes last_stage_out_channels into it.
        self.arch_settings = copy.deepcopy(type(self).arch_settings)
        self.set_dcnv3_stages(dcn_stages, dcn_downsample_stages, dcnv3_cfg,
                              num_stages=len(self.arch_settings[arch]))
        super().__init__(arch=arch, **kwargs)

    def build_dcnv3_csp_layer(self, plain, setting):
        return CSPLayerWithTwoConvDCNv3(
            plain.main_conv.in_channels, plain.final_conv.out_channels, num_blocks=len(plain.blocks),
            add_identity=setting[3], dcnv3_cfg=self.dcnv3_cfg, norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
