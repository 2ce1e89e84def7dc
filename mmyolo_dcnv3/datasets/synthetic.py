"""What the dataset generators share: COCO files, their checks and previews, contrasting colours.

Layout (COCO's own)::

    OUT/annotations/instances_train.json   OUT/train/000000.jpg ...
    OUT/annotations/instances_val.json     OUT/val/000000.jpg ...
"""
import contextlib
import dataclasses
import io
import json
import os
import os.path as osp
import re
import shutil
from typing import List, Sequence

import cv2
import numpy as np

JPEG_QUALITY = 92


def luminance(bgr) -> float:
    return float(np.dot(bgr, [0.114, 0.587, 0.299]))


def contrasting_colour(under: np.ndarray, rng: np.random.Generator, min_contrast: float = 60) -> np.ndarray:
    """A BGR colour whose luminance differs by ``min_contrast`` from the mean of the pixels ``under`` (K, 3)."""
    target = luminance(under.reshape(-1, 3).mean(0)) if under.size else 128.0
    for _ in range(50):
        colour = rng.uniform(20, 235, 3)
        if abs(luminance(colour) - target) >= min_contrast:
            return colour
    return np.full(3, 235.0 if target < 128 else 20.0)


def prepare_output(out: str, force: bool) -> bool:
    """Makes ``out`` ready for a new dataset; False (and a message) when one is there and ``force`` is off."""
    if osp.exists(annotation_path(out, 'val')) and not force:
        print(f'{out} already holds a dataset; use --force to overwrite it')
        return False
    if force and osp.isdir(out):
        shutil.rmtree(out)
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    return True


def annotation_path(out: str, split: str) -> str:
    return osp.join(out, 'annotations', f'instances_{split}.json')


def save_image(out: str, split: str, index: int, image: np.ndarray) -> str:
    """Writes a BGR image as OUT/SPLIT/NNNNNN.jpg; returns its file name."""
    file_name = f'{index:06d}.jpg'
    os.makedirs(osp.join(out, split), exist_ok=True)
    cv2.imwrite(osp.join(out, split, file_name), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return file_name


def box_of(mask: np.ndarray) -> List[float]:
    """The tight COCO box (x, y, w, h in pixels) of a non-empty boolean mask."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def polygons_of(mask: np.ndarray) -> List[List[float]]:
    """The outer contours of a boolean mask as COCO polygons."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    return [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]


def write_annotations(path: str, description: str, images: List[dict], annotations: List[dict],
                      classes: Sequence[str], supercategory: str) -> None:
    """Writes a COCO instances file; category ids are 1 + the index in ``classes``."""
    with open(path, 'w') as f:
        json.dump(dict(info=dict(description=description, version='1.0'), licenses=[],
                       images=images, annotations=annotations,
                       categories=[dict(id=i + 1, name=name, supercategory=supercategory)
                                   for i, name in enumerate(classes)]), f)


def validate(path: str) -> str:
    """Loads the file with pycocotools and evaluates the ground truth against itself (mAP must be 1)."""
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


def draw_preview(dataset: str, split: str, out_path: str, count: int = 8, columns: int = 4) -> str:
    """A grid of the first ``count`` images of a split with their boxes and class names, as a PNG."""
    with open(annotation_path(dataset, split)) as f:
        coco = json.load(f)
    names = {c['id']: c['name'] for c in coco['categories']}
    tiles = []
    for record in coco['images'][:count]:
        image = cv2.imread(osp.join(dataset, split, record['file_name']))
        for ann in (a for a in coco['annotations'] if a['image_id'] == record['id']):
            x, y, w, h = (int(round(v)) for v in ann['bbox'])
            cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), (0, 255, 0), 1)
            cv2.putText(image, names[ann['category_id']], (x + 1, max(y - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                        (0, 255, 0), 1, cv2.LINE_AA)
        tiles.append(cv2.copyMakeBorder(image, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255)))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    cv2.imwrite(out_path, np.vstack(rows))
    return out_path


def add_generator_arguments(parser, defaults) -> None:
    """The options every generator tool has: --out, --train-images, --val-images, --img-size, --seed, --force,
    --preview; ``defaults`` is the generator's parameter dataclass (whose fields the options set)."""
    parser.add_argument('--out', required=True, help='dataset folder to write')
    parser.add_argument('--train-images', type=int, default=defaults.train_images,
                        help=f'training images (default {defaults.train_images})')
    parser.add_argument('--val-images', type=int, default=defaults.val_images,
                        help=f'validation images (default {defaults.val_images})')
    parser.add_argument('--img-size', dest='image_size', type=int, default=defaults.image_size,
                        help=f'square image side in pixels (default {defaults.image_size})')
    parser.add_argument('--seed', type=int, default=defaults.seed, help=f'random seed (default {defaults.seed})')
    parser.add_argument('--force', action='store_true', help='overwrite an existing dataset in --out')
    parser.add_argument('--preview', metavar='PNG', help='also draw the first val images with their boxes')


def params_from_args(parser, params_class, args):
    """The generator's parameters from parsed options (option dests are the dataclass's fields), checked:
    an out-of-range value is a parser error naming its option."""
    fields = {field.name for field in dataclasses.fields(params_class)}
    params = params_class(**{key: value for key, value in vars(args).items() if key in fields})
    try:
        params.check()
    except ValueError as error:
        message = str(error)
        for action in parser._actions:
            if action.dest in fields and action.option_strings:
                message = re.sub(rf'\b{action.dest}\b', action.option_strings[0], message)
        parser.error(message)
    return params
