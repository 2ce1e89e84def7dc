"""Where DCNv3 pays off in YOLOv8-n: each placement against plain YOLOv8-n, several seeds each, on any COCO dataset.

Trains every variant (the configs of configs/demo/: the demo's recipe) on the
chosen dataset once per seed, a few trainings at a time on an equal share of
the CPU cores each, then measures parameters, FLOPs and CPU latency (end to
end, interleaved over val images; run it on an otherwise idle machine) and
writes to OUT:

    results.md     the table: bbox mAP mean and spread over seeds, each seed,
                   mAP50/75, parameters, FLOPs, latency, training time, and the decision
    results.json   the same numbers, per run
    ablation_map.png   bbox mAP per variant, each seed a point
    dataset.json, configs/*.py, runs/*.json, work_dirs/, logs/   the dataset, each variant's config, per training

Datasets (--dataset): toy-shapes (default: the demo's rigid shapes under mild
warps), warped-digits (real handwritten digits under strong deformation on
real photographs), both made in --data when missing, or a dataset config of
your own (see configs/_base_/datasets/ for the format: data root, class
names, annotation files and image folders per split, image size). The
dataset's paths and classes are checked against its annotation files before
anything trains.

Resumable: a finished training (OUT/runs/VARIANT_seedN.json) is not run again,
and an interrupted one resumes from its last checkpoint. Run it again with the
same arguments to continue.

    python tools/analysis_tools/ablate_dcnv3_placement.py [--dataset toy-shapes|warped-digits|MY_DATASET.py]
        [--out outputs/ablation/DATASET] [--seeds 0 1 2] [--variants ...] [--epochs N] [--jobs 2]

The decision rule: a DCNv3 placement should be the default when its mean bbox
mAP beats plain YOLOv8-n's by more than the seed spread (the larger of the two
sample standard deviations) at no more than 10% extra CPU latency.
"""
import argparse
import dataclasses
import json
import os
import os.path as osp
import statistics
import sys
import time

from mmyolo_dcnv3._tooling.trainings import (
    add_toy_run_arguments,
    best_checkpoint,
    best_val_metrics,
    check_toy_run_arguments,
    latency_ms,
    make_dataset,
    run_parallel,
    tool,
    training_seconds,
    val_images,
    write_recipe_config,
)
from mmyolo_dcnv3.utils.config import shipped_config

VARIANTS = {  # name -> (config, what it is)
    'plain': ('yolov8_n_toy.py', 'plain YOLOv8-n'),
    'c2f': ('yolov8_n_dcnv3-c2f_toy.py', 'DCNv3 in the C2f bottlenecks of P4, P5'),
    'downsample': ('yolov8_n_dcnv3-downsample_toy.py', 'DCNv3ConvModule as the stride-2 conv of P4, P5'),
    'c2f+downsample': ('yolov8_n_dcnv3-c2f-downsample_toy.py', 'both placements in P4, P5'),
}
# Built-in datasets: name -> (dataset config, generator made when the data is missing).
DATASETS = {
    'toy-shapes': ('toy_shapes.py', 'make_toy_coco.py'),
    'warped-digits': ('warped_digits.py', 'make_warped_digits_coco.py'),
}
MAX_LATENCY_RATIO = 1.10


