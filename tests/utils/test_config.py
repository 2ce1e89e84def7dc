"""utils.config: one way to load a config, build its detector, its inference pipeline and its class names."""
import os

import pytest

from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.config import build_detector, class_names, inference_pipeline, load_config, shipped_config
from tests.conftest import ROOT, TOY_CLASSES

register_all_modules(init_default_scope=False)


def test_scope_paths_and_files_load_the_same_config():
    by_scope = load_config('mmyolo_dcnv3::demo/yolov8_n_toy.py')
    by_file = load_config(os.path.join(ROOT, 'configs', 'demo', 'yolov8_n_toy.py'))
    assert by_scope.to_dict() == by_file.to_dict()
    assert shipped_config('demo/yolov8_n_toy.py') == os.path.join(ROOT, 'configs', 'demo', 'yolov8_n_toy.py')
    assert load_config('mmyolo::yolov8/yolov8_n_syncbn_fast_8xb16-500e_coco.py').model.type.endswith('YOLODetector')


def test_cfg_options_are_merged_and_data_root_moves_every_dataset():
    cfg = load_config('mmyolo_dcnv3::demo/yolov8_n_toy.py', {'data_root': '/data/x/', 'train_cfg.max_epochs': 3})
    assert cfg.train_cfg.max_epochs == 3
    assert cfg.train_dataloader.dataset.data_root == cfg.test_dataloader.dataset.data_root == '/data/x/'
    assert cfg.val_evaluator.ann_file == '/data/x/annotations/instances_val.json'


def test_missing_configs_are_named():
    with pytest.raises(FileNotFoundError, match="config file 'nowhere.py' does not exist"):
        load_config('nowhere.py')
    with pytest.raises(FileNotFoundError, match="no config 'nowhere.py'"):
        shipped_config('nowhere.py')


@pytest.mark.parametrize('config, classes', [
    ('mmyolo_dcnv3::demo/yolov8_n_toy.py', TOY_CLASSES),  # the config's metainfo
    ('mmyolo_dcnv3::yolov8_n_dcnv3_coco.py', 80),  # mmyolo's YOLOv5CocoDataset's METAINFO
    ('mmyolo_dcnv3::mmdet/retinanet_r50-dcnv3-c3-c5_fpn_1x_coco.py', 80),  # mmdet's CocoDataset's
])
def test_class_names_come_from_the_checkpoint_else_the_config_else_its_dataset_class(config, classes):
    cfg = load_config(config)
    names = class_names(cfg)
    assert names == list(classes) if isinstance(classes, tuple) else len(names) == classes
    assert class_names(cfg, dict(meta=dict(dataset_meta=dict(CLASSES=('a', 'b'))))) == ['a', 'b']


def test_inference_pipeline_is_the_test_pipeline_without_annotations():
    cfg = load_config('mmyolo_dcnv3::demo/yolov8_n_toy.py')
    types = [t['type'] for t in inference_pipeline(cfg)]
    assert types == [t['type'] for t in cfg.test_dataloader.dataset.pipeline if 'LoadAnnotations' not in t['type']]
    assert len(types) == len(cfg.test_dataloader.dataset.pipeline) - 1


def test_build_detector_reverts_syncbn_and_returns_eval_mode():
    import torch
    model = build_detector(load_config('mmyolo_dcnv3::demo/yolov8_n_dcnv3_toy.py'))
    assert not model.training
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
