"""A COCO-format dataset described in a few lines, checked, and applied to a training recipe's config.

A dataset config is a small mmengine config file (the names are MMYOLO's)::

    data_root = '/data/my_coco/'              # the folders below are relative to it
    class_name = ('cat', 'dog')               # in the annotation files' category order
    train_ann_file = 'annotations/instances_train.json'
    train_data_prefix = 'train/'              # the training images
    val_ann_file = 'annotations/instances_val.json'
    val_data_prefix = 'val/'
    img_scale = (192, 192)                    # optional: (width, height) to train and test at
    palette = [(220, 20, 60), (0, 130, 200)]  # optional: a colour per class for drawn boxes

:func:`check_dataset` says everything that is wrong with it before anything
trains; :func:`apply_dataset` points a config (one of ``configs/demo/``: a
YOLOv8 recipe) at it.
"""
import dataclasses
import json
import os.path as osp
from typing import List, Optional, Tuple

REQUIRED_KEYS = ('data_root', 'class_name', 'train_ann_file', 'train_data_prefix', 'val_ann_file',
                 'val_data_prefix')


class DatasetSpecError(ValueError):
    """A dataset config that is incomplete or does not match the files it names."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    name: str
    data_root: str
    class_name: Tuple[str, ...]
    train_ann_file: str
    train_data_prefix: str
    val_ann_file: str
    val_data_prefix: str
    img_scale: Optional[Tuple[int, int]] = None
    palette: Optional[Tuple[Tuple[int, int, int], ...]] = None

    def path(self, relative: str) -> str:
        return osp.join(self.data_root, relative)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_dataset_spec(config_file: str, data_root: Optional[str] = None) -> DatasetSpec:
    """Reads a dataset config; ``data_root`` replaces the file's. Raises DatasetSpecError naming what is wrong."""
    from mmengine.config import Config
    if not osp.isfile(config_file):
        raise DatasetSpecError(f'dataset config {config_file!r} does not exist')
    cfg = Config.fromfile(config_file)
    missing = [key for key in REQUIRED_KEYS if key not in cfg]
    if missing:
        raise DatasetSpecError(f'{config_file}: missing {", ".join(missing)} (a dataset config sets '
                               f'{", ".join(REQUIRED_KEYS)}, and optionally img_scale and palette)')
    classes = cfg.class_name
    if isinstance(classes, str) or not classes or not all(isinstance(c, str) and c for c in classes):
        raise DatasetSpecError(f'{config_file}: class_name must be a non-empty list of class names, got {classes!r}')
    if len(set(classes)) != len(classes):
        raise DatasetSpecError(f'{config_file}: class_name repeats a name: {list(classes)}')
    img_scale = cfg.get('img_scale')
    if img_scale is not None:
        if (not isinstance(img_scale, (list, tuple)) or len(img_scale) != 2
                or not all(isinstance(v, int) and v >= 32 and v % 32 == 0 for v in img_scale)):
            raise DatasetSpecError(f'{config_file}: img_scale must be (width, height), multiples of 32, '
                                   f'got {img_scale!r}')
        img_scale = tuple(img_scale)
    palette = cfg.get('palette')
    if palette is not None:
        if len(palette) != len(classes) or not all(len(colour) == 3 for colour in palette):
            raise DatasetSpecError(f'{config_file}: palette must give one (r, g, b) per class '
                                   f'({len(classes)}), got {palette!r}')
        palette = tuple(tuple(colour) for colour in palette)
    for key in REQUIRED_KEYS[2:]:
        if not isinstance(cfg[key], str) or not cfg[key]:
            raise DatasetSpecError(f'{config_file}: {key} must be a non-empty path, got {cfg[key]!r}')
    root = data_root if data_root is not None else cfg.data_root
    return DatasetSpec(name=osp.splitext(osp.basename(config_file))[0], data_root=root.rstrip('/') + '/',
                       class_name=tuple(classes), img_scale=img_scale, palette=palette,
                       **{key: cfg[key] for key in REQUIRED_KEYS[2:]})