def parse_args(argv=None):
    from mmyolo_dcnv3.datasets.dataset_spec import DatasetSpecError, load_dataset_spec
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', default='toy-shapes', metavar='NAME_OR_CONFIG',
                        help=f'{" or ".join(DATASETS)} (made when missing), or a dataset config file '
                        '(default toy-shapes)')
    parser.add_argument('--out', help='folder for runs, logs and results (default outputs/ablation/DATASET)')
    add_toy_run_arguments(parser, latency_images=100)  # 4 models, seconds each
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), metavar='VARIANT',
                        help=f'which to train (default all: {" ".join(VARIANTS)})')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2], help='random seeds (default 0 1 2)')
    parser.add_argument('--jobs', type=int, default=2, help='trainings at once (default 2)')
    args = parser.parse_args(argv)
    check_toy_run_arguments(parser, args)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f'--variants: unknown {", ".join(unknown)}; choose from {", ".join(VARIANTS)}')
    if len(set(args.variants)) != len(args.variants) or len(set(args.seeds)) != len(args.seeds):
        parser.error('--variants and --seeds must not repeat a value')
    if any(seed < 0 for seed in args.seeds):
        parser.error(f'--seeds must be non-negative ints, got {args.seeds}')
    if args.jobs < 1:
        parser.error(f'--jobs must be at least 1, got {args.jobs}')
    args.generator = None
    if args.dataset in DATASETS:
        config_name, args.generator = DATASETS[args.dataset]
        dataset_config = shipped_config(f'_base_/datasets/{config_name}')
    elif args.dataset.endswith('.py'):
        dataset_config = args.dataset
        given = [f'--{name.replace("_", "-")}' for name in ('train_images', 'val_images', 'img_size')
                 if getattr(args, name) is not None]
        if given:
            parser.error(f'{", ".join(given)} only apply to the built-in datasets ({", ".join(DATASETS)}), '
                         f'which are generated; your dataset config {args.dataset} names its own files')
    else:
        parser.error(f'--dataset: {args.dataset!r} is neither a built-in dataset ({", ".join(DATASETS)}) '
                     'nor a dataset config file (.py)')
    try:
        args.spec = load_dataset_spec(dataset_config, data_root=args.data)
    except DatasetSpecError as error:
        parser.error(f'--dataset: {error}')
    if args.dataset in DATASETS:
        args.spec = dataclasses.replace(args.spec, name=args.dataset)
    args.out = args.out or osp.join('outputs', 'ablation', args.spec.name)
    return args


def recipe_of(variant):
    return shipped_config(f'demo/{VARIANTS[variant][0]}')


def write_configs(args, configs_dir):
    """Each variant's recipe pointed at the dataset (and shortened to --epochs), as OUT/configs/VARIANT.py."""
    return {variant: write_recipe_config(recipe_of(variant), args.spec,
                                         osp.join(configs_dir, variant.replace('+', '-') + '.py'), args.epochs)
            for variant in args.variants}


def train_all(args, configs, runs_dir, work_dirs):
    """Trains every (variant, seed) without a result file yet; writes one as each finishes."""
    todo, done = {}, 0
    for seed in args.seeds:
        for variant in args.variants:
            name = f'{variant}_seed{seed}'
            if osp.isfile(osp.join(runs_dir, name + '.json')):
                done += 1
                continue
            command = [sys.executable, tool('train.py'), configs[variant],
                       '--work-dir', work_dirs[name], '--cfg-options', f'randomness.seed={seed}']
            if osp.isfile(osp.join(work_dirs[name], 'last_checkpoint')):
                command.append('--resume')  # after --cfg-options' values: argparse ends that list here
            todo[name] = (variant, seed, command)
    total = done + len(todo)
    print(f'{total} trainings: {done} already done, {len(todo)} to run', flush=True)
    started, durations = time.perf_counter(), []

    def record(name, seconds):
        variant, seed, _ = todo[name]
        work_dir = work_dirs[name]
        run = dict(variant=variant, seed=seed, recipe=recipe_of(variant), config=configs[variant],
                   work_dir=work_dir, checkpoint=best_checkpoint(work_dir), metrics=best_val_metrics(work_dir),
                   train_minutes=training_seconds(work_dir) / 60)
        with open(osp.join(runs_dir, name + '.json'), 'w') as f:
            json.dump(run, f, indent=2)
        durations.append(seconds)
        finished = done + len(durations)
        left = total - finished
        eta = statistics.mean(durations) * left / min(args.jobs, max(left, 1)) / 60  # at the mean throughput
        print(f'[{finished}/{total}] {name} finished in {seconds / 60:.1f} min: bbox mAP '
              f'{run["metrics"]["bbox_mAP"]:.3f} (best epoch {run["metrics"]["epoch"]}); '
              f'{time.strftime("%H:%M")}, about {eta:.0f} min left', flush=True)

    if todo:
        run_parallel({name: command for name, (_, _, command) in todo.items()}, slots=args.jobs,
                     log_dir=osp.join(args.out, 'logs'), on_finish=record)
    print(f'training done in {(time.perf_counter() - started) / 60:.1f} min', flush=True)


