"""Every shipped config trains the way a user launches it: `mim train` of a config of theirs that inherits it.

Each shipped config is inherited (``_base_ = 'mmyolo_dcnv3::...'``) by a user
config that only points it at two toy images (the config's own pipelines,
model and schedule otherwise) and trains one iteration and one validation
through `mim train mmyolo` (`mim train mmdet` for the MMDetection configs),
without pretrained weights (the tests have no network).
"""
import glob
import os
import sys

import pytest

from tests.conftest import ROOT, TOY_CLASSES, run_command

pytestmark = pytest.mark.integration
MIM = os.path.join(os.path.dirname(sys.executable), 'mim')
CONFIGS = sorted(os.path.relpath(path, os.path.join(ROOT, 'configs'))
                 for path in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '_base_' not in path)
NUM = len(TOY_CLASSES)
# Each family's class count, and no pretrained backbone.
MODEL = {
    'yolo': f'dict(bbox_head=dict(head_module=dict(num_classes={NUM})), '
            f'train_cfg=dict(assigner=dict(num_classes={NUM})))',
    'faster-rcnn': f'dict(backbone=dict(init_cfg=None), roi_head=dict(bbox_head=dict(num_classes={NUM})))',
    # score_thr 0: after one iteration RetinaNet scores nothing above its 0.05, and COCO evaluation
    # of an empty result prints no metrics.
    'retinanet': f'dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes={NUM}), test_cfg=dict(score_thr=0.0))',
    'rtmdet': f'dict(backbone=dict(init_cfg=None), bbox_head=dict(head_module=dict(num_classes={NUM})), '
              f'train_cfg=dict(assigner=dict(num_classes={NUM})))',
}
USER_CONFIG = """_base_ = 'mmyolo_dcnv3::{config}'
data_root = '{root}'
metainfo = dict(classes={classes})
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False, dataset=dict(
    data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_train.json',
    data_prefix=dict(img='train/')))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False, dataset=dict(
    data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val.json', data_prefix=dict(img='val/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file='{root}annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
load_from = None
model = {model}
"""


@pytest.fixture(scope='module')
def two_images(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('two_images')) + '/'
    run_command([sys.executable, os.path.join(ROOT, 'tools', 'dataset_makers', 'make_toy_coco.py'), '--out', root,
                 '--train-images', '2', '--val-images', '1', '--img-size', '128', '--max-objects', '3',
                 '--min-size', '0.25'])
    return root


def family(config):
    name = os.path.basename(config)
    return next((key for key in ('faster-rcnn', 'retinanet', 'rtmdet') if name.startswith(key)), 'yolo')


def test_every_shipped_config_is_covered():
    assert len(CONFIGS) == 14 and 'demo/yolov8_n_toy.py' in CONFIGS and 'yolov8_x_dcnv3_coco.py' in CONFIGS


# YOLOv8-l and -x inherit YOLOv8-m's pipeline and schedule through MMYOLO's configs (only depth, width
# and the MixUp probability differ) and are the slowest to train: they run in make test-slow.
SLOW_CONFIGS = ('yolov8_l_dcnv3_coco.py', 'yolov8_x_dcnv3_coco.py')


@pytest.mark.parametrize('config', [pytest.param(c, marks=pytest.mark.slow) if c in SLOW_CONFIGS else c
                                    for c in CONFIGS])
def test_shipped_config_trains_an_iteration_through_mim_from_a_user_config(config, two_images, tmp_path):
    work = tmp_path / 'my_project'
    work.mkdir()
    (work / 'my_config.py').write_text(USER_CONFIG.format(config=config, root=two_images, classes=TOY_CLASSES,
                                                          model=MODEL[family(config)]))
    package = 'mmdet' if config.startswith('mmdet/') else 'mmyolo'
    result = run_command([MIM, 'train', package, 'my_config.py', '--gpus', '0', '--work-dir', 'work'], cwd=str(work))
    log = result.stdout + result.stderr
    assert 'Epoch(train) [1][1/1]' in log, log[-3000:]
    assert 'coco/bbox_mAP' in log and (work / 'work' / 'epoch_1.pth').is_file()
