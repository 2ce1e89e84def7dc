"""The placement ablation: shortened on a user's dataset (1 epoch, 1 seed, 2 variants), its checks, resuming."""
import json
import os
import sys

import cv2
import pytest
from mmengine.config import Config

from tests.conftest import ROOT, load_tool, refusal, run_command, user_dataset

TOOL = os.path.join(ROOT, 'tools', 'analysis_tools', 'ablate_dcnv3_placement.py')


def ablation():
    return load_tool('analysis_tools/ablate_dcnv3_placement.py')


@pytest.mark.integration
def test_shortened_ablation_on_a_user_dataset_writes_table_plot_and_skips_finished_runs(toy_coco, tmp_path):
    dataset = user_dataset(toy_coco, tmp_path, img_scale=(128, 128))
    out = tmp_path / 'ablation'
    command = [sys.executable, TOOL, '--dataset', dataset, '--out', str(out), '--epochs', '1', '--seeds', '0',
               '--variants', 'plain', 'downsample', '--latency-images', '2']
    first = run_command(command)
    assert '[2/2]' in first.stdout and 'bbox mAP' in first.stdout and 'on my_dataset' in first.stdout
    table = (out / 'results.md').read_text()
    assert sum(line.startswith('| ') for line in table.splitlines()) == 3  # header and two variants
    assert '| plain | `configs/demo/yolov8_n_toy.py` |' in table and 'GFLOPs at 128 px' in table
    assert '| downsample | `configs/demo/yolov8_n_dcnv3-downsample_toy.py` |' in table
    assert 'Decision: no decision: one seed gives no spread' in table
    results = json.loads((out / 'results.json').read_text())
    assert results['dataset']['name'] == 'my_dataset' and results['dataset']['img_scale'] == [128, 128]
    for variant in ('plain', 'downsample'):
        summary = results['variants'][variant]
        assert summary['seeds'] == [0] and 0 <= summary['bbox_mAP'] <= 1 and summary['latency_ms'] > 0
        assert summary['params_m'] > 1 and summary['gflops'] > 0.01 and summary['train_minutes'] > 0
    # The DCNv3 downsampling convs are extra FLOPs; the model is otherwise plain YOLOv8-n.
    assert results['variants']['downsample']['gflops'] > results['variants']['plain']['gflops']
    # Each variant trained on the user's data, at its size.
    trained = Config.fromfile(str(out / 'configs' / 'plain.py'))
    assert trained.train_dataloader.dataset.ann_file == 'labels/train.json' and trained.img_scale == (128, 128)
    assert trained.val_dataloader.dataset.data_prefix.img == 'images/val2017/'
    plot = cv2.imread(str(out / 'ablation_map.png'))
    assert plot is not None and plot.shape[0] > 200 and plot.std() > 5

    again = run_command(command)
    assert '2 trainings: 2 already done, 0 to run' in again.stdout


def test_a_dataset_that_does_not_match_its_files_is_refused_before_training(toy_coco, tmp_path, capsys):
    dataset = user_dataset(toy_coco, tmp_path, classes=('ellipse', 'triangle'))
    os.remove(tmp_path / 'my_data' / 'labels' / 'val.json')
    out = tmp_path / 'ablation'
    error = refusal(capsys, ablation().main, ['--dataset', dataset, '--out', str(out)])
    assert "class_name ['ellipse', 'triangle'] does not match the categories" in error
    assert 'val_ann_file: annotation file' in error
    assert not (out / 'configs').exists() and not (out / 'work_dirs').exists()


def test_runs_of_another_dataset_in_the_same_out_are_refused(toy_coco, tmp_path, capsys):
    out = tmp_path / 'ablation'
    out.mkdir()
    (out / 'dataset.json').write_text(json.dumps(dict(name='toy-shapes')))
    error = refusal(capsys, ablation().main, ['--dataset', user_dataset(toy_coco, tmp_path), '--out', str(out)])
    assert 'holds runs on another dataset' in error


@pytest.mark.parametrize('arguments, message', [
    (['--variants', 'plain', 'dcn'], '--variants: unknown dcn'),
    (['--seeds', '0', '0'], 'must not repeat'),
    (['--seeds', '-1'], '--seeds must be non-negative'),
    (['--jobs', '0'], '--jobs must be at least 1, got 0'),
    (['--dataset', 'coco'], "--dataset: 'coco' is neither a built-in dataset"),
    (['--dataset', 'missing.py'], "dataset config 'missing.py' does not exist"),
])
def test_bad_arguments_are_refused_by_name(arguments, message, tmp_path, capsys):
    assert message in refusal(capsys, ablation().parse_args, ['--out', str(tmp_path), *arguments])


def test_generator_options_with_a_dataset_config_are_refused(toy_coco, tmp_path, capsys):
    arguments = ['--dataset', user_dataset(toy_coco, tmp_path), '--train-images', '5']
    error = refusal(capsys, ablation().parse_args, arguments)
    assert '--train-images only apply to the built-in datasets' in error


def test_rerun_skips_finished_trainings_and_resumes_interrupted_ones(tmp_path, monkeypatch):
    tool = ablation()
    args = tool.parse_args(['--out', str(tmp_path), '--variants', 'plain', 'c2f', '--seeds', '0', '1'])
    runs_dir = tmp_path / 'runs'
    runs_dir.mkdir()
    (runs_dir / 'plain_seed0.json').write_text('{}')  # finished
    work_dirs = {f'{v}_seed{s}': str(tmp_path / 'work_dirs' / f'{v}_seed{s}') for v in ('plain', 'c2f') for s in (0, 1)}
    os.makedirs(work_dirs['c2f_seed1'])
    (tmp_path / 'work_dirs' / 'c2f_seed1' / 'last_checkpoint').write_text('epoch_8.pth')  # interrupted
    launched = {}
    monkeypatch.setattr(tool, 'run_parallel', lambda commands, **kwargs: launched.update(commands))
    configs = {'plain': 'configs/plain.py', 'c2f': 'configs/c2f.py'}
    tool.train_all(args, configs, str(runs_dir), work_dirs)
    assert sorted(launched) == ['c2f_seed0', 'c2f_seed1', 'plain_seed1']
    assert launched['c2f_seed1'][-1] == '--resume' and '--resume' not in launched['plain_seed1']
    assert 'randomness.seed=1' in launched['plain_seed1']
    assert launched['c2f_seed0'][2] == 'configs/c2f.py'
