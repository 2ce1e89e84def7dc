"""The end-to-end demo: toy data, YOLOv8-n with and without DCNv3, COCO metrics, pictures.

Phases (each announced with a line starting '==>'):
 1. the toy COCO dataset (tools/dataset_makers/make_toy_coco.py; skipped when present);
 2. training of configs/demo/yolov8_n_toy.py and yolov8_n_dcnv3_toy.py
    (tools/train.py; mmengine's logs with ETA, each line prefixed with its model):
    both at once, each on half of the CPU cores, since two small models
    train faster side by side than one after the other on all cores;
 3. COCO evaluation of each best checkpoint (tools/test.py);
 4. ONNX export of both (tools/deployment/export_onnx.py: DCNv3 as GridSample, opset 18),
    INT8 quantisation of the files for ONNX Runtime (tools/deployment/quantize_onnx.py,
    calibrated on up to 32 training images) and COCO evaluation of the float and INT8
    files in ONNX Runtime (tools/deployment/test_onnx.py);
 5. parameters, FLOPs and CPU latency of both models, in PyTorch and ONNX Runtime (float and INT8);
 6. pictures: detections side by side, DCNv3 sampling points, training curves;
 7. the comparison table (also written to OUT/results.md and results.json).

    python tools/demo.py [--out outputs/demo] [--data data/toy_coco] [--seed 0]

A shortened run (what the test suite runs): --train-images 8 --val-images 4
--img-size 128 --epochs 1.
"""
import argparse
import functools
import json
import os
import os.path as osp
import subprocess
import sys
import time

from mmyolo_dcnv3._tooling.trainings import (
    COCO_KEYS,
    add_toy_run_arguments,
    best_checkpoint,
    check_toy_run_arguments,
    latency_ms,
    make_dataset,
    run_parallel,
    scalar_logs,
    tool,
    val_images,
    write_recipe_config,
)

MODELS = {  # label -> recipe (configs/demo/)
    'YOLOv8-n': 'yolov8_n_toy.py',
    'YOLOv8-n + DCNv3': 'yolov8_n_dcnv3_toy.py',
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=osp.join('outputs', 'demo'),
                        help='folder for work dirs, pictures and results (default outputs/demo)')
    add_toy_run_arguments(parser, default_data='data/toy_coco')
    parser.add_argument('--seed', type=int, default=None,
                        help="override the configs' random seed (randomness.seed, 0) to see the run-to-run spread")
    args = parser.parse_args(argv)
    check_toy_run_arguments(parser, args)
    if args.seed is not None and args.seed < 0:
        parser.error(f'--seed must be a non-negative int, got {args.seed}')
    return args


def phase(text):
    print(f'\n==> {text}', flush=True)


def run(command):
    """Runs a command with its output streaming to ours; returns its wall time in seconds."""
    print('$ ' + ' '.join(command), flush=True)
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def test_metrics(work_dir):
    """The coco/* metrics that tools/test.py logged last in work_dir."""
    for entry in reversed(scalar_logs(work_dir)):
        if 'coco/bbox_mAP' in entry:
            return {key: entry[f'coco/{key}'] for key in COCO_KEYS}
    raise RuntimeError(f'no COCO metrics logged in {work_dir}')


