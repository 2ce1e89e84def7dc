"""Writes the demo's toy dataset: five classes of warped shapes on textured, cluttered backgrounds (COCO format).

See mmyolo_dcnv3.datasets.toy_shapes for what the generator does. Layout
(COCO's own): OUT/annotations/instances_{train,val}.json, OUT/{train,val}/*.jpg;
validated with pycocotools before the command finishes.

    python tools/dataset_makers/make_toy_coco.py --out data/toy_coco [--train-images 400] [--val-images 100]
"""
import argparse
import sys

from mmyolo_dcnv3.datasets.synthetic import add_generator_arguments, draw_preview, params_from_args
from mmyolo_dcnv3.datasets.toy_shapes import ToyShapesParams, make_toy_shapes


def main(argv=None):
    defaults = ToyShapesParams()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generator_arguments(parser, defaults)
    parser.add_argument('--max-objects', type=int, default=defaults.max_objects,
                        help=f'objects per image at most (default {defaults.max_objects})')
    parser.add_argument('--min-size', type=float, default=defaults.min_size,
                        help=f'smallest object, as a fraction of the image side (default {defaults.min_size})')
    parser.add_argument('--max-size', type=float, default=defaults.max_size,
                        help=f'largest object, as a fraction of the image side (default {defaults.max_size})')
    parser.add_argument('--min-visible', type=float, default=defaults.min_visible,
                        help=f'fraction of an object that must stay visible to be annotated '
                        f'(default {defaults.min_visible})')
    args = parser.parse_args(argv)
    make_toy_shapes(args.out, params_from_args(parser, ToyShapesParams, args), force=args.force)
    if args.preview:
        print(f'preview: {draw_preview(args.out, "val", args.preview)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
