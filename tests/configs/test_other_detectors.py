"""DCNv3 in other detectors: Faster R-CNN and RetinaNet (mmdet::, ResNet c3-c5) and RTMDet-s (mmyolo::).

Each config builds with DCNv3 where it says; each trains a few iterations on
the toy data through `mim train` (mmdet's or mmyolo's train script, as a user
launches it) and evaluates with COCO metrics, at 128 px, without pretrained
weights (the tests have no network).
"""
import os
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS, init_default_scope

from mmyolo_dcnv3.models import CSPNeXtDCNv3, CSPNeXtLayerDCNv3, DCNv3Conv2d
from mmyolo_dcnv3.utils import register_all_modules
from tests.conftest import ROOT, TOY_CLASSES, run_command

register_all_modules(init_default_scope=False)

FASTER_RCNN = os.path.join(ROOT, 'configs', 'mmdet', 'faster-rcnn_r50-dcnv3-c3-c5_fpn_1x_coco.py')
RETINANET = os.path.join(ROOT, 'configs', 'mmdet', 'retinanet_r50-dcnv3-c3-c5_fpn_1x_coco.py')
RTMDET = os.path.join(ROOT, 'configs', 'rtmdet', 'rtmdet_s_dcnv3_coco.py')
MIM = os.path.join(os.path.dirname(sys.executable), 'mim')
SIZE = 128


def build(config):
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    init_default_scope(cfg.default_scope)
    return cfg, MODELS.build(cfg.model)


@pytest.mark.parametrize('config', [FASTER_RCNN, RETINANET])
def test_mmdet_resnet_configs_put_dcnv3_in_every_bottleneck_of_c3_to_c5(config):
    cfg, model = build(config)
    assert cfg.default_scope == 'mmdet' and cfg.custom_imports.imports == ['mmyolo_dcnv3']
    for index, layer_name in enumerate(model.backbone.res_layers):
        kinds = {type(block.conv2) for block in getattr(model.backbone, layer_name)}
        assert kinds == ({DCNv3Conv2d} if index >= 1 else {torch.nn.Conv2d}), layer_name
    # Each stage's first block keeps the stride 2 of the conv it replaces.
    assert model.backbone.layer2[0].conv2.stride == (2, 2)
    feats = model.backbone(torch.randn(1, 3, SIZE, SIZE))
    assert [f.shape[-1] for f in feats] == [SIZE // 4, SIZE // 8, SIZE // 16, SIZE // 32]


def test_rtmdet_config_puts_dcnv3_in_the_last_two_cspnext_stages():
    cfg, model = build(RTMDET)
    assert isinstance(model.backbone, CSPNeXtDCNv3)
    layers = [getattr(model.backbone, f'stage{i}')[-1] for i in range(1, 5)]
    assert [isinstance(layer, CSPNeXtLayerDCNv3) for layer in layers] == [False, False, True, True]
    assert all(isinstance(block.conv2.conv, DCNv3Conv2d) for block in layers[3].blocks)


def toy_data_config(base, toy_coco, model, train_pipeline, test_pipeline):
    """A config inheriting `base`, trained and evaluated on the toy data (1 epoch of 2 iterations)."""
    return f'''_base_ = {base!r}
data_root = {toy_coco!r}
metainfo = dict(classes={TOY_CLASSES!r})
model = {model}
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(
    data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/'), pipeline={train_pipeline}))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val.json',
    data_prefix=dict(img='val/'), pipeline={test_pipeline}))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
'''


MMDET_TRAIN = (f"[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True), "
               f"dict(type='Resize', scale=({SIZE}, {SIZE}), keep_ratio=True), dict(type='PackDetInputs')]")
MMDET_TEST = (f"[dict(type='LoadImageFromFile'), dict(type='Resize', scale=({SIZE}, {SIZE}), keep_ratio=True), "
              "dict(type='LoadAnnotations', with_bbox=True), dict(type='PackDetInputs', meta_keys=("
              "'img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]")
MMYOLO_TRAIN = (f"[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True), "
                f"dict(type='mmdet.Resize', scale=({SIZE}, {SIZE}), keep_ratio=True), "
                "dict(type='mmdet.PackDetInputs')]")
MMYOLO_TEST = (f"[dict(type='LoadImageFromFile'), dict(type='YOLOv5KeepRatioResize', scale=({SIZE}, {SIZE})), "
               f"dict(type='LetterResize', scale=({SIZE}, {SIZE}), allow_scale_up=False, pad_val=dict(img=114)), "
               "dict(type='LoadAnnotations', with_bbox=True, _scope_='mmdet'), dict(type='mmdet.PackDetInputs', "
               "meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'pad_param'))]")
NUM = len(TOY_CLASSES)
DETECTORS = {
    'faster_rcnn': ('mmdet', FASTER_RCNN, f'dict(backbone=dict(init_cfg=None), '
                    f'roi_head=dict(bbox_head=dict(num_classes={NUM})))', MMDET_TRAIN, MMDET_TEST),
    # score_thr 0: after two iterations RetinaNet scores nothing above its 0.05, and COCO evaluation
    # of an empty result prints no metrics.
    'retinanet': ('mmdet', RETINANET, f'dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes={NUM}), '
                  'test_cfg=dict(score_thr=0.0))',
                  MMDET_TRAIN, MMDET_TEST),
    'rtmdet': ('mmyolo', RTMDET, f'dict(backbone=dict(init_cfg=None), bbox_head=dict(head_module=dict('
               f'num_classes={NUM})), train_cfg=dict(assigner=dict(num_classes={NUM})))', MMYOLO_TRAIN, MMYOLO_TEST),
}


@pytest.mark.slow
@pytest.mark.parametrize('name', list(DETECTORS))
def test_config_trains_two_iterations_with_mim_and_evaluates(name, toy_coco, tmp_path):
    package, base, model, train_pipeline, test_pipeline = DETECTORS[name]
    config = tmp_path / f'{name}_toy.py'
    config.write_text(toy_data_config(base, toy_coco, model, train_pipeline, test_pipeline))
    result = run_command([MIM, 'train', package, str(config), '--gpus', '0', '--work-dir', str(tmp_path / 'work')])
    log = result.stdout + result.stderr
    assert 'Epoch(train) [1][2/2]' in log
    assert 'coco/bbox_mAP' in log and 'Average Precision' in log
    state = torch.load(tmp_path / 'work' / 'epoch_1.pth', map_location='cpu', weights_only=False)['state_dict']
    assert any('.conv2.dcnv3.' in key or '.conv2.conv.dcnv3.' in key for key in state)
