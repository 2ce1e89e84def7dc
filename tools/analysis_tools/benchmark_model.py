"""Times plain YOLOv8 against YOLOv8-DCNv3 on the CPU, side by side in one run.

For each size (n and s by default) it builds MMYOLO's plain YOLOv8 COCO config
and this project's DCNv3 config, and times, with the models taking turns in
every round (so machine load hits them alike):

* a training step: data preprocessing, loss forward, backward and an SGD
  step, on a batch of random images with a few boxes each;
* inference: the network forward (``mode='tensor'``: backbone, neck, head)
  of one image without autograd.

It prints the medians and the DCNv3 / plain ratios (each the median of the
per-round ratios, steadier on a shared machine than a ratio of medians), with
parameters and FLOPs; ``--profile`` adds the DCNv3 model's most expensive
operators in one training step (torch.profiler, self CPU time).

    python tools/analysis_tools/benchmark_model.py                    # n and s at 640, batch 2
    python tools/analysis_tools/benchmark_model.py --sizes n --img-size 320 --profile
"""
import argparse
import sys

import torch

from mmyolo_dcnv3._tooling.benchmarks import (
    add_model_benchmark_arguments,
    check_model_benchmark_arguments,
    yolov8_configs,
)
from mmyolo_dcnv3._tooling.timing import interleaved_times, medians, paired_ratio
from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.complexity import model_complexity
from mmyolo_dcnv3.utils.config import build_detector, load_config

register_all_modules(init_default_scope=False)  # modules in the registries, the stack fixes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_benchmark_arguments(parser, repeat=5, threads=None, threads_help="torch CPU threads (default: torch's)")
    parser.add_argument('--batch-size', type=int, default=2, help='training batch (default: 2)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed rounds first (default: 1)')
    parser.add_argument('--profile', action='store_true',
                        help='also print the DCNv3 models\' top operators in one training step')
    args = parser.parse_args(argv)
    check_model_benchmark_arguments(parser, args)
    if args.batch_size < 1:
        parser.error(f'--batch-size must be at least 1, got {args.batch_size}')
    if args.warmup < 0:
        parser.error(f'--warmup must be at least 0, got {args.warmup}')
    return args


def training_batch(batch_size, img_size, generator):
    height, width = img_size
    """Random images with three boxes each, as yolov5_collate makes them."""
    inputs = torch.randint(0, 256, (batch_size, 3, height, width), dtype=torch.uint8, generator=generator)
    rows = []
    for image in range(batch_size):
        for _ in range(3):
            x1, y1 = torch.randint(0, min(height, width) // 2, (2,), generator=generator).tolist()
            w, h = torch.randint(16, min(height, width) // 2, (2,), generator=generator).tolist()
            label = torch.randint(0, 80, (1,), generator=generator).item()
            rows.append([image, label, x1, y1, x1 + w, y1 + h])
    return dict(inputs=inputs, data_samples=dict(bboxes_labels=torch.tensor(rows, dtype=torch.float32)))


def train_step(model, optimizer, batch):
    def step():
        data = model.data_preprocessor(batch, training=True)
        losses = model(**data, mode='loss')
        total = sum(value.sum() for key, value in losses.items() if 'loss' in key)
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    return step


def inference(model, image):
    def step():
        with torch.no_grad():
            model(image, mode='tensor')
    return step


def print_profile(label, step):
    from torch.profiler import ProfilerActivity, profile
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    print(f'\n{label}: top operators of one training step by self CPU time')
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=15))


def main(argv=None):
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    batch = training_batch(args.batch_size, args.img_size, generator)
    image = torch.rand(1, 3, *args.img_size, generator=generator)
    print(f'YOLOv8 plain vs DCNv3 on the CPU ({torch.get_num_threads()} threads, torch {torch.__version__}): '
          f'{args.img_size[0]}x{args.img_size[1]} px, training batch {args.batch_size}, inference batch 1, median of '
          f'{args.repeat} interleaved rounds', flush=True)
    models, train_fns, infer_fns = {}, {}, {}
    for size in args.sizes:
        for variant, config in zip(('plain', 'dcnv3'), yolov8_configs(size)):
            label = f'yolov8_{size} {variant}'
            model = build_detector(load_config(config), init_weights=True)
            models[label] = model
            model.train()
            optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
            train_fns[label] = train_step(model, optimizer, batch)
            infer_fns[label] = inference(model, image)
    train_times = interleaved_times(train_fns, args.repeat, args.warmup)
    for model in models.values():
        model.eval()
    infer_times = interleaved_times(infer_fns, args.repeat, args.warmup)
    train_ms, infer_ms = medians(train_times), medians(infer_times)

    header = (f'{"model":>15} | {"params (M)":>10} | {"GFLOPs":>7} | {"train step ms":>13} | '
              f'{"inference ms":>12} | {"train ratio":>11} | {"inference ratio":>15}')
    print(header)
    print('-' * len(header))
    for size in args.sizes:
        for variant in ('plain', 'dcnv3'):
            label = f'yolov8_{size} {variant}'
            params, flops, _ = model_complexity(models[label], (3, *args.img_size))
            plain = f'yolov8_{size} plain'
            print(f'{label:>15} | {params / 1e6:10.3f} | {flops / 1e9:7.2f} | {train_ms[label]:13.1f} | '
                  f'{infer_ms[label]:12.1f} | {paired_ratio(train_times, label, plain):10.3f}x | '
                  f'{paired_ratio(infer_times, label, plain):14.3f}x', flush=True)
    if args.profile:
        for size in args.sizes:
            label = f'yolov8_{size} dcnv3'
            models[label].train()
            print_profile(label, train_fns[label])
    return 0


if __name__ == '__main__':
    sys.exit(main())