def dataset_problems(spec: DatasetSpec) -> List[str]:
    """Everything wrong with the files a spec names: missing paths, classes that do not match the categories."""
    problems = []
    for split in ('train', 'val'):
        ann_file = spec.path(getattr(spec, f'{split}_ann_file'))
        image_dir = spec.path(getattr(spec, f'{split}_data_prefix'))
        if not osp.isdir(image_dir):
            problems.append(f'{split}_data_prefix: image folder {image_dir!r} does not exist')
        if not osp.isfile(ann_file):
            problems.append(f'{split}_ann_file: annotation file {ann_file!r} does not exist')
            continue
        try:
            with open(ann_file) as f:
                coco = json.load(f)
            categories = [c['name'] for c in coco['categories']]
            images, annotations = coco['images'], coco['annotations']
        except (ValueError, KeyError, TypeError) as error:
            problems.append(f'{split}_ann_file: {ann_file!r} is not a COCO instances file ({error!r})')
            continue
        if tuple(categories) != spec.class_name:
            unknown = [c for c in spec.class_name if c not in categories]
            absent = [c for c in categories if c not in spec.class_name]
            detail = (f'not in the file: {unknown}; ' if unknown else '') + (
                f'in the file but not in class_name: {absent}; ' if absent else '')
            problems.append(f'class_name {list(spec.class_name)} does not match the categories of {ann_file!r}, '
                            f'{categories} ({detail or "same names, other order; "}list them in the file\'s order)')
        if not annotations:
            problems.append(f'{split}_ann_file: {ann_file!r} has no annotations')
        if osp.isdir(image_dir):
            absent_images = [im['file_name'] for im in images if not osp.isfile(osp.join(image_dir, im['file_name']))]
            if absent_images:
                problems.append(f'{split}_data_prefix: {len(absent_images)} of the {len(images)} images of '
                                f'{ann_file!r} are not in {image_dir!r} (e.g. {absent_images[0]!r})')
    return problems


def check_dataset(spec: DatasetSpec) -> None:
    """Raises DatasetSpecError listing every problem of :func:`dataset_problems`."""
    problems = dataset_problems(spec)
    if problems:
        raise DatasetSpecError(f'dataset {spec.name!r} (data_root {spec.data_root!r}):\n'
                               + '\n'.join(f'  {p}' for p in problems))


def _replace_all(node, match, replacement):
    """Replaces, in nested dicts and lists, every value for which ``match(key, value)`` holds."""
    if isinstance(node, dict):
        for key, value in node.items():
            if match(key, value):
                node[key] = replacement(key, value)
            else:
                _replace_all(value, match, replacement)
    elif isinstance(node, list):
        for value in node:
            _replace_all(value, match, replacement)


def apply_dataset(cfg, spec: DatasetSpec) -> None:
    """Points a YOLOv8 recipe config (``configs/demo/``) at the dataset, in place.

    Sets the train, val and test datasets (data root, annotation file, image
    folder, classes), the evaluators' annotation file, every ``num_classes``
    of the model and, when the spec has an ``img_scale``, every place where
    the recipe uses its own image size (resize and mosaic scales, the random
    affine's border, the val batch shapes).
    """
    metainfo = dict(classes=spec.class_name)
    if spec.palette is not None:
        metainfo['palette'] = list(spec.palette)
    for loader, split in (('train_dataloader', 'train'), ('val_dataloader', 'val'), ('test_dataloader', 'val')):
        dataset = cfg[loader]['dataset']
        while 'dataset' in dataset:  # wrappers (RepeatDataset, ...)
            dataset = dataset['dataset']
        dataset.update(data_root=spec.data_root, ann_file=getattr(spec, f'{split}_ann_file'),
                       data_prefix=dict(img=getattr(spec, f'{split}_data_prefix')), metainfo=metainfo)
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator]['ann_file'] = spec.path(spec.val_ann_file)
    _replace_all(cfg['model'], lambda key, value: key == 'num_classes', lambda key, value: len(spec.class_name))
    cfg.merge_from_dict(dict(data_root=spec.data_root, class_name=spec.class_name,
                             num_classes=len(spec.class_name), metainfo=metainfo))
    if spec.img_scale is not None and tuple(cfg.img_scale) != spec.img_scale:
        old, new = tuple(cfg.img_scale), spec.img_scale
        old_border, new_border = (-old[0] // 2, -old[1] // 2), (-new[0] // 2, -new[1] // 2)

        def sequence_equal_to(target):
            return lambda key, value: isinstance(value, (list, tuple)) and tuple(value) == target

        # Mosaic asserts a tuple: each value keeps its own sequence type.
        _replace_all(cfg._cfg_dict, sequence_equal_to(old), lambda key, value: type(value)(new))
        border = sequence_equal_to(old_border)
        _replace_all(cfg._cfg_dict, lambda key, value: key == 'border' and border(key, value),
                     lambda key, value: type(value)(new_border))
        _replace_all(cfg._cfg_dict, lambda key, value: key == 'img_size' and value == old[0],
                     lambda key, value: new[0])
