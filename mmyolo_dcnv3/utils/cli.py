"""Command-line arguments the tools share, so that the same thing has the same flag in every tool."""
import argparse
import copy
import os
import os.path as osp

from mmengine.config import Config, DictAction

from .config import load_config


def add_cfg_options_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_cfg.max_epochs=10; data_root=DIR moves '
                        'every dataset and evaluator that uses the config\'s data_root to DIR')


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """--work-dir, --cfg-options, --launcher (and torch.distributed.launch's --local_rank)."""
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: ./work_dirs/CONFIG_NAME)')
    add_cfg_options_argument(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher for distributed runs')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)


def check_runner_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config!r} does not exist')
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))


def load_runner_config(args: argparse.Namespace) -> Config:
    """The config with --cfg-options merged, the launcher and the work dir set."""
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get('work_dir') or osp.join(
        './work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def add_partial_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--allow-partial-checkpoint', action='store_true',
                        help='accept a checkpoint whose keys do not match the model: missing layers keep '
                        'their initialisation, unexpected weights are ignored')


def check_checkpoint_matches(model_cfg, checkpoint: str, default_scope: str, allow_partial: bool = False) -> dict:
    """Builds the model of ``model_cfg`` and loads ``checkpoint`` into it strictly.

    Raises :class:`mmyolo_dcnv3.utils.checkpoint.CheckpointMismatchError` naming
    the missing and unexpected keys, unless ``allow_partial``. The model is
    built but not initialised, so no pretrained weights are downloaded.
    Returns what ``load_checkpoint_strictly`` returns.
    """
    from .checkpoint import load_checkpoint_strictly
    from .config import build_detector
    model = build_detector(Config(dict(model=copy.deepcopy(model_cfg), default_scope=default_scope)))
    return load_checkpoint_strictly(model, checkpoint, allow_partial=allow_partial)


def add_img_size_argument(parser: argparse.ArgumentParser, default_text: str) -> None:
    """--img-size H [W]: the network input in pixels (one number: a square); ``default_text`` says the default."""
    parser.add_argument('--img-size', type=int, nargs='+', metavar='PX',
                        help=f'network input height and width in pixels, one number for a square ({default_text})')


def parse_img_size(parser: argparse.ArgumentParser, img_size, multiple: int = 32):
    """(height, width) of --img-size, None when not given; refuses anything but one or two positive multiples
    of ``multiple`` (the detector's largest stride)."""
    if img_size is None:
        return None
    if len(img_size) not in (1, 2) or any(v < multiple or v % multiple for v in img_size):
        parser.error(f'--img-size takes one or two sizes (height [width]), positive multiples of {multiple}, '
                     f'got {" ".join(map(str, img_size))}')
    return img_size[0], img_size[-1]