def summarise(args, configs, runs):
    """Per variant: mAP statistics over seeds, model size and cost, CPU latency."""
    from mmyolo_dcnv3.apis import load_detector, predict
    from mmyolo_dcnv3.utils.complexity import detector_complexity
    from mmyolo_dcnv3.utils.config import load_config
    image_size = load_config(configs[args.variants[0]]).img_scale[0]
    images = val_images(args.spec)[:args.latency_images]
    summary, predictors = {}, {}
    for variant in args.variants:
        mine = sorted((r for r in runs if r['variant'] == variant), key=lambda r: r['seed'])
        maps = [r['metrics']['bbox_mAP'] for r in mine]
        params, flops = detector_complexity(load_config(configs[variant]), image_size)
        summary[variant] = dict(
            config=f'configs/demo/{VARIANTS[variant][0]}', description=VARIANTS[variant][1],
            seeds=[r['seed'] for r in mine], bbox_mAP_per_seed=maps, bbox_mAP=statistics.mean(maps),
            bbox_mAP_std=statistics.stdev(maps) if len(maps) > 1 else 0.0,
            bbox_mAP_50=statistics.mean(r['metrics']['bbox_mAP_50'] for r in mine),
            bbox_mAP_75=statistics.mean(r['metrics']['bbox_mAP_75'] for r in mine),
            params_m=params / 1e6, gflops=flops / 1e9,
            train_minutes=statistics.mean(r['train_minutes'] for r in mine))
        detector = load_detector(configs[variant], mine[0]['checkpoint'])
        predictors[variant] = lambda image, detector=detector: predict(*detector, image)
    print(f'timing {len(predictors)} detectors, interleaved, on {len(images)} val images', flush=True)
    for variant, ms in latency_ms(predictors, images).items():
        summary[variant]['latency_ms'] = ms
    return summary, image_size


def decide(summary):
    """(winner or None, one sentence per DCNv3 variant, the decision in words)."""
    if 'plain' not in summary:
        return None, [], 'no decision: plain YOLOv8-n was not trained (--variants lacks plain)'
    plain = summary['plain']
    reasons, qualified = [], []
    for variant, s in summary.items():
        if variant == 'plain':
            continue
        gain = s['bbox_mAP'] - plain['bbox_mAP']
        spread = max(s['bbox_mAP_std'], plain['bbox_mAP_std'])
        ratio = s['latency_ms'] / plain['latency_ms']
        ok = len(s['seeds']) > 1 and len(plain['seeds']) > 1 and gain > spread and ratio <= MAX_LATENCY_RATIO
        reasons.append(f'{variant}: {gain:+.3f} bbox mAP vs plain (seed spread {spread:.3f}), '
                       f'latency {ratio:.2f}x plain -> {"qualifies" if ok else "does not qualify"}')
        if ok:
            qualified.append((s['bbox_mAP'], variant))
    if qualified:
        winner = max(qualified)[1]
        return winner, reasons, (f'make {winner} the default: it beats plain YOLOv8-n by more than the seed '
                                 f'spread at no more than {MAX_LATENCY_RATIO:.2f}x its CPU latency')
    if len(plain['seeds']) < 2:
        return None, reasons, 'no decision: one seed gives no spread to compare with (use --seeds with 2 or more)'
    return None, reasons, ('keep the current default: no DCNv3 placement beats plain YOLOv8-n by more than '
                           f'the seed spread at no more than {MAX_LATENCY_RATIO:.2f}x its CPU latency')


