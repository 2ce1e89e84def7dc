"""Toy shapes: a COCO-format detection dataset of warped shapes, deterministic for a seed.

Objects are five classes of shapes (ellipse, triangle, rectangle, star,
cross), each drawn with random rotation, shear, perspective and a non-rigid
(smooth random displacement) warp, filled with a texture whose brightness
stands out from the background under it, at sizes from small to large, over
textured backgrounds with unlabelled clutter (strokes and blobs); later
objects may occlude earlier ones.

Boxes are the visible extent of each object (xywh, pixels); an object with
less than ``min_visible`` of its area visible is not annotated and is painted
over by clutter-free background, so no unlabelled instance remains. The output
is validated with pycocotools (:func:`~.synthetic.validate`).
"""
import dataclasses

import cv2
import numpy as np

from .synthetic import contrasting_colour, param, write_dataset

CLASSES = ('ellipse', 'triangle', 'rectangle', 'star', 'cross')
CANVAS = 128  # shapes are drawn on a square canvas of this size, then warped


@dataclasses.dataclass(frozen=True)
class ToyShapesParams:
    """The generator's parameters; the defaults are the demo's dataset."""
    train_images: int = param(400, 'training images')
    val_images: int = param(100, 'validation images')
    image_size: int = param(192, 'square image side in pixels')
    max_objects: int = param(5, 'objects per image at most')
    min_size: float = param(0.1, 'smallest object, as a fraction of the image side')
    max_size: float = param(0.5, 'largest object, as a fraction of the image side')
    min_visible: float = param(0.4, 'fraction of an object that must stay visible to be annotated')
    seed: int = param(0, 'random seed')

    def check(self) -> None:
        """Raises ValueError naming the first field out of range."""
        for name in ('train_images', 'val_images', 'max_objects'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be at least 1, got {getattr(self, name)}')
        if self.image_size < 64:
            raise ValueError(f'image_size must be at least 64 pixels, got {self.image_size}')
        if not 0 < self.min_size <= self.max_size <= 1:
            raise ValueError(f'need 0 < min_size <= max_size <= 1, got {self.min_size} and {self.max_size}')
        if not 0 < self.min_visible <= 1:
            raise ValueError(f'min_visible must be in (0, 1], got {self.min_visible}')
        if self.seed < 0:
            raise ValueError(f'seed must be a non-negative int, got {self.seed}')


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


def make_image(rng: np.random.Generator, p: ToyShapesParams):
    """One image and its objects: (image, [(class index, visible mask)])."""
    size = p.image_size
    image = texture(size, rng, contrast=rng.uniform(10, 40))
    add_clutter(image, rng)
    painted = []  # (class, full mask) in painting order
    for _ in range(int(rng.integers(1, p.max_objects + 1))):
        cls = int(rng.integers(len(CLASSES)))
        local = warp(shape_mask(CLASSES[cls], rng), rng)
        side = int(size * rng.uniform(p.min_size, p.max_size))
        local = cv2.resize(local, (side, side), interpolation=cv2.INTER_LINEAR)
        x0, y0 = (int(v) for v in rng.integers(-side // 4, size - 3 * side // 4, 2))
        full = np.zeros((size, size), np.uint8)
        xs, ys = slice(max(x0, 0), min(x0 + side, size)), slice(max(y0, 0), min(y0 + side, size))
        full[ys, xs] = local[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
        alpha = (full.astype(np.float32) / 255)[..., None]
        fill = texture(size, rng, contrast=rng.uniform(0, 40), base=contrasting_colour(image[full > 127], rng))
        image[:] = (alpha * fill + (1 - alpha) * image).astype(np.uint8)
        painted.append((cls, full > 127))
    objects = []
    covered = np.zeros((size, size), bool)
    for cls, full in reversed(painted):  # topmost first
        visible = full & ~covered
        covered |= full
        if full.sum() >= 16 and visible.sum() >= p.min_visible * full.sum():
            objects.append((cls, visible))
    return image, objects[::-1]


def make_toy_shapes(out: str, params: ToyShapesParams = ToyShapesParams(), force: bool = False) -> None:
    """Writes the dataset into ``out`` (skipped, with a message, when one is there and ``force`` is off)."""
    def image_with_objects(split, rng):
        image, objects = make_image(rng, params)
        return image, [(cls, visible, {}) for cls, visible in objects]

    write_dataset(out, params, force, image_with_objects, 'mmyolo-dcnv3 toy COCO', CLASSES, 'shape')
