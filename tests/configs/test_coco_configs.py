"""The five YOLOv8-DCNv3 COCO configs: build, run in every mode, train."""
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmyolo_dcnv3.models import DCNv3, YOLOv8CSPDarknetDCNv3
from mmyolo_dcnv3.utils import register_all_modules

register_all_modules(init_default_scope=False)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZES = ['n', 's', 'm', 'l', 'x']
IMAGE = 128


def build_detector(size):
    from mmyolo.registry import MODELS
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', f'yolov8_{size}_dcnv3_coco.py'))
    init_default_scope('mmyolo')
    model = MODELS.build(cfg.model)
    model.init_weights()
    return cfg, model


def training_batch(num_classes=80):
    """Two images with two boxes each, as yolov5_collate makes them."""
    inputs = torch.randint(0, 256, (2, 3, IMAGE, IMAGE), dtype=torch.uint8)
    # (image index, label, x1, y1, x2, y2)
    boxes = torch.tensor([[0, 1, 10, 12, 60, 70], [0, 5, 70, 20, 120, 90],
                          [1, 2, 30, 30, 100, 110], [1, 79 % num_classes, 5, 60, 40, 120]], dtype=torch.float32)
    return dict(inputs=inputs, data_samples=dict(bboxes_labels=boxes))


def test_every_size_uses_dcnv3_in_the_last_two_stages():
    for size in SIZES:
        cfg, model = build_detector(size)
        assert isinstance(model.backbone, YOLOv8CSPDarknetDCNv3)
        stages = [any(isinstance(m, DCNv3) for m in getattr(model.backbone, f'stage{i}').modules())
                  for i in range(1, 5)]
        assert stages == [False, False, True, True], size
        assert cfg.custom_imports == dict(imports=['mmyolo_dcnv3'], allow_failed_imports=False)


@pytest.mark.parametrize('size', ['n', 's'] + [pytest.param(size, marks=pytest.mark.integration)
                                               for size in ('m', 'l', 'x')])
def test_config_runs_tensor_loss_and_predict_modes_with_finite_dcnv3_gradients(size):
    from mmdet.structures import DetDataSample
    _, model = build_detector(size)
    model.train()
    data = model.data_preprocessor(training_batch(), training=True)
    losses = model(**data, mode='loss')
    total = sum(v.sum() for k, v in losses.items() if 'loss' in k)
    total.backward()
    dcnv3_grads = [(name, p.grad) for name, p in model.named_parameters() if '.dcnv3.' in name]
    assert dcnv3_grads, 'no DCNv3 parameters found'
    for name, grad in dcnv3_grads:
        assert grad is not None and torch.isfinite(grad).all(), name
    # Offsets and masks start at zero but do receive gradient.
    assert any(g.abs().sum() > 0 for n, g in dcnv3_grads if n.endswith('offset.weight'))

    model.eval()
    samples = [DetDataSample(metainfo=dict(img_shape=(IMAGE, IMAGE), ori_shape=(IMAGE, IMAGE),
                                           scale_factor=(1.0, 1.0), pad_param=[0.0, 0.0, 0.0, 0.0],
                                           batch_input_shape=(IMAGE, IMAGE)))
               for _ in range(2)]
    inputs = torch.rand(2, 3, IMAGE, IMAGE)
    with torch.no_grad():
        feats = model(inputs, mode='tensor')
        predictions = model(inputs, samples, mode='predict')
    cls_scores, bbox_preds = feats  # one tensor per level (strides 8, 16, 32)
    assert len(cls_scores) == len(bbox_preds) == 3
    assert all(torch.isfinite(t).all() for t in (*cls_scores, *bbox_preds))
    assert len(predictions) == 2
    assert isinstance(predictions[0].pred_instances, InstanceData)


def test_yolov8_s_state_dict_loads_with_only_dcnv3_weights_missing():
    import mmyolo
    from mmyolo.registry import MODELS
    plain_cfg = Config.fromfile(os.path.join(os.path.dirname(mmyolo.__file__), '.mim', 'configs', 'yolov8',
                                             'yolov8_s_syncbn_fast_8xb16-500e_coco.py'))
    init_default_scope('mmyolo')
    plain = MODELS.build(plain_cfg.model)
    _, dcnv3 = build_detector('s')
    result = dcnv3.load_state_dict(plain.state_dict(), strict=False)
    assert result.missing_keys and all('.conv2.conv.' in k for k in result.missing_keys)
    assert all('.dcnv3.' in k for k in result.missing_keys)
    # The plain 3x3 weights those DCNv3 layers replace are the only leftovers.
    assert result.unexpected_keys and all(k.endswith('.conv2.conv.weight') for k in result.unexpected_keys)
    assert len(result.unexpected_keys) == sum(1 for k in dcnv3.state_dict()
                                              if k.endswith('.conv2.conv.dcnv3.offset.weight'))
