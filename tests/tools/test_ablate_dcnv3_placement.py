"""tools/ablate_dcnv3_placement.py, shortened (1 epoch, 1 seed, 2 variants): table and plot, resumable."""
import json
import os
import sys

import cv2
import pytest

from tests.conftest import ROOT, run_command

TOOL = os.path.join(ROOT, 'tools', 'ablate_dcnv3_placement.py')


def test_shortened_ablation_writes_table_plot_and_skips_finished_runs_when_rerun(toy_coco, tmp_path):
    out = tmp_path / 'ablation'
    command = [sys.executable, TOOL, '--out', str(out), '--data', toy_coco, '--epochs', '1', '--seeds', '0',
               '--variants', 'plain', 'downsample', '--latency-images', '2']
    first = run_command(command)
    assert '[2/2]' in first.stdout and 'bbox mAP' in first.stdout
    table = (out / 'results.md').read_text()
    assert sum(line.startswith('| ') for line in table.splitlines()) == 3  # header and two variants
    assert '| plain | `configs/demo/yolov8_n_toy.py` |' in table
    assert '| downsample | `configs/demo/yolov8_n_dcnv3-downsample_toy.py` |' in table
    assert 'Decision: no decision: one seed gives no spread' in table
    results = json.loads((out / 'results.json').read_text())
    for variant in ('plain', 'downsample'):
        summary = results['variants'][variant]
        assert summary['seeds'] == [0] and 0 <= summary['bbox_mAP'] <= 1 and summary['latency_ms'] > 0
        assert summary['params_m'] > 1 and summary['gflops'] > 0.1 and summary['train_minutes'] > 0
    # The DCNv3 downsampling convs are extra FLOPs; the model is otherwise plain YOLOv8-n.
    assert results['variants']['downsample']['gflops'] > results['variants']['plain']['gflops']
    plot = cv2.imread(str(out / 'ablation_map.png'))
    assert plot is not None and plot.shape[0] > 200 and plot.std() > 5

    again = run_command(command)
    assert '2 trainings: 2 already done, 0 to run' in again.stdout


@pytest.mark.parametrize('arguments, message', [
    (['--variants', 'plain', 'dcn'], '--variants: unknown dcn'),
    (['--seeds', '0', '0'], 'must not repeat'),
    (['--seeds', '-1'], '--seeds must be non-negative'),
    (['--jobs', '0'], '--jobs must be at least 1, got 0'),
])
def test_bad_arguments_are_refused_by_name(arguments, message, tmp_path):
    result = run_command([sys.executable, TOOL, '--out', str(tmp_path), *arguments], check=False)
    assert result.returncode == 2 and message in result.stderr


def test_rerun_skips_finished_trainings_and_resumes_interrupted_ones(tmp_path, monkeypatch):
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    import ablate_dcnv3_placement as tool
    args = tool.parse_args(['--out', str(tmp_path), '--variants', 'plain', 'c2f', '--seeds', '0', '1'])
    runs_dir = tmp_path / 'runs'
    runs_dir.mkdir()
    (runs_dir / 'plain_seed0.json').write_text('{}')  # finished
    work_dirs = {f'{v}_seed{s}': str(tmp_path / 'work_dirs' / f'{v}_seed{s}') for v in ('plain', 'c2f') for s in (0, 1)}
    os.makedirs(work_dirs['c2f_seed1'])
    (tmp_path / 'work_dirs' / 'c2f_seed1' / 'last_checkpoint').write_text('epoch_8.pth')  # interrupted
    launched = {}
    monkeypatch.setattr(tool, 'run_parallel', lambda commands, **kwargs: launched.update(commands))
    tool.train_all(args, str(runs_dir), work_dirs)
    assert sorted(launched) == ['c2f_seed0', 'c2f_seed1', 'plain_seed1']
    assert launched['c2f_seed1'][-1] == '--resume' and '--resume' not in launched['plain_seed1']
    assert 'randomness.seed=1' in launched['plain_seed1']
    assert launched['c2f_seed0'][2].endswith('yolov8_n_dcnv3-c2f_toy.py')
