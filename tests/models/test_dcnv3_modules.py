"""The DCNv3 block, the NCHW conv layer and their use from OpenMMLab configs."""
import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.registry import MODELS, DefaultScope

from mmyolo_dcnv3.models import DCNv3, DCNv3Conv2d
from mmyolo_dcnv3.ops import dcnv3_reference
from mmyolo_dcnv3.utils import register_all_modules

register_all_modules(init_default_scope=False)


def internimage_state_dict(channels=64, group=4, kernel=3, dw_kernel=3, center_feature_scale=False,
                           seed=0):
    """Random weights with the keys and shapes InternImage's DCNv3 module writes (norm 'LN')."""
    g = torch.Generator().manual_seed(seed)
    points = kernel * kernel
    shapes = {
        'dw_conv.0.weight': (channels, 1, dw_kernel, dw_kernel), 'dw_conv.0.bias': (channels,),
        'dw_conv.1.1.weight': (channels,), 'dw_conv.1.1.bias': (channels,),
        'offset.weight': (group * points * 2, channels), 'offset.bias': (group * points * 2,),
        'mask.weight': (group * points, channels), 'mask.bias': (group * points,),
        'input_proj.weight': (channels, channels), 'input_proj.bias': (channels,),
        'output_proj.weight': (channels, channels), 'output_proj.bias': (channels,),
    }
    if center_feature_scale:
        shapes['center_feature_scale_proj_weight'] = (group, channels)
        shapes['center_feature_scale_proj_bias'] = (group,)
    return {k: 0.2 * torch.randn(shape, generator=g, dtype=torch.float64) for k, shape in shapes.items()}


