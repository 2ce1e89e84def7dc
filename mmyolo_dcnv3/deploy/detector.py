"""The exportable YOLOv8 detector and the post-processing of its outputs (needs mmdet, mmyolo).

:class:`ExportableYOLOv8` wraps a built MMYOLO YOLOv8 detector (with or without
DCNv3) so that it takes the preprocessed image batch and returns what a
deployment needs, and :func:`export_detector` writes it to ONNX with the
DCNv3 translations. :func:`detections_from_outputs` turns the file's outputs
back into MMDetection predictions in original image pixels, the way the
detector's own ``predict`` does, so that the exported model is evaluated with
the config's metric.
"""
import copy
import json
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .export import export_onnx
from .onnx_ops import DEFAULT_OPSET, check_translation, import_onnxscript

RAW_OUTPUTS = ('boxes', 'scores')
NMS_OUTPUTS = ('num_dets', 'det_boxes', 'det_scores', 'det_labels')
METADATA_KEY = 'mmyolo_dcnv3'


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


class ExportableYOLOv8(nn.Module):
    """A YOLOv8 detector (MMYOLO's, with or without DCNv3) as a deployment graph.

    Input: ``images`` (N, 3, H, W) float, preprocessed as the detector's data
    preprocessor does (channel order and normalisation); H and W multiples of
    the largest stride.

    Outputs without ``nms``: ``boxes`` (N, A, 4) decoded xyxy in input pixels
    and ``scores`` (N, A, num_classes) in [0, 1], for each of the A anchor
    points of all levels. With ``nms``: ``num_dets`` (N, 1), ``det_boxes``
    (N, M, 4), ``det_scores`` (N, M), ``det_labels`` (N, M), M =
    ``nms.max_detections`` (see :func:`multiclass_nms`).

    Args:
        detector: a built ``YOLODetector`` whose head is a YOLOv8 head (has a
            ``head_module``, ``prior_generator`` and ``bbox_coder``).
        nms: NMS settings, or None for the raw outputs.
    """

    def __init__(self, detector: nn.Module, nms: Optional[NmsSettings] = None):
        super().__init__()
        head = getattr(detector, 'bbox_head', None)
        if head is None or not all(hasattr(head, a) for a in ('head_module', 'prior_generator', 'bbox_coder')):
            raise TypeError(f'ExportableYOLOv8 needs a YOLOv8 detector (a bbox_head with head_module, '
                            f'prior_generator and bbox_coder), got {type(detector).__name__} with head '
                            f'{type(head).__name__}')
        self.detector = detector
        self.nms = nms
        test_cfg = head.test_cfg or {}
        # Without multi-label NMS only each anchor's best class competes.
        self.multi_label = bool(test_cfg.get('multi_label', True)) and head.num_classes > 1

    @property
    def output_names(self) -> Tuple[str, ...]:
        return RAW_OUTPUTS if self.nms is None else NMS_OUTPUTS

    def forward(self, images: torch.Tensor):
        head = self.detector.bbox_head
        cls_scores, bbox_preds = head.head_module(self.detector.extract_feat(images))[:2]
        sizes = [score.shape[2:] for score in cls_scores]
        priors = torch.cat(head.prior_generator.grid_priors(sizes, dtype=images.dtype, device=images.device))
        strides = torch.cat([priors.new_full((size[0] * size[1] * head.num_base_priors,), stride)
                             for size, stride in zip(sizes, head.featmap_strides)])
        n = images.shape[0]
        scores = torch.cat([s.permute(0, 2, 3, 1).reshape(n, -1, head.num_classes) for s in cls_scores], 1)
        distances = torch.cat([b.permute(0, 2, 3, 1).reshape(n, -1, 4) for b in bbox_preds], 1)
        boxes = head.bbox_coder.decode(priors[None], distances, strides)
        scores = scores.sigmoid()
        if not self.multi_label:
            scores = scores * (scores == scores.amax(-1, keepdim=True))
        if self.nms is None:
            return boxes, scores
        return multiclass_nms(boxes, scores, self.nms.iou_threshold, self.nms.score_threshold,
                              self.nms.max_detections)


