"""What the demo and the placement ablation share: running trainings side by side, reading their logs, timing.

The tools (``tools/demo.py``, ``tools/analysis_tools/ablate_dcnv3_placement.py``)
point the demo's recipes at a dataset (:func:`write_recipe_config`), drive
``tools/train.py`` on them in subprocesses (:func:`run_parallel`), find their
checkpoints and metrics in mmengine's work dirs, and time the trained
detectors side by side (:func:`latency_ms`).
"""
import datetime
import functools
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

from mmyolo_dcnv3_config_scope import package_root

from .timing import interleaved_times, medians


def tool(relative: str) -> str:
    """The path of one of the package's tools, e.g. ``'train.py'`` or ``'deployment/export_onnx.py'``."""
    return osp.join(package_root(), 'tools', relative)


COCO_KEYS = ['bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l']


def add_toy_run_arguments(parser, latency_images: int = 20, default_data: Optional[str] = None) -> None:
    """The options the demo and the ablation share: the generated dataset, the schedule, the latency sample
    (``latency_images`` by default). Call :func:`check_toy_run_arguments` after parsing."""
    parser.add_argument('--data', default=default_data,
                        help='dataset folder; a generated dataset is made there when missing' +
                        (f' (default {default_data})' if default_data else " (default: the dataset's data_root)"))
    parser.add_argument('--train-images', type=int, default=None, help='training images a generator makes')
    parser.add_argument('--val-images', type=int, default=None, help='validation images a generator makes')
    parser.add_argument('--img-size', type=int, default=None, help='image side a generator makes, in pixels')
    parser.add_argument('--epochs', type=int, default=None, help="override the configs' max_epochs (36)")
    parser.add_argument('--latency-images', type=int, default=latency_images,
                        help=f'val images timed for CPU latency (default {latency_images})')


