"""Train a detector with mmengine's Runner.

    python tools/train.py configs/yolov8_s_dcnv3_coco.py [--work-dir DIR] [--amp] [--resume [CKPT]]
    torchrun --nproc_per_node=2 tools/train.py CONFIG --launcher pytorch

Also works on machines without a GPU, distributed too (gloo backend). Before
anything is built or written, it stops with a clear message if the data the
config names (training and validation) is missing (point it elsewhere with
--cfg-options data_root=DIR) or the config's load_from file does not exist.
"""
import argparse
import os.path as osp
import sys

from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.cli import add_runner_arguments, check_runner_arguments, load_runner_config
from mmyolo_dcnv3.utils.compat import init_cpu_distributed
from mmyolo_dcnv3.utils.dataset_checks import check_dataset_paths

register_all_modules(init_default_scope=False)  # modules in the registries, the stack fixes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector (mmyolo-dcnv3).')
    parser.add_argument('config', help='config file')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint in the work dir when given alone')
    add_runner_arguments(parser)
    args = parser.parse_args(argv)
    check_runner_arguments(parser, args)
    if args.resume not in (None, 'auto') and not osp.isfile(args.resume):
        parser.error(f'--resume: checkpoint {args.resume!r} does not exist')
    return args


def build_config(args):
    cfg = load_runner_config(args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    return cfg


def check_inputs(args, cfg) -> None:
    """The training (and validation) data and the load_from checkpoint exist."""
    loaders = ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else [])
    check_dataset_paths(cfg, loaders, args.config)
    load_from = cfg.get('load_from')
    if load_from and not cfg.get('resume') and '://' not in load_from and not osp.isfile(load_from):
        raise FileNotFoundError(f'{args.config}: load_from {load_from!r} does not exist (set it with '
                                f'--cfg-options load_from=PATH)')


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    try:
        check_inputs(args, cfg)
    except FileNotFoundError as error:  # a DatasetNotFoundError or a missing load_from
        print(f'train.py: error: {error}', file=sys.stderr)
        return 2
    from mmengine.runner import Runner
    init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return 0


if __name__ == '__main__':
    sys.exit(main())
