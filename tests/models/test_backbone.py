"""YOLOv8CSPDarknetDCNv3."""
import copy

import pytest
import torch
from mmyolo.models.backbones import YOLOv8CSPDarknet

from mmyolo_dcnv3.models import CSPLayerWithTwoConvDCNv3, DCNv3, DCNv3ConvModule, YOLOv8CSPDarknetDCNv3
from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.checkpoint import load_checkpoint_strictly

register_all_modules(init_default_scope=False)

SMALL = dict(deepen_factor=0.33, widen_factor=0.25)


def test_chosen_stages_use_dcnv3_and_keep_the_plain_layer_names():
    backbone = YOLOv8CSPDarknetDCNv3(dcn_stages=(False, True, False, True), **SMALL)
    kinds = [type(getattr(backbone, f'stage{i}')[1]) for i in range(1, 5)]
    assert [k is CSPLayerWithTwoConvDCNv3 for k in kinds] == [False, True, False, True]
    plain = YOLOv8CSPDarknet(**SMALL)
    dcn_keys = {k for k in backbone.state_dict() if '.conv2.conv.dcnv3.' in k}
    assert set(backbone.state_dict()) - dcn_keys == set(plain.state_dict()) - {
        k for k in plain.state_dict() if k.startswith(('stage2.1.blocks', 'stage4.1.blocks')) and '.conv2.conv.' in k}


def test_downsample_placement_replaces_the_strided_conv_of_chosen_stages_only():
    backbone = YOLOv8CSPDarknetDCNv3(dcn_stages=(False,) * 4, dcn_downsample_stages=(False, True, False, True),
                                     **SMALL)
    plain = YOLOv8CSPDarknet(**SMALL)
    for i in range(1, 5):
        ours, theirs = getattr(backbone, f'stage{i}'), getattr(plain, f'stage{i}')
        assert isinstance(ours[0], DCNv3ConvModule) == (i in (2, 4))
        assert type(ours[1]) is type(theirs[1])
        if i in (2, 4):
            assert (ours[0].in_channels, ours[0].out_channels) == (theirs[0].in_channels, theirs[0].out_channels)
            assert ours[0].stride == (2, 2) and ours[0].padding == (1, 1) and ours[0].kernel_size == (3, 3)


@pytest.mark.parametrize('dcn_stages, dcn_downsample_stages', [
    ((False, False, True, True), (False, False, False, False)),
    ((False, False, False, False), (False, False, True, True)),
    ((False, False, True, True), (False, False, True, True)),
])
def test_plain_yolov8_checkpoint_loads_every_weight_outside_the_replaced_layers(
        tmp_path, dcn_stages, dcn_downsample_stages):
    torch.manual_seed(0)
    plain = YOLOv8CSPDarknet(**SMALL)
    for tensor in plain.state_dict().values():
        if tensor.is_floating_point():
            tensor.normal_()
    path = str(tmp_path / 'plain.pth')
    torch.save({'state_dict': plain.state_dict(), 'meta': {}}, path)
    backbone = YOLOv8CSPDarknetDCNv3(dcn_stages=dcn_stages, dcn_downsample_stages=dcn_downsample_stages, **SMALL)
    load_checkpoint_strictly(backbone, path, allow_partial=True)

    def replaced(key):
        stage = int(key[len('stage')]) - 1 if key.startswith('stage') else None
        return stage is not None and (
            (dcn_downsample_stages[stage] and key.startswith(f'stage{stage + 1}.0.'))
            or (dcn_stages[stage] and key.startswith(f'stage{stage + 1}.1.blocks') and '.conv2.conv.' in key))

    ours, theirs = backbone.state_dict(), plain.state_dict()
    loaded = {k for k in ours if k in theirs and torch.equal(ours[k], theirs[k])}
    assert loaded == {k for k in theirs if not replaced(k)}
    assert all(replaced(k) for k in set(ours) - loaded)


def test_does_not_mutate_mmyolo_class_settings():
    before = copy.deepcopy(YOLOv8CSPDarknet.arch_settings)
    mine_before = copy.deepcopy(YOLOv8CSPDarknetDCNv3.arch_settings)
    a = YOLOv8CSPDarknetDCNv3(last_stage_out_channels=768, **SMALL)
    b = YOLOv8CSPDarknetDCNv3(last_stage_out_channels=512, **SMALL)
    assert YOLOv8CSPDarknet.arch_settings == before
    assert YOLOv8CSPDarknetDCNv3.arch_settings == mine_before
    assert a.arch_settings['P5'][-1][1] == 768 and b.arch_settings['P5'][-1][1] == 512


def test_init_weights_leaves_offset_and_mask_predictors_at_zero():
    backbone = YOLOv8CSPDarknetDCNv3(**SMALL)
    blocks = [m for m in backbone.modules() if isinstance(m, DCNv3)]
    assert blocks
    for block in blocks:
        torch.nn.init.normal_(block.offset.weight)
        torch.nn.init.normal_(block.mask.bias)
    backbone.init_weights()
    for block in blocks:
        assert torch.count_nonzero(block.offset.weight) == 0 and torch.count_nonzero(block.mask.bias) == 0


@pytest.mark.parametrize('dcn_downsample_stages', [(False,) * 4, (True,) * 4])
def test_output_shapes_match_the_plain_backbone(dcn_downsample_stages):
    x = torch.randn(1, 3, 96, 128)
    ours = [o.shape for o in YOLOv8CSPDarknetDCNv3(dcn_downsample_stages=dcn_downsample_stages, **SMALL)(x)]
    plain = [o.shape for o in YOLOv8CSPDarknet(**SMALL)(x)]
    assert ours == plain


@pytest.mark.parametrize('argument', ['dcn_stages', 'dcn_downsample_stages'])
@pytest.mark.parametrize('flags', [(True, False), (1, 0, 1, 0), 'TTFF'])
def test_each_placement_must_be_four_booleans(argument, flags):
    with pytest.raises(ValueError, match=f'{argument} must be 4 booleans'):
        YOLOv8CSPDarknetDCNv3(**{argument: flags}, **SMALL)


def test_group_that_does_not_divide_a_stage_width_is_refused():
    with pytest.raises(ValueError, match=r'channels \(64\) must be divisible by group \(5\)'):
        YOLOv8CSPDarknetDCNv3(dcnv3_cfg=dict(group=5), **SMALL)


@pytest.mark.parametrize('center_feature_scale', [False, True])
def test_yolov5_optimizer_constructor_trains_every_parameter(center_feature_scale):
    # MMYOLO's YOLOv8 configs group parameters by module: only parameters named
    # `weight` or `bias` of some module reach the optimizer.
    from mmyolo.engine.optimizers import YOLOv5OptimizerConstructor
    backbone = YOLOv8CSPDarknetDCNv3(dcnv3_cfg=dict(group=2, center_feature_scale=center_feature_scale), **SMALL)
    constructor = YOLOv5OptimizerConstructor(
        dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0005,
                                                   batch_size_per_gpu=16)))
    optimised = {id(p) for group in constructor(backbone).optimizer.param_groups for p in group['params']}
    missing = [name for name, p in backbone.named_parameters() if id(p) not in optimised]
    assert not missing
    assert any('center_feature_scale_proj' in name for name, _ in backbone.named_parameters()) == center_feature_scale
