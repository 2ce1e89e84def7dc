"""INT8 quantisation keeps each DCNv3 layer's sampling and the decoding in float, quantises every other
Conv/MatMul, and refuses what it cannot quantise.

A small network (stem conv, a DCNv3 block, head conv, a softmax-and-sum
decoding) is exported in both translations and quantised with random
calibration images: the graph rules do not depend on the weights. The
accuracy of a trained detector after quantisation is checked on the deploy
tests' trained toy model (tests/deploy/test_exported_detector.py).
"""
import os
import platform
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from tests.conftest import require_deployment_stack

require_deployment_stack()

import onnx  # noqa: E402

from mmyolo_dcnv3.deploy import OnnxModel, export_onnx  # noqa: E402
from mmyolo_dcnv3.deploy.quantize import (  # noqa: E402
    MIN_CALIBRATION_IMAGES,
    calibration_indices,
    float_scope,
    quantize,
    quantized_float_paths,
    sampling_inputs,
)
from mmyolo_dcnv3.deploy.yolov8 import METADATA_KEY, read_metadata  # noqa: E402
from mmyolo_dcnv3.models.layers.dcnv3 import DCNv3  # noqa: E402

SIZE = 32


class TinyDetector(nn.Module):
    """stem conv -> DCNv3 -> conv -> DCNv3 -> head conv -> per-pixel softmax over 4 bins, summed as
    YOLOv8's DFL does, and a sigmoid score: every kind of node the rules care about."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.dcn1 = DCNv3(16, group=2)
        self.middle = nn.Conv2d(16, 16, 3, padding=1)
        self.dcn2 = DCNv3(16, group=4)
        self.head = nn.Conv2d(16, 5, 1)
        self.register_buffer('bins', torch.arange(4, dtype=torch.float32))

    def forward(self, images):
        x = torch.relu(self.stem(images))
        x = self.dcn1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = torch.relu(self.middle(x))
        x = self.dcn2(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        logits = self.head(x)
        distance = (logits[:, :4].softmax(1) * self.bins[None, :, None, None]).sum(1)
        return distance, logits[:, 4].sigmoid()


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    """{translation: float ONNX file with our metadata}."""
    torch.manual_seed(0)
    model = TinyDetector().eval()
    for dcn in (model.dcn1, model.dcn2):  # offsets and masks start at zero: give them something to do
        nn.init.normal_(dcn.offset.weight, std=0.1)
        nn.init.normal_(dcn.mask.weight, std=0.1)
    folder = tmp_path_factory.mktemp('tiny')
    files = {}
    for translation in ('gridsample', 'deformconv'):
        path = str(folder / f'{translation}.onnx')
        export_onnx(model, (torch.rand(1, 3, SIZE, SIZE),), path, translation=translation,
                    input_names=['images'], output_names=['distance', 'score'])
        graph = onnx.load(path)
        onnx.helper.set_model_props(graph, {METADATA_KEY: '{"input_size": [32, 32]}'})
        onnx.save(graph, path)
        files[translation] = path
    return files


@pytest.fixture(scope='module')
def quantized(exported, tmp_path_factory):
    """quantized(translation, backend, recipe, weight_bits) -> the tiny model's file quantised so; each
    combination is quantised once per module, then shared by the tests that read it."""
    folder = tmp_path_factory.mktemp('quantized')
    made = {}

    def make(translation='gridsample', backend='onnxruntime', recipe='keep-float', weight_bits=None):
        key = (translation, backend, recipe, weight_bits)
        if key not in made:
            out = str(folder / ('_'.join(map(str, key)) + ('.onnx' if backend == 'onnxruntime' else '.xml')))
            scope = quantize(exported[translation], out, calibration(), backend=backend, recipe=recipe,
                             weight_bits=weight_bits)
            made[key] = out, scope
        return made[key]
    return make


def calibration(count=MIN_CALIBRATION_IMAGES):
    return np.random.default_rng(0).random((count, 3, SIZE, SIZE), dtype=np.float32)


def node_types(path, names):
    nodes = {n.name: n.op_type for n in onnx.load(path).graph.node}
    return sorted(nodes[name] for name in names)


@pytest.mark.parametrize('translation', ['gridsample', 'deformconv'])
def test_float_scope_is_each_layers_sampling_and_the_decoding(exported, translation):
    scope = float_scope(exported[translation])
    assert scope.dcnv3_layers == 2
    sampler = 'GridSample' if translation == 'gridsample' else 'DeformConv'
    sampling = node_types(exported[translation], scope.sampling)
    assert sampling.count(sampler) == 2 and sampling.count('Softmax') == 2
    assert not {'Conv', 'MatMul', 'Gemm'} & set(sampling)
    # the offset and mask heads of both layers, and the head conv
    assert node_types(exported[translation], scope.boundary) == ['Conv'] + ['MatMul'] * 4
    decoding = node_types(exported[translation], scope.decoding)
    assert {'Softmax', 'Sigmoid', 'ReduceSum'} <= set(decoding) and 'Conv' not in decoding


@pytest.mark.parametrize('translation, backend', [('gridsample', 'onnxruntime'), ('deformconv', 'onnxruntime'),
                                                  ('gridsample', 'openvino')])
def test_keep_float_recipe_leaves_sampling_and_decoding_unquantised(quantized, translation, backend):
    """No QuantizeLinear/DequantizeLinear (ONNX Runtime's QDQ file) or FakeQuantize (OpenVINO's IR) on a
    path into a sampling grid, offset or mask or into an output; every other Conv/MatMul quantised."""
    if backend == 'openvino':
        pytest.importorskip('nncf')
    out, scope = quantized(translation, backend)
    assert scope.dcnv3_layers == 2
    assert quantized_float_paths(out) == []
    graph = onnx.load(out).graph if backend == 'onnxruntime' else None
    if graph is not None:
        assert any(n.op_type == 'QuantizeLinear' for n in graph.node)
    else:
        import openvino
        assert any(op.get_type_name() == 'FakeQuantize' for op in openvino.Core().read_model(out).get_ops())
    assert len(sampling_inputs(out)) == 4  # found again through the inserted nodes
    distance, score = OnnxModel(out, backend)(calibration(1))
    assert distance.shape == (1, SIZE, SIZE) and np.isfinite(distance).all() and 0 <= score.min()


@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_the_rule_is_found_in_the_openvino_model_as_in_the_onnx_graph(exported, backend):
    """float_scope on OpenVINO's model of the file finds the same layers as on the ONNX graph."""
    pytest.importorskip('openvino')
    import openvino
    onnx_scope = float_scope(exported['gridsample'])
    model = onnx.load(exported['gridsample']) if backend == 'onnxruntime' else openvino.Core().read_model(
        exported['gridsample'])
    scope = float_scope(model)
    assert scope.dcnv3_layers == onnx_scope.dcnv3_layers == 2
    # OpenVINO names the nodes it makes of an ONNX node after it ('node_Conv_3/WithoutBiases')
    assert {name.split('/')[0] for name in scope.boundary} == set(onnx_scope.boundary)


