"""Export a YOLOv8(-DCNv3) checkpoint to ONNX that runs in stock ONNX Runtime and OpenVINO.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out model.onnx
    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out model.onnx --dynamic --nms
    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out model.onnx --dcnv3 deformconv   # opset 19

Inputs of the file: ``images`` (N, 3, H, W), preprocessed as the config's data
preprocessor does (RGB, divided by 255 for YOLOv8). Outputs: ``boxes`` (N, A,
4, xyxy input pixels) and ``scores`` (N, A, classes); with --nms the final
``num_dets``, ``det_boxes``, ``det_scores``, ``det_labels`` through ONNX
NonMaxSuppression (thresholds from the config's test_cfg unless given).

DCNv3 becomes GridSample (opset 18, the default; every runtime) or DeformConv
(--dcnv3 deformconv, opset 19; ONNX Runtime and TensorRT >= 10.1, not
OpenVINO). Opset 20 renamed GridSample's mode to "linear", which TensorRT's
parser turns into nearest sampling: keep 18 for TensorRT.

After exporting it runs onnx.checker, then ONNX Runtime on a real image (the
first of the config's test set, or --check-image) against PyTorch, and prints
the largest difference.
"""
import argparse
import os.path as osp
import sys

import numpy as np
import torch

from mmyolo_dcnv3.deploy.onnx_ops import DEFAULT_OPSET, TRANSLATIONS, check_translation
from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.cli import add_cfg_options_argument, add_img_size_argument, parse_img_size

register_all_modules(init_default_scope=False)  # modules in the registries, the stack fixes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file matching the config')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    add_img_size_argument(parser, "default: the test pipeline's letterbox size")
    parser.add_argument('--batch-size', type=int, default=1, help='batch of the exported input (default 1)')
    parser.add_argument('--dynamic', action='store_true', help='dynamic batch, height and width')
    parser.add_argument('--dcnv3', choices=TRANSLATIONS, default='gridsample',
                        help='how DCNv3 is expressed in ONNX (default gridsample)')
    parser.add_argument('--opset', type=int, help='ONNX opset (default 18 for gridsample, 19 for deformconv)')
    parser.add_argument('--nms', action='store_true', help='end the graph with ONNX NonMaxSuppression')
    parser.add_argument('--score-thr', type=float, help="with --nms: score threshold (default: test_cfg's)")
    parser.add_argument('--iou-thr', type=float, help="with --nms: IoU threshold (default: test_cfg's)")
    parser.add_argument('--max-dets', type=int, help="with --nms: detections per image (default: test_cfg's)")
    parser.add_argument('--check-image', help='image for the PyTorch/ONNX Runtime comparison '
                        '(default: the first image of the test set)')
    add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    args.img_size = parse_img_size(parser, args.img_size)
    args.opset = DEFAULT_OPSET[args.dcnv3] if args.opset is None else args.opset
    try:
        check_translation(args.dcnv3, args.opset)
    except ValueError as error:
        parser.error(f'--opset/--dcnv3: {error}')
    if not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint!r} does not exist')
    if not args.out.endswith('.onnx'):
        parser.error(f'--out must end with .onnx, got {args.out!r}')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be at least 1, got {args.batch_size}')
    if not args.nms and any(v is not None for v in (args.score_thr, args.iou_thr, args.max_dets)):
        parser.error('--score-thr, --iou-thr and --max-dets need --nms')
    if args.check_image is not None and not osp.isfile(args.check_image):
        parser.error(f'--check-image {args.check_image!r} does not exist')
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmyolo_dcnv3.apis import load_detector
    from mmyolo_dcnv3.deploy.nms import NmsSettings
    from mmyolo_dcnv3.deploy.runtime import OnnxModel
    from mmyolo_dcnv3.deploy.yolov8 import ExportableYOLOv8, export_detector, first_test_image, preprocess_images
    from mmyolo_dcnv3.utils.checkpoint import CheckpointMismatchError
    from mmyolo_dcnv3.utils.config import load_config

    # One config for the model, its metadata and the check: --cfg-options reach all three.
    cfg = load_config(args.config, args.cfg_options)
    try:
        model, _ = load_detector(cfg, args.checkpoint)
    except CheckpointMismatchError as error:
        raise SystemExit(f'export_onnx.py: {args.checkpoint} is not a checkpoint of {args.config}: {error}')
    nms = None
    if args.nms:
        try:
            nms = NmsSettings.from_test_cfg(cfg.model.test_cfg, args.score_thr, args.iou_thr, args.max_dets)
        except ValueError as error:
            raise SystemExit(f'export_onnx.py: --nms settings: {error}')
    print(f'exporting {args.config} ({args.checkpoint}), DCNv3 as {args.dcnv3}, opset {args.opset}'
          f'{", dynamic shapes" if args.dynamic else ""}{", with NMS" if nms else ""}', flush=True)
    path, example = export_detector(model, cfg, args.out, input_size=args.img_size, batch_size=args.batch_size,
                                    dynamic=args.dynamic, translation=args.dcnv3, opset=args.opset, nms=nms)
    print(f'onnx.checker: {path} is valid', flush=True)

    try:
        image = args.check_image or first_test_image(cfg)
    except FileNotFoundError as error:
        raise SystemExit(f'export_onnx.py: no image to compare PyTorch and ONNX Runtime on: {error}; '
                         'give one with --check-image')
    images, _ = preprocess_images(cfg, model.data_preprocessor, [image] * example.shape[0], tuple(example.shape[2:]))
    with torch.no_grad():
        expected = [t.numpy() for t in ExportableYOLOv8(model, nms).eval()(images)]
    session = OnnxModel(path, 'onnxruntime')
    actual = session(images.numpy())
    print(f'ONNX Runtime vs PyTorch on {image}:')
    for name, want, got in zip(session.output_names, expected, actual):
        if name in ('num_dets', 'det_labels'):
            print(f'  {name}: {"identical" if np.array_equal(want, got) else "DIFFERENT"}')
        else:
            print(f'  {name} {tuple(got.shape)}: largest difference {np.abs(want - got).max():.3g}')
    print(f'wrote {osp.abspath(path)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
