"""What every MMYOLO backbone with DCNv3 in chosen stages shares (YOLOv8's CSP-Darknet, RTMDet's CSPNeXt)."""
from typing import Optional, Sequence

import torch.nn as nn

from ..layers import DCNv3


class DCNv3StagesMixin:
    """Mixin for an MMYOLO ``BaseBackbone`` subclass: its chosen stages get a DCNv3 CSP layer.

    Put it before the backbone class in the bases and call
    :meth:`set_dcnv3_stages` before the backbone's ``__init__`` (which builds
    the stages). A subclass says which layer of a stage is its CSP layer
    (``plain_csp_layer``, a class) and builds the DCNv3 replacement
    (:meth:`build_dcnv3_csp_layer`); every other weight is the parent's, with
    the parent's names, so the parent's checkpoints load into it.
    """

    plain_csp_layer: type = nn.Module

    def set_dcnv3_stages(self, dcn_stages: Sequence[bool], dcnv3_cfg: Optional[dict],
                         num_stages: int) -> None:
        """Validates and stores ``dcn_stages`` (one boolean per stage) and ``dcnv3_cfg``."""
        name = type(self).__name__
        dcn_stages = tuple(dcn_stages)
        if len(dcn_stages) != num_stages or not all(isinstance(flag, bool) for flag in dcn_stages):
            raise ValueError(f'{name}: dcn_stages must be {num_stages} booleans (one per stage), '
                             f'got {dcn_stages!r}')
        if dcnv3_cfg is not None and not isinstance(dcnv3_cfg, dict):
            raise TypeError(f'{name}: dcnv3_cfg must be a dict, got {dcnv3_cfg!r}')
        self.dcn_stages = dcn_stages
        self.dcnv3_cfg = dict(dcnv3_cfg or {})

    def build_dcnv3_csp_layer(self, plain: nn.Module, setting: list) -> nn.Module:
        """The DCNv3 counterpart of the stage's CSP layer ``plain`` (``setting``: the stage's arch row)."""
        raise NotImplementedError

    def build_stage_layer(self, stage_idx: int, setting: list) -> list:
        stage = super().build_stage_layer(stage_idx, setting)
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
