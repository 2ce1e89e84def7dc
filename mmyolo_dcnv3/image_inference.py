"""Detections drawn on images, folders of images and videos, through mmdet's ``DetInferencer``.

What ``tools/image_demo.py`` runs; usable from Python too::

    inferencer = build_inferencer('configs/yolov8_s_dcnv3_coco.py', 'best.pth')
    outputs = run_on_images(inferencer, image_paths('my_images/'), 'results/', score_thr=0.3)
"""
import os
import os.path as osp
from typing import List

from mmengine.config import Config

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')


def is_video(path: str) -> bool:
    return osp.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)


def image_paths(path: str) -> List[str]:
    """The image at ``path``, or the images directly in folder ``path`` (sorted by name)."""
    if osp.isdir(path):
        images = sorted(osp.join(path, name) for name in os.listdir(path)
                        if name.lower().endswith(IMAGE_EXTENSIONS) and osp.isfile(osp.join(path, name)))
        if not images:
            raise FileNotFoundError(f'{path!r} holds no images ({", ".join(IMAGE_EXTENSIONS)})')
        return images
    if osp.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS):
        return [path]
    raise FileNotFoundError(f'{path!r} is not an image ({", ".join(IMAGE_EXTENSIONS)}), a video '
                            f'({", ".join(VIDEO_EXTENSIONS)}) or a folder of images')


def build_inferencer(config: str, checkpoint: str, device: str = 'cpu', allow_partial: bool = False):
    """mmdet's DetInferencer for a config and checkpoint, with the checkpoint checked strictly.

    ``DetInferencer`` itself loads any checkpoint leniently (mismatched keys
    only logged), so the model is loaded again with
    :func:`mmyolo_dcnv3.checkpoint.load_checkpoint_strictly`, which raises
    ``CheckpointMismatchError`` naming the missing and unexpected keys
    unless ``allow_partial``. Raised before anything is drawn or written.
    """
    from mmdet.apis import DetInferencer

    from .checkpoint import load_checkpoint_strictly
    cfg = Config.fromfile(config)
    inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device,
                               scope=cfg.get('default_scope', 'mmdet'))
    load_checkpoint_strictly(inferencer.model, checkpoint, allow_partial=allow_partial, map_location=device)
    return inferencer


def run_on_images(inferencer, images: List[str], out_dir: str, score_thr: float = 0.3) -> dict:
    """Draws the detections of every image into ``out_dir/vis/`` and writes them to ``out_dir/preds/*.json``.

    Boxes, class names and scores of detections scoring at least
    ``score_thr`` are drawn; the JSON files hold every detection
    (``bboxes`` in original image pixels x1, y1, x2, y2; ``labels``;
    ``scores``). A progress bar runs over the images. Returns the
    inferencer's output (``predictions``: one dict per image).
    """
    return inferencer(images, out_dir=out_dir, pred_score_thr=score_thr, no_save_pred=False)


def run_on_video(inferencer, video: str, out_file: str, score_thr: float = 0.3) -> int:
    """Writes ``video`` with the detections of every frame drawn into ``out_file``; returns the frame count."""
    import cv2
    import mmcv
    from mmengine.utils import ProgressBar

    reader = mmcv.VideoReader(video)
    if reader.frame_cnt == 0:
        raise ValueError(f'{video!r}: no frames could be read')
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*('mp4v' if out_file.lower().endswith('.mp4') else 'XVID'))
    writer = cv2.VideoWriter(out_file, fourcc, reader.fps, (reader.width, reader.height))
    visualizer = inferencer.visualizer
    inferencer.show_progress = False  # one bar for the whole video, not one per frame
    progress = ProgressBar(reader.frame_cnt)
    frames = 0
    try:
        for frame in reader:  # BGR, as the test pipeline's loader expects
            prediction = inferencer(frame, return_datasamples=True)['predictions'][0]
            visualizer.add_datasample('frame', mmcv.bgr2rgb(frame), prediction, draw_gt=False,
                                      pred_score_thr=score_thr)
            writer.write(mmcv.rgb2bgr(visualizer.get_image()))
            frames += 1
            progress.update()
    finally:
        writer.release()
    return frames
