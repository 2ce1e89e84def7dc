"""Multi-class NMS as a ``torch.library`` op and its ONNX translation (NonMaxSuppression).

torch's torch.export-based ONNX exporter ignores ``autograd.Function.symbolic``,
so NMS in an exported graph is an op of its own (:func:`multiclass_nms`, which
runs mmcv's ``batched_nms`` in PyTorch) with a ``custom_translation_table``
entry (:func:`nms_translation_table`).
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from .onnx_ops import import_onnxscript


@dataclass(frozen=True)
class NmsSettings:
    """What ONNX NonMaxSuppression keeps: per class, boxes scoring above
    ``score_threshold`` not overlapping a better one by IoU above
    ``iou_threshold``; then the ``max_detections`` best of all classes."""

    score_threshold: float
    iou_threshold: float
    max_detections: int

    def __post_init__(self):
        if not 0 <= self.iou_threshold <= 1:
            raise ValueError(f'iou_threshold must lie in [0, 1], got {self.iou_threshold}')
        if not -1 <= self.score_threshold < 1:
            raise ValueError(f'score_threshold must lie in [-1, 1), got {self.score_threshold}')
        if isinstance(self.max_detections, bool) or not isinstance(self.max_detections, int) \
                or self.max_detections < 1:
            raise ValueError(f'max_detections must be a positive int, got {self.max_detections!r}')

    @classmethod
    def from_test_cfg(cls, test_cfg, score_threshold: Optional[float] = None,
                      iou_threshold: Optional[float] = None, max_detections: Optional[int] = None):
        """The settings of a config's ``model.test_cfg``, each overridable."""
        return cls(score_threshold=float(test_cfg.get('score_thr', 0.0) if score_threshold is None
                                         else score_threshold),
                   iou_threshold=float(test_cfg['nms']['iou_threshold'] if iou_threshold is None
                                       else iou_threshold),
                   max_detections=int(test_cfg.get('max_per_img', 100) if max_detections is None
                                      else max_detections))


@torch.library.custom_op('mmyolo_dcnv3_deploy::multiclass_nms', mutates_args=())
def multiclass_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, score_threshold: float,
                   max_detections: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Class-wise NMS with a fixed-size, padded result (exported as ONNX NonMaxSuppression).

    Args:
        boxes: (N, A, 4) xyxy; scores: (N, A, num_classes) in [0, 1].

    Returns:
        num_dets (N, 1) int64; det_boxes (N, max_detections, 4); det_scores
        (N, max_detections); det_labels (N, max_detections) int64. Each image's
        detections come first, best first; the rest is zeros (labels -1).
    """
    from mmcv.ops import batched_nms
    n = boxes.shape[0]
    num_dets = torch.zeros(n, 1, dtype=torch.int64, device=boxes.device)
    det_boxes = boxes.new_zeros(n, max_detections, 4)
    det_scores = scores.new_zeros(n, max_detections)
    det_labels = torch.full((n, max_detections), -1, dtype=torch.int64, device=boxes.device)
    for i in range(n):
        anchors, labels = (scores[i] > score_threshold).nonzero(as_tuple=True)
        if len(anchors) == 0:
            continue
        candidates, candidate_scores = boxes[i, anchors], scores[i, anchors, labels]
        _, keep = batched_nms(candidates, candidate_scores, labels, dict(type='nms', iou_threshold=iou_threshold))
        keep = keep[:max_detections]
        count = len(keep)
        num_dets[i, 0] = count
        det_boxes[i, :count], det_scores[i, :count] = candidates[keep], candidate_scores[keep]
        det_labels[i, :count] = labels[keep]
    return num_dets, det_boxes, det_scores, det_labels


@multiclass_nms.register_fake
def _multiclass_nms_fake(boxes, scores, iou_threshold, score_threshold, max_detections):
    n = boxes.shape[0]
    return (boxes.new_empty(n, 1, dtype=torch.int64), boxes.new_empty(n, max_detections, 4),
            scores.new_empty(n, max_detections), boxes.new_empty(n, max_detections, dtype=torch.int64))


def nms_translation_table(opset: int) -> dict:
    """``custom_translation_table`` entry: ``multiclass_nms`` as ONNX NonMaxSuppression,
    then a per-image top-k of the survivors, padded to ``max_detections``."""
    onnxscript = import_onnxscript()
    import onnx
    op = onnxscript.values.Opset('', max(opset, 18))
    FLOAT = onnxscript.FLOAT

    def const(value):
        return op.Constant(value=onnx.numpy_helper.from_array(np.asarray(value)))

    def multiclass_nms(boxes: FLOAT, scores: FLOAT, iou_threshold: float, score_threshold: float,
                       max_detections: int):
        class_scores = op.Transpose(scores, perm=[0, 2, 1])                            # (N, C, A)
        selected = op.NonMaxSuppression(boxes, class_scores, const(np.int64([max_detections])),
                                        const(np.float32([iou_threshold])),
                                        const(np.float32([score_threshold])), center_point_box=0)  # (K, 3)
        image = op.Gather(selected, const(np.int64(0)), axis=1)
        label = op.Gather(selected, const(np.int64(1)), axis=1)
        anchor = op.Gather(selected, const(np.int64(2)), axis=1)
        selected_scores = op.GatherND(class_scores, selected)                           # (K,)
        selected_boxes = op.GatherND(boxes, op.Concat(op.Unsqueeze(image, const(np.int64([1]))),
                                                      op.Unsqueeze(anchor, const(np.int64([1]))), axis=1))
        # Rank each image's survivors: (N, K) scores, -1 where a survivor is another image's.
        images = op.Range(const(np.int64(0)), op.Squeeze(op.Shape(scores, start=0, end=1)), const(np.int64(1)))
        mine = op.Equal(op.Unsqueeze(images, const(np.int64([1]))), op.Unsqueeze(image, const(np.int64([0]))))
        ranked = op.Where(mine, op.Unsqueeze(selected_scores, const(np.int64([0]))),
                          op.CastLike(const(np.float32(-1)), scores))
        count = op.Min(op.Shape(selected, start=0, end=1), const(np.int64([max_detections])))
        top_scores, top = op.TopK(ranked, count, axis=1, largest=1, sorted=1)             # (N, k)
        valid = op.GreaterOrEqual(top_scores, op.CastLike(const(np.float32(0)), scores))
        num_dets = op.ReduceSum(op.Cast(valid, to=onnx.TensorProto.INT64), const(np.int64([1])), keepdims=1)
        det_scores = op.Where(valid, top_scores, op.CastLike(const(np.float32(0)), scores))
        det_boxes = op.Where(op.Unsqueeze(valid, const(np.int64([2]))), op.Gather(selected_boxes, top, axis=0),
                             op.CastLike(const(np.float32(0)), scores))
        det_labels = op.Where(valid, op.Gather(label, top, axis=0), const(np.int64(-1)))
        missing = op.Sub(const(np.int64([max_detections])), count)
        zero = const(np.int64([0]))
        det_scores = op.Pad(det_scores, op.Concat(zero, zero, zero, missing, axis=0))
        det_labels = op.Pad(det_labels, op.Concat(zero, zero, zero, missing, axis=0), const(np.int64(-1)))
        det_boxes = op.Pad(det_boxes, op.Concat(zero, zero, zero, zero, missing, zero, axis=0))
        return num_dets, det_boxes, det_scores, det_labels

    return {torch.ops.mmyolo_dcnv3_deploy.multiclass_nms.default: multiclass_nms}
