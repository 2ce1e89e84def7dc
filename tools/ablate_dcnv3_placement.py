"""Where DCNv3 pays off in YOLOv8-n: each placement against plain YOLOv8-n, several seeds each.

Trains every variant (configs/demo/, the demo's recipe on its toy dataset)
once per seed, two trainings at a time on one core each (like tools/demo.py),
then measures parameters, FLOPs and CPU latency (end to end, interleaved over
the val images; run it on an otherwise idle machine) and writes to OUT:

    results.md     the table: bbox mAP mean and spread over seeds, each seed,
                   mAP50/75, parameters, FLOPs, latency, training time, and the decision
    results.json   the same numbers, per run
    ablation_map.png   bbox mAP per variant, each seed a point
    runs/*.json, work_dirs/, logs/   per training

Resumable: a finished training (OUT/runs/VARIANT_seedN.json) is not run again,
and an interrupted one resumes from its last checkpoint. Run it again with the
same OUT to continue.

    python tools/ablate_dcnv3_placement.py [--out outputs/ablation] [--seeds 0 1 2] [--variants ...]

The decision rule: a DCNv3 placement should be the default when its mean bbox
mAP beats plain YOLOv8-n's by more than the seed spread (the larger of the two
sample standard deviations) at no more than 10% extra CPU latency.
"""
import argparse
import glob
import json
import os
import os.path as osp
import statistics
import sys
import time

from mmyolo_dcnv3.experiments import (ROOT, add_toy_run_arguments, best_checkpoint, best_val_metrics,
                                      check_toy_run_arguments, detector_complexity, latency_ms, make_toy_dataset,
                                      run_parallel, toy_data_options, training_seconds)

DEMO_CONFIGS = osp.join(ROOT, 'configs', 'demo')
VARIANTS = {  # name -> (config, what it is)
    'plain': ('yolov8_n_toy.py', 'plain YOLOv8-n'),
    'c2f': ('yolov8_n_dcnv3-c2f_toy.py', 'DCNv3 in the C2f bottlenecks of P4, P5'),
    'downsample': ('yolov8_n_dcnv3-downsample_toy.py', 'DCNv3ConvModule as the stride-2 conv of P4, P5'),
    'c2f+downsample': ('yolov8_n_dcnv3-c2f-downsample_toy.py', 'both placements in P4, P5'),
}
MAX_LATENCY_RATIO = 1.10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=osp.join(ROOT, 'outputs', 'ablation'),
                        help='folder for runs, logs and results (default outputs/ablation)')
    add_toy_run_arguments(parser, latency_images=100)  # the whole val set: 4 models, seconds each
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
    return args


def config_of(variant):
    return osp.join(DEMO_CONFIGS, VARIANTS[variant][0])


def train_all(args, runs_dir, work_dirs):
    """Trains every (variant, seed) without a result file yet; writes one as each finishes."""
    todo, done = {}, 0
    for seed in args.seeds:
        for variant in args.variants:
            name = f'{variant}_seed{seed}'
            if osp.isfile(osp.join(runs_dir, name + '.json')):
                done += 1
                continue
            command = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config_of(variant),
                       '--work-dir', work_dirs[name], '--cfg-options',
                       *toy_data_options(args.data, args.epochs, seed)]
            if osp.isfile(osp.join(work_dirs[name], 'last_checkpoint')):
                command.append('--resume')  # after --cfg-options' values: argparse ends that list here
            todo[name] = (variant, seed, command)
    total = done + len(todo)
    print(f'{total} trainings: {done} already done, {len(todo)} to run', flush=True)
    started, durations = time.perf_counter(), []

    def record(name, seconds):
        variant, seed, _ = todo[name]
        work_dir = work_dirs[name]
        run = dict(variant=variant, seed=seed, config=config_of(variant), work_dir=work_dir,
                   checkpoint=best_checkpoint(work_dir), metrics=best_val_metrics(work_dir),
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


def summarise(args, runs):
    """Per variant: mAP statistics over seeds, model size and cost, CPU latency."""
    from mmengine.config import Config

    from mmyolo_dcnv3.inference import load_detector, predict
    image_size = Config.fromfile(config_of('plain')).img_scale[0]
    val_images = sorted(glob.glob(osp.join(args.data, 'val', '*.jpg')))[:args.latency_images]
    summary, predictors = {}, {}
    for variant in args.variants:
        mine = sorted((r for r in runs if r['variant'] == variant), key=lambda r: r['seed'])
        maps = [r['metrics']['bbox_mAP'] for r in mine]
        params, flops = detector_complexity(config_of(variant), image_size)
        summary[variant] = dict(
            config=osp.relpath(config_of(variant), ROOT), description=VARIANTS[variant][1],
            seeds=[r['seed'] for r in mine], bbox_mAP_per_seed=maps, bbox_mAP=statistics.mean(maps),
            bbox_mAP_std=statistics.stdev(maps) if len(maps) > 1 else 0.0,
            bbox_mAP_50=statistics.mean(r['metrics']['bbox_mAP_50'] for r in mine),
            bbox_mAP_75=statistics.mean(r['metrics']['bbox_mAP_75'] for r in mine),
            params_m=params / 1e6, gflops=flops / 1e9,
            train_minutes=statistics.mean(r['train_minutes'] for r in mine))
        detector = load_detector(mine[0]['config'], mine[0]['checkpoint'])
        predictors[variant] = lambda image, detector=detector: predict(*detector, image)
    print(f'timing {len(predictors)} detectors, interleaved, on {len(val_images)} val images', flush=True)
    for variant, ms in latency_ms(predictors, val_images).items():
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


def plot(summary, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(1.6 + 1.7 * len(summary), 3.8))
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
    ax.set(ylabel='val bbox mAP@[.5:.95]', title='YOLOv8-n on the toy dataset: where DCNv3 goes')
    ax.grid(axis='y', alpha=0.3)
    ax.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    runs_dir = osp.join(args.out, 'runs')
    os.makedirs(runs_dir, exist_ok=True)
    print(f'==> toy COCO dataset in {args.data}', flush=True)
    make_toy_dataset(args.data, args.train_images, args.val_images, args.image_size)
    work_dirs = {f'{v}_seed{s}': osp.join(args.out, 'work_dirs', f'{v}_seed{s}')
                 for v in args.variants for s in args.seeds}
    print(f'==> training {", ".join(args.variants)} with seeds {" ".join(map(str, args.seeds))}', flush=True)
    train_all(args, runs_dir, work_dirs)
    runs = []
    for name in work_dirs:
        with open(osp.join(runs_dir, name + '.json')) as f:
            runs.append(json.load(f))
    print('==> parameters, FLOPs and CPU latency', flush=True)
    summary, image_size = summarise(args, runs)
    winner, reasons, decision = decide(summary)
    text = table(summary, image_size) + '\n\n' + '\n'.join(f'- {r}' for r in reasons) + f'\n\nDecision: {decision}.\n'
    print('==> results (val set of the toy dataset)\n' + text, flush=True)
    with open(osp.join(args.out, 'results.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.out, 'results.json'), 'w') as f:
        json.dump(dict(variants=summary, runs=runs, winner=winner, decision=decision), f, indent=2)
    plot(summary, osp.join(args.out, 'ablation_map.png'))
    print(f'table: {osp.join(args.out, "results.md")} (and results.json); plot: '
          f'{osp.join(args.out, "ablation_map.png")}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