def network_input_size(cfg) -> Tuple[int, int]:
    """(height, width) that the config's test pipeline letterboxes images to."""
    for transform in cfg.test_dataloader.dataset.pipeline:
        if 'LetterResize' in str(transform['type']):
            width, height = transform['scale']
            return int(height), int(width)
    raise ValueError('the test pipeline has no LetterResize; give the input size (--img-size H W)')


def set_input_size(cfg, input_size: Tuple[int, int]) -> None:
    """Makes the config's test pipeline resize and letterbox to (height, width)."""
    height, width = input_size
    for transform in cfg.test_dataloader.dataset.pipeline:
        if 'scale' in transform:
            transform['scale'] = (width, height)


def first_test_image(cfg) -> str:
    """The path of the first image of the config's test set."""
    from mmengine.registry import init_default_scope
    from mmyolo.registry import DATASETS
    init_default_scope(cfg.get('default_scope', 'mmyolo'))
    dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset_cfg.update(pipeline=[], lazy_init=False)
    try:
        dataset = DATASETS.build(dataset_cfg)
    except (FileNotFoundError, OSError) as error:
        raise FileNotFoundError(f"the config's test set cannot be read ({error}); give an image instead") from error
    return dataset.get_data_info(0)['img_path']


def preprocess_images(cfg, detector: nn.Module, image_paths: Sequence[str],
                      input_size: Tuple[int, int]) -> Tuple[torch.Tensor, List[dict]]:
    """The network input (N, 3, H, W) of images through the config's test pipeline at
    ``input_size`` and the detector's data preprocessor, and each image's metainfo."""
    from mmengine.dataset import Compose
    set_input_size(cfg, input_size)
    pipeline = Compose([copy.deepcopy(t) for t in cfg.test_dataloader.dataset.pipeline
                        if 'LoadAnnotations' not in str(t['type'])])
    samples = [pipeline(dict(img_path=path, img_id=i)) for i, path in enumerate(image_paths)]
    with torch.no_grad():
        data = detector.data_preprocessor(dict(inputs=[s['inputs'] for s in samples],
                                               data_samples=[s['data_samples'] for s in samples]), False)
    return data['inputs'], [sample.metainfo for sample in data['data_samples']]


def class_names(cfg) -> List[str]:
    """The detector's class names: the config's dataset metainfo, else its dataset class's."""
    from mmyolo.registry import DATASETS
    dataset = cfg.test_dataloader.dataset
    metainfo = dataset.get('metainfo') or {}
    if 'classes' in metainfo:
        return list(metainfo['classes'])
    dataset_type = dataset.get('type')
    dataset_class = DATASETS.get(dataset_type) if isinstance(dataset_type, str) else dataset_type
    return list(getattr(dataset_class, 'METAINFO', {}).get('classes', ()))


def deployment_metadata(cfg, input_size: Tuple[int, int], nms: Optional[NmsSettings], translation: str,
                        opset: int) -> Dict:
    """What a script needs to feed the file and read its outputs, stored in the file."""
    preprocessor = cfg.model.data_preprocessor
    pad_value = 114
    for transform in cfg.test_dataloader.dataset.pipeline:
        if 'LetterResize' in str(transform['type']):
            pad_value = transform.get('pad_val', {}).get('img', pad_value)
    test_cfg = cfg.model.test_cfg
    return dict(
        input_size=list(input_size), letterbox_pad_value=pad_value,
        mean=list(preprocessor.get('mean', [0, 0, 0])), std=list(preprocessor.get('std', [1, 1, 1])),
        bgr_to_rgb=bool(preprocessor.get('bgr_to_rgb', False)), classes=class_names(cfg),
        outputs=list(RAW_OUTPUTS if nms is None else NMS_OUTPUTS),
        nms=None if nms is None else asdict(nms),
        postprocess=dict(score_threshold=float(test_cfg.get('score_thr', 0.0)),
                         iou_threshold=float(test_cfg['nms']['iou_threshold']),
                         max_detections=int(test_cfg.get('max_per_img', 100)),
                         multi_label=bool(test_cfg.get('multi_label', True))),
        dcnv3_translation=translation, opset=opset)


