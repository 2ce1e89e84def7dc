"""Writes a deterministic COCO-format detection dataset of warped shapes.

Objects are five classes of shapes (ellipse, triangle, rectangle, star,
cross), each drawn with random rotation, shear, perspective and a non-rigid
(smooth random displacement) warp, filled with a texture whose brightness
stands out from the background under it, at sizes from small to large, over
textured backgrounds with unlabelled clutter (strokes and blobs); later
objects may occlude earlier ones. Geometric
deformation is what deformable sampling is meant to follow.

Layout (the official COCO layout)::

    OUT/annotations/instances_train.json   OUT/train/000000.jpg ...
    OUT/annotations/instances_val.json     OUT/val/000000.jpg ...

Boxes are the visible extent of each object (xywh, pixels); an object with
less than --min-visible of its area visible is not annotated and is painted
over by clutter-free background, so no unlabelled instance remains. The output
is validated with pycocotools before the command finishes.

    python tools/make_toy_coco.py --out data/toy_coco --train-images 400 --val-images 100
"""
import argparse
import json
import os
import shutil
import sys

import cv2
import numpy as np

CLASSES = ('ellipse', 'triangle', 'rectangle', 'star', 'cross')
CANVAS = 128  # shapes are drawn on a square canvas of this size, then warped


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='dataset folder to write')
    parser.add_argument('--train-images', type=int, default=400, help='training images (default 400)')
    parser.add_argument('--val-images', type=int, default=100, help='validation images (default 100)')
    parser.add_argument('--image-size', type=int, default=192, help='square image side in pixels (default 192)')
    parser.add_argument('--max-objects', type=int, default=5, help='objects per image at most (default 5)')
    parser.add_argument('--min-size', type=float, default=0.1,
                        help='smallest object, as a fraction of the image side (default 0.1)')
    parser.add_argument('--max-size', type=float, default=0.5,
                        help='largest object, as a fraction of the image side (default 0.5)')
    parser.add_argument('--min-visible', type=float, default=0.4,
                        help='fraction of an object that must stay visible to be annotated (default 0.4)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing dataset in --out')
    args = parser.parse_args(argv)
    for name in ('train_images', 'val_images', 'max_objects'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1, got {getattr(args, name)}')
    if args.image_size < 64:
        parser.error(f'--image-size must be at least 64 pixels, got {args.image_size}')
    if not 0 < args.min_size <= args.max_size <= 1:
        parser.error(f'need 0 < --min-size <= --max-size <= 1, got {args.min_size} and {args.max_size}')
    if not 0 < args.min_visible <= 1:
        parser.error(f'--min-visible must be in (0, 1], got {args.min_visible}')
    return args


def shape_mask(cls: str, rng: np.random.Generator) -> np.ndarray:
    """A filled shape of class `cls` on a CANVAS x CANVAS uint8 mask."""
    mask = np.zeros((CANVAS, CANVAS), np.uint8)
    c = CANVAS / 2
    r = CANVAS * 0.4
    if cls == 'ellipse':
        axes = (int(r), int(r * rng.uniform(0.45, 1.0)))
        cv2.ellipse(mask, (int(c), int(c)), axes, 0, 0, 360, 255, -1)
    elif cls == 'triangle':
        angles = np.deg2rad([90, 210, 330]) + rng.uniform(-0.25, 0.25, 3)
        pts = np.stack([c + r * np.cos(angles), c - r * np.sin(angles)], 1)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 255)
    elif cls == 'rectangle':
        half_h = r * rng.uniform(0.4, 1.0)
        cv2.rectangle(mask, (int(c - r), int(c - half_h)), (int(c + r), int(c + half_h)), 255, -1)
    elif cls == 'star':
        spikes = int(rng.integers(5, 7))
        angles = np.arange(2 * spikes) * np.pi / spikes + np.pi / 2
        radii = np.where(np.arange(2 * spikes) % 2 == 0, r, r * rng.uniform(0.35, 0.5))
        pts = np.stack([c + radii * np.cos(angles), c - radii * np.sin(angles)], 1)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 255)
    elif cls == 'cross':
        arm = int(r * rng.uniform(0.22, 0.35))
        cv2.rectangle(mask, (int(c - r), int(c - arm)), (int(c + r), int(c + arm)), 255, -1)
        cv2.rectangle(mask, (int(c - arm), int(c - r)), (int(c + arm), int(c + r)), 255, -1)
    return mask


