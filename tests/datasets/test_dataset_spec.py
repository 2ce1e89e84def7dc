"""Dataset configs: read, checked against their files, applied to the demo's recipe."""
import dataclasses
import json
import os

import pytest
from mmengine.config import Config

from mmyolo_dcnv3.datasets.dataset_spec import (
    DatasetSpecError,
    apply_dataset,
    check_dataset,
    dataset_problems,
    load_dataset_spec,
)
from tests.conftest import ROOT, TOY_CLASSES, user_dataset

DATASETS = os.path.join(ROOT, 'configs', '_base_', 'datasets')
RECIPE = os.path.join(ROOT, 'configs', 'demo', 'yolov8_n_dcnv3_toy.py')


def test_a_dataset_config_in_another_layout_is_read_and_passes_the_checks(toy_coco, tmp_path):
    spec = load_dataset_spec(user_dataset(toy_coco, tmp_path, img_scale=(160, 128)))
    assert spec.name == 'my_dataset' and spec.class_name == TOY_CLASSES and spec.img_scale == (160, 128)
    assert dataset_problems(spec) == []


def test_missing_keys_paths_and_images_are_all_named(toy_coco, tmp_path):
    config = tmp_path / 'incomplete.py'
    config.write_text("data_root = 'x/'\nclass_name = ('a',)\n")
    with pytest.raises(DatasetSpecError, match='missing train_ann_file, train_data_prefix, val_ann_file'):
        load_dataset_spec(str(config))
    spec = load_dataset_spec(user_dataset(toy_coco, tmp_path))
    os.remove(os.path.join(spec.data_root, 'labels', 'val.json'))
    os.remove(os.path.join(spec.data_root, 'images', 'train2017', '000001.jpg'))
    problems = dataset_problems(spec)
    assert any(p.startswith('val_ann_file: annotation file') and p.endswith('does not exist') for p in problems)
    assert any("1 of the 8 images" in p and "'000001.jpg'" in p for p in problems)
    with pytest.raises(DatasetSpecError, match="dataset 'my_dataset'"):
        check_dataset(spec)


@pytest.mark.parametrize('classes, detail', [
    (('ellipse', 'triangle', 'rectangle', 'star'), "in the file but not in class_name: ['cross']"),
    (('ellipse', 'triangle', 'rectangle', 'star', 'circle'), "not in the file: ['circle']"),
    (('triangle', 'ellipse', 'rectangle', 'star', 'cross'), 'same names, other order'),
])
def test_classes_that_do_not_match_the_annotation_file_are_refused(classes, detail, toy_coco, tmp_path):
    problems = dataset_problems(load_dataset_spec(user_dataset(toy_coco, tmp_path, classes=classes)))
    assert len(problems) == 2 and all(detail in p for p in problems)  # train and val


@pytest.mark.parametrize('line, message', [
    ("class_name = 'cat'", 'class_name must be a non-empty list'),
    ("class_name = ('cat', 'cat')", 'class_name repeats a name'),
    ('img_scale = (100, 100)', 'img_scale must be (width, height), multiples of 32'),
    ('palette = [(1, 2, 3)]', 'palette must give one (r, g, b) per class'),
])
def test_malformed_values_are_refused_by_name(line, message, toy_coco, tmp_path):
    config = user_dataset(toy_coco, tmp_path)
    with open(config, 'a') as f:
        f.write(line + '\n')
    with pytest.raises(DatasetSpecError, match=message.replace('(', r'\(').replace(')', r'\)')):
        load_dataset_spec(config)


def test_the_toy_dataset_config_applied_to_the_toy_recipe_changes_nothing():
    cfg = Config.fromfile(RECIPE)
    before = cfg.to_dict()
    apply_dataset(cfg, load_dataset_spec(os.path.join(DATASETS, 'toy_shapes.py')))
    assert cfg.to_dict() == before


def test_another_dataset_moves_every_path_class_count_and_image_size_of_the_recipe(toy_coco, tmp_path):
    spec = load_dataset_spec(user_dataset(toy_coco, tmp_path, img_scale=(256, 224)))
    spec = dataclasses.replace(spec, class_name=TOY_CLASSES[:3])
    cfg = Config.fromfile(RECIPE)
    apply_dataset(cfg, spec)
    for loader, ann in (('train_dataloader', 'labels/train.json'), ('val_dataloader', 'labels/val.json'),
                        ('test_dataloader', 'labels/val.json')):
        dataset = cfg[loader].dataset
        assert dataset.data_root == spec.data_root and dataset.ann_file == ann
        assert dataset.metainfo.classes == TOY_CLASSES[:3]
    assert cfg.val_evaluator.ann_file == spec.data_root + 'labels/val.json' == cfg.test_evaluator.ann_file
    assert cfg.model.bbox_head.head_module.num_classes == 3 == cfg.model.train_cfg.assigner.num_classes
    text = cfg.pretty_text
    assert '192' not in text and '-96' not in text  # the recipe's own size is gone everywhere
    mosaic = next(t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'Mosaic')
    assert tuple(mosaic.img_scale) == (256, 224)
    affine = next(t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'YOLOv5RandomAffine')
    assert tuple(affine.border) == (-128, -112)
    switch = next(h for h in cfg.custom_hooks if h.type.endswith('PipelineSwitchHook'))
    assert any(tuple(t.get('scale', ())) == (256, 224) for t in switch.switch_pipeline)
    assert json.loads(json.dumps(spec.to_dict()))['img_scale'] == [256, 224]
