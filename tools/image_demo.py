"""Draw a detector's boxes, labels and scores on an image, a folder of images or a video.

    python tools/image_demo.py CONFIG CHECKPOINT INPUT [--out DIR] [--score-thr 0.3] [--device cpu]

INPUT: an image, a folder of images (a progress bar runs over them) or a video
file (.mp4, .avi, .mov, .mkv, .webm). Images go to DIR/vis/ with the same
names, every detection to DIR/preds/NAME.json; a video to DIR/NAME. Runs
through mmdet's DetInferencer and the config's visualizer. The checkpoint
must match the config's model (--allow-partial-checkpoint to accept missing
or unexpected keys).
"""
import argparse
import os.path as osp
import sys

from mmyolo_dcnv3.apis import build_inferencer, image_paths, is_video, run_on_images, run_on_video
from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.checkpoint import CheckpointMismatchError
from mmyolo_dcnv3.utils.cli import add_cfg_options_argument, add_partial_checkpoint_argument

register_all_modules(init_default_scope=False)  # modules in the registries, the stack fixes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Draw detections on images, folders or videos (mmyolo-dcnv3).')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('input', help='an image, a folder of images or a video file')
    parser.add_argument('--out', default='outputs/image_demo', help='where results go (default: %(default)s)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='draw detections scoring at least this, in [0, 1] (default: %(default)s)')
    parser.add_argument('--device', default='cpu', help='cpu, cuda or cuda:N (default: %(default)s)')
    add_partial_checkpoint_argument(parser)
    add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    for name in ('config', 'checkpoint'):
        if not osp.isfile(getattr(args, name)):
            parser.error(f'{name} {getattr(args, name)!r} does not exist')
    if not osp.exists(args.input):
        parser.error(f'input {args.input!r} does not exist')
    if not 0.0 <= args.score_thr <= 1.0:
        parser.error(f'--score-thr must be in [0, 1], got {args.score_thr}')
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        images = None if is_video(args.input) else image_paths(args.input)
        inferencer = build_inferencer(args.config, args.checkpoint, args.device,
                                      allow_partial=args.allow_partial_checkpoint, cfg_options=args.cfg_options)
    except FileNotFoundError as error:
        print(f'image_demo.py: error: {error}', file=sys.stderr)
        return 2
    except CheckpointMismatchError as error:
        print(f'image_demo.py: error: {error}\n(--allow-partial-checkpoint draws with it anyway)',
              file=sys.stderr)
        return 2
    if images is None:
        out_file = osp.join(args.out, osp.basename(args.input))
        frames = run_on_video(inferencer, args.input, out_file, args.score_thr)
        print(f'\n{frames} frames: {out_file}')
    else:
        outputs = run_on_images(inferencer, images, args.out, args.score_thr)
        detections = sum(sum(score >= args.score_thr for score in p['scores']) for p in outputs['predictions'])
        print(f'{len(images)} images, {detections} detections scoring >= {args.score_thr}: pictures in '
              f'{osp.join(args.out, "vis")}, all detections in {osp.join(args.out, "preds")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
