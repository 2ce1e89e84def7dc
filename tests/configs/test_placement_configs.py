"""The placement variants of the ablation (configs/demo/yolov8_n_dcnv3-*_toy.py) put DCNv3 where their names say."""
import os

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmyolo_dcnv3.models import CSPLayerWithTwoConvDCNv3, DCNv3ConvModule
from mmyolo_dcnv3.utils import register_all_modules

register_all_modules(init_default_scope=False)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize('name, in_c2f, in_downsampling', [
    ('yolov8_n_dcnv3-c2f_toy.py', True, False),
    ('yolov8_n_dcnv3-downsample_toy.py', False, True),
    ('yolov8_n_dcnv3-c2f-downsample_toy.py', True, True),
])
def test_variant_places_dcnv3_in_the_last_two_stages_as_named(name, in_c2f, in_downsampling):
    from mmyolo.registry import MODELS
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'demo', name))
    init_default_scope('mmyolo')
    backbone = MODELS.build(cfg.model).backbone
    stages = [getattr(backbone, f'stage{i}') for i in range(1, 5)]
    assert [isinstance(s[0], DCNv3ConvModule) for s in stages] == [False, False, in_downsampling, in_downsampling]
    assert [isinstance(s[1], CSPLayerWithTwoConvDCNv3) for s in stages] == [False, False, in_c2f, in_c2f]
