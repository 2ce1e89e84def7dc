"""train/test/get_flops tools and the `mim` commands, end to end on a tiny dataset."""
import os
import sys

import pytest
import torch

from tests.conftest import ROOT, load_tool, refusal
from tests.conftest import run_command as run

TOOLS = os.path.join(ROOT, 'tools')
CONFIG = os.path.join(ROOT, 'configs', 'demo', 'yolov8_n_dcnv3_toy.py')
BIN = os.path.dirname(sys.executable)
COCO_LINES = 12


def data_options(root, epochs=1):
    """--cfg-options that point the demo config at `root`: 8 images, batch 4 = 2 iterations an epoch."""
    ann = root + 'annotations/instances_val.json'
    return ['--cfg-options', f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}', f'test_dataloader.dataset.data_root={root}',
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}', f'train_cfg.max_epochs={epochs}',
            'train_cfg.val_interval=1', 'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
            'train_dataloader.persistent_workers=False', 'val_dataloader.num_workers=0',
            'val_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False']


def coco_summary_lines(output):
    return [line for line in output.splitlines() if 'Average Precision' in line or 'Average Recall' in line]


@pytest.fixture(scope='module')
def mim_trained(toy_coco, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('mim_train'))
    result = run([os.path.join(BIN, 'mim'), 'train', 'mmyolo', CONFIG, '--gpus', '0', '--work-dir', work_dir,
                  *data_options(toy_coco)])
    return work_dir, result.stdout + result.stderr


@pytest.mark.integration
def test_mim_train_runs_two_iterations_and_writes_a_checkpoint(mim_trained):
    work_dir, log = mim_trained
    assert 'Epoch(train) [1][2/2]' in log
    assert os.path.isfile(os.path.join(work_dir, 'epoch_1.pth'))


@pytest.mark.integration
def test_mim_test_loads_the_checkpoint_and_prints_coco_metrics(mim_trained, toy_coco):
    work_dir, _ = mim_trained
    result = run([os.path.join(BIN, 'mim'), 'test', 'mmyolo', CONFIG, '--checkpoint',
                  os.path.join(work_dir, 'epoch_1.pth'), '--gpus', '0', '--work-dir', work_dir,
                  *data_options(toy_coco)])
    assert len(coco_summary_lines(result.stdout + result.stderr)) == COCO_LINES


@pytest.mark.integration
def test_tools_test_prints_coco_metrics_and_writes_predictions(mim_trained, toy_coco, tmp_path):
    work_dir, _ = mim_trained
    result = run([sys.executable, os.path.join(TOOLS, 'test.py'), CONFIG, os.path.join(work_dir, 'epoch_1.pth'),
                  '--work-dir', str(tmp_path), '--json-prefix', str(tmp_path / 'pred'),
                  '--out', str(tmp_path / 'pred.pkl'), *data_options(toy_coco)])
    assert len(coco_summary_lines(result.stdout + result.stderr)) == COCO_LINES
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
    assert (tmp_path / 'pred.bbox.json').is_file() and (tmp_path / 'pred.pkl').is_file()


@pytest.mark.integration
def test_resume_continues_from_the_checkpoint(mim_trained, toy_coco, tmp_path):
    import shutil
    work_dir, _ = mim_trained
    resumed_dir = tmp_path / 'resumed'
    shutil.copytree(work_dir, resumed_dir)
    result = run([sys.executable, os.path.join(TOOLS, 'train.py'), CONFIG, '--work-dir', str(resumed_dir),
                  '--resume', *data_options(toy_coco, epochs=2)])
    log = result.stdout + result.stderr
    assert 'resumed epoch: 1' in log
    assert 'Epoch(train) [2][2/2]' in log and 'Epoch(train) [1]' not in log
    assert (resumed_dir / 'epoch_2.pth').is_file()


@pytest.mark.integration
def test_training_twice_with_the_config_seed_gives_identical_weights(toy_coco, tmp_path):
    # The demo configs set randomness.seed: data order, augmentations (in a
    # worker process) and initial weights repeat, and the CPU kernels are
    # deterministic, so two runs end bitwise equal.
    weights = []
    for run_dir in ('first', 'second'):
        work_dir = str(tmp_path / run_dir)
        run([sys.executable, os.path.join(TOOLS, 'train.py'), CONFIG, '--work-dir', work_dir,
             *data_options(toy_coco, epochs=2), 'train_dataloader.num_workers=1'])
        weights.append(torch.load(os.path.join(work_dir, 'epoch_2.pth'), map_location='cpu',
                                  weights_only=False)['state_dict'])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


@pytest.mark.integration
def test_two_process_gloo_training_ends_with_identical_weights(toy_coco, tmp_path):
    config = tmp_path / 'ddp_config.py'
    config.write_text(f"_base_ = '{CONFIG}'\n"
                      "custom_imports = dict(imports=['mmyolo_dcnv3', 'tests.tools.rank_weights_hook'], "
                      "allow_failed_imports=False)\n"
                      "custom_hooks = _base_.custom_hooks + [dict(type='SaveRankWeightsHook')]\n")
    options = data_options(toy_coco)
    options[options.index('train_dataloader.batch_size=4')] = 'train_dataloader.batch_size=2'
    run([os.path.join(BIN, 'torchrun'), '--nproc_per_node=2', '--master_port=29533',
         os.path.join(TOOLS, 'train.py'), str(config), '--launcher', 'pytorch', '--work-dir', str(tmp_path),
         *options])
    rank0 = torch.load(tmp_path / 'weights_rank0.pth')
    rank1 = torch.load(tmp_path / 'weights_rank1.pth')
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # ... and training did change them.
    assert any('.dcnv3.offset.weight' in k and rank0[k].abs().sum() > 0 for k in rank0)


def test_get_flops_counts_the_dcnv3_op(capsys):
    load_tool('analysis_tools/get_flops.py').main([os.path.join(ROOT, 'configs', 'yolov8_n_dcnv3_coco.py'),
                                                  '--img-size', '320'])
    lines = dict(line.split(':', 1) for line in capsys.readouterr().out.splitlines() if ':' in line)
    assert float(lines['  of which DCNv3 sampling'].split()[0]) > 0
    assert float(lines['parameters'].split()[0]) > 2.5


@pytest.mark.parametrize('args,message', [
    (['train.py', 'no_such_config.py'], "config file 'no_such_config.py' does not exist"),
    (['train.py', CONFIG, '--resume', 'missing.pth'], "--resume: checkpoint 'missing.pth' does not exist"),
    (['test.py', CONFIG, 'missing.pth'], "checkpoint 'missing.pth' does not exist"),
    (['test.py', CONFIG, CONFIG, '--out', 'x.json'], '--out must end with .pkl or .pickle'),
    (['analysis_tools/get_flops.py', CONFIG, '--img-size', '8'], '--img-size takes one or two sizes'),
    (['dataset_makers/make_toy_coco.py', '--out', '/tmp/x', '--train-images', '0'],
     '--train-images must be at least 1'),
    (['dataset_makers/make_toy_coco.py', '--out', '/tmp/x', '--img-size', '32'], '--img-size must be at least 64'),
    (['demo.py', '--seed', '-1'], '--seed must be a non-negative int, got -1'),
    (['demo.py', '--epochs', '0'], '--epochs must be at least 1, got 0'),
])
def test_tools_reject_bad_arguments_with_a_clear_message(args, message, capsys):
    assert message in refusal(capsys, load_tool(args[0]).main, args[1:])