def internimage_forward(sd, input, group, kernel=3, pad=1, center_feature_scale=False):
    """InternImage's DCNv3.forward written out from its data flow, on raw weights."""
    n, h, w, c = input.shape
    x = F.linear(input, sd['input_proj.weight'], sd['input_proj.bias'])
    x1 = F.conv2d(input.permute(0, 3, 1, 2), sd['dw_conv.0.weight'], sd['dw_conv.0.bias'],
                  padding=(sd['dw_conv.0.weight'].shape[-1] - 1) // 2, groups=c)
    x1 = F.layer_norm(x1.permute(0, 2, 3, 1), (c,), sd['dw_conv.1.1.weight'], sd['dw_conv.1.1.bias'], eps=1e-6)
    x1 = F.gelu(x1)
    offset = F.linear(x1, sd['offset.weight'], sd['offset.bias'])
    mask = F.linear(x1, sd['mask.weight'], sd['mask.bias']).reshape(n, h, w, group, -1)
    mask = mask.softmax(-1).reshape(n, h, w, -1)
    y = dcnv3_reference(x, offset, mask, kernel, kernel, 1, 1, pad, pad, 1, 1, group, c // group, 1.0)
    if center_feature_scale:
        scale = F.linear(x1, sd['center_feature_scale_proj_weight'],
                         sd['center_feature_scale_proj_bias']).sigmoid()
        scale = scale[..., None].repeat(1, 1, 1, 1, c // group).flatten(-2)
        y = y * (1 - scale) + x * scale
    return F.linear(y, sd['output_proj.weight'], sd['output_proj.bias'])


@pytest.mark.parametrize('center_feature_scale', [False, True])
def test_internimage_state_dict_loads_strictly_and_gives_the_same_output(center_feature_scale):
    sd = internimage_state_dict(center_feature_scale=center_feature_scale)
    block = DCNv3(64, kernel_size=3, group=4, center_feature_scale=center_feature_scale).double()
    block.load_state_dict(sd, strict=True)
    input = torch.randn(2, 9, 11, 64, dtype=torch.float64)
    torch.testing.assert_close(block(input), internimage_forward(sd, input, group=4,
                                                                 center_feature_scale=center_feature_scale))


def test_block_starts_with_zero_offsets_and_masks():
    block = DCNv3(32, group=2)
    for layer in (block.offset, block.mask):
        assert torch.count_nonzero(layer.weight) == 0 and torch.count_nonzero(layer.bias) == 0


def test_stride_two_predicts_offsets_at_the_output_resolution():
    block = DCNv3(32, kernel_size=3, stride=2, pad=1, group=4)
    output = block(torch.randn(2, 15, 16, 32))
    assert output.shape == (2, 8, 8, 32)
    output.sum().backward()
    assert block.offset.weight.grad is not None


@pytest.mark.parametrize('kwargs,message', [
    (dict(channels=30, group=4), r'channels \(30\) must be divisible by group \(4\)'),
    (dict(channels=32, kernel_size=0), r'kernel_size must be a positive int'),
    (dict(channels=32, pad=-1), r'pad must be a non-negative int'),
    (dict(channels=32, norm_layer='GN'), r"norm_layer must be 'LN' or 'BN'"),
    (dict(channels=32, act_layer='Mish'), r'act_layer must be one of GELU, ReLU, SiLU'),
    (dict(channels=32, kernel_size=4, remove_center=True), r'remove_center=True needs an odd kernel_size'),
    (dict(channels=32, stride=2, center_feature_scale=True), r'center_feature_scale .* needs stride 1'),
])
def test_block_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DCNv3(**kwargs)


def test_block_rejects_input_of_the_wrong_layout():
    with pytest.raises(ValueError, match=r'input must be \(N, H, W, 32\) channels-last, got shape \(2, 32, 8, 8\)'):
        DCNv3(32)(torch.randn(2, 32, 8, 8))


@pytest.mark.parametrize('scope', [None, 'mmdet', 'mmyolo'])
def test_conv_module_builds_dcnv3_from_any_scope(scope):
    import mmdet.registry  # noqa: F401  (creates the scopes)
    import mmyolo.registry  # noqa: F401
    with DefaultScope.overwrite_default_scope(scope):
        module = ConvModule(64, 64, 3, padding=1, conv_cfg=dict(type='DCNv3Conv2d', group=4),
                            norm_cfg=dict(type='BN'), act_cfg=dict(type='SiLU'))
    assert isinstance(module.conv, DCNv3Conv2d)
    assert (module.in_channels, module.out_channels, module.kernel_size, module.stride) == (64, 64, (3, 3), (1, 1))
    x = torch.randn(2, 64, 10, 12, requires_grad=True)
    out = module(x)
    assert out.shape == (2, 64, 10, 12)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    # ConvModule's initialisation leaves the predictors at zero.
    assert torch.count_nonzero(module.conv.dcnv3.offset.weight) == 0


def test_conv_layer_projects_when_channel_counts_differ_and_supports_stride():
    layer = MODELS.build(dict(type='DCNv3Conv2d', in_channels=32, out_channels=64, kernel_size=3, stride=2,
                              padding=1, group=8))
    assert layer.input_proj is not None
    assert layer(torch.randn(1, 32, 16, 16)).shape == (1, 64, 8, 8)


@pytest.mark.parametrize('kwargs,message', [
    (dict(groups=2), r'groups must be 1 \(DCNv3 groups channels with `group`\), got groups=2'),
    (dict(kernel_size=(3, 5)), r'kernel_size must be the same along height and width, got \(3, 5\)'),
    (dict(padding='same'), r'padding must be an int or a pair of ints'),
])
def test_conv_layer_rejects_arguments_it_cannot_honour(kwargs, message):
    args = dict(in_channels=16, out_channels=16, kernel_size=3, padding=1, group=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        DCNv3Conv2d(**args)


def test_conv_layer_init_weights_keeps_offsets_and_masks_at_zero():
    layer = DCNv3Conv2d(16, 16, 3, padding=1, group=4)
    torch.nn.init.normal_(layer.dcnv3.offset.weight)
    layer.init_weights()
    assert torch.count_nonzero(layer.dcnv3.offset.weight) == 0


@pytest.mark.integration
def test_mmdet_resnet50_with_dcnv3_stages_trains():
    from mmdet.registry import MODELS as MMDET_MODELS
    with DefaultScope.overwrite_default_scope('mmdet'):
        resnet = MMDET_MODELS.build(dict(type='ResNet', depth=50, num_stages=4, out_indices=(0, 1, 2, 3),
                                         dcn=dict(type='DCNv3Conv2d', group=4),
                                         stage_with_dcn=(False, True, True, True)))
    resnet.init_weights()
    dcn_layers = [m for m in resnet.modules() if isinstance(m, DCNv3Conv2d)]
    assert len(dcn_layers) == 4 + 6 + 3  # every bottleneck of stages 2-4
    assert {layer.stride for layer in dcn_layers} == {(1, 1), (2, 2)}
    x = torch.randn(1, 3, 64, 64)
    outputs = resnet(x)
    assert [tuple(o.shape) for o in outputs] == [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4),
                                                 (1, 2048, 2, 2)]
    sum(o.mean() for o in outputs).backward()
    assert all(torch.isfinite(p.grad).all() for layer in dcn_layers for p in layer.parameters())
