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
from typing import Callable, List, Sequence

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


def write_dataset(out: str, params, force: bool, make_image: Callable, description: str, classes: Sequence[str],
                  supercategory: str) -> None:
    """Writes a generated dataset's train then val split from one random stream seeded with ``params.seed``.

    ``make_image(split, rng)`` returns an image (BGR uint8) and its objects as
    (class index, visible mask, extra annotation fields); each object's box
    and polygons are its mask's. Skipped, with a message, when ``out`` holds
    a dataset and ``force`` is off; each split is validated once written.
    """
    params.check()
    if not prepare_output(out, force):
        return
    rng = np.random.default_rng(params.seed)
    for split, count in (('train', params.train_images), ('val', params.val_images)):
        images, annotations = [], []
        for index in range(count):
            image, objects = make_image(split, rng)
            file_name = save_image(out, split, index, image)
            images.append(dict(id=index + 1, file_name=file_name, width=image.shape[1], height=image.shape[0]))
            for cls, visible, extra in objects:
                annotations.append(dict(id=len(annotations) + 1, image_id=index + 1, category_id=cls + 1,
                                        bbox=box_of(visible), area=float(visible.sum()), iscrowd=0,
                                        segmentation=polygons_of(visible), **extra))
        path = annotation_path(out, split)
        write_annotations(path, description, images, annotations, classes, supercategory)
        print(f'{split}: {validate(path)} -> {path}')


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


def param(default, help: str):
    """A generator parameter: a dataclass field with a default and the help text of its command-line option."""
    return dataclasses.field(default=default, metadata=dict(help=help))


def option_name(field_name: str) -> str:
    """The command-line option of a parameter field (``image_size`` is ``--img-size``, as in every tool)."""
    return '--img-size' if field_name == 'image_size' else '--' + field_name.replace('_', '-')


def generator_main(description: str, params_class, make: Callable, argv=None) -> int:
    """The command line of a generator tool: --out, --force, --preview and an option per parameter field
    (:func:`param`), then ``make(out, params, force=...)`` and the preview."""
    import argparse
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='dataset folder to write')
    parser.add_argument('--force', action='store_true', help='overwrite an existing dataset in --out')
    parser.add_argument('--preview', metavar='PNG', help='also draw the first val images with their boxes')
    for field in dataclasses.fields(params_class):
        parser.add_argument(option_name(field.name), dest=field.name, type=type(field.default), default=field.default,
                            help=f'{field.metadata["help"]} (default {field.default})')
    args = parser.parse_args(argv)
    make(args.out, params_from_args(parser, params_class, args), force=args.force)
    if args.preview:
        print(f'preview: {draw_preview(args.out, "val", args.preview)}')
    return 0


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