def read_metadata(path: str) -> Dict:
    """The metadata :func:`export_detector` stored in an ONNX file (numpy-free JSON)."""
    import onnx
    model = onnx.load(path, load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise ValueError(f'{path} was not written by mmyolo_dcnv3 (no {METADATA_KEY!r} metadata); '
                     'export it with tools/export_onnx.py')


def export_detector(detector: nn.Module, cfg, path: str, *, input_size: Optional[Tuple[int, int]] = None,
                    batch_size: int = 1, dynamic: bool = False, translation: str = 'gridsample',
                    opset: Optional[int] = None, nms: Optional[NmsSettings] = None) -> Tuple[str, torch.Tensor]:
    """Exports ``detector`` (built from ``cfg``, weights loaded, eval mode) to ``path``.

    Args:
        input_size: (height, width) of the network input; default the test
            pipeline's letterbox size. Multiples of the largest stride.
        batch_size: the batch of the file (unless ``dynamic``).
        dynamic: batch, height and width dynamic in the file.
        translation, opset: the DCNv3 translation (see :mod:`.onnx_ops`).
        nms: put NMS in the graph with these settings, or None for raw outputs.

    Returns:
        (path, the example input used to export).
    """
    opset = DEFAULT_OPSET.get(translation, 18) if opset is None else opset
    check_translation(translation, opset)
    height, width = network_input_size(cfg) if input_size is None else input_size
    largest_stride = max(detector.bbox_head.featmap_strides)
    if height % largest_stride or width % largest_stride or height <= 0 or width <= 0:
        raise ValueError(f'input size must be positive multiples of the largest stride {largest_stride}, '
                         f'got height {height}, width {width}')
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f'batch_size must be a positive int, got {batch_size!r}')
    wrapper = ExportableYOLOv8(detector, nms).eval()
    # torch.export treats a dimension of size 1 as fixed: a dynamic batch is traced with 2.
    example = torch.rand(max(batch_size, 2) if dynamic else batch_size, 3, height, width)
    dynamic_shapes = None
    if dynamic:
        # Height and width stay multiples of the largest stride.
        dynamic_shapes = ({0: torch.export.Dim('batch', min=1, max=256),
                           2: largest_stride * torch.export.Dim('height_blocks', min=1, max=128),
                           3: largest_stride * torch.export.Dim('width_blocks', min=1, max=128)},)
    extra = nms_translation_table(opset) if nms is not None else None
    export_onnx(wrapper, (example,), path, translation=translation, opset=opset, input_names=['images'],
                output_names=list(wrapper.output_names), dynamic_shapes=dynamic_shapes, extra_translations=extra)
    import onnx
    model = onnx.load(path)
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(
        deployment_metadata(cfg, (height, width), nms, translation, opset))})
    onnx.save(model, path)
    return path, example


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
        runtime: ``'onnxruntime'`` or ``'openvino'``; threads: its CPU threads.
    """

    def __init__(self, cfg, path: str, runtime: str = 'onnxruntime', threads: Optional[int] = None):
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope
        from mmyolo.registry import MODELS

        from .runtime import OnnxModel
        self.model = OnnxModel(path, runtime, threads)
        self.cfg = copy.deepcopy(cfg)
        set_input_size(self.cfg, tuple(read_metadata(path)['input_size']))
        init_default_scope(self.cfg.get('default_scope', 'mmyolo'))
        self.pipeline = Compose([t for t in self.cfg.test_dataloader.dataset.pipeline
                                 if 'LoadAnnotations' not in str(t['type'])])
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
