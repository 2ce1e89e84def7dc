"""CSPNeXtDCNv3 (RTMDet's backbone with DCNv3), sharing DCNv3StagesMixin with YOLOv8CSPDarknetDCNv3."""
import pytest
import torch
from mmyolo.models.backbones import CSPNeXt

from mmyolo_dcnv3.models import CSPNeXtDCNv3, CSPNeXtLayerDCNv3, DCNv3, DCNv3Conv2d, YOLOv8CSPDarknetDCNv3
from mmyolo_dcnv3.models.backbones import DCNv3StagesMixin
from mmyolo_dcnv3.utils import register_all_modules

register_all_modules(init_default_scope=False)

SMALL = dict(deepen_factor=0.33, widen_factor=0.25)


def test_chosen_stages_use_dcnv3_and_every_other_weight_keeps_the_plain_name_and_shape():
    backbone = CSPNeXtDCNv3(dcn_stages=(False, True, False, True), **SMALL)
    layers = [getattr(backbone, f'stage{i}')[-1] for i in range(1, 5)]
    assert [isinstance(layer, CSPNeXtLayerDCNv3) for layer in layers] == [False, True, False, True]
    assert all(isinstance(block.conv2.conv, DCNv3Conv2d) for block in layers[1].blocks)
    ours = backbone.state_dict()
    plain = CSPNeXt(**SMALL).state_dict()
    replaced = ('stage2.1.blocks', 'stage4.2.blocks')  # stage 4 has the SPP before its CSP layer
    plain_kept = {k: v.shape for k, v in plain.items() if not (k.startswith(replaced) and '.conv2.' in k)}
    ours_kept = {k: v.shape for k, v in ours.items() if '.conv2.' not in k or not k.startswith(replaced)}
    assert ours_kept == plain_kept
    assert any(k.startswith('stage4.2.blocks.0.conv2.conv.dcnv3.') for k in ours)


def test_output_shapes_match_the_plain_backbone_and_gradients_reach_the_offsets():
    x = torch.randn(2, 3, 64, 96)
    backbone = CSPNeXtDCNv3(**SMALL)
    outputs = backbone(x)
    assert [o.shape for o in outputs] == [o.shape for o in CSPNeXt(**SMALL)(x)]
    sum(o.sum() for o in outputs).backward()
    offsets = [m.offset.weight.grad for m in backbone.modules() if isinstance(m, DCNv3)]
    assert offsets and all(g is not None and g.abs().sum() > 0 for g in offsets)


def test_downsample_placement_keeps_the_output_shapes():
    x = torch.randn(1, 3, 64, 96)
    backbone = CSPNeXtDCNv3(dcn_stages=(False,) * 4, dcn_downsample_stages=(False, False, True, True), **SMALL)
    assert [type(getattr(backbone, f'stage{i}')[0]).__name__ for i in (2, 3)] == ['ConvModule', 'DCNv3ConvModule']
    assert [o.shape for o in backbone(x)] == [o.shape for o in CSPNeXt(**SMALL)(x)]


def test_default_is_the_last_two_stages_of_either_arch():
    assert CSPNeXtDCNv3(**SMALL).dcn_stages == (False, False, True, True)
    assert CSPNeXtDCNv3(**SMALL).dcn_downsample_stages == (False,) * 4
    assert CSPNeXtDCNv3(arch='P6', out_indices=(2, 3, 4, 5), **SMALL).dcn_stages == (False, False, False, True, True)


@pytest.mark.parametrize('dcn_stages', [(True, False), (1, 0, 1, 0)])
def test_dcn_stages_must_be_one_boolean_per_stage(dcn_stages):
    with pytest.raises(ValueError, match=r'CSPNeXtDCNv3: dcn_stages must be 4 booleans \(one per stage\)'):
        CSPNeXtDCNv3(dcn_stages=dcn_stages, **SMALL)


def test_init_weights_leaves_offset_and_mask_predictors_at_zero():
    backbone = CSPNeXtDCNv3(**SMALL)
    blocks = [m for m in backbone.modules() if isinstance(m, DCNv3)]
    for block in blocks:
        torch.nn.init.normal_(block.offset.weight)
    backbone.init_weights()
    assert blocks and all(torch.count_nonzero(block.offset.weight) == 0 for block in blocks)


def test_both_backbones_share_the_stage_logic():
    for backbone in (CSPNeXtDCNv3, YOLOv8CSPDarknetDCNv3):
        assert issubclass(backbone, DCNv3StagesMixin)
        assert 'build_stage_layer' not in vars(backbone) and 'init_weights' not in vars(backbone)
