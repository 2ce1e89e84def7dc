"""Command-line arguments, config loading and input checks shared by tools/train.py and tools/test.py."""
import argparse
import copy
import os
import os.path as osp

from mmengine.config import Config, DictAction

from .dataset_checks import rebase_data_root


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """--work-dir, --cfg-options, --launcher (and torch.distributed.launch's --local_rank)."""
    parser.add_argument('--work-dir', help='where logs and checkpoints go (default: ./work_dirs/CONFIG_NAME)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, metavar='KEY=VALUE',
                        help='override config entries, e.g. train_cfg.max_epochs=10; data_root=DIR moves '
                        'every dataset and evaluator that uses the config\'s data_root to DIR')
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
        old_root = cfg.get('data_root')
        cfg.merge_from_dict(args.cfg_options)
        if 'data_root' in args.cfg_options and old_root:
            rebase_data_root(cfg, old_root, args.cfg_options['data_root'])
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

    Raises :class:`mmyolo_dcnv3.checkpoint.CheckpointMismatchError` naming
    the missing and unexpected keys, unless ``allow_partial``. The model is
    built but not initialised, so no pretrained weights are downloaded.
    Returns what ``load_checkpoint_strictly`` returns.
    """
    from mmengine.registry import MODELS, init_default_scope

    from .checkpoint import load_checkpoint_strictly
    init_default_scope(default_scope)
    model = MODELS.build(copy.deepcopy(model_cfg))
    return load_checkpoint_strictly(model, checkpoint, allow_partial=allow_partial)
