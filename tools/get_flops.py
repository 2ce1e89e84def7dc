"""Parameters and FLOPs of a config's model, DCNv3 included.

    python tools/get_flops.py configs/yolov8_s_dcnv3_coco.py [--shape 640 640]

FLOPs count one per multiply-add (mmengine's convention); the DCNv3 op is
counted (5 per output channel per sampling point), not skipped.
"""
import argparse
import sys

from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import mmyolo_dcnv3  # noqa: F401  (registers modules)
from mmyolo_dcnv3.analysis import model_complexity


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Parameters and FLOPs of a model (mmyolo-dcnv3).')
    parser.add_argument('config', help='config file')
    parser.add_argument('--shape', type=int, nargs='+', default=None, metavar='PX',
                        help="input height and width (one number for a square); default: the config's "
                        'img_scale, else 640')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries')
    args = parser.parse_args(argv)
    if args.shape is not None and (len(args.shape) not in (1, 2) or min(args.shape) < 32):
        parser.error(f'--shape takes one or two sizes of at least 32 pixels, got {args.shape}')
    return args


def input_size(cfg, shape):
    if shape:
        return (shape[0], shape[-1])
    width, height = cfg.get('img_scale', (640, 640))
    return (height, width)


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmyolo'))
    from mmyolo.registry import MODELS
    model = MODELS.build(cfg.model)
    height, width = input_size(cfg, args.shape)
    params, flops, by_op = model_complexity(model, (3, height, width))
    print(f'config:     {args.config}')
    print(f'input:      3 x {height} x {width}')
    print(f'parameters: {params / 1e6:.3f} M')
    print(f'FLOPs:      {flops / 1e9:.3f} G (multiply-adds)')
    if 'dcnv3' in by_op:
        print(f'  of which DCNv3 sampling: {by_op["dcnv3"] / 1e9:.4f} G')
    return 0


if __name__ == '__main__':
    sys.exit(main())