@pytest.mark.parametrize('recipe', ['quantize-all', 'defaults'])
def test_recipes_that_quantise_everything_break_the_rule(quantized, recipe):
    """The check the tool runs on its output finds what these recipes quantise: it can fail."""
    out, _ = quantized(recipe=recipe)
    problems = quantized_float_paths(out)
    assert any(p.startswith('DCNv3 sampling input') for p in problems)
    assert any(p.startswith("graph output 'distance'") for p in problems)


def test_a_float_conv_outside_the_scope_is_reported(exported, tmp_path, monkeypatch):
    """A quantisation that also leaves the stem conv in float: the check names it."""
    from dataclasses import replace

    from mmyolo_dcnv3.deploy import quantize as quantize_module
    stem = [n.name for n in onnx.load(exported['gridsample']).graph.node if n.op_type == 'Conv'][0]
    structural = quantize_module.float_scope
    monkeypatch.setattr(quantize_module, 'float_scope',
                        lambda model: replace(structural(model), boundary=structural(model).boundary + (stem,)))
    out = str(tmp_path / 'int8.onnx')
    quantize(exported['gridsample'], out, calibration())
    assert quantized_float_paths(out) == [f"Conv {stem!r} is not quantised"]


def test_quantize_records_the_settings_in_the_metadata(exported, tmp_path):
    import json
    out = str(tmp_path / 'int8.onnx')
    scope = quantize(exported['gridsample'], out, calibration(), settings=dict(calibration_split='val'))
    metadata = json.loads({p.key: p.value for p in onnx.load(out).metadata_props}[METADATA_KEY])
    assert metadata['input_size'] == [32, 32]
    assert metadata['quantization'] == dict(calibration_split='val', backend='onnxruntime', recipe='keep-float',
                                            calibration_images=MIN_CALIBRATION_IMAGES, weight_bits=7,
                                            float_nodes=len(scope.nodes))
    # ONNX Runtime keeps the convolution feeding the decoding float; the offset and mask heads run INT8
    assert node_types(exported['gridsample'], scope.boundary) == ['Conv']
    with pytest.raises(ValueError, match='already quantised; quantise the float file'):
        quantize(out, str(tmp_path / 'twice.onnx'), calibration())


