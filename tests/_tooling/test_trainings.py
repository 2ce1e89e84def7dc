"""mmyolo_dcnv3._tooling.trainings: trainings side by side, reading mmengine's work dirs."""
import json
import os
import subprocess
import sys
import time

import pytest

from mmyolo_dcnv3._tooling.trainings import best_val_metrics, cpu_cores, latency_ms, run_parallel, training_seconds

SHOW_THREADS = 'import os; print("threads", os.environ["OMP_NUM_THREADS"])'


def test_jobs_share_the_cores_and_prefix_their_output(capfd):
    seconds = run_parallel({'a': [sys.executable, '-c', SHOW_THREADS], 'b': [sys.executable, '-c', SHOW_THREADS]})
    assert set(seconds) == {'a', 'b'} and all(s > 0 for s in seconds.values())
    out = capfd.readouterr().out
    for label in 'ab':
        assert f'[{label}] threads {max(1, cpu_cores() // 2)}' in out


def test_at_most_slots_jobs_run_at_once_and_each_is_reported_when_it_finishes(tmp_path):
    # Each job holds a lock file while it runs and fails if it finds more than one other holder.
    job = ('import glob, os, sys, time; d = sys.argv[1]; me = os.path.join(d, sys.argv[2]); open(me, "w").close(); '
           'time.sleep(0.6); n = len(glob.glob(os.path.join(d, "*"))); os.remove(me); sys.exit(n > 2)')
    locks = tmp_path / 'locks'
    locks.mkdir()
    finished = []
    commands = {f'job{i}': [sys.executable, '-c', job, str(locks), f'job{i}'] for i in range(5)}
    seconds = run_parallel(commands, slots=2, log_dir=str(tmp_path / 'logs'),
                           on_finish=lambda label, s: finished.append(label))
    assert sorted(finished) == sorted(commands) == sorted(seconds)
    assert sorted(os.listdir(tmp_path / 'logs')) == [f'job{i}.log' for i in range(5)]


def test_output_goes_to_the_log_file_when_a_log_dir_is_given(tmp_path, capfd):
    run_parallel({'a': [sys.executable, '-c', SHOW_THREADS]}, log_dir=str(tmp_path))
    out = capfd.readouterr().out
    assert '[a] threads' not in out and '[a] started; log:' in out
    assert (tmp_path / 'a.log').read_text().startswith('threads')


def test_a_failure_stops_the_other_jobs_and_raises(tmp_path):
    """The failing job exits once the long one is running; when run_parallel raises, the long one is gone."""
    pid_file = tmp_path / 'long.pid'
    long_job = 'import os, sys, time; open(sys.argv[1], "w").write(str(os.getpid())); time.sleep(600)'
    failing_job = ('import os, sys, time\n'
                   'while not (os.path.exists(sys.argv[1]) and os.path.getsize(sys.argv[1])):\n'
                   '    time.sleep(0.05)\n'
                   'raise SystemExit(3)')
    with pytest.raises(subprocess.CalledProcessError) as error:
        run_parallel({'long': [sys.executable, '-c', long_job, str(pid_file)],
                      'failing': [sys.executable, '-c', failing_job, str(pid_file)]})
    assert error.value.returncode == 3 and error.value.cmd[0] == sys.executable
    with pytest.raises(ProcessLookupError):  # stopped and reaped, not left sleeping
        os.kill(int(pid_file.read_text()), 0)


def test_slots_must_be_positive():
    with pytest.raises(ValueError, match='slots must be at least 1, got 0'):
        run_parallel({'a': ['true']}, slots=0)


def write_run(work_dir, stamp, scalars, log_times):
    run = work_dir / stamp
    (run / 'vis_data').mkdir(parents=True)
    (run / 'vis_data' / 'scalars.json').write_text(''.join(json.dumps(e) + '\n' for e in scalars))
    (run / f'{stamp}.log').write_text(''.join(f'{t} - mmengine - INFO - line\n' for t in log_times))
    return run


def validation(epoch, bbox_map):
    return {'coco/bbox_mAP': bbox_map, 'coco/bbox_mAP_50': 0.9, 'coco/bbox_mAP_75': 0.5, 'coco/bbox_mAP_s': 0.1,
            'coco/bbox_mAP_m': 0.2, 'coco/bbox_mAP_l': -1.0, 'step': epoch}


def test_a_resumed_training_counts_every_attempt(tmp_path):
    # First attempt: 10 minutes, best mAP 0.4 at epoch 4; resumed: 5 minutes, 0.35 at epoch 8.
    write_run(tmp_path, '20261129_010000', [{'loss': 3.0, 'step': 10}, validation(4, 0.4)],
              ['2026/11/29 01:00:00', '2026/11/29 01:10:00'])
    time.sleep(0.01)  # the runs are ordered by modification time
    write_run(tmp_path, '20261129_020000', [validation(8, 0.35)], ['2026/11/29 02:00:00', '2026/11/29 02:05:00'])
    assert training_seconds(str(tmp_path)) == 15 * 60
    best = best_val_metrics(str(tmp_path))
    assert best['bbox_mAP'] == 0.4 and best['epoch'] == 4 and best['bbox_mAP_l'] == -1.0


def test_no_validation_logged_is_an_error(tmp_path):
    write_run(tmp_path, '20261129_010000', [{'loss': 3.0, 'step': 10}], ['2026/11/29 01:00:00'])
    with pytest.raises(RuntimeError, match='no validation metrics logged in'):
        best_val_metrics(str(tmp_path))


def test_latency_takes_turns_on_each_image_after_two_warm_up_rounds():
    calls = []
    medians = latency_ms({'a': lambda image: calls.append(('a', image)),
                          'b': lambda image: calls.append(('b', image))}, ['x.jpg', 'y.jpg'])
    assert calls == [('a', 'x.jpg'), ('b', 'x.jpg')] * 3 + [('a', 'y.jpg'), ('b', 'y.jpg')]
    assert set(medians) == {'a', 'b'} and all(ms >= 0 for ms in medians.values())