def draw_detections(results, detectors, images, path):
    """Rows of [ground truth | each model's detections] for the same val images."""
    import cv2
    import numpy as np
    from pycocotools.coco import COCO

    from mmyolo_dcnv3.apis import predict
    gt = COCO(results['val_annotations'])
    names = {c['id']: c['name'] for c in gt.loadCats(gt.getCatIds())}
    by_file = {img['file_name']: img['id'] for img in gt.loadImgs(gt.getImgIds())}
    palette = [(60, 20, 220), (200, 130, 0), (75, 180, 60), (48, 130, 245), (180, 30, 145)]

    def panel(image, boxes, title):
        canvas = cv2.resize(image, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
        for (x1, y1, x2, y2), label, score in boxes:
            colour = palette[label % len(palette)]
            cv2.rectangle(canvas, (int(2 * x1), int(2 * y1)), (int(2 * x2), int(2 * y2)), colour, 2)
            text = names[label + 1] + ('' if score is None else f' {score:.2f}')
            cv2.putText(canvas, text, (int(2 * x1) + 2, max(12, int(2 * y1) - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        0.45, colour, 1, cv2.LINE_AA)
        cv2.rectangle(canvas, (0, 0), (canvas.shape[1], 22), (0, 0, 0), -1)
        cv2.putText(canvas, title, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        return canvas

    rows = []
    for image_path in images:
        image = cv2.imread(image_path)
        anns = gt.loadAnns(gt.getAnnIds(imgIds=by_file[osp.basename(image_path)]))
        panels = [panel(image, [((a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
                                  a['bbox'][1] + a['bbox'][3]), a['category_id'] - 1, None) for a in anns],
                        'ground truth')]
        for label, (model, pipeline) in detectors.items():
            pred = predict(model, pipeline, image_path)
            keep = pred.scores >= 0.3
            panels.append(panel(image, list(zip(pred.bboxes[keep].tolist(), pred.labels[keep].tolist(),
                                                pred.scores[keep].tolist())), f'{label} (score >= 0.3)'))
        rows.append(np.concatenate(panels, axis=1))
    cv2.imwrite(path, np.concatenate(rows, axis=0))


def plot_curves(results, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4))
    for label, r in results['models'].items():
        logs = scalar_logs(r['work_dir_train'])
        train = [e for e in logs if 'loss' in e]
        val = [e for e in logs if 'coco/bbox_mAP' in e]
        ax_loss.plot([e['step'] for e in train], [e['loss'] for e in train], label=label)
        ax_map.plot([e['step'] for e in val], [e['coco/bbox_mAP'] for e in val], marker='o', label=label)
    ax_loss.set(title='training loss', xlabel='iteration', ylabel='loss')
    ax_map.set(title='val bbox mAP (COCO)', xlabel='epoch', ylabel='mAP@[.5:.95]')
    for ax in (ax_loss, ax_map):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def table(results):
    labels = list(results['models'])
    rows = [('bbox mAP', 'bbox_mAP', '{:.3f}'), ('mAP50', 'bbox_mAP_50', '{:.3f}'),
            ('mAP75', 'bbox_mAP_75', '{:.3f}'), ('mAP_s', 'bbox_mAP_s', '{:.3f}'),
            ('mAP_m', 'bbox_mAP_m', '{:.3f}'), ('mAP_l', 'bbox_mAP_l', '{:.3f}'),
            ('parameters (M)', 'params_m', '{:.3f}'), ('FLOPs (G, multiply-adds)', 'gflops', '{:.3f}'),
            ('CPU training time (min, both at once)', 'train_minutes', '{:.1f}'),
            ('CPU latency per image (ms)', 'latency_ms', '{:.1f}'),
            ('bbox mAP, ONNX Runtime (GridSample, opset 18)', 'onnx_bbox_mAP', '{:.3f}'),
            ('CPU latency per image, ONNX Runtime (ms)', 'onnx_latency_ms', '{:.1f}'),
            ('bbox mAP, ONNX Runtime INT8', 'int8_bbox_mAP', '{:.3f}'),
            ('CPU latency per image, ONNX Runtime INT8 (ms)', 'int8_latency_ms', '{:.1f}')]
    lines = ['| | ' + ' | '.join(labels) + ' |', '|---|' + '---|' * len(labels)]
    def cell(value, fmt):  # COCO reports -1 for an area range without objects
        return 'n/a (no objects)' if value == -1 else fmt.format(value)

    for title, key, fmt in rows:
        lines.append(f'| {title} | ' + ' | '.join(cell(results['models'][m][key], fmt) for m in labels) + ' |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    pictures = osp.join(args.out, 'pictures')
    os.makedirs(pictures, exist_ok=True)

    phase(f'1/7 toy COCO dataset in {args.data}')
    make_dataset('make_toy_coco.py', args.data, args.train_images, args.val_images, args.img_size)
    from mmyolo_dcnv3.datasets.dataset_spec import load_dataset_spec
    from mmyolo_dcnv3.utils.config import shipped_config
    spec = load_dataset_spec(shipped_config('_base_/datasets/toy_shapes.py'), data_root=args.data)
    results = dict(val_annotations=spec.path(spec.val_ann_file), models={})

    configs = {label: write_recipe_config(shipped_config(f'demo/{recipe}'), spec,
                                          osp.join(args.out, 'configs', recipe), args.epochs, args.seed)
               for label, recipe in MODELS.items()}
    work_dirs = {label: osp.join(args.out, 'work_dirs', osp.splitext(recipe)[0]) for label, recipe in MODELS.items()}
    phase('2/7 training ' + ', '.join(f'{label} (configs/demo/{MODELS[label]} -> {configs[label]}) -> '
                                      f'{work_dirs[label]}' for label in MODELS))
    seconds = run_parallel({label: [sys.executable, tool('train.py'), configs[label], '--work-dir', work_dirs[label]]
                            for label in MODELS})
    for label in MODELS:
        results['models'][label] = dict(config=configs[label], work_dir_train=work_dirs[label],
                                        train_minutes=seconds[label] / 60,
                                        checkpoint=best_checkpoint(work_dirs[label]))

    for label, r in results['models'].items():
        phase(f'3/7 COCO evaluation of {label}: {r["checkpoint"]}')
        test_dir = osp.join(args.out, 'work_dirs', 'test_' + osp.splitext(osp.basename(r['config']))[0])
        run([sys.executable, tool('test.py'), r['config'], r['checkpoint'], '--work-dir', test_dir,
             '--json-prefix', osp.join(test_dir, 'detections')])
        r.update(test_metrics(test_dir))

    with open(spec.path(spec.train_ann_file)) as f:
        calibration_images = min(32, len(json.load(f)['images']))

    def onnx_bbox_map(config, path, metrics_file):
        run([sys.executable, tool('deployment/test_onnx.py'), config, path, '--json', metrics_file])
        with open(metrics_file) as f:
            return json.load(f)['metrics']['coco/bbox_mAP']

    for label, r in results['models'].items():
        name = osp.splitext(osp.basename(r['config']))[0]
        r['onnx'] = osp.join(args.out, 'onnx', name + '.onnx')
        r['int8_onnx'] = osp.join(args.out, 'onnx', name + '_int8.onnx')
        phase(f'4/7 ONNX export of {label} -> {r["onnx"]}, INT8 -> {r["int8_onnx"]}, their COCO evaluation '
              'in ONNX Runtime')
        run([sys.executable, tool('deployment/export_onnx.py'), r['config'], r['checkpoint'], '--out', r['onnx']])
        run([sys.executable, tool('deployment/quantize_onnx.py'), r['config'], r['onnx'], '--out', r['int8_onnx'],
             '--calib-images', str(calibration_images)])
        r['onnx_bbox_mAP'] = onnx_bbox_map(r['config'], r['onnx'], osp.join(args.out, 'onnx', name + '.json'))
        r['int8_bbox_mAP'] = onnx_bbox_map(r['config'], r['int8_onnx'],
                                           osp.join(args.out, 'onnx', name + '_int8.json'))
        print(f'{label}: bbox mAP {r["bbox_mAP"]:.4f} in PyTorch, {r["onnx_bbox_mAP"]:.4f} in ONNX Runtime '
              f'(difference {r["onnx_bbox_mAP"] - r["bbox_mAP"]:+.4f}), {r["int8_bbox_mAP"]:.4f} in INT8 '
              f'(difference {r["int8_bbox_mAP"] - r["onnx_bbox_mAP"]:+.4f})', flush=True)

    phase('5/7 parameters, FLOPs and CPU latency (PyTorch, ONNX Runtime float and INT8)')
    from mmyolo_dcnv3.apis import load_detector, predict
    from mmyolo_dcnv3.deploy.onnx_detector import OnnxDetector
    from mmyolo_dcnv3.utils.complexity import detector_complexity
    from mmyolo_dcnv3.utils.config import load_config
    image_size = load_config(configs['YOLOv8-n']).img_scale[0]
    images = val_images(spec)
    detectors = {label: load_detector(r['config'], r['checkpoint']) for label, r in results['models'].items()}
    predictors = {label: functools.partial(predict, *detector) for label, detector in detectors.items()}
    for label, r in results['models'].items():
        predictors[label + ' (ONNX Runtime)'] = OnnxDetector(load_config(r['config']), r['onnx']).predict
        predictors[label + ' (ONNX Runtime INT8)'] = OnnxDetector(load_config(r['config']), r['int8_onnx']).predict
    latency = latency_ms(predictors, images[:args.latency_images])
    for label, r in results['models'].items():
        params, flops = detector_complexity(load_config(r['config']), image_size)
        r.update(params_m=params / 1e6, gflops=flops / 1e9, latency_ms=latency[label],
                 onnx_latency_ms=latency[label + ' (ONNX Runtime)'],
                 int8_latency_ms=latency[label + ' (ONNX Runtime INT8)'])
        print(f'{label}: {params / 1e6:.3f} M parameters, {flops / 1e9:.3f} GFLOPs at {image_size} px, '
              f'{r["latency_ms"]:.1f} ms per image in PyTorch, {r["onnx_latency_ms"]:.1f} ms in ONNX Runtime, '
              f'{r["int8_latency_ms"]:.1f} ms in INT8', flush=True)

    phase(f'6/7 pictures in {pictures}')
    draw_detections(results, detectors, images[:4], osp.join(pictures, 'detections_side_by_side.png'))
    dcn = results['models']['YOLOv8-n + DCNv3']
    for i, image in enumerate(images[:2]):
        run([sys.executable, tool('analysis_tools/vis_dcnv3_sampling.py'), dcn['config'], dcn['checkpoint'], image,
             '--out', osp.join(pictures, f'dcnv3_sampling_{i}.png')])
    plot_curves(results, osp.join(pictures, 'training_curves.png'))

    phase('7/7 results (val set of the toy dataset)')
    text = table(results)
    print(text)
    with open(osp.join(args.out, 'results.md'), 'w') as f:
        f.write(text + '\n')
    with open(osp.join(args.out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=2)
    print(f'\nlogs and checkpoints: {osp.join(args.out, "work_dirs")}')
    print(f'pictures:             {pictures}')
    print(f'table:                {osp.join(args.out, "results.md")} (and results.json)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
