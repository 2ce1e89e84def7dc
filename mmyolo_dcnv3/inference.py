"""Single-image inference helpers for the tools (loading, preprocessing, prediction)."""
import copy
from typing import Tuple

import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope

from mmyolo_dcnv3.checkpoint import load_checkpoint_strictly


def _dataset_meta(checkpoint: dict, cfg: Config) -> dict:
    """Class names (and palette) of a detector: the checkpoint's, else those of its config's test set."""
    meta = checkpoint.get('meta', {}).get('dataset_meta')
    if meta:
        return {key.lower(): value for key, value in meta.items()}
    from mmdet.registry import DATASETS
    dataset = cfg.test_dataloader.dataset
    metainfo = dataset.get('metainfo') or getattr(DATASETS.get(dataset.type), 'METAINFO', None)
    if not metainfo or 'classes' not in metainfo:
        raise ValueError('the checkpoint has no meta.dataset_meta and the config\'s test dataset names no '
                         'classes (test_dataloader.dataset.metainfo): cannot tell the class names')
    return dict(metainfo)


def load_detector(config: str, checkpoint: str, device: str = 'cpu', allow_partial: bool = False):
    """A detector from a config file and checkpoint, in eval mode, with its test pipeline.

    The checkpoint must match the config's model (else
    :class:`~mmyolo_dcnv3.checkpoint.CheckpointMismatchError` names the
    differing keys) unless ``allow_partial``. The class names come from the
    checkpoint's ``dataset_meta``, else from the config's test dataset.
    """
    from mmdet.registry import MODELS
    from mmengine.model.utils import revert_sync_batchnorm
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmyolo'))
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    loaded = load_checkpoint_strictly(model, checkpoint, allow_partial=allow_partial)
    model.dataset_meta = _dataset_meta(loaded, cfg)
    model.cfg = cfg
    model.to(device).eval()
    # Inference needs no annotations.
    pipeline = [copy.deepcopy(t) for t in cfg.test_dataloader.dataset.pipeline
                if 'LoadAnnotations' not in str(t['type'])]
    return model, Compose(pipeline)


def preprocess(model, pipeline, image_path: str) -> dict:
    """The batch of one image, as model.test_step takes it."""
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
