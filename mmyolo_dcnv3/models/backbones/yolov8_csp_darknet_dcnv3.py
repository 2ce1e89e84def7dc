"""YOLOv8's CSP-Darknet backbone with DCNv3 C2f layers in chosen stages."""
import copy
from typing import Optional, Sequence

from mmyolo.models.backbones import YOLOv8CSPDarknet
from mmyolo.registry import MODELS

from ..layers import CSPLayerWithTwoConvDCNv3, DCNv3


@MODELS.register_module()
class YOLOv8CSPDarknetDCNv3(YOLOv8CSPDarknet):
    """MMYOLO's ``YOLOv8CSPDarknet`` whose chosen stages use DCNv3 C2f layers.

    Args:
        dcn_stages: four booleans, one per stage (strides 4, 8, 16, 32): which
            stages build their C2f layer from DCNv3 bottlenecks. The default,
            the last two (P4, P5), puts the deformable sampling where objects
            are large and the feature maps small, so its cost stays low.
        dcnv3_cfg: arguments of every DCNv3 conv layer (``group``,
            ``offset_scale``, ``dw_kernel_size``, ...); every DCNv3 stage's
            bottleneck width must be divisible by ``group``.
        **kwargs: ``YOLOv8CSPDarknet``'s arguments.

    Unlike its parent, it works on its own copy of ``arch_settings``, so
    instances with different ``last_stage_out_channels`` do not affect each
    other or MMYOLO's class.
    """

    def __init__(self, dcn_stages: Sequence[bool] = (False, False, True, True),
                 dcnv3_cfg: Optional[dict] = None, **kwargs):
        dcn_stages = tuple(dcn_stages)
        if len(dcn_stages) != 4 or not all(isinstance(flag, bool) for flag in dcn_stages):
            raise ValueError(f'YOLOv8CSPDarknetDCNv3: dcn_stages must be 4 booleans, got {dcn_stages!r}')
        if dcnv3_cfg is not None and not isinstance(dcnv3_cfg, dict):
            raise TypeError(f'YOLOv8CSPDarknetDCNv3: dcnv3_cfg must be a dict, got {dcnv3_cfg!r}')
        self.dcn_stages = dcn_stages
        self.dcnv3_cfg = dict(dcnv3_cfg or {})
        # An instance attribute: the parent writes last_stage_out_channels into it.
        self.arch_settings = copy.deepcopy(type(self).arch_settings)
        super().__init__(**kwargs)

    def build_stage_layer(self, stage_idx: int, setting: list) -> list:
        stage = super().build_stage_layer(stage_idx, setting)
        if self.dcn_stages[stage_idx]:
            plain = stage[1]
            stage[1] = CSPLayerWithTwoConvDCNv3(
                plain.main_conv.in_channels, plain.final_conv.out_channels,
                num_blocks=len(plain.blocks), add_identity=setting[3], dcnv3_cfg=self.dcnv3_cfg,
                norm_cfg=self.norm_cfg, act_cfg=self.act_cfg)
        return stage

    def init_weights(self):
        """The parent's initialisation, then the DCNv3 offset/mask predictors back to zero."""
        super().init_weights()
        for module in self.modules():
            if isinstance(module, DCNv3):
                module.reset_parameters()
