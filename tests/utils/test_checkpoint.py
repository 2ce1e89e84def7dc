"""Strict checkpoint loading (utils.checkpoint, apis.load_detector): a partial load must be asked for."""
import logging

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope

from mmyolo_dcnv3.apis import load_detector
from mmyolo_dcnv3.models import DCNv3
from mmyolo_dcnv3.utils.checkpoint import CheckpointMismatchError, load_checkpoint_strictly

PLAIN_DEMO = 'configs/demo/yolov8_n_toy.py'
DCNV3_DEMO = 'configs/demo/yolov8_n_dcnv3_toy.py'


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))


def save(path, state_dict, **extra):
    torch.save({'state_dict': state_dict, 'meta': {}, **extra}, path)
    return str(path)


def test_matching_checkpoint_loads_every_weight_and_returns_the_checkpoint(tmp_path):
    source = small_model()
    for parameter in source.parameters():
        nn.init.normal_(parameter)
    path = save(tmp_path / 'c.pth', source.state_dict())
    target = small_model()
    checkpoint = load_checkpoint_strictly(target, path)
    assert checkpoint['meta'] == {}
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_ddp_module_prefix_is_removed(tmp_path):
    source = small_model()
    path = save(tmp_path / 'c.pth', {f'module.{k}': v + 1 for k, v in source.state_dict().items()})
    target = small_model()
    load_checkpoint_strictly(target, path)
    assert torch.equal(target[0].weight, source[0].weight + 1)


def test_missing_and_unexpected_keys_are_named_and_the_model_is_unchanged(tmp_path):
    state = small_model().state_dict()
    del state['2.weight']
    state['head.extra'] = torch.zeros(3)
    path = save(tmp_path / 'c.pth', {k: v + 1 for k, v in state.items()})
    target = small_model()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as error:
        load_checkpoint_strictly(target, path)
    message = str(error.value)
    assert '1 keys missing from the checkpoint' in message and '2.weight' in message
    assert '1 keys in the checkpoint but not in the model: head.extra' in message
    assert 'partial load' in message
    assert error.value.missing_keys == ['2.weight'] and error.value.unexpected_keys == ['head.extra']
    for key, value in target.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_shape_mismatch_is_reported_with_both_shapes(tmp_path):
    state = small_model().state_dict()
    state['2.weight'] = torch.zeros(5, 4)
    path = save(tmp_path / 'c.pth', state)
    with pytest.raises(CheckpointMismatchError, match=r'2\.weight \(5, 4\) vs \(2, 4\)') as error:
        load_checkpoint_strictly(small_model(), path)
    assert error.value.missing_keys == []


def test_partial_load_takes_what_matches_and_logs_the_rest(tmp_path):
    state = small_model().state_dict()
    state = {k: v + 1 for k, v in state.items()}
    state['2.weight'] = torch.zeros(5, 4)
    del state['0.bias']
    path = save(tmp_path / 'c.pth', state)
    target = small_model()
    initial_bias = target[0].bias.clone()
    logger = MMLogger.get_instance('checkpoint_test')
    messages = []
    handler = _ListHandler(messages)
    logger.addHandler(handler)
    try:
        load_checkpoint_strictly(target, path, allow_partial=True)
    finally:
        logger.removeHandler(handler)
    assert torch.equal(target[0].weight, state['0.weight'])
    assert torch.equal(target[0].bias, initial_bias)
    assert target[2].weight.shape == (2, 4)
    logged = '\n'.join(messages)
    assert '0.bias' in logged and '2.weight (5, 4) vs (2, 4)' in logged


class _ListHandler(logging.Handler):
    def __init__(self, messages):
        super().__init__()
        self.messages = messages

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_internimage_keys_of_the_dcnv3_block_load_strictly(tmp_path):
    block = DCNv3(channels=8, group=2, center_feature_scale=True)
    state = block.state_dict()
    # InternImage names the gate's parameters as two plain tensors.
    state['center_feature_scale_proj_weight'] = state.pop('center_feature_scale_proj.weight') + 1
    state['center_feature_scale_proj_bias'] = state.pop('center_feature_scale_proj.bias')
    path = save(tmp_path / 'c.pth', state)
    target = DCNv3(channels=8, group=2, center_feature_scale=True)
    load_checkpoint_strictly(target, path)
    assert torch.equal(target.center_feature_scale_proj.weight, state['center_feature_scale_proj_weight'])


def test_missing_and_non_checkpoint_files_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_checkpoint_strictly(small_model(), str(tmp_path / 'none.pth'))
    path = tmp_path / 'list.pth'
    torch.save([1, 2], path)
    with pytest.raises(ValueError, match='holds a list, not a state dict'):
        load_checkpoint_strictly(small_model(), str(path))


def build_detector(config):
    from mmdet.registry import MODELS
    cfg = Config.fromfile(config)
    init_default_scope('mmyolo')
    return MODELS.build(cfg.model)


def test_load_detector_refuses_a_dcnv3_checkpoint_for_the_plain_config(tmp_path):
    path = save(tmp_path / 'dcnv3.pth', build_detector(DCNV3_DEMO).state_dict(),
                meta={'dataset_meta': {'classes': ('a', 'b', 'c', 'd', 'e')}})
    with pytest.raises(CheckpointMismatchError, match='dcnv3') as error:
        load_detector(PLAIN_DEMO, path)
    assert error.value.missing_keys and error.value.unexpected_keys
    model, _ = load_detector(PLAIN_DEMO, path, allow_partial=True)
    assert not model.training


def test_load_detector_takes_class_names_from_the_checkpoint_else_the_config(tmp_path):
    state = build_detector(DCNV3_DEMO).state_dict()
    with_meta = save(tmp_path / 'a.pth', state, meta={'dataset_meta': {'CLASSES': ('x',) * 5}})
    model, pipeline = load_detector(DCNV3_DEMO, with_meta)
    assert model.dataset_meta['classes'] == ('x',) * 5
    bare = tmp_path / 'b.pth'
    torch.save(state, bare)
    model, _ = load_detector(DCNV3_DEMO, str(bare))
    assert list(model.dataset_meta['classes']) == list(Config.fromfile(DCNV3_DEMO).metainfo['classes'])
