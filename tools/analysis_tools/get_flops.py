"""Parameters and FLOPs of a config's model, DCNv3 included.

    python tools/analysis_tools/get_flops.py configs/yolov8_s_dcnv3_coco.py [--img-size 640 640]

FLOPs count one per multiply-add (mmengine's convention); the DCNv3 op is
counted (5 per output channel per sampling point), not skipped.
"""
import argparse
import sys

from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.cli import add_cfg_options_argument, add_img_size_argument, parse_img_size
from mmyolo_dcnv3.utils.complexity import model_complexity
from mmyolo_dcnv3.utils.config import build_detector, load_config

register_all_modules(init_default_scope=False)  # modules in the registries, the stack fixes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Parameters and FLOPs of a model (mmyolo-dcnv3).')
    parser.add_argument('config', help='config file')
    add_img_size_argument(parser, "default: the config's img_scale, else 640")
    add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    args.img_size = parse_img_size(parser, args.img_size)
    return args


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    height, width = args.img_size or tuple(reversed(cfg.get('img_scale', (640, 640))))
    params, flops, by_op = model_complexity(build_detector(cfg), (3, height, width))
    print(f'config:     {args.config}')
    print(f'input:      3 x {height} x {width}')
    print(f'parameters: {params / 1e6:.3f} M')
    print(f'FLOPs:      {flops / 1e9:.3f} G (multiply-adds)')
    if 'dcnv3' in by_op:
        print(f'  of which DCNv3 sampling: {by_op["dcnv3"] / 1e9:.4f} G')
    return 0


if __name__ == '__main__':
    sys.exit(main())