def warp(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rotation, shear, perspective, then a smooth random displacement field."""
    c = CANVAS / 2
    angle = rng.uniform(0, 2 * np.pi)
    shear = rng.uniform(-0.4, 0.4)
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = rotate @ np.array([[1, shear], [0, 1]]) * 0.8
    affine = np.eye(3)
    affine[:2, :2] = linear
    affine[:2, 2] = [c, c] - linear @ [c, c]
    perspective = np.eye(3)
    perspective[2, :2] = rng.uniform(-0.003, 0.003, 2)
    to_centre = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1]])
    homography = np.linalg.inv(to_centre) @ perspective @ to_centre @ affine
    mask = cv2.warpPerspective(mask, homography, (CANVAS, CANVAS), flags=cv2.INTER_LINEAR)
    # Non-rigid: a coarse random displacement field, upsampled smoothly.
    field = rng.normal(0, CANVAS * 0.05, (2, 4, 4)).astype(np.float32)
    dx = cv2.resize(field[0], (CANVAS, CANVAS), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(field[1], (CANVAS, CANVAS), interpolation=cv2.INTER_CUBIC)
    grid_x, grid_y = np.meshgrid(np.arange(CANVAS, dtype=np.float32), np.arange(CANVAS, dtype=np.float32))
    return cv2.remap(mask, grid_x + dx, grid_y + dy, cv2.INTER_LINEAR, borderValue=0)


def luminance(bgr) -> float:
    return float(np.dot(bgr, [0.114, 0.587, 0.299]))


def texture(size: int, rng: np.random.Generator, contrast: float, base=None) -> np.ndarray:
    """A size x size x 3 uint8 texture (smooth noise, stripes or checks) around colour `base`."""
    base = rng.uniform(40, 215, 3) if base is None else base
    kind = rng.integers(3)
    if kind == 0:
        noise = rng.normal(0, 1, (max(2, size // 16),) * 2 + (3,)).astype(np.float32)
        pattern = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    else:
        ys, xs = np.mgrid[:size, :size].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(6, 24)
        u = xs * np.cos(angle) + ys * np.sin(angle)
        v = -xs * np.sin(angle) + ys * np.cos(angle)
        wave = np.sin(2 * np.pi * u / period)
        if kind == 2:
            wave = wave * np.sin(2 * np.pi * v / period)
        pattern = wave[..., None] * rng.uniform(0.5, 1.0, 3)
    return np.clip(base + contrast * pattern, 0, 255).astype(np.uint8)


def add_clutter(image: np.ndarray, rng: np.random.Generator) -> None:
    """Unlabelled strokes and small blobs."""
    size = image.shape[0]
    for _ in range(int(rng.integers(2, 7))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            pts = rng.integers(0, size, (int(rng.integers(3, 6)), 2))
            cv2.polylines(image, [pts.astype(np.int32)], False, colour, int(rng.integers(1, 3)))
        else:
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.circle(image, centre, int(rng.integers(2, max(3, size // 40))), colour, -1)


def fill_colour(background: np.ndarray, rng: np.random.Generator, min_contrast: float = 60):
    """A colour whose luminance differs from the background's under the object by min_contrast."""
    target = luminance(background.reshape(-1, 3).mean(0)) if background.size else 128.0
    for _ in range(50):
        colour = rng.uniform(20, 235, 3)
        if abs(luminance(colour) - target) >= min_contrast:
            return colour
    return np.full(3, 235.0 if target < 128 else 20.0)


def make_image(rng: np.random.Generator, args):
    """One image and its objects: (image, [(class index, visible mask)])."""
    size = args.image_size
    image = texture(size, rng, contrast=rng.uniform(10, 40))
    add_clutter(image, rng)
    painted = []  # (class, full mask) in painting order
    for _ in range(int(rng.integers(1, args.max_objects + 1))):
        cls = int(rng.integers(len(CLASSES)))
        local = warp(shape_mask(CLASSES[cls], rng), rng)
        side = int(size * rng.uniform(args.min_size, args.max_size))
        local = cv2.resize(local, (side, side), interpolation=cv2.INTER_LINEAR)
        x0, y0 = (int(v) for v in rng.integers(-side // 4, size - 3 * side // 4, 2))
        full = np.zeros((size, size), np.uint8)
        xs, ys = slice(max(x0, 0), min(x0 + side, size)), slice(max(y0, 0), min(y0 + side, size))
        full[ys, xs] = local[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
        alpha = (full.astype(np.float32) / 255)[..., None]
        fill = texture(size, rng, contrast=rng.uniform(0, 40), base=fill_colour(image[full > 127], rng))
        image[:] = (alpha * fill + (1 - alpha) * image).astype(np.uint8)
        painted.append((cls, full > 127))
    objects = []
    covered = np.zeros((size, size), bool)
    for cls, full in reversed(painted):  # topmost first
        visible = full & ~covered
        covered |= full
        if full.sum() >= 16 and visible.sum() >= args.min_visible * full.sum():
            objects.append((cls, visible))
    return image, objects[::-1]


def polygon(mask: np.ndarray):
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def write_split(out: str, split: str, count: int, rng: np.random.Generator, args) -> str:
    os.makedirs(os.path.join(out, split), exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        image, objects = make_image(rng, args)
        file_name = f'{index:06d}.jpg'
        cv2.imwrite(os.path.join(out, split, file_name), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        images.append(dict(id=index + 1, file_name=file_name, width=args.image_size, height=args.image_size))
        for cls, visible in objects:
            ys, xs = np.nonzero(visible)
            x, y = float(xs.min()), float(ys.min())
            w, h = float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)
            annotations.append(dict(id=len(annotations) + 1, image_id=index + 1, category_id=cls + 1,
                                    bbox=[x, y, w, h], area=float(visible.sum()), iscrowd=0,
                                    segmentation=polygon(visible)))
    path = os.path.join(out, 'annotations', f'instances_{split}.json')
    with open(path, 'w') as f:
        json.dump(dict(info=dict(description='mmyolo-dcnv3 toy COCO', version='1.0'), licenses=[],
                       images=images, annotations=annotations,
                       categories=[dict(id=i + 1, name=name, supercategory='shape')
                                   for i, name in enumerate(CLASSES)]), f)
    return path


def validate(path: str) -> str:
    """Loads the file with pycocotools and evaluates the ground truth against itself."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(path)
        detections = [dict(image_id=a['image_id'], category_id=a['category_id'], bbox=a['bbox'], score=1.0)
                      for a in gt.dataset['annotations']]
        evaluator = COCOeval(gt, gt.loadRes(detections), 'bbox')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    if abs(evaluator.stats[0] - 1.0) > 1e-6:
        raise RuntimeError(f'{path}: ground truth scored against itself gives mAP {evaluator.stats[0]}, not 1')
    return f'{len(gt.getImgIds())} images, {len(gt.getAnnIds())} objects'


def main(argv=None):
    args = parse_args(argv)
    marker = os.path.join(args.out, 'annotations', 'instances_val.json')
    if os.path.exists(marker) and not args.force:
        print(f'{args.out} already holds a dataset; use --force to overwrite it')
        return 0
    if args.force and os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(os.path.join(args.out, 'annotations'), exist_ok=True)
    rng = np.random.default_rng(args.seed)
    for split, count in (('train', args.train_images), ('val', args.val_images)):
        path = write_split(args.out, split, count, rng, args)
        print(f'{split}: {validate(path)} -> {path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