def table(summary, image_size):
    plain_ms = summary.get('plain', {}).get('latency_ms')
    lines = ['| variant | config | bbox mAP (mean ± std) | per seed | mAP50 | mAP75 | parameters (M) | '
             f'GFLOPs at {image_size} px | CPU latency (ms) | latency / plain | training (min per run) |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for variant, s in summary.items():
        per_seed = ', '.join(f'{m:.3f}' for m in s['bbox_mAP_per_seed'])
        ratio = f'{s["latency_ms"] / plain_ms:.2f}x' if plain_ms else 'n/a'
        lines.append(f'| {variant} | `{s["config"]}` | {s["bbox_mAP"]:.3f} ± {s["bbox_mAP_std"]:.3f} | '
                     f'{per_seed} | {s["bbox_mAP_50"]:.3f} | {s["bbox_mAP_75"]:.3f} | {s["params_m"]:.3f} | '
                     f'{s["gflops"]:.3f} | {s["latency_ms"]:.1f} | {ratio} | {s["train_minutes"]:.1f} |')
    return '\n'.join(lines)


def plot(summary, dataset_name, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2.8 + 1.7 * len(summary), 3.8))
    for x, (variant, s) in enumerate(summary.items()):
        maps = s['bbox_mAP_per_seed']
        offsets = [0.08 * (i - (len(maps) - 1) / 2) for i in range(len(maps))]
        ax.scatter([x + o for o in offsets], maps, s=28, color='tab:blue', zorder=3,
                   label='one seed' if x == 0 else None)
        ax.errorbar(x, s['bbox_mAP'], yerr=s['bbox_mAP_std'], fmt='_', markersize=26, capsize=5,
                    color='black', zorder=2, label='mean ± std' if x == 0 else None)
        ax.annotate(f'{s["bbox_mAP"]:.3f}', (x + 0.2, s['bbox_mAP']), va='center', fontsize=8)
    ax.set_xticks(range(len(summary)), list(summary))
    ax.set_xlim(-0.5, len(summary) - 0.5)
    ax.set(ylabel='val bbox mAP@[.5:.95]', title=f'YOLOv8-n on {dataset_name}: where DCNv3 goes')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: never over a point
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def prepare_dataset(args):
    """Makes a built-in dataset when missing, checks the dataset, and ties OUT to it (refusing another's runs)."""
    from mmyolo_dcnv3.datasets.dataset_spec import DatasetSpecError, check_dataset
    spec = args.spec
    if args.generator:
        print(f'==> {spec.name} dataset in {spec.data_root}', flush=True)
        make_dataset(args.generator, spec.data_root, args.train_images, args.val_images, args.img_size)
    try:
        check_dataset(spec)
    except DatasetSpecError as error:
        print(f'ablate_dcnv3_placement.py: error: {error}', file=sys.stderr)
        return False
    record = osp.join(args.out, 'dataset.json')
    if osp.isfile(record):
        with open(record) as f:
            previous = json.load(f)
        if previous != json.loads(json.dumps(spec.to_dict())):
            print(f'ablate_dcnv3_placement.py: error: {args.out} holds runs on another dataset ({previous}); '
                  'choose another --out', file=sys.stderr)
            return False
    os.makedirs(args.out, exist_ok=True)
    with open(record, 'w') as f:
        json.dump(spec.to_dict(), f, indent=2)
    return True


def main(argv=None):
    args = parse_args(argv)
    if not prepare_dataset(args):
        return 2
    runs_dir = osp.join(args.out, 'runs')
    os.makedirs(runs_dir, exist_ok=True)
    configs = write_configs(args, osp.join(args.out, 'configs'))
    work_dirs = {f'{v}_seed{s}': osp.join(args.out, 'work_dirs', f'{v}_seed{s}')
                 for v in args.variants for s in args.seeds}
    print(f'==> training {", ".join(args.variants)} with seeds {" ".join(map(str, args.seeds))} '
          f'on {args.spec.name}', flush=True)
    train_all(args, configs, runs_dir, work_dirs)
    runs = []
    for name in work_dirs:
        with open(osp.join(runs_dir, name + '.json')) as f:
            runs.append(json.load(f))
    print('==> parameters, FLOPs and CPU latency', flush=True)
    summary, image_size = summarise(args, configs, runs)
    winner, reasons, decision = decide(summary)
    text = table(summary, image_size) + '\n\n' + '\n'.join(f'- {r}' for r in reasons) + f'\n\nDecision: {decision}.\n'
    print(f'==> results (val set of {args.spec.name})\n' + text, flush=True)
    with open(osp.join(args.out, 'results.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.out, 'results.json'), 'w') as f:
        json.dump(dict(dataset=args.spec.to_dict(), variants=summary, runs=runs, winner=winner,
                       decision=decision), f, indent=2)
    plot(summary, args.spec.name, osp.join(args.out, 'ablation_map.png'))
    print(f'table: {osp.join(args.out, "results.md")} (and results.json); plot: '
          f'{osp.join(args.out, "ablation_map.png")}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
