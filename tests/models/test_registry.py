"""The registry names: every module of the package is registered under its own class name."""
import os
import re

from mmengine.registry import HOOKS, MODELS
from mmyolo.registry import MODELS as MMYOLO_MODELS

from mmyolo_dcnv3.utils import register_all_modules
from tests.conftest import ROOT

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


def readme_registry_table() -> dict:
    """{registry name: its row's registry column} of the README's table of registry names."""
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        table = f.read().split('| registry name | what it builds | registry |\n')[1].split('\n\n')[0]
    rows = [line.split('|') for line in table.splitlines()[1:]]  # after the |---| line
    return {name: row[3].strip() for row in rows for name in re.findall(r'`(\w+)`', row[1])}


def test_readme_registry_table_lists_every_module_in_the_registry_it_is_in():
    registries = {'mmengine root `MODELS`': MODELS, 'mmengine root `HOOKS`': HOOKS, 'MMYOLO `MODELS`': MMYOLO_MODELS}
    table = readme_registry_table()
    assert set(table) == EXPECTED
    for name, registry in table.items():
        module = registries[registry].module_dict.get(name)
        assert module is not None and module.__module__.startswith('mmyolo_dcnv3.'), (name, registry)


def test_conv_cfg_dcnv3conv2d_builds_the_nchw_layer_and_dcnv3_the_channels_last_block():
    from mmcv.cnn import build_conv_layer
    conv = build_conv_layer(dict(type='DCNv3Conv2d', group=4), 16, 32, 3, padding=1)
    assert type(conv).__name__ == 'DCNv3Conv2d'
    assert type(MODELS.build(dict(type='DCNv3', channels=16, group=4))).__name__ == 'DCNv3'
