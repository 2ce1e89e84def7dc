"""Writes the demo's toy dataset: five classes of warped shapes on textured, cluttered backgrounds (COCO format).

See mmyolo_dcnv3.datasets.toy_shapes for what the generator does. Layout
(COCO's own): OUT/annotations/instances_{train,val}.json, OUT/{train,val}/*.jpg;
validated with pycocotools before the command finishes.

    python tools/dataset_makers/make_toy_coco.py --out data/toy_coco [--train-images 400] [--val-images 100]
"""
import sys

from mmyolo_dcnv3.datasets.synthetic import generator_main
from mmyolo_dcnv3.datasets.toy_shapes import ToyShapesParams, make_toy_shapes


def main(argv=None):
    return generator_main(__doc__, ToyShapesParams, make_toy_shapes, argv)


if __name__ == '__main__':
    sys.exit(main())
