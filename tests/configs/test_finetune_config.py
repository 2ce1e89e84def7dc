"""The own-dataset fine-tune config, end to end on the toy data, as its header tells a user to use it.

A plain MMYOLO YOLOv8-s is trained briefly; the fine-tune config, with its
"Your dataset and schedule" block edited for the toy data, starts from that
checkpoint (`load_from`): every non-DCNv3 weight loads, the DCNv3 layers are
new and the log lists them; the fine-tuned model is then evaluated.
"""
import os
import re
import sys

import pytest
import torch

from tests.conftest import ROOT, TOY_CLASSES, run_command

FINETUNE = os.path.join(ROOT, 'configs', 'custom_dataset', 'yolov8_s_dcnv3_finetune_custom.py')
TOOLS = os.path.join(ROOT, 'tools')


def edited_finetune_config(path, **values):
    """The fine-tune config with the given variables of its dataset block set (as a user edits it)."""
    text = open(FINETUNE).read().replace("_base_ = '../yolov8_s_dcnv3_coco.py'",
                                         f"_base_ = {os.path.join(ROOT, 'configs', 'yolov8_s_dcnv3_coco.py')!r}")
    for name, value in values.items():
        text, count = re.subn(rf'^{name} = .*$', f'{name} = {value!r}', text, flags=re.MULTILINE)
        assert count == 1, f'{name} is not in the dataset block'
    path.write_text(text)
    return str(path)


def test_dataset_block_is_everything_a_new_dataset_needs(tmp_path):
    from mmengine.config import Config
    config = edited_finetune_config(tmp_path / 'mine.py', data_root='/data/shapes/', class_name=TOY_CLASSES,
                                    train_ann_file='a/train.json', train_image_dir='im/train/', max_epochs=30,
                                    close_mosaic_epochs=5, train_batch_size_per_gpu=4)
    cfg = Config.fromfile(config)
    assert cfg.train_dataloader.dataset.data_root == '/data/shapes/'
    assert cfg.train_dataloader.dataset.ann_file == 'a/train.json'
    assert cfg.train_dataloader.dataset.data_prefix.img == 'im/train/'
    assert cfg.train_dataloader.dataset.metainfo.classes == TOY_CLASSES
    assert cfg.val_evaluator.ann_file == '/data/shapes/annotations/val.json'
    assert cfg.model.bbox_head.head_module.num_classes == 5 and cfg.model.train_cfg.assigner.num_classes == 5
    assert cfg.train_cfg.max_epochs == 30 and cfg.default_hooks.param_scheduler.max_epochs == 30
    switch = next(h for h in cfg.custom_hooks if h.type == 'mmdet.PipelineSwitchHook')
    assert switch.switch_epoch == 25
    assert cfg.train_dataloader.batch_size == 4 and cfg.optim_wrapper.optimizer.batch_size_per_gpu == 4
    assert cfg.model.backbone.type == 'YOLOv8CSPDarknetDCNv3'
    assert cfg.load_from.endswith('yolov8_s_syncbn_fast_8xb16-500e_coco_20230117_180101-5aa5f0f1.pth')


@pytest.mark.slow
def test_finetune_from_a_plain_yolov8_s_checkpoint_loads_all_but_dcnv3_and_logs_the_new_keys(toy_coco, tmp_path):
    toy = dict(data_root=toy_coco, class_name=TOY_CLASSES, train_ann_file='annotations/instances_train.json',
               train_image_dir='train/', val_ann_file='annotations/instances_val.json', val_image_dir='val/',
               max_epochs=1, close_mosaic_epochs=0, val_interval=1,
               train_batch_size_per_gpu=4, train_num_workers=0)
    # 1. A plain MMYOLO YOLOv8-s (its own backbone class), trained briefly on the same data.
    plain_config = tmp_path / 'plain.py'
    plain_config.write_text(
        f"_base_ = {edited_finetune_config(tmp_path / 'plain_base.py', load_from=None, **toy)!r}\n"
        "model = dict(backbone=dict(_delete_=True, type='YOLOv8CSPDarknet', arch='P5', "
        "last_stage_out_channels=1024, deepen_factor=0.33, widen_factor=0.5, "
        "norm_cfg=dict(type='BN', momentum=0.03, eps=0.001), act_cfg=dict(type='SiLU', inplace=True)))\n")
    run_command([sys.executable, os.path.join(TOOLS, 'train.py'), str(plain_config), '--work-dir',
                 str(tmp_path / 'plain')])
    plain_checkpoint = str(tmp_path / 'plain' / 'epoch_1.pth')
    plain_state = torch.load(plain_checkpoint, map_location='cpu', weights_only=False)['state_dict']
    assert not any('dcnv3' in key for key in plain_state)

    # 2. The fine-tune config, dataset block edited, load_from = that checkpoint.
    config = edited_finetune_config(tmp_path / 'finetune.py', load_from=plain_checkpoint, **toy)
    result = run_command([sys.executable, os.path.join(TOOLS, 'train.py'), config, '--work-dir',
                          str(tmp_path / 'finetune')])
    log = result.stdout + result.stderr
    finetuned = torch.load(tmp_path / 'finetune' / 'epoch_1.pth', map_location='cpu', weights_only=False)
    dcnv3_keys = sorted(k for k in finetuned['state_dict'] if '.conv2.conv.dcnv3.' in k)
    total = len(finetuned['state_dict'])
    assert dcnv3_keys and f'load_from {plain_checkpoint}: {total - len(dcnv3_keys)} of {total} model weights loaded' \
        in log
    new_block = log.split(f'{len(dcnv3_keys)} new (not in the checkpoint; they keep their initialisation):\n')[1]
    listed = [line.strip() for line in new_block.splitlines()[:len(dcnv3_keys)]]
    assert sorted(listed) == dcnv3_keys
    assert 'shapes differ' not in log
    # The plain 3x3 convs that DCNv3 replaced are the only unused checkpoint weights.
    unused = [k for k in plain_state if k not in finetuned['state_dict']]
    assert unused and all(k.endswith('.conv2.conv.weight') for k in unused)
    assert f'{len(unused)} in the checkpoint but not in the model (ignored):' in log
    assert 'coco/bbox_mAP' in log

    # 3. Evaluate the fine-tuned model.
    result = run_command([sys.executable, os.path.join(TOOLS, 'test.py'), config,
                          str(tmp_path / 'finetune' / 'epoch_1.pth'), '--work-dir', str(tmp_path / 'test')])
    assert sum('Average Precision' in line for line in (result.stdout + result.stderr).splitlines()) == 6
