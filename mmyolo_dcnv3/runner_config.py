"""Command-line arguments and config loading shared by tools/train.py and tools/test.py."""
import argparse
import os
import os.path as osp

from mmengine.config import Config, DictAction


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """--work-dir, --cfg-options, --launcher (and torch.distributed.launch's --local_rank)."""
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: ./work_dirs/CONFIG_NAME)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_cfg.max_epochs=10')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher for distributed runs')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def check_runner_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config!r} does not exist')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))


def load_runner_config(args: argparse.Namespace) -> Config:
    """The config with --cfg-options merged, the launcher and the work dir set."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg
