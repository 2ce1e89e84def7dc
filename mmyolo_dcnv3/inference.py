"""Single-image inference helpers for the tools (loading, preprocessing, prediction)."""
import copy
from typing import Tuple

import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.registry import init_default_scope


def load_detector(config: str, checkpoint: str, device: str = 'cpu'):
    """A detector from a config file and checkpoint, in eval mode, with its test pipeline."""
    from mmdet.apis import init_detector
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmyolo'))
    model = init_detector(cfg, checkpoint, device=device)
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