def weight_range(path):
    """The largest |value| of the int8 weights of a QDQ file or an OpenVINO IR."""
    if path.endswith('.xml'):
        import openvino
        weights = [op.get_data() for op in openvino.Core().read_model(path).get_ops()
                   if op.get_type_name() == 'Constant' and op.get_element_type().get_type_name() == 'i8']
    else:
        from onnx import numpy_helper
        weights = [numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer
                   if i.data_type == onnx.TensorProto.INT8]
    assert weights
    return max(int(np.abs(w.astype(np.int32)).max()) for w in weights)


@pytest.mark.parametrize('backend, recipe', [('onnxruntime', 'keep-float'), ('onnxruntime', 'quantize-all'),
                                             ('openvino', 'keep-float')])
def test_weights_take_7_bits_unless_8_are_asked_for(quantized, backend, recipe):
    """7-bit weights reach at most 64 in magnitude, so that a pair of products fits the 16-bit
    saturating sum of CPUs without VNNI (2 * 255 * 64 < 2**15); 8-bit ones use the int8 range."""
    if backend == 'openvino':
        pytest.importorskip('nncf')
    (seven, _), (eight, _) = (quantized(backend=backend, recipe=recipe, weight_bits=bits) for bits in (7, 8))
    assert weight_range(seven) <= 64 and 2 * 255 * weight_range(seven) < 2 ** 15
    assert weight_range(eight) == 127
    assert [read_metadata(p)['quantization']['weight_bits'] for p in (seven, eight)] == [7, 8]


QEMU = shutil.which('qemu-x86_64')
# A file's outputs for the images of a .npy file, one at a time, with nothing but numpy and ONNX Runtime.
RUN_FILE = ('import sys, numpy as np, onnxruntime as ort\n'
            's = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])\n'
            'runs = [s.run(None, {s.get_inputs()[0].name: x[None]}) for x in np.load(sys.argv[2])]\n'
            'np.savez(sys.argv[3], *[np.concatenate(o) for o in zip(*runs)])\n')


@pytest.mark.skipif(QEMU is None or platform.machine() != 'x86_64',
                    reason='runs ONNX Runtime on an emulated AVX2 CPU: needs qemu-user (apt install qemu-user)')
def test_7_bit_weights_compute_the_same_on_a_cpu_without_vnni(quantized, tmp_path):
    """ONNX Runtime picks its INT8 kernels from the CPU it runs on, and qemu-x86_64 -cpu Haswell presents
    an AVX2 CPU without VNNI (saturating 16-bit pair sums): a 7-bit file gives the same outputs there as
    on this CPU, to float rounding. Where this CPU has VNNI, an 8-bit file must differ: the comparison
    sees saturation."""
    from mmyolo_dcnv3.deploy.cpu import integer_dot_path
    images = tmp_path / 'images.npy'
    np.save(images, calibration(4))
    differences = {}
    for bits in (7, 8):
        model, _ = quantized(weight_bits=bits)
        outputs = []
        for emulator in ([], [QEMU, '-cpu', 'Haswell']):
            out = str(tmp_path / f'w{bits}_{len(emulator)}.npz')
            subprocess.run([*emulator, sys.executable, '-c', RUN_FILE, model, str(images), out], check=True,
                           capture_output=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS='1'))
            outputs.append(np.load(out))
        differences[bits] = max(float(np.abs(outputs[0][k] - outputs[1][k]).max()) for k in outputs[0])
    print(f'largest |this CPU - Haswell| by weight width: {differences}')  # shown by pytest -rA
    assert differences[7] <= 1e-4, differences
    if integer_dot_path().vnni:
        assert differences[8] > 1e-3, differences


