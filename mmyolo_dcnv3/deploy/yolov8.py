"""The exportable YOLOv8 detector: the deployment graph, its metadata, and its export to ONNX (needs mmdet, mmyolo).

:class:`ExportableYOLOv8` wraps a built MMYOLO YOLOv8 detector (with or without
DCNv3) so that it takes the preprocessed image batch and returns what a
deployment needs, and :func:`export_detector` writes it to ONNX with the
DCNv3 translations and the metadata (:func:`deployment_metadata`) that a
runtime-side script needs (:func:`read_metadata`).
"""
import copy
import json
from dataclasses import asdict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..utils.config import class_names, inference_pipeline
from .export import export_onnx
from .nms import NmsSettings, multiclass_nms, nms_translation_table
from .onnx_ops import DEFAULT_OPSET, check_translation

RAW_OUTPUTS = ('boxes', 'scores')
NMS_OUTPUTS = ('num_dets', 'det_boxes', 'det_scores', 'det_labels')
METADATA_KEY = 'mmyolo_dcnv3'


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
        if type(head.bbox_coder).__name__ != 'DistancePointBBoxCoder':
            raise TypeError('ExportableYOLOv8 decodes boxes as YOLOv8\'s DistancePointBBoxCoder does, got a '
                            f'{type(head.bbox_coder).__name__}')
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
        boxes = decode_distances(priors, distances, strides)
        scores = scores.sigmoid()
        if not self.multi_label:
            scores = scores * (scores == scores.amax(-1, keepdim=True))
        if self.nms is None:
            return boxes, scores
        return multiclass_nms(boxes, scores, self.nms.iou_threshold, self.nms.score_threshold,
                              self.nms.max_detections)


def decode_distances(priors: torch.Tensor, distances: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """xyxy boxes (N, A, 4) from YOLOv8's (left, top, right, bottom) distances (N, A, 4) in
    strides (A,) around the prior centres (A, 2 or more; x, y first), as MMYOLO's
    ``DistancePointBBoxCoder.decode`` computes them.

    Written with slices: the coder's ``points[..., 0]`` indexing exports as a
    Gather with a scalar index, after which OpenVINO 2026.4 fails to compile
    any INT8 (QDQ) version of the graph (a Reshape's shape inference).
    """
    distances = distances * strides[None, :, None]
    centres = priors[None, :, :2]
    return torch.cat([centres - distances[..., :2], centres + distances[..., 2:]], -1)


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


def preprocess_images(cfg, data_preprocessor: nn.Module, image_paths: Sequence[str],
                      input_size: Tuple[int, int]) -> Tuple[torch.Tensor, List[dict]]:
    """The network input (N, 3, H, W) of image files through the config's test pipeline at
    ``input_size`` (``cfg`` is changed to it) and ``data_preprocessor`` (the detector's),
    and each image's metainfo."""
    from mmengine.dataset import Compose
    set_input_size(cfg, input_size)
    pipeline = Compose(inference_pipeline(cfg))
    samples = [pipeline(dict(img_path=path, img_id=i)) for i, path in enumerate(image_paths)]
    with torch.no_grad():
        data = data_preprocessor(dict(inputs=[s['inputs'] for s in samples],
                                      data_samples=[s['data_samples'] for s in samples]), False)
    return data['inputs'], [sample.metainfo for sample in data['data_samples']]


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
    """The metadata :func:`export_detector` stored in an ONNX file (numpy-free JSON), or
    that an OpenVINO IR (.xml) made from one carries (OpenVINO keeps it in ``rt_info``)."""
    if path.endswith('.xml'):
        import openvino
        model = openvino.Core().read_model(path)
        if model.has_rt_info(['framework', METADATA_KEY]):
            return json.loads(model.get_rt_info(['framework', METADATA_KEY]).astype(str))
    else:
        import onnx
        model = onnx.load(path, load_external_data=False)
        for prop in model.metadata_props:
            if prop.key == METADATA_KEY:
                return json.loads(prop.value)
    raise ValueError(f'{path} was not written by mmyolo_dcnv3 (no {METADATA_KEY!r} metadata); '
                     'export it with tools/deployment/export_onnx.py')


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
