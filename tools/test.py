"""Evaluate a checkpoint (COCO metrics through mmdet's CocoMetric).

    python tools/test.py configs/yolov8_s_dcnv3_coco.py work_dirs/.../best.pth
    python tools/test.py CONFIG CKPT --json-prefix results/pred --out results/pred.pkl --show-dir vis

Prints the 12 standard COCO numbers (AP/AR at the usual IoUs, areas and
detection counts). Before anything is built or written, it stops with a clear
message if the test data the config names is missing (point it elsewhere with
--cfg-options data_root=DIR) or if the checkpoint does not match the config's
model (missing and unexpected keys named; --allow-partial-checkpoint accepts it).
"""
import argparse
import os.path as osp
import sys

from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.checkpoint import CheckpointMismatchError
from mmyolo_dcnv3.utils.cli import (
    add_partial_checkpoint_argument,
    add_runner_arguments,
    check_checkpoint_matches,
    check_runner_arguments,
    load_runner_config,
)
from mmyolo_dcnv3.utils.compat import init_cpu_distributed
from mmyolo_dcnv3.utils.dataset_checks import DatasetNotFoundError, check_dataset_paths

register_all_modules(init_default_scope=False)  # modules in the registries, the stack fixes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Evaluate a detector checkpoint (mmyolo-dcnv3).')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='also dump the raw predictions to this .pkl file')
    parser.add_argument('--json-prefix', help='also write the COCO-format detections to PREFIX.bbox.json')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation (the config\'s tta_model)')
    parser.add_argument('--show-dir', help='draw predictions and ground truth into this folder')
    add_partial_checkpoint_argument(parser)
    add_runner_arguments(parser)
    args = parser.parse_args(argv)
    check_runner_arguments(parser, args)
    if not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint!r} does not exist')
    if args.out is not None and not args.out.endswith(('.pkl', '.pickle')):
        parser.error(f'--out must end with .pkl or .pickle, got {args.out!r}')
    return args


def build_config(args):
    cfg = load_runner_config(args)
    cfg.load_from = args.checkpoint
    if args.json_prefix:
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        for evaluator in evaluators:
            evaluator.outfile_prefix = args.json_prefix
    if args.tta:
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise SystemExit(f'--tta: {args.config} defines no tta_model/tta_pipeline')
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    if args.show_dir:
        visualization = cfg.default_hooks.setdefault('visualization', dict(type='mmdet.DetVisualizationHook'))
        visualization.draw = True
        visualization.test_out_dir = osp.abspath(args.show_dir)
    return cfg


def check_inputs(args, cfg) -> None:
    """The test data exists and the checkpoint fits the model (the plain one under --tta)."""
    check_dataset_paths(cfg, ['test_dataloader'], args.config)
    check_checkpoint_matches(cfg.model.module if args.tta else cfg.model, args.checkpoint,
                             cfg.get('default_scope', 'mmdet'), allow_partial=args.allow_partial_checkpoint)


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    try:
        check_inputs(args, cfg)
    except DatasetNotFoundError as error:
        print(f'test.py: error: {error}', file=sys.stderr)
        return 2
    except CheckpointMismatchError as error:
        print(f'test.py: error: {error}\n(--allow-partial-checkpoint evaluates it anyway)', file=sys.stderr)
        return 2
    from mmengine.runner import Runner
    init_cpu_distributed(cfg)
    runner = Runner.from_cfg(cfg)
    if args.out:
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()
    return 0


if __name__ == '__main__':
    sys.exit(main())
