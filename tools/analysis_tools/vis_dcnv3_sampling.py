"""Draw where a DCNv3 layer of a trained model samples, over an image.

For a few output pixels of the chosen DCNv3 layer, every sampling point of
every group is drawn at its learned location, coloured by its (softmax) mask
weight; the output pixel itself is a white square with its kernel centre.
Points are drawn over the network's input (the letterboxed image).

    python tools/analysis_tools/vis_dcnv3_sampling.py CONFIG CKPT IMAGE --out sampling.png
        [--layer backbone.stage3.1.blocks.0.conv2.conv.dcnv3] [--points X,Y ...]

--points are original-image pixels; by default the centres of the model's
three most confident detections. --list-layers prints the DCNv3 layers.
"""
import argparse
import os
import sys

import cv2
import numpy as np
import torch

from mmyolo_dcnv3.apis import load_detector, network_input, predict
from mmyolo_dcnv3.models import DCNv3
from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.cli import add_cfg_options_argument

register_all_modules(init_default_scope=False)  # modules in the registries, the stack fixes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('image')
    parser.add_argument('--out', default='dcnv3_sampling.png', help='PNG to write (default dcnv3_sampling.png)')
    parser.add_argument('--layer', help='name of a DCNv3 layer (default: the first one)')
    parser.add_argument('--points', nargs='+', metavar='X,Y', help='output pixels to show, in image pixels')
    parser.add_argument('--list-layers', action='store_true', help='print the DCNv3 layers and exit')
    add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    for name in ('config', 'checkpoint', 'image'):
        if not os.path.isfile(getattr(args, name)):
            parser.error(f'{name} {getattr(args, name)!r} does not exist')
    try:
        args.points = [tuple(float(v) for v in p.split(',')) for p in args.points or []]
    except ValueError:
        parser.error(f'--points must be X,Y pairs, got {args.points}')
    if any(len(p) != 2 for p in args.points):
        parser.error(f'--points must be X,Y pairs, got {args.points}')
    return args


def dcnv3_layers(model):
    return {name: module for name, module in model.named_modules() if isinstance(module, DCNv3)}


def capture_sampling(model, layer, inputs):
    """Runs the network; returns (x, y, weight) of `layer`, each (H_out, W_out, G, P), and its stride."""
    captured = {}

    def hook(module, args):
        captured['x'], captured['y'], captured['weight'] = module.sampling_locations(args[0])
        captured['height_in'] = args[0].shape[1]

    handle = layer.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            model(inputs, mode='tensor')
    finally:
        handle.remove()
    stride = inputs.shape[2] / captured['height_in']
    return captured['x'][0], captured['y'][0], captured['weight'][0], stride


def to_network_pixels(points, meta):
    """Original-image (x, y) -> letterboxed network-input pixels."""
    scale_w, scale_h = meta['scale_factor']
    top, _, left, _ = meta.get('pad_param', (0, 0, 0, 0))
    return [(x * scale_w + left, y * scale_h + top) for x, y in points]


def draw(canvas, x, y, weight, stride, pixels, zoom):
    """Draws the sampling points of output pixels `pixels` (network-input pixels) on
    canvas (H, W, 3) BGR, the network input enlarged `zoom` times."""
    height_out, width_out = x.shape[:2]

    def to_image(v):  # feature coordinate -> canvas pixel
        return ((v + 0.5) * stride - 0.5) * zoom

    top = float(weight.max())
    for px, py in pixels:
        col = int(np.clip(round((px + 0.5) / stride - 0.5), 0, width_out - 1))
        row = int(np.clip(round((py + 0.5) / stride - 0.5), 0, height_out - 1))
        cx, cy = to_image(col), to_image(row)
        xs, ys, ws = (to_image(x[row, col]).flatten(), to_image(y[row, col]).flatten(),
                      weight[row, col].flatten())
        for sx, sy, w in sorted(zip(xs.tolist(), ys.tolist(), ws.tolist()), key=lambda t: t[2]):
            colour = cv2.applyColorMap(np.uint8([[255 * w / top]]), cv2.COLORMAP_TURBO)[0, 0].tolist()
            cv2.line(canvas, (int(cx), int(cy)), (int(sx), int(sy)), colour, 1, cv2.LINE_AA)
            cv2.circle(canvas, (int(round(sx)), int(round(sy))), 3, colour, -1, cv2.LINE_AA)
        half = max(2, int(stride * zoom / 2))
        cv2.rectangle(canvas, (int(cx) - half, int(cy) - half), (int(cx) + half, int(cy) + half),
                      (255, 255, 255), 2)
    return canvas


def main(argv=None):
    args = parse_args(argv)
    model, pipeline = load_detector(args.config, args.checkpoint, cfg_options=args.cfg_options)
    layers = dcnv3_layers(model)
    if not layers:
        raise SystemExit(f'{args.config}: the model has no DCNv3 layer')
    if args.list_layers:
        print('\n'.join(layers))
        return 0
    name = args.layer or next(iter(layers))
    if name not in layers:
        raise SystemExit(f'--layer {name!r} is not a DCNv3 layer; choose from:\n  ' + '\n  '.join(layers))
    inputs, meta = network_input(model, pipeline, args.image)
    points = args.points
    if not points:
        predictions = predict(model, pipeline, args.image)
        boxes = predictions.bboxes[predictions.scores.argsort(descending=True)[:3]]
        points = [((b[0] + b[2]).item() / 2, (b[1] + b[3]).item() / 2) for b in boxes] or [
            (meta['ori_shape'][1] / 2, meta['ori_shape'][0] / 2)]
    x, y, weight, stride = capture_sampling(model, layers[name], inputs)
    # The network input, back to a BGR picture.
    image = inputs[0] * model.data_preprocessor.std + model.data_preprocessor.mean
    canvas = np.ascontiguousarray(image.permute(1, 2, 0).clamp(0, 255).byte().numpy()[..., ::-1])
    zoom = max(1, 768 // canvas.shape[0])
    canvas = cv2.resize(canvas, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_LINEAR)
    canvas = draw(canvas, x.numpy(), y.numpy(), weight.numpy(), stride, to_network_pixels(points, meta), zoom)
    cv2.putText(canvas, f'{name} (stride {stride:g}); colour = mask weight', (6, 16),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    cv2.imwrite(args.out, canvas)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
