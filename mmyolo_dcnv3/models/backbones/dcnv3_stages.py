"""What every MMYOLO backbone with DCNv3 in chosen stages shares (YOLOv8's CSP-Darknet, RTMDet's CSPNeXt)."""
from typing import Optional, Sequence

import torch.nn as nn

from ..layers import DCNv3, DCNv3ConvModule


class DCNv3StagesMixin:
    """Mixin for an MMYOLO ``BaseBackbone`` subclass: DCNv3 in chosen stages, in two placements.

    - ``dcn_stages``: the stage's CSP layer gets DCNv3 inside its blocks;
    - ``dcn_downsample_stages``: the stage's strided downsampling conv (its
      first layer) becomes a :class:`DCNv3ConvModule` with the same kernel,
      stride and padding.

    Put it before the backbone class in the bases and call
    :meth:`set_dcnv3_stages` before the backbone's ``__init__`` (which builds
    the stages). A subclass says which layer of a stage is its CSP layer
    (``plain_csp_layer``, a class) and builds the DCNv3 replacement
    (:meth:`build_dcnv3_csp_layer`); every other weight is the parent's, with
    the parent's names, so the parent's checkpoints load into it.
    """

    plain_csp_layer: type = nn.Module

    def set_dcnv3_stages(self, dcn_stages: Sequence[bool], dcn_downsample_stages: Sequence[bool],
                         dcnv3_cfg: Optional[dict], num_stages: int) -> None:
        """Validates and stores both placements (one boolean per stage each) and ``dcnv3_cfg``."""
        name = type(self).__name__
        for arg, flags in (('dcn_stages', dcn_stages), ('dcn_downsample_stages', dcn_downsample_stages)):
            flags = tuple(flags)
            if len(flags) != num_stages or not all(isinstance(flag, bool) for flag in flags):
                raise ValueError(f'{name}: {arg} must be {num_stages} booleans (one per stage), got {flags!r}')
            setattr(self, arg, flags)
        if dcnv3_cfg is not None and not isinstance(dcnv3_cfg, dict):
            raise TypeError(f'{name}: dcnv3_cfg must be a dict, got {dcnv3_cfg!r}')
        self.dcnv3_cfg = dict(dcnv3_cfg or {})

    def build_dcnv3_csp_layer(self, plain: nn.Module, setting: list) -> nn.Module:
        """The DCNv3 counterpart of the stage's CSP layer ``plain`` (``setting``: the stage's arch row)."""
        raise NotImplementedError

    def build_dcnv3_downsample_layer(self, plain: nn.Module) -> DCNv3ConvModule:
        """The :class:`DCNv3ConvModule` in place of the stage's strided conv ``plain``."""
        convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
        strided = next(conv for conv in convs if conv.stride != (1, 1))
        dcnv3_cfg = {k: v for k, v in self.dcnv3_cfg.items() if k != 'group'}
        group = {k: v for k, v in self.dcnv3_cfg.items() if k == 'group'}
        return DCNv3ConvModule(convs[0].in_channels, convs[-1].out_channels, strided.kernel_size,
                               stride=strided.stride, padding=strided.padding, dilation=strided.dilation,
                               norm_cfg=self.norm_cfg, act_cfg=self.act_cfg, dcnv3_cfg=dcnv3_cfg, **group)

    def build_stage_layer(self, stage_idx: int, setting: list) -> list:
        stage = super().build_stage_layer(stage_idx, setting)
        if self.dcn_downsample_stages[stage_idx]:
            stage[0] = self.build_dcnv3_downsample_layer(stage[0])
        if self.dcn_stages[stage_idx]:
            index = next(i for i, layer in enumerate(stage) if isinstance(layer, self.plain_csp_layer))
            stage[index] = self.build_dcnv3_csp_layer(stage[index], setting)
        return stage

    def init_weights(self):
        """The parent's initialisation, then the DCNv3 offset/mask predictors back to zero."""
        super().init_weights()
        for module in self.modules():
            if isinstance(module, DCNv3):
                module.reset_parameters()
