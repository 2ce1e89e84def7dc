"""The environment that tools/setup_env.sh builds."""
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pinned_versions():
    pins = {}
    with open(os.path.join(ROOT, 'requirements', 'constraints.txt')) as f:
        for line in f:
            match = re.match(r'^([A-Za-z0-9_.-]+)==([^\s#]+)', line)
            if match:
                pins[match.group(1).lower()] = match.group(2)
    return pins


@pytest.mark.parametrize('package', ['mmcv', 'mmengine', 'mmdet', 'mmyolo'])
def test_openmmlab_packages_are_at_their_pinned_versions(package):
    module = pytest.importorskip(package)
    assert module.__version__ == pinned_versions()[package]


def test_mmcv_compiled_ops_run():
    from mmcv.ops import nms
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert dets.shape == (2, 5)


def test_mim_command_works():
    mim = shutil.which('mim') or os.path.join(os.path.dirname(sys.executable), 'mim')
    result = subprocess.run([mim, '--version'], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f'mim, version {pinned_versions()["openmim"]}'


def test_torch_is_in_the_supported_range():
    major, minor = (int(x) for x in torch.__version__.split('+')[0].split('.')[:2])
    assert (2, 4) <= (major, minor) <= (2, 14)


def test_package_imports_with_its_compiled_kernels():
    import mmyolo_dcnv3
    from mmyolo_dcnv3.ops._library import compiled_kernels
    assert re.match(r'^\d+\.\d+\.\d+', mmyolo_dcnv3.__version__)
    assert compiled_kernels().available('cpu'), compiled_kernels().why_missing('cpu')
    if torch.version.cuda is not None and shutil.which('nvcc'):
        # The CUDA library builds, links and loads here even without a GPU.
        assert compiled_kernels().available('cuda'), compiled_kernels().why_missing('cuda')
