"""The registry names: every module of the package is registered under its own class name."""
from mmengine.registry import HOOKS, MODELS
from mmyolo.registry import MODELS as MMYOLO_MODELS

from mmyolo_dcnv3.utils import register_all_modules

register_all_modules(init_default_scope=False)

EXPECTED = {'DCNv3', 'DCNv3Conv2d', 'DCNv3ConvModule', 'DarknetBottleneckDCNv3', 'CSPLayerWithTwoConvDCNv3',
            'YOLOv8CSPDarknetDCNv3', 'CSPNeXtDCNv3', 'CSPNeXtLayerDCNv3', 'LoadFromReportHook'}


def test_every_module_of_the_package_is_registered_under_its_class_name():
    registered = {}
    for registry in (MODELS, HOOKS, MMYOLO_MODELS):
        for name, module in registry.module_dict.items():
            if module.__module__.startswith('mmyolo_dcnv3.'):
                registered[name] = module.__name__
    assert registered == {name: name for name in EXPECTED}


def test_conv_cfg_dcnv3conv2d_builds_the_nchw_layer_and_dcnv3_the_channels_last_block():
    from mmcv.cnn import build_conv_layer
    conv = build_conv_layer(dict(type='DCNv3Conv2d', group=4), 16, 32, 3, padding=1)
    assert type(conv).__name__ == 'DCNv3Conv2d'
    assert type(MODELS.build(dict(type='DCNv3', channels=16, group=4))).__name__ == 'DCNv3'
