"""Inference with a trained detector: load it, predict on one image, draw on images, folders of images and videos.

What ``tools/image_demo.py`` and the other tools run; usable from Python::

    model, pipeline = load_detector('configs/yolov8_s_dcnv3_coco.py', 'best.pth')
    result = predict(model, pipeline, 'image.jpg')            # InstanceData: bboxes, scores, labels

    inferencer = build_inferencer('configs/yolov8_s_dcnv3_coco.py', 'best.pth')
    outputs = run_on_images(inferencer, image_paths('my_images/'), 'results/', score_thr=0.3)

The checkpoint must match the config's model (``CheckpointMismatchError``
names the differing keys) unless ``allow_partial``.
"""
import os
import os.path as osp
from typing import List, Optional, Tuple, Union

import torch
from mmengine.config import Config
from mmengine.dataset import Compose

from ..utils.checkpoint import load_checkpoint_strictly
from ..utils.config import build_detector, dataset_meta, inference_pipeline, load_config

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')


def _config(config: Union[str, Config], cfg_options: Optional[dict]) -> Config:
    return load_config(config, cfg_options) if isinstance(config, str) else config


def load_detector(config: Union[str, Config], checkpoint: str, device: str = 'cpu', allow_partial: bool = False,
                  cfg_options: Optional[dict] = None):
    """(detector in eval mode, its inference pipeline) from a config (file or loaded) and a checkpoint.

    The class names (``model.dataset_meta``) come from the checkpoint, else from the config's test set.
    """
    cfg = _config(config, cfg_options)
    model = build_detector(cfg)
    loaded = load_checkpoint_strictly(model, checkpoint, allow_partial=allow_partial)
    model.dataset_meta = dataset_meta(cfg, loaded)
    model.cfg = cfg
    model.to(device).eval()
    return model, Compose(inference_pipeline(cfg))


def preprocess(model, pipeline, image_path: str) -> dict:
    """The batch of one image, as ``model.test_step`` takes it."""
    data = pipeline(dict(img_path=image_path, img_id=0))
    return dict(inputs=[data['inputs']], data_samples=[data['data_samples']])


@torch.no_grad()
def predict(model, pipeline, image_path: str):
    """Predictions (InstanceData: bboxes in original image pixels, scores, labels) for one image."""
    return model.test_step(preprocess(model, pipeline, image_path))[0].pred_instances


@torch.no_grad()
def network_input(model, pipeline, image_path: str) -> Tuple[torch.Tensor, dict]:
    """The normalised (1, 3, H, W) tensor the network sees, and the image's metainfo
    (scale_factor, pad_param) that maps original pixels to it."""
    data = model.data_preprocessor(preprocess(model, pipeline, image_path), False)
    return data['inputs'], data['data_samples'][0].metainfo


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


def build_inferencer(config: Union[str, Config], checkpoint: str, device: str = 'cpu', allow_partial: bool = False,
                     cfg_options: Optional[dict] = None):
    """mmdet's ``DetInferencer`` for a config and checkpoint, the checkpoint checked strictly.

    ``DetInferencer`` itself loads any checkpoint leniently (mismatched keys
    only logged), so the model is loaded again with
    :func:`~mmyolo_dcnv3.utils.checkpoint.load_checkpoint_strictly`, before
    anything is drawn or written.
    """
    from mmdet.apis import DetInferencer
    cfg = _config(config, cfg_options)
    inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device, scope=cfg.get('default_scope', 'mmdet'))
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
