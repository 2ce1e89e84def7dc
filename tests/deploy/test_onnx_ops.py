"""The op's ONNX translations against the op itself, in ONNX Runtime and OpenVINO."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmyolo_dcnv3.ops import dcnv3, sampling_locations
from tests.conftest import require_deployment_stack

require_deployment_stack()

from mmyolo_dcnv3.deploy import OnnxModel, check_translation, dcnv3_translation_table, export_onnx, onnx_domains  # noqa: E402
from mmyolo_dcnv3.deploy.onnx_ops import deformconv_point_order  # noqa: E402

TOLERANCE = 1e-4


def case(kernel=(3, 3), stride=1, pad=None, dilation=1, group=4, group_channels=8, offset_scale=1.0,
         remove_center=False, size=(9, 11)):
    kernel_h, kernel_w = kernel
    pad_h, pad_w = pad if pad is not None else ((dilation * (kernel_h - 1)) // 2, (dilation * (kernel_w - 1)) // 2)
    return dict(kernel_h=kernel_h, kernel_w=kernel_w, stride_h=stride, stride_w=stride, pad_h=pad_h, pad_w=pad_w,
                dilation_h=dilation, dilation_w=dilation, group=group, group_channels=group_channels,
                offset_scale=offset_scale, remove_center=remove_center, size=size)


CASES = {
    '1x1': case(kernel=(1, 1), group=1, group_channels=16),
    '3x3': case(),
    '5x5 group 8': case(kernel=(5, 5), group=8, group_channels=4),
    '3x5 pad_h != pad_w': case(kernel=(3, 5), pad=(0, 2)),
    'stride 2': case(stride=2),
    'dilation 2': case(dilation=2, size=(12, 10)),
    'stride 2, dilation 2, 5x3': case(kernel=(5, 3), stride=2, dilation=2, pad=(3, 1), size=(13, 12)),
    'remove_center 3x3': case(remove_center=True),
    'remove_center 5x5 offset_scale 2': case(kernel=(5, 5), remove_center=True, offset_scale=2.0, group=1,
                                             group_channels=8),
    'offset_scale 0.5': case(offset_scale=0.5, group=8, group_channels=2),
    'offset_scale 2 stride 2': case(offset_scale=2.0, stride=2, pad=(2, 0)),
}
OP_ARGS = ('kernel_h', 'kernel_w', 'stride_h', 'stride_w', 'pad_h', 'pad_w', 'dilation_h', 'dilation_w', 'group',
           'group_channels', 'offset_scale')


def op_args(c):
    return [c[k] for k in OP_ARGS] + [256, c['remove_center']]


class OpOnly(torch.nn.Module):
    """The op on given input, offset and mask, for each case: one graph holds the sweep."""

    def __init__(self, cases):
        super().__init__()
        self.cases = [op_args(c) for c in cases]

    def forward(self, *tensors):
        return tuple(dcnv3(*tensors[3 * i:3 * i + 3], *args) for i, args in enumerate(self.cases))


def op_inputs(c, batch=2, seed=0):
    """Unit-scale input and mask; offsets of a few pixels, many reaching outside the image."""
    g = torch.Generator().manual_seed(seed)
    height, width = c['size']
    points = c['kernel_h'] * c['kernel_w'] - c['remove_center']
    height_out = (height + 2 * c['pad_h'] - c['dilation_h'] * (c['kernel_h'] - 1) - 1) // c['stride_h'] + 1
    width_out = (width + 2 * c['pad_w'] - c['dilation_w'] * (c['kernel_w'] - 1) - 1) // c['stride_w'] + 1
    input = torch.randn(batch, height, width, c['group'] * c['group_channels'], generator=g)
    offset = 3 * torch.randn(batch, height_out, width_out, c['group'] * points * 2, generator=g)
    mask = torch.rand(batch, height_out, width_out, c['group'] * points, generator=g)
    return input, offset, mask


def samples_outside(c, input, offset):
    """Whether some sampling location lies entirely outside the image."""
    x, y = sampling_locations(offset, c['kernel_h'], c['kernel_w'], c['stride_h'], c['stride_w'], c['pad_h'],
                              c['pad_w'], c['dilation_h'], c['dilation_w'], c['group'], c['offset_scale'],
                              c['remove_center'])
    return bool(((x <= -1) | (y <= -1) | (x >= input.shape[2]) | (y >= input.shape[1])).any())


@pytest.fixture(scope='module', params=['gridsample', 'deformconv'])
def exported_sweep(request, tmp_path_factory):
    """(translation, ONNX file, numpy inputs, the op's outputs) for all CASES in one graph."""
    cases = list(CASES.values())
    inputs = [t for i, c in enumerate(cases) for t in op_inputs(c, seed=i)]
    model = OpOnly(cases).eval()
    expected = [out.numpy() for out in model(*inputs)]
    path = export_onnx(model, tuple(inputs), str(tmp_path_factory.mktemp('sweep') / f'{request.param}.onnx'),
                       translation=request.param)
    return request.param, path, [t.numpy() for t in inputs], expected


def assert_matches_every_case(outputs, expected):
    assert len(outputs) == len(expected) == len(CASES)
    errors = {name: float(np.abs(actual - wanted).max()) if actual.shape == wanted.shape else actual.shape
              for name, actual, wanted in zip(CASES, outputs, expected)}
    assert all(isinstance(e, float) and e <= TOLERANCE for e in errors.values()), errors


def test_sweep_reaches_outside_the_image():
    for i, (name, c) in enumerate(CASES.items()):
        input, offset, _ = op_inputs(c, seed=i)
        assert samples_outside(c, input, offset), name


def test_translation_matches_the_op_in_onnxruntime(exported_sweep):
    _, path, inputs, expected = exported_sweep
    assert onnx_domains(path) == ['']  # standard ONNX operators only
    assert_matches_every_case(OnnxModel(path, 'onnxruntime')(*inputs), expected)


def test_gridsample_translation_matches_the_op_in_openvino(exported_sweep):
    translation, path, inputs, expected = exported_sweep
    if translation != 'gridsample':
        pytest.skip('OpenVINO has no DeformConv')
    pytest.importorskip('openvino')
    assert_matches_every_case(OnnxModel(path, 'openvino')(*inputs), expected)


class PredictedOffsets(torch.nn.Module):
    """Offsets and mask predicted from the input by a conv of the op's geometry, so
    that every shape follows from the input's: what a DCNv3 layer does."""

    def __init__(self, c):
        super().__init__()
        channels = c['group'] * c['group_channels']
        points = c['kernel_h'] * c['kernel_w'] - c['remove_center']
        self.conv = torch.nn.Conv2d(channels, c['group'] * points * 3, (c['kernel_h'], c['kernel_w']),
                                    (c['stride_h'], c['stride_w']), (c['pad_h'], c['pad_w']),
                                    (c['dilation_h'], c['dilation_w']))
        self.points, self.args = points, op_args(c)
        self.group = c['group']

    def forward(self, input):
        branch = self.conv(input.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        offset, mask = branch.split([self.group * self.points * 2, self.group * self.points], dim=-1)
        return dcnv3(input, 4 * offset, F.softmax(mask, dim=-1), *self.args)


@pytest.mark.parametrize('translation', ['gridsample', 'deformconv'])
def test_dynamic_batch_and_size_are_read_from_the_graph(tmp_path, translation):
    c = CASES['offset_scale 2 stride 2']
    model = PredictedOffsets(c).eval()
    torch.manual_seed(0)
    example = torch.randn(2, 12, 14, 32)
    dims = {0: torch.export.Dim('batch', max=64), 1: torch.export.Dim('height', min=4, max=512),
            2: torch.export.Dim('width', min=4, max=512)}
    path = export_onnx(model, (example,), str(tmp_path / 'dynamic.onnx'), translation=translation,
                       input_names=['input'], dynamic_shapes=({**dims},))
    session = OnnxModel(path, 'onnxruntime')
    for shape in [(1, 9, 17, 32), (3, 20, 8, 32)]:
        x = torch.randn(*shape)
        (actual,) = session(x.numpy())
        expected = model(x).detach().numpy()
        assert actual.shape == expected.shape
        assert np.abs(actual - expected).max() <= TOLERANCE


def test_deformconv_point_order_is_row_major_with_the_centre_in_the_zero_slot():
    # DCNv3 3x3: p = column * 3 + row; DeformConv: k = row * 3 + column.
    assert deformconv_point_order(3, 3, False).tolist() == [0, 3, 6, 1, 4, 7, 2, 5, 8]
    # Centre removed: DCNv3 points 0..7 skip full index 4; the centre reads slot 8 (zeros).
    assert deformconv_point_order(3, 3, True).tolist() == [0, 3, 5, 1, 8, 6, 2, 4, 7]


@pytest.mark.parametrize('translation, opset, message', [
    ('gridsample', 15, 'GridSample exists from opset 16'),
    ('deformconv', 18, 'DeformConv exists from opset 19'),
    ('nearest', 18, 'translation must be one of gridsample, deformconv'),
])
def test_unsupported_translation_or_opset_is_refused(translation, opset, message):
    with pytest.raises(ValueError, match=message):
        check_translation(translation, opset)


def test_missing_runtime_says_what_to_install(exported_sweep, monkeypatch):
    path = exported_sweep[1]
    monkeypatch.setitem(sys.modules, 'openvino', None)
    with pytest.raises(ImportError, match=r"'openvino' is not installed.*pip install \"mmyolo-dcnv3\[deploy\]\""):
        OnnxModel(path, 'openvino')


def test_missing_onnxscript_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'onnxscript', None)
    with pytest.raises(ImportError, match=r'needs onnx and onnxscript.*pip install "mmyolo-dcnv3\[deploy\]"'):
        dcnv3_translation_table('gridsample', 18)


def test_op_translations_import_and_export_without_openmmlab(tmp_path):
    """mmyolo_dcnv3.deploy's op part with mmcv, mmengine, mmdet and mmyolo unimportable."""
    script = f'''
import importlib.abc, importlib.util, sys
BLOCKED = {{'mmcv', 'mmengine', 'mmdet', 'mmyolo'}}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED:
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name.split('.')[0] in BLOCKED else real_find_spec(name, *a)
import torch
from mmyolo_dcnv3.ops import dcnv3
from mmyolo_dcnv3.deploy import OnnxModel, export_onnx
class M(torch.nn.Module):
    def forward(self, x, offset, mask):
        return dcnv3(x, offset, mask, 3, 3, 1, 1, 1, 1, 1, 1, 1, 4, 1.0)
args = (torch.randn(1, 5, 5, 4), torch.randn(1, 5, 5, 18), torch.rand(1, 5, 5, 9))
path = export_onnx(M(), args, {str(tmp_path / 'op.onnx')!r})
(out,) = OnnxModel(path)(*(a.numpy() for a in args))
assert abs(out - M()(*args).numpy()).max() < 1e-4
assert not BLOCKED & {{m.split('.')[0] for m in sys.modules}}
print('ok')
'''
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert result.returncode == 0 and result.stdout.strip().endswith('ok'), result.stderr[-3000:]