def check_toy_run_arguments(parser, args) -> None:
    for name in ('epochs', 'latency_images'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1, got {value}')


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()


def run_parallel(commands: Dict[str, List[str]], slots: Optional[int] = None,
                 log_dir: Optional[str] = None,
                 on_finish: Callable[[str, float], None] = lambda label, seconds: None) -> Dict[str, float]:
    """Runs labelled commands, at most ``slots`` at once (default: all), each
    on an equal share of the CPU cores (``OMP_NUM_THREADS``).

    Without ``log_dir`` each command's output streams to ours line by line
    with a ``[label]`` prefix; with it, it goes to ``log_dir/<label>.log``
    and only start and finish lines are printed. ``on_finish(label,
    seconds)`` runs as each command succeeds. When one fails the others are
    stopped and ``CalledProcessError`` is raised. Returns {label: wall
    seconds}.
    """
    slots = len(commands) if slots is None else slots
    if slots < 1:
        raise ValueError(f'slots must be at least 1, got {slots}')
    threads = max(1, cpu_cores() // min(slots, max(1, len(commands))))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED='1')
    print(f'{len(commands)} job(s), {min(slots, len(commands))} at once, {threads} CPU thread(s) each', flush=True)
    pending, running, seconds, readers = list(commands), {}, {}, []
    failed = None  # (label, return code)

    def stream(label, process, start, log):
        for line in process.stdout:
            if log is None:
                print(f'[{label}] {line}', end='', flush=True)
            else:
                log.write(line)
        process.wait()
        if log is not None:
            log.close()
        seconds[label] = time.perf_counter() - start

    def launch(label):
        log = None
        if log_dir is not None:
            os.makedirs(log_dir, exist_ok=True)
            log = open(osp.join(log_dir, f'{label}.log'), 'a', buffering=1)  # line-buffered: tail -f works
            print(f'[{label}] started; log: {log.name}', flush=True)
        print(f'[{label}] $ ' + ' '.join(commands[label]), flush=True)
        process = subprocess.Popen(commands[label], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        readers.append(threading.Thread(target=stream, args=(label, process, time.perf_counter(), log)))
        readers[-1].start()
        running[label] = process

    try:
        while (pending or running) and failed is None:
            while pending and len(running) < slots:
                launch(pending.pop(0))
            time.sleep(0.5)
            for label, process in list(running.items()):
                if process.poll() is None:
                    continue
                del running[label]
                if process.returncode != 0:
                    failed = label, process.returncode
                    break
                while label not in seconds:  # the reader records the time after the last line
                    time.sleep(0.05)
                on_finish(label, seconds[label])
    finally:
        for process in running.values():
            if process.poll() is None:
                process.terminate()
        for reader in readers:
            reader.join()
    if failed is not None:
        label, returncode = failed
        log = f'; its log: {osp.join(log_dir, label + ".log")}' if log_dir else ''
        print(f'[{label}] failed with exit code {returncode}{log}', flush=True)
        raise subprocess.CalledProcessError(returncode, commands[label])
    return seconds


SHORT_WARMUP_ITERATIONS = 10


def schedule_overrides(epochs: Optional[int] = None) -> dict:
    """Config overrides that shorten a demo recipe (configs/demo/) to ``epochs``: validation and a checkpoint
    once, at the end (a short run is a check, not a curve), and a warm-up of SHORT_WARMUP_ITERATIONS instead of
    the recipe's 100 iterations, which would otherwise be all of a run of a few images."""
    if epochs is None:
        return {}
    return {'train_cfg.max_epochs': epochs, 'train_cfg.val_interval': epochs, 'train_cfg.dynamic_intervals': None,
            'default_hooks.param_scheduler.max_epochs': epochs,
            'default_hooks.param_scheduler.warmup_mim_iter': SHORT_WARMUP_ITERATIONS,
            'default_hooks.checkpoint.interval': epochs}


def write_recipe_config(recipe: str, spec, out_path: str, epochs: Optional[int] = None,
                        seed: Optional[int] = None) -> str:
    """A demo recipe (configs/demo/) pointed at a dataset (a :class:`~mmyolo_dcnv3.datasets.dataset_spec.DatasetSpec`),
    optionally shortened to ``epochs`` and seeded, written to ``out_path``; every tool then runs on that file."""
    from mmyolo_dcnv3.datasets.dataset_spec import apply_dataset
    from mmyolo_dcnv3.utils.config import load_config
    cfg = load_config(recipe)
    apply_dataset(cfg, spec)
    cfg.merge_from_dict(schedule_overrides(epochs))
    if seed is not None:
        cfg.merge_from_dict({'randomness.seed': seed})
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    cfg.dump(out_path)
    return out_path


def make_dataset(generator: str, out: str, train_images: Optional[int] = None, val_images: Optional[int] = None,
                 img_size: Optional[int] = None) -> None:
    """Runs a dataset generator of tools/ (make_toy_coco.py, make_warped_digits_coco.py) into ``out``;
    it skips a dataset already there."""
    command = [sys.executable, tool(f'dataset_makers/{generator}'), '--out', out]
    for option, value in (('--train-images', train_images), ('--val-images', val_images),
                          ('--img-size', img_size)):
        if value is not None:
            command += [option, str(value)]
    print('$ ' + ' '.join(command), flush=True)
    subprocess.run(command, check=True)


def val_images(spec) -> List[str]:
    """The image files of a dataset's val split, in the order of its annotation file."""
    with open(spec.path(spec.val_ann_file)) as f:
        images = json.load(f)['images']
    return [osp.join(spec.path(spec.val_data_prefix), image['file_name']) for image in images]


def best_checkpoint(work_dir: str) -> str:
    """The best_*.pth a training saved in work_dir, else its last checkpoint."""
    best = sorted(glob.glob(osp.join(work_dir, 'best_*.pth')), key=osp.getmtime)
    if best:
        return best[-1]
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def scalar_logs(work_dir: str, every_run: bool = False) -> List[dict]:
    """The JSON lines mmengine logged in work_dir's latest run (all runs, oldest
    first, with ``every_run``): a training run writes TIMESTAMP/vis_data/scalars.json,
    a test run TIMESTAMP/TIMESTAMP.json."""
    runs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
                  + glob.glob(osp.join(work_dir, '*', '*.json')), key=osp.getmtime)
    entries = []
    for path in runs if every_run else runs[-1:]:
        with open(path) as f:
            entries += [json.loads(line) for line in f if line.strip()]
    return entries


def best_val_metrics(work_dir: str) -> dict:
    """The coco/* metrics of the validation with the highest bbox mAP over all
    of work_dir's training runs (a resumed training logs in several), plus its epoch."""
    validations = [e for e in scalar_logs(work_dir, every_run=True) if 'coco/bbox_mAP' in e]
    if not validations:
        raise RuntimeError(f'no validation metrics logged in {work_dir}')
    best = max(validations, key=lambda e: e['coco/bbox_mAP'])
    return dict({key: best[f'coco/{key}'] for key in COCO_KEYS}, epoch=best['step'])


_LOG_TIME = re.compile(r'^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) - mmengine')


def training_seconds(work_dir: str) -> float:
    """Wall time of all of work_dir's training runs, from the first to the last
    timestamped line of each mmengine log (so a resumed training counts every attempt)."""
    total = 0.0
    for log in glob.glob(osp.join(work_dir, '*', '*.log')):
        with open(log) as f:
            stamps = [m.group(1) for m in map(_LOG_TIME.match, f) if m]
        if len(stamps) > 1:
            first, last = (datetime.datetime.strptime(s, '%Y/%m/%d %H:%M:%S') for s in (stamps[0], stamps[-1]))
            total += (last - first).total_seconds()
    return total


def latency_ms(predictors: Dict[str, Callable[[str], object]], images: Sequence[str]) -> Dict[str, float]:
    """Median end-to-end time (preprocessing + network + NMS) of one image, in ms,
    for each of {label: predict(image_path)}: the predictors take turns on each
    image (two untimed rounds on the first image come first), so that the
    machine's load weighs on all of them alike."""
    times = {label: [] for label in predictors}
    for index, image in enumerate(images):
        on_image = {label: functools.partial(predict, image) for label, predict in predictors.items()}
        for label, ms in interleaved_times(on_image, repeat=1, warmup=2 if index == 0 else 0).items():
            times[label] += ms
    return medians(times)