def test_quantize_refuses_bad_input(exported, tmp_path):
    out = str(tmp_path / 'int8.onnx')
    with pytest.raises(ValueError, match='backend must be one of onnxruntime, openvino'):
        quantize(exported['gridsample'], out, calibration(), backend='tensorrt')
    with pytest.raises(ValueError, match=r'the openvino INT8 model is written as \.xml'):
        quantize(exported['gridsample'], out, calibration(), backend='openvino')
    with pytest.raises(ValueError, match='recipe must be one of'):
        quantize(exported['gridsample'], out, calibration(), recipe='fast')
    for weight_bits in (6, 8.0, True):
        with pytest.raises(ValueError, match=f'weight_bits must be 7 or 8, got {weight_bits}'):
            quantize(exported['gridsample'], out, calibration(), weight_bits=weight_bits)
    with pytest.raises(ValueError, match="the 'defaults' recipe takes the quantiser's own, got weight_bits=8"):
        quantize(exported['gridsample'], out, calibration(), recipe='defaults', weight_bits=8)
    with pytest.raises(ValueError, match=r'images must be float32 \(N, 3, H, W\), got float64'):
        quantize(exported['gridsample'], out, calibration().astype(np.float64))
    bare = str(tmp_path / 'bare.onnx')
    graph = onnx.load(exported['gridsample'])
    del graph.metadata_props[:]
    onnx.save(graph, bare)
    with pytest.raises(ValueError, match='was not written by mmyolo_dcnv3'):
        quantize(bare, out, calibration())


def test_calibration_indices_spread_over_the_dataset_and_refuse_too_few():
    assert calibration_indices(100, 8) == [0, 14, 28, 42, 57, 71, 85, 99]
    with pytest.raises(ValueError, match=f'at least {MIN_CALIBRATION_IMAGES} images, got 3'):
        calibration_indices(100, 3)
    with pytest.raises(ValueError, match='9 calibration images asked for, but the dataset has only 8'):
        calibration_indices(8, 9)


def test_a_missing_backend_package_says_how_to_install_it(exported, tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def without_nncf(name, *args, **kwargs):
        if name == 'nncf':
            raise ImportError('No module named nncf')
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, '__import__', without_nncf)
    hint = r'INT8 for openvino needs openvino and nncf .*pip install "mmyolo-dcnv3\[deploy\]"'
    with pytest.raises(ImportError, match=hint):
        quantize(exported['gridsample'], str(tmp_path / 'int8.xml'), calibration(), backend='openvino')


def test_float_precision_is_asked_for_and_reported(exported):
    """OpenVINO compiles for the precision asked (f32 unless told), and says what it compiled for; ONNX
    Runtime, which has f32 only, refuses another."""
    pytest.importorskip('openvino')
    assert OnnxModel(exported['gridsample'], 'openvino').precision == 'f32'
    assert OnnxModel(exported['gridsample']).precision == 'f32'
    # bf16 runs where the CPU has it; elsewhere OpenVINO falls back to f32 and says so
    assert OnnxModel(exported['gridsample'], 'openvino', precision='bf16').precision in ('bf16', 'f32')
    with pytest.raises(ValueError, match="precision 'bf16' needs runtime 'openvino'"):
        OnnxModel(exported['gridsample'], precision='bf16')
    with pytest.raises(ValueError, match='precision must be one of f32, bf16, f16'):
        OnnxModel(exported['gridsample'], 'openvino', precision='int8')
