"""An exported detector run like the PyTorch one: the config's test pipeline and data preprocessor, the network
in ONNX Runtime or OpenVINO, and the detector's own post-processing (needs mmdet, mmyolo).

:func:`detections_from_outputs` turns the file's outputs back into MMDetection
predictions in original image pixels, the way the detector's ``predict``
does, so that the exported model is evaluated with the config's metric.
"""
import copy
import warnings
from typing import Optional, Sequence

import numpy as np
import torch

from ..utils.config import inference_pipeline
from .cpu import integer_dot_path, weight_width_warning
from .yolov8 import read_metadata, set_input_size


def detections_from_outputs(outputs: Sequence[np.ndarray], output_names: Sequence[str], img_metas: Sequence[dict],
                            test_cfg) -> list:
    """Per image an ``InstanceData`` (bboxes in original image pixels, scores,
    labels) from the outputs of an exported :class:`ExportableYOLOv8`.

    Raw outputs are post-processed as MMYOLO's YOLOv8 head does in ``predict``
    (score filter and top ``nms_pre``, back to original pixels, class-wise NMS,
    ``max_per_img``); NMS outputs are taken as they are and mapped back.
    """
    from mmcv.ops import batched_nms
    from mmdet.models.utils import filter_scores_and_topk
    from mmengine.structures import InstanceData
    named = {name: torch.from_numpy(np.asarray(value)) for name, value in zip(output_names, outputs)}
    results = []
    for i, meta in enumerate(img_metas):
        if 'num_dets' in named:
            count = int(named['num_dets'][i, 0])
            result = InstanceData(bboxes=named['det_boxes'][i, :count].clone(),
                                  scores=named['det_scores'][i, :count], labels=named['det_labels'][i, :count])
            result.bboxes = to_original_pixels(result.bboxes, meta)
        else:
            boxes, scores = named['boxes'][i], named['scores'][i]
            score_thr, nms_pre = test_cfg.get('score_thr', -1), test_cfg.get('nms_pre', 100000)
            if test_cfg.get('multi_label', True) and scores.shape[1] > 1:
                scores, labels, keep, _ = filter_scores_and_topk(scores, score_thr, nms_pre)
            else:
                scores, labels = scores.max(1, keepdim=True)
                scores, _, keep, kept = filter_scores_and_topk(scores, score_thr, nms_pre,
                                                                results=dict(labels=labels[:, 0]))
                labels = kept['labels']
            result = InstanceData(bboxes=to_original_pixels(boxes[keep], meta), scores=scores, labels=labels)
            if result.bboxes.numel() > 0:
                detections, keep = batched_nms(result.bboxes, result.scores, result.labels, test_cfg['nms'])
                result = result[keep]
                result.scores = detections[:, -1]
                result = result[:test_cfg.get('max_per_img', 100)]
        height, width = meta['ori_shape'][:2]
        result.bboxes[:, 0::2] = result.bboxes[:, 0::2].clamp(0, width)
        result.bboxes[:, 1::2] = result.bboxes[:, 1::2].clamp(0, height)
        results.append(result)
    return results


class OnnxDetector:
    """An exported file run like the PyTorch detector: the config's test pipeline and
    data preprocessor, the network in a runtime, the detector's post-processing.

    Args:
        cfg: the config the file was exported from.
        path: the .onnx file (written by :func:`export_detector`).
        runtime: ``'onnxruntime'`` or ``'openvino'``; threads: its CPU threads;
        precision: what its float operations compute in (see :class:`OnnxModel`).

    Attributes:
        dot_path: this CPU's integer dot product (:func:`.cpu.integer_dot_path`), read once; an
            INT8 file with 8-bit weights is warned about where it saturates.
    """

    def __init__(self, cfg, path: str, runtime: str = 'onnxruntime', threads: Optional[int] = None,
                 precision: str = 'f32'):
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope
        from mmyolo.registry import MODELS

        from .runtime import OnnxModel
        self.model = OnnxModel(path, runtime, threads, precision)
        self.metadata = read_metadata(path)
        self.dot_path = integer_dot_path()
        warning = weight_width_warning(self.metadata.get('quantization', {}).get('weight_bits'), self.dot_path)
        if warning:
            warnings.warn(f'{path}: {warning}', stacklevel=2)
        self.cfg = copy.deepcopy(cfg)
        set_input_size(self.cfg, tuple(self.metadata['input_size']))
        init_default_scope(self.cfg.get('default_scope', 'mmyolo'))
        self.pipeline = Compose(inference_pipeline(self.cfg))
        self.preprocessor = MODELS.build(self.cfg.model.data_preprocessor)

    def predict_batch(self, data: dict) -> list:
        """Predictions (``InstanceData`` in original image pixels) for a batch as the
        test dataloader gives it (``inputs`` and ``data_samples`` lists)."""
        with torch.no_grad():
            data = self.preprocessor(data, False)
        metas = [sample.metainfo for sample in data['data_samples']]
        inputs = data['inputs'].numpy()
        batch = self.model.input_shape[0]
        if batch is None or batch == len(inputs):
            outputs = self.model(inputs)
        elif batch == 1:  # a file exported for one image at a time
            runs = [self.model(x[None]) for x in inputs]
            outputs = [np.concatenate(parts) for parts in zip(*runs)]
        else:
            raise ValueError(f'{self.model.path} takes batches of {batch}, got {len(inputs)} images')
        return detections_from_outputs(outputs, self.model.output_names, metas, self.cfg.model.test_cfg)

    def describe(self) -> str:
        """What runs, e.g. 'onnxruntime, INT8 (keep-float recipe, 7-bit weights, made for onnxruntime; integer
        dot products: AVX-512 VNNI) with float parts in f32'."""
        quantization = self.metadata.get('quantization')
        if not quantization:
            return f'{self.model.runtime}, {self.model.precision}'
        bits = quantization.get('weight_bits')
        weights = f'{bits}-bit weights' if bits else "the quantiser's own weights"
        return (f'{self.model.runtime}, INT8 ({quantization["recipe"]} recipe, {weights}, made for '
                f'{quantization["backend"]}; integer dot products: {self.dot_path.name}) with float parts in '
                f'{self.model.precision}')

    def predict(self, image_path: str):
        """Predictions for one image file."""
        sample = self.pipeline(dict(img_path=image_path, img_id=0))
        return self.predict_batch(dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]))[0]


def to_original_pixels(bboxes: torch.Tensor, meta: dict) -> torch.Tensor:
    """xyxy boxes in network-input pixels -> original image pixels (undo letterbox padding and scaling)."""
    if 'pad_param' in meta:
        top, _, left, _ = (float(v) for v in meta['pad_param'])
        bboxes = bboxes - bboxes.new_tensor([left, top, left, top])
    scale_w, scale_h = (float(v) for v in meta['scale_factor'])
    return bboxes / bboxes.new_tensor([scale_w, scale_h, scale_w, scale_h])
