"""CPU latency of exported YOLOv8 and YOLOv8-DCNv3, float and INT8, in ONNX Runtime and OpenVINO, side by side
with PyTorch eager.

    python tools/deployment/benchmark_onnx.py [--sizes n s] [--img-size 640] [--repeat 30] [--threads 2]
                                              [--precision f32] [--json PATH]

For each model size it builds MMYOLO's plain YOLOv8 COCO config and this
project's DCNv3 one (random weights: the latency does not depend on them) and
exports them without NMS: the plain model, and the DCNv3 model with both DCNv3
translations (GridSample, opset 18; DeformConv, opset 19). Then it quantises
the plain and the GridSample DCNv3 file to INT8 as
tools/deployment/quantize_onnx.py does (keep-float recipe; ONNX Runtime's
quantiser for ONNX Runtime, NNCF for OpenVINO; calibrated on 8 random images,
which sets the ranges but not the speed) and times the network on one image:
the variants take turns on every repeat, so the machine's load weighs on all
of them alike. Prints the median latency of each and the ratios
docs/deploy.md quotes, each the median of the per-round ratios (steadier on a
shared machine than a ratio of medians). OpenVINO computes its float
operations in --precision (f32 by default; it prints what it compiled for).
"""
import argparse
import functools
import json
import os
import os.path as osp
import sys
import tempfile

import numpy as np
import torch

from mmyolo_dcnv3._tooling.benchmarks import (
    add_model_benchmark_arguments,
    check_model_benchmark_arguments,
    yolov8_configs,
)
from mmyolo_dcnv3._tooling.timing import interleaved_times, medians, paired_ratio
from mmyolo_dcnv3.deploy.runtime import PRECISIONS
from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.config import build_detector, load_config

register_all_modules(init_default_scope=False)  # modules in the registries, the stack fixes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_benchmark_arguments(parser, repeat=30, threads=2,
                                  threads_help='CPU threads of torch, ONNX Runtime and OpenVINO (default 2)')
    parser.add_argument('--precision', choices=PRECISIONS, default='f32',
                        help="OpenVINO's float precision (default f32; bf16 and f16 where the CPU has them)")
    parser.add_argument('--json', help='also write the results to this JSON file')
    args = parser.parse_args(argv)
    check_model_benchmark_arguments(parser, args)
    return args


CALIBRATION_IMAGES = 8
RUNTIME_LABELS = {'onnxruntime': 'ONNX Runtime', 'openvino': 'OpenVINO'}


def exported_variants(model_size: str, folder: str, images: torch.Tensor, threads: int, precision: str):
    """{label: callable running one image} for the PyTorch, float and INT8 models of
    one size, and the float precision OpenVINO compiled for."""
    from mmyolo_dcnv3.deploy.quantize import quantize
    from mmyolo_dcnv3.deploy.runtime import OnnxModel
    from mmyolo_dcnv3.deploy.yolov8 import ExportableYOLOv8, export_detector
    size = tuple(images.shape[2:])
    calibration = np.random.default_rng(0).random((CALIBRATION_IMAGES, *images.shape[1:]), dtype=np.float32)
    variants, compiled_precision = {}, None
    for kind, config in zip(('plain', 'DCNv3'), yolov8_configs(model_size)):
        cfg = load_config(config)
        detector = build_detector(cfg, init_weights=True)
        wrapper = ExportableYOLOv8(detector).eval()
        variants[f'PyTorch eager {kind}'] = lambda w=wrapper: w(images)
        for translation in (('gridsample',) if kind == 'plain' else ('gridsample', 'deformconv')):
            path = osp.join(folder, f'{model_size}_{kind}_{translation}.onnx')
            print(f'exporting YOLOv8-{model_size} {kind} ({translation}) at {size[0]} px', flush=True)
            export_detector(detector, cfg, path, input_size=size, translation=translation)
            suffix = '' if kind == 'plain' else f' {translation}'
            session = OnnxModel(path, 'onnxruntime', threads=threads)
            variants[f'ONNX Runtime {kind}{suffix}'] = lambda s=session: s(images.numpy())
            if translation != 'gridsample':
                continue  # OpenVINO has no DeformConv; INT8 of the default translation only
            network = OnnxModel(path, 'openvino', threads=threads, precision=precision)
            compiled_precision = network.precision
            variants[f'OpenVINO {kind}'] = lambda s=network: s(images.numpy())
            for runtime, label in RUNTIME_LABELS.items():
                int8_path = path.replace('.onnx', '_int8' + ('.onnx' if runtime == 'onnxruntime' else '.xml'))
                print(f'quantising YOLOv8-{model_size} {kind} for {label}', flush=True)
                quantize(path, int8_path, calibration, backend=runtime)
                network = OnnxModel(int8_path, runtime, threads=threads, precision=precision)
                variants[f'{label} INT8 {kind}'] = lambda s=network: s(images.numpy())
    return variants, compiled_precision


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    size = args.img_size
    images = torch.rand(1, 3, *size)
    results, precision = {}, None
    with tempfile.TemporaryDirectory() as folder:
        for model_size in args.sizes:
            variants, precision = exported_variants(model_size, folder, images, args.threads, args.precision)
            print(f'timing YOLOv8-{model_size}: {len(variants)} variants x {args.repeat} runs, '
                  f'{args.threads} threads', flush=True)
            with torch.no_grad():
                results[model_size] = interleaved_times(variants, args.repeat)

    print(f'\nmedian latency per {size[0]}x{size[1]} image, network only, {args.threads} CPU threads '
          f'(torch {torch.__version__}; OpenVINO float operations in {precision}, INT8 files: keep-float '
          f'recipe); ratios: median of the {args.repeat} per-round ratios')
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
        print(f'  DCNv3 / plain, OpenVINO: {ratio("OpenVINO DCNv3", "OpenVINO plain"):.2f}x')
        for label in RUNTIME_LABELS.values():
            dcn_float = f'{label} DCNv3' + (' gridsample' if label == 'ONNX Runtime' else '')
            print(f'  INT8 / float, {label}: plain {ratio(f"{label} INT8 plain", f"{label} plain"):.2f}x, '
                  f'DCNv3 {ratio(f"{label} INT8 DCNv3", dcn_float):.2f}x; INT8 DCNv3 / INT8 plain: '
                  f'{ratio(f"{label} INT8 DCNv3", f"{label} INT8 plain"):.2f}x')
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(img_size=list(args.img_size), threads=args.threads, repeat=args.repeat,
                           openvino_precision=precision, median_ms=median_ms, times_ms=results), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
