"""train.py/test.py stop before the runner is built, with nothing written, on missing data or a checkpoint
of another model; `--cfg-options data_root=DIR` moves a config's data."""
import os
import sys

import pytest
from mmengine.config import Config

from mmyolo_dcnv3.utils.dataset_checks import DatasetNotFoundError, check_dataset_paths, rebase_data_root
from tests.conftest import ROOT, TOY_CLASSES, load_tool, refusal, run_command, save_initialised_checkpoint

TOOLS = os.path.join(ROOT, 'tools')
TOY_DCNV3 = os.path.join(ROOT, 'configs', 'demo', 'yolov8_n_dcnv3_toy.py')
TOY_PLAIN = os.path.join(ROOT, 'configs', 'demo', 'yolov8_n_toy.py')


@pytest.fixture(scope='module')
def dcnv3_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp('checks') / 'dcnv3_toy.pth'
    return save_initialised_checkpoint(TOY_DCNV3, str(path), classes=TOY_CLASSES)


@pytest.mark.parametrize('tool', ['train.py', 'test.py'])
def test_missing_dataset_is_named_with_its_config_key_and_the_fix_and_nothing_is_written(
        tool, dcnv3_checkpoint, tmp_path, capsys):
    work_dir = tmp_path / 'work'
    extra = [dcnv3_checkpoint] if tool == 'test.py' else []
    error = refusal(capsys, load_tool(tool).main, [TOY_DCNV3, *extra, '--work-dir', str(work_dir), '--cfg-options',
                                                   f'data_root={tmp_path}/nowhere/'])
    loader = 'train_dataloader' if tool == 'train.py' else 'test_dataloader'
    assert f"{loader}.dataset.ann_file = '{tmp_path}/nowhere/annotations/instances_" in error
    assert f"{loader}.dataset.data_prefix.img = '{tmp_path}/nowhere/" in error
    assert '--cfg-options data_root=/path/to/your/data/' in error
    assert 'Traceback' not in error
    assert not work_dir.exists()


def test_test_py_refuses_a_checkpoint_of_another_model_naming_its_keys(dcnv3_checkpoint, toy_coco, tmp_path,
                                                                       capsys):
    # The plain demo config with the DCNv3 demo checkpoint (the case).
    error = refusal(capsys, load_tool('test.py').main, [TOY_PLAIN, dcnv3_checkpoint, '--work-dir',
                                                        str(tmp_path / 'work'), '--cfg-options',
                                                        f'data_root={toy_coco}'])
    assert '3 keys missing from the checkpoint' in error
    assert 'backbone.stage4.1.blocks.0.conv2.conv.weight' in error
    assert 'in the checkpoint but not in the model' in error and '.conv2.conv.dcnv3.' in error
    assert '--allow-partial-checkpoint' in error
    assert not (tmp_path / 'work').exists()


@pytest.mark.integration
def test_test_py_evaluates_a_partial_checkpoint_only_when_asked(dcnv3_checkpoint, toy_coco, tmp_path):
    result = run_command([sys.executable, os.path.join(TOOLS, 'test.py'), TOY_PLAIN, dcnv3_checkpoint,
                          '--allow-partial-checkpoint', '--work-dir', str(tmp_path / 'work'),
                          '--cfg-options', f'data_root={toy_coco}', 'test_dataloader.num_workers=0',
                          'test_dataloader.persistent_workers=False'])
    assert sum('Average Precision' in line for line in result.stdout.splitlines()) == 6


def test_train_py_names_a_missing_load_from(tmp_path, toy_coco, capsys):
    error = refusal(capsys, load_tool('train.py').main, [TOY_DCNV3, '--work-dir', str(tmp_path / 'work'),
                                                         '--cfg-options', f'data_root={toy_coco}',
                                                         f'load_from={tmp_path}/missing.pth'])
    assert f"load_from '{tmp_path}/missing.pth' does not exist" in error
    assert not (tmp_path / 'work').exists()


def test_data_root_option_moves_every_dataset_and_evaluator_of_the_config():
    cfg = Config.fromfile(TOY_DCNV3)
    rebase_data_root(cfg, cfg.data_root, '/data/shapes')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == '/data/shapes/'
    assert cfg.val_evaluator.ann_file == '/data/shapes/annotations/instances_val.json'
    assert cfg.test_evaluator.ann_file == '/data/shapes/annotations/instances_val.json'


def test_wrapped_datasets_and_evaluator_lists_are_checked(tmp_path):
    (tmp_path / 'ann.json').write_text('{}')
    (tmp_path / 'images').mkdir()
    present = dict(data_root=str(tmp_path), ann_file='ann.json', data_prefix=dict(img='images/'))
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
            present, dict(type='RepeatDataset', times=2, dataset=dict(present, ann_file='other.json'))])),
        val_dataloader=dict(dataset=present),
        val_evaluator=[dict(type='CocoMetric', ann_file=str(tmp_path / 'ann.json')),
                       dict(type='CocoMetric', ann_file=str(tmp_path / 'gone.json'))]))
    with pytest.raises(DatasetNotFoundError) as error:
        check_dataset_paths(cfg, ['train_dataloader', 'val_dataloader'], 'cfg.py')
    message = str(error.value)
    assert f"train_dataloader.dataset.datasets.1.dataset.ann_file = '{tmp_path}/other.json'" in message
    assert f"val_evaluator.1.ann_file = '{tmp_path}/gone.json'" in message
    assert message.count('no such file') == 2
