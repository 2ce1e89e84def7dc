"""The README's main command, shortened: every phase of tools/demo.py produces its output.

The shortened demo trains for EPOCHS iterations on 8 toy images with a few
large objects and is evaluated on the same images, so that both models reach
a bbox mAP above 0 and the PyTorch/ONNX Runtime comparison compares something.
"""
import json
import os
import shutil
import subprocess
import sys

import cv2
import pytest

from mmyolo_dcnv3.deploy.quantize import quantized_float_paths
from tests.conftest import ROOT, run_command

pytestmark = pytest.mark.integration
EPOCHS = 150  # one iteration each: 8 images, batch 8


@pytest.fixture
def train_equals_val(tmp_path):
    """A toy dataset whose val split is its train split."""
    root = tmp_path / 'data'
    run_command([sys.executable, os.path.join(ROOT, 'tools', 'dataset_makers', 'make_toy_coco.py'), '--out',
                 str(root), '--train-images', '8', '--val-images', '1', '--img-size', '128', '--max-objects', '3',
                 '--min-size', '0.25'])
    shutil.rmtree(root / 'val')
    shutil.copytree(root / 'train', root / 'val')
    shutil.copy(root / 'annotations' / 'instances_train.json', root / 'annotations' / 'instances_val.json')
    return str(root)


def test_shortened_demo_produces_metrics_table_and_pictures(train_equals_val, tmp_path):
    out = tmp_path / 'demo'
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'tools', 'demo.py'), '--out', str(out), '--data', train_equals_val,
         '--epochs', str(EPOCHS), '--latency-images', '2', '--seed', '3'],
        capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    for n in range(1, 8):
        assert f'==> {n}/7' in result.stdout
    for label in ('YOLOv8-n', 'YOLOv8-n + DCNv3'):  # both trainings streamed, with --seed applied
        assert any(line.startswith(f'[{label}]') and line.endswith('seed: 3')
                   for line in result.stdout.splitlines())

    results = json.loads((out / 'results.json').read_text())
    assert set(results['models']) == {'YOLOv8-n', 'YOLOv8-n + DCNv3'}
    for label, r in results['models'].items():
        for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l'):
            assert -1.0 <= r[key] <= 1.0, (label, key)
        assert r['params_m'] > 1 and r['gflops'] > 0 and r['latency_ms'] > 0 and r['train_minutes'] > 0
        assert os.path.isfile(r['checkpoint'])
        # The exported model, evaluated in ONNX Runtime, scores what PyTorch scores (which is above 0).
        assert os.path.isfile(r['onnx']) and r['onnx_latency_ms'] > 0
        assert r['bbox_mAP'] > 0, (label, r['bbox_mAP'])
        assert abs(r['onnx_bbox_mAP'] - r['bbox_mAP']) <= 0.002, (label, r['onnx_bbox_mAP'], r['bbox_mAP'])
        # and its INT8 file keeps the DCNv3 sampling and the decoding in float and is evaluated
        assert quantized_float_paths(r['int8_onnx']) == [] and r['int8_latency_ms'] > 0
        assert 0 <= r['int8_bbox_mAP'] <= 1

    table = (out / 'results.md').read_text().splitlines()
    assert table[0] == '| | YOLOv8-n | YOLOv8-n + DCNv3 |' and len(table) == 16
    assert '| bbox mAP |' in result.stdout and '| bbox mAP, ONNX Runtime (GridSample, opset 18) |' in result.stdout
    assert '| CPU latency per image, ONNX Runtime (ms) |' in result.stdout
    assert '| bbox mAP, ONNX Runtime INT8 |' in result.stdout

    pictures = out / 'pictures'
    for name in ('detections_side_by_side.png', 'dcnv3_sampling_0.png', 'dcnv3_sampling_1.png',
                 'training_curves.png'):
        image = cv2.imread(str(pictures / name))
        assert image is not None and image.size > 0, name
