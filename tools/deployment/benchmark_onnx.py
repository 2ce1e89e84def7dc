"""CPU latency of exported YOLOv8 and YOLOv8-DCNv3 in ONNX Runtime, side by side with PyTorch eager.

    python tools/deployment/benchmark_onnx.py [--sizes n s] [--img-size 640] [--repeat 30] [--threads 2] [--json PATH]

For each model size it builds MMYOLO's plain YOLOv8 COCO config and this
project's DCNv3 one (random weights: the latency does not depend on them),
exports the plain model and the DCNv3 model with both DCNv3 translations
(GridSample, opset 18; DeformConv, opset 19), all without NMS, and times the
network on one image: the variants take turns on every repeat, so the
machine's load weighs on all of them alike. Prints the median latency of
each and the ratios docs/deploy.md quotes, each the
median of the per-round ratios (steadier on a shared machine than a ratio of
medians).
"""
import argparse
import functools
import json
import os
import os.path as osp
import sys
import tempfile

import torch

import mmyolo_dcnv3  # noqa: F401  (registers modules, applies compat fixes)
from mmyolo_dcnv3._tooling.benchmarks import (
    add_model_benchmark_arguments,
    check_model_benchmark_arguments,
    yolov8_configs,
)
from mmyolo_dcnv3._tooling.timing import interleaved_times, medians, paired_ratio
from mmyolo_dcnv3.utils.config import build_detector, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_benchmark_arguments(parser, repeat=30, threads=2,
                                  threads_help='CPU threads of torch and ONNX Runtime (default 2)')
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    check_model_benchmark_arguments(parser, args)
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmyolo_dcnv3.deploy.runtime import OnnxModel
    from mmyolo_dcnv3.deploy.yolov8 import ExportableYOLOv8, export_detector
    torch.set_num_threads(args.threads)
    size = args.img_size
    images = torch.rand(1, 3, *size)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for model_size in args.sizes:
            variants = {}
            for kind, config in zip(('plain', 'DCNv3'), yolov8_configs(model_size)):
                cfg = load_config(config)
                detector = build_detector(cfg, init_weights=True)
                wrapper = ExportableYOLOv8(detector).eval()
                variants[f'PyTorch eager {kind}'] = lambda w=wrapper: w(images)
                for translation in (('gridsample',) if kind == 'plain' else ('gridsample', 'deformconv')):
                    path = osp.join(folder, f'{model_size}_{kind}_{translation}.onnx')
                    print(f'exporting YOLOv8-{model_size} {kind} ({translation}) at {size[0]} px', flush=True)
                    export_detector(detector, cfg, path, input_size=size, translation=translation)
                    session = OnnxModel(path, 'onnxruntime', threads=args.threads)
                    label = f'ONNX Runtime {kind}' + ('' if kind == 'plain' else f' {translation}')
                    variants[label] = lambda s=session: s(images.numpy())
            print(f'timing YOLOv8-{model_size}: {len(variants)} variants x {args.repeat} runs, '
                  f'{args.threads} threads', flush=True)
            with torch.no_grad():
                results[model_size] = interleaved_times(variants, args.repeat)

    print(f'\nmedian latency per {size[0]}x{size[1]} image, network only, {args.threads} CPU threads '
          f'(torch {torch.__version__}); ratios: median of the {args.repeat} per-round ratios')
    median_ms = {}
    for model_size, times in results.items():
        ms = median_ms[model_size] = medians(times)
        ratio = functools.partial(paired_ratio, times)
        print(f'\nYOLOv8-{model_size}')
        for name, value in ms.items():
            print(f'  {name:<36} {value:8.1f} ms')
        for translation in ('gridsample', 'deformconv'):
            dcn = f'ONNX Runtime DCNv3 {translation}'
            print(f'  DCNv3 ({translation}) / plain, ONNX Runtime: {ratio(dcn, "ONNX Runtime plain"):.2f}x; '
                  f'ONNX Runtime / PyTorch eager (DCNv3): {ratio(dcn, "PyTorch eager DCNv3"):.2f}x')
        print(f'  plain: ONNX Runtime / PyTorch eager: {ratio("ONNX Runtime plain", "PyTorch eager plain"):.2f}x; '
              f'DCNv3 in PyTorch eager / plain: {ratio("PyTorch eager DCNv3", "PyTorch eager plain"):.2f}x')
        print('  DeformConv / GridSample, ONNX Runtime: '
              f'{ratio("ONNX Runtime DCNv3 deformconv", "ONNX Runtime DCNv3 gridsample"):.2f}x')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(img_size=list(args.img_size), threads=args.threads, repeat=args.repeat,
                           median_ms=median_ms, times_ms=results), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
