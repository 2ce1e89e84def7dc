"""DCNv3ConvModule: the write-ups' block (1x1 conv, DCNv3, BN, SiLU) in a ConvModule's place."""
import pytest
import torch
import torch.nn as nn
from mmengine.registry import MODELS

from mmyolo_dcnv3.models import DCNv3ConvModule
from mmyolo_dcnv3.utils import register_all_modules

register_all_modules(init_default_scope=False)


@pytest.mark.parametrize('stride, padding, dilation, size_in, size_out', [
    (1, 1, 1, (13, 18), (13, 18)),
    (2, 1, 1, (13, 18), (7, 9)),
    (2, 2, 2, (16, 20), (8, 10)),
    (1, 0, 1, (9, 11), (7, 9)),
])
def test_output_shape_follows_conv_arithmetic(stride, padding, dilation, size_in, size_out):
    block = DCNv3ConvModule(6, 8, 3, stride=stride, padding=padding, dilation=dilation, group=2)
    out = block(torch.randn(2, 6, *size_in))
    conv = nn.Conv2d(6, 8, 3, stride=stride, padding=padding, dilation=dilation)
    assert out.shape == conv(torch.randn(2, 6, *size_in)).shape == (2, 8, *size_out)


def test_is_built_from_a_config_in_any_openmmlab_scope():
    from mmdet.registry import MODELS as MMDET_MODELS
    from mmyolo.registry import MODELS as MMYOLO_MODELS
    cfg = dict(type='DCNv3ConvModule', in_channels=8, out_channels=16, kernel_size=3, stride=2, padding=1,
               group=4, dcnv3_cfg=dict(offset_scale=0.5, act_layer='SiLU'))
    for registry in (MODELS, MMDET_MODELS, MMYOLO_MODELS):
        block = registry.build(cfg)
        assert isinstance(block, DCNv3ConvModule)
        assert block.deform.conv.dcnv3.offset_scale == 0.5 and block.deform.conv.dcnv3.group == 4
        assert block.stride == (2, 2)


def test_layers_are_the_recipe_and_expose_conv_module_attributes():
    block = DCNv3ConvModule(8, 16, 3, stride=2, padding=1)
    assert block.pointwise.conv.kernel_size == (1, 1) and isinstance(block.pointwise.bn, nn.BatchNorm2d)
    assert isinstance(block.pointwise.activate, nn.SiLU) and block.pointwise.conv.bias is None
    assert isinstance(block.deform.bn, nn.BatchNorm2d) and isinstance(block.deform.activate, nn.SiLU)
    dcnv3 = block.deform.conv.dcnv3
    assert dcnv3.channels == 16 and dcnv3.stride == 2 and dcnv3.output_proj.bias is None
    assert block.deform.conv.input_proj is None  # the 1x1 conv already made the output width
    assert (block.in_channels, block.out_channels, block.kernel_size, block.stride) == (8, 16, (3, 3), (2, 2))
    assert block.with_norm and block.with_activation


def test_without_norm_and_activation_it_has_biases_and_returns_the_dcnv3_output():
    block = DCNv3ConvModule(4, 8, 3, padding=1, norm_cfg=None, act_cfg=None, group=2)
    assert not block.with_norm and not block.with_activation
    dcnv3 = block.deform.conv.dcnv3
    assert block.pointwise.conv.bias is not None and dcnv3.output_proj.bias is not None
    x = torch.randn(1, 4, 6, 7)
    expected = dcnv3(block.pointwise.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(block(x), expected)


def test_gradients_reach_the_offset_and_mask_predictors():
    torch.manual_seed(0)
    block = DCNv3ConvModule(6, 8, 3, stride=2, padding=1, group=2)
    block.init_weights()
    block(torch.randn(2, 6, 11, 12)).square().sum().backward()
    for layer in (block.deform.conv.dcnv3.offset, block.deform.conv.dcnv3.mask):
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
        assert layer.bias.grad.abs().sum() > 0


def test_init_weights_keeps_offsets_and_masks_at_zero_inside_any_openmmlab_model():
    from mmengine.model import BaseModule

    class Model(BaseModule):  # how mmengine reaches the block: the model's init_weights
        def __init__(self):
            super().__init__(init_cfg=dict(type='Normal', layer=['Conv2d', 'Linear'], std=1.0))
            self.block = DCNv3ConvModule(6, 8, 3, padding=1, group=2)

    model = Model()
    model.init_weights()
    dcnv3 = model.block.deform.conv.dcnv3
    assert torch.count_nonzero(dcnv3.offset.weight) == 0 and torch.count_nonzero(dcnv3.mask.bias) == 0
    assert torch.count_nonzero(dcnv3.input_proj.weight) > 0


@pytest.mark.parametrize('kwargs, message', [
    (dict(out_channels=10, group=4), r'DCNv3ConvModule: out_channels \(10\) must be divisible by group \(4\)'),
    (dict(groups=2), 'DCNv3Conv2d: groups must be 1'),
    (dict(conv_cfg=dict(type='DCNv3')), 'DCNv3ConvModule: conv_cfg must be None'),
    (dict(bias='yes'), "DCNv3ConvModule: bias must be 'auto', True or False"),
    (dict(kernel_size=(3, 5)), r'DCNv3Conv2d: kernel_size must be the same along height and width, got \(3, 5\)'),
    (dict(stride=1.5), 'DCNv3Conv2d: stride must be an int or a pair of ints'),
    (dict(dcnv3_cfg=dict(stride=2, group=2)), 'DCNv3ConvModule: dcnv3_cfg may not set group, stride'),
    (dict(in_channels=0), 'DCNv3ConvModule: in_channels must be a positive int, got 0'),
    (dict(dcnv3_cfg=dict(act_layer='Tanh')), 'DCNv3: act_layer must be one of'),
])
def test_bad_arguments_are_refused_by_name(kwargs, message):
    arguments = dict(in_channels=8, out_channels=16, kernel_size=3, padding=1)
    with pytest.raises(ValueError, match=message):
        DCNv3ConvModule(**{**arguments, **kwargs})
