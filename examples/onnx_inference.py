"""Detect objects with an exported YOLOv8(-DCNv3) ONNX file: numpy, OpenCV and a runtime only.

    python examples/onnx_inference.py model.onnx IMAGE_OR_FOLDER --out detections/
    python examples/onnx_inference.py model.onnx images/ --out vis/ --runtime openvino --score-thr 0.4

What a deployment script looks like: no torch, no OpenMMLab. It reads the
preprocessing and class names that tools/deployment/export_onnx.py stored in the file,
letterboxes each image as the config's test pipeline does, runs the network,
applies class-wise NMS in numpy unless the file ends with NonMaxSuppression
(exported with --nms), maps the boxes back to the image and draws them. It
prints one line per detection (image, class, score, x1 y1 x2 y2 in image
pixels) and writes one picture per image into --out.

Precision: OpenVINO's CPU plugin computes a float model in bfloat16 on CPUs
with AVX-512 BF16 or AMX unless told otherwise, which moves boxes by pixels;
this script asks it for f32 (INFERENCE_PRECISION_HINT). An INT8 file
(tools/deployment/quantize_onnx.py) runs the same way: its INT8 layers in
INT8, the rest in f32.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


class Network:
    """The ONNX file in ONNX Runtime or OpenVINO, with the metadata the exporter stored."""

    def __init__(self, path, runtime):
        if path.endswith('.xml') and runtime != 'openvino':
            raise SystemExit(f'{path} is an OpenVINO IR (tools/deployment/quantize_onnx.py --backend openvino): '
                             'run it with --runtime openvino')
        try:
            if runtime == 'onnxruntime':
                import onnxruntime
                self.session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
                self.outputs = [o.name for o in self.session.get_outputs()]
                metadata = self.session.get_modelmeta().custom_metadata_map
            else:
                import openvino
                core = openvino.Core()
                model = core.read_model(path)
                # f32, not the bf16 OpenVINO picks by default on CPUs that have it (see the docstring).
                self.compiled = core.compile_model(model, 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})
                self.outputs = [o.get_any_name() for o in self.compiled.outputs]
                metadata = {'mmyolo_dcnv3': model.get_rt_info(['framework', 'mmyolo_dcnv3']).astype(str)}
        except ImportError as error:
            raise SystemExit(f'{runtime} is not installed ({error}): pip install {runtime}')
        if 'mmyolo_dcnv3' not in metadata:
            raise SystemExit(f'{path} has no mmyolo_dcnv3 metadata: export it with tools/deployment/export_onnx.py')
        self.meta = json.loads(metadata['mmyolo_dcnv3'])
        self.runtime = runtime

    def __call__(self, images):
        if self.runtime == 'onnxruntime':
            return dict(zip(self.outputs, self.session.run(None, {'images': images})))
        results = self.compiled({'images': images})
        return {name: np.asarray(results[output]) for name, output in zip(self.outputs, self.compiled.outputs)}


def letterbox(image, meta):
    """The image scaled to fit the input size with its aspect ratio kept, then padded to it
    (the config's test pipeline); returns it and (scale_x, scale_y, left, top) to map boxes back."""
    height, width = meta['input_size']
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    new_w, new_h = int(w * scale), int(h * scale)
    if scale != 1:
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    top, left = int(round((height - new_h) // 2 - 0.1)), int(round((width - new_w) // 2 - 0.1))
    pad = meta['letterbox_pad_value']
    image = cv2.copyMakeBorder(image, top, height - new_h - top, left, width - new_w - left, cv2.BORDER_CONSTANT,
                               value=(pad, pad, pad))
    return image, (new_w / w, new_h / h, left, top)


def to_network_input(image, meta):
    """(1, 3, H, W) float32 as the detector's data preprocessor makes it (image read by OpenCV: BGR)."""
    if meta['bgr_to_rgb']:
        image = image[:, :, ::-1]
    x = (image.astype(np.float32) - np.float32(meta['mean'])) / np.float32(meta['std'])
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def nms(boxes, scores, iou_threshold):
    """Indices of the kept boxes, best first (greedy NMS of one class)."""
    order = np.argsort(-scores, kind='stable')
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, order = order[0], order[1:]
        keep.append(best)
        x1 = np.maximum(boxes[best, 0], boxes[order, 0])
        y1 = np.maximum(boxes[best, 1], boxes[order, 1])
        x2 = np.minimum(boxes[best, 2], boxes[order, 2])
        y2 = np.minimum(boxes[best, 3], boxes[order, 3])
        overlap = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        iou = overlap / np.maximum(areas[best] + areas[order] - overlap, 1e-12)
        order = order[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def detections(outputs, meta):
    """(boxes (K, 4) in network-input pixels, scores (K,), labels (K,)) of the first image."""
    if 'num_dets' in outputs:
        count = int(outputs['num_dets'][0, 0])
        return outputs['det_boxes'][0, :count], outputs['det_scores'][0, :count], outputs['det_labels'][0, :count]
    settings = meta['postprocess']
    boxes, scores = outputs['boxes'][0], outputs['scores'][0]
    if not settings['multi_label']:
        scores = scores * (scores == scores.max(1, keepdims=True))
    anchors, labels = np.nonzero(scores > settings['score_threshold'])
    boxes, scores = boxes[anchors], scores[anchors, labels]
    kept = [np.flatnonzero(labels == c)[nms(boxes[labels == c], scores[labels == c], settings['iou_threshold'])]
            for c in np.unique(labels)]
    kept = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    kept = kept[np.argsort(-scores[kept], kind='stable')][:settings['max_detections']]
    return boxes[kept], scores[kept], labels[kept]


def draw(image, boxes, scores, labels, classes):
    palette = [(60, 20, 220), (200, 130, 0), (75, 180, 60), (48, 130, 245), (180, 30, 145), (0, 200, 200)]
    for (x1, y1, x2, y2), score, label in zip(boxes.astype(int), scores, labels):
        colour = palette[int(label) % len(palette)]
        name = classes[label] if label < len(classes) else str(label)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        cv2.putText(image, f'{name} {score:.2f}', (x1 + 2, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour,
                    1, cv2.LINE_AA)
    return image


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('model', help='the .onnx file written by tools/deployment/export_onnx.py (or its INT8 '
                        'version by tools/deployment/quantize_onnx.py: .onnx, or .xml for OpenVINO)')
    parser.add_argument('images', help='an image, or a folder of images')
    parser.add_argument('--out', required=True, help='folder for the pictures with boxes')
    parser.add_argument('--runtime', choices=('onnxruntime', 'openvino'), default='onnxruntime')
    parser.add_argument('--score-thr', type=float, default=0.3, help='draw and print detections above this')
    args = parser.parse_args(argv)
    if not os.path.isfile(args.model):
        parser.error(f'model {args.model!r} does not exist')
    if os.path.isdir(args.images):
        paths = sorted(os.path.join(args.images, f) for f in os.listdir(args.images)
                       if f.lower().endswith(IMAGE_SUFFIXES))
    elif os.path.isfile(args.images):
        paths = [args.images]
    else:
        parser.error(f'{args.images!r} is neither an image nor a folder')
    if not paths:
        parser.error(f'no images ({", ".join(IMAGE_SUFFIXES)}) in {args.images!r}')
    network = Network(args.model, args.runtime)
    meta = network.meta
    os.makedirs(args.out, exist_ok=True)
    for path in paths:
        image = cv2.imread(path)
        if image is None:
            print(f'{path}: not a readable image, skipped', file=sys.stderr)
            continue
        letterboxed, (scale_x, scale_y, left, top) = letterbox(image, meta)
        boxes, scores, labels = detections(network(to_network_input(letterboxed, meta)), meta)
        boxes = (boxes - np.float32([left, top, left, top])) / np.float32([scale_x, scale_y, scale_x, scale_y])
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, image.shape[1])
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, image.shape[0])
        shown = scores >= args.score_thr
        for box, score, label in zip(boxes[shown], scores[shown], labels[shown]):
            name = meta['classes'][label] if label < len(meta['classes']) else str(label)
            print(f'{os.path.basename(path)} {name} {score:.3f} ' + ' '.join(f'{v:.1f}' for v in box))
        out_path = os.path.join(args.out, os.path.basename(path))
        cv2.imwrite(out_path, draw(image, boxes[shown], scores[shown], labels[shown], meta['classes']))
    print(f'pictures in {os.path.abspath(args.out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
