"""A trained YOLOv8-n-DCNv3 exported to ONNX gives PyTorch's outputs, detections and mAP.

The checks on the trained model share a short training (TRAIN_ITERATIONS on 8
toy images) and three exports: a few CPU minutes, so they are marked slow
(`pytest -m slow tests/deploy`); the shortened demo (tests/tools/test_demo.py)
checks the ONNX Runtime mAP of both demo models in the default run.
"""
import copy
import json
import os
import sys

import numpy as np
import pytest
import torch

from tests.conftest import TOY_CLASSES, load_tool, refusal, require_deployment_stack, save_initialised_checkpoint
from tests.conftest import run_command as run

pytest.importorskip('mmyolo')
require_deployment_stack()

from mmengine.config import Config  # noqa: E402

from mmyolo_dcnv3.deploy import OnnxModel, export_onnx, onnx_domains  # noqa: E402
from mmyolo_dcnv3.deploy.nms import NmsSettings, multiclass_nms, nms_translation_table  # noqa: E402
from mmyolo_dcnv3.deploy.onnx_detector import OnnxDetector  # noqa: E402
from mmyolo_dcnv3.deploy.yolov8 import (  # noqa: E402
    ExportableYOLOv8,
    export_detector,
    network_input_size,
    preprocess_images,
    read_metadata,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(ROOT, 'tools')
EXPORT_TOOL = os.path.join(TOOLS, 'deployment', 'export_onnx.py')
TEST_ONNX_TOOL = os.path.join(TOOLS, 'deployment', 'test_onnx.py')
QUANTIZE_TOOL = os.path.join(TOOLS, 'deployment', 'quantize_onnx.py')
DCNV3_CONFIG = os.path.join(ROOT, 'configs', 'demo', 'yolov8_n_dcnv3_toy.py')
PLAIN_CONFIG = os.path.join(ROOT, 'configs', 'demo', 'yolov8_n_toy.py')
IMAGE_SIZE = 128
TRAIN_ITERATIONS = 100


def data_options(root):
    """Train and test on the same 8 images: a model trained for a few iterations
    finds some of them, so that the mAP comparison compares something."""
    ann = root + 'annotations/instances_train.json'
    split = dict(ann_file='annotations/instances_train.json', data_prefix=dict(img='train/'))
    options = {'train_dataloader.dataset.data_root': root, 'train_dataloader.batch_size': 8,
               'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
               'val_evaluator.ann_file': ann, 'test_evaluator.ann_file': ann}
    for loader in ('val_dataloader', 'test_dataloader'):
        options.update({f'{loader}.dataset.data_root': root, f'{loader}.dataset.ann_file': split['ann_file'],
                        f'{loader}.dataset.data_prefix.img': 'train/', f'{loader}.num_workers': 0,
                        f'{loader}.persistent_workers': False})
    return options


def as_cli(options):
    return ['--cfg-options'] + [f'{key}={value}' for key, value in options.items()]


@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('toy_coco')) + '/'
    run([sys.executable, os.path.join(TOOLS, 'dataset_makers', 'make_toy_coco.py'), '--out', root,
         '--train-images', '8', '--val-images', '2', '--img-size', str(IMAGE_SIZE), '--max-objects', '3',
         '--min-size', '0.25'])
    return root


def toy_config(path, root):
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(data_options(root))
    return cfg


@pytest.fixture(scope='module')
def trained(toy, tmp_path_factory):
    """(cfg, checkpoint, detector): YOLOv8-n-DCNv3 after TRAIN_ITERATIONS iterations on the toy images."""
    work_dir = str(tmp_path_factory.mktemp('train'))
    options = dict(data_options(toy), **{
        'train_cfg.max_epochs': TRAIN_ITERATIONS, 'train_cfg.val_interval': TRAIN_ITERATIONS,
        'train_cfg.dynamic_intervals': None, 'default_hooks.param_scheduler.max_epochs': TRAIN_ITERATIONS,
        'default_hooks.param_scheduler.warmup_mim_iter': 5, 'default_hooks.checkpoint.interval': TRAIN_ITERATIONS,
        'default_hooks.checkpoint.save_best': None, 'optim_wrapper.optimizer.lr': 0.01,
        'custom_hooks': [], 'randomness.seed': 0})
    run([sys.executable, os.path.join(TOOLS, 'train.py'), DCNV3_CONFIG, '--work-dir', work_dir, *as_cli(options)])
    checkpoint = os.path.join(work_dir, f'epoch_{TRAIN_ITERATIONS}.pth')
    from mmyolo_dcnv3.apis import load_detector
    detector, _ = load_detector(DCNV3_CONFIG, checkpoint)
    return toy_config(DCNV3_CONFIG, toy), checkpoint, detector


@pytest.fixture(scope='module')
def toy_images(toy):
    folder = os.path.join(toy, 'train')
    return sorted(os.path.join(folder, f) for f in os.listdir(folder))


@pytest.fixture(scope='module')
def exported(trained, tmp_path_factory):
    """{name: ONNX file}: raw outputs with dynamic shapes in both translations, and with NMS."""
    cfg, _, detector = trained
    folder = tmp_path_factory.mktemp('onnx')
    nms = NmsSettings.from_test_cfg(cfg.model.test_cfg)
    return {
        'gridsample': export_detector(detector, cfg, str(folder / 'gs.onnx'), dynamic=True)[0],
        'deformconv': export_detector(detector, cfg, str(folder / 'dc.onnx'), dynamic=True,
                                      translation='deformconv')[0],
        'nms': export_detector(detector, cfg, str(folder / 'nms.onnx'), nms=nms)[0],
    }


def eager_outputs(detector, images, nms=None):
    with torch.no_grad():
        return [t.numpy() for t in ExportableYOLOv8(detector, nms).eval()(images)]


@pytest.mark.slow
@pytest.mark.parametrize('translation, runtime', [('gridsample', 'onnxruntime'), ('deformconv', 'onnxruntime'),
                                                  ('gridsample', 'openvino')])
def test_raw_outputs_match_pytorch(trained, exported, toy_images, translation, runtime):
    cfg, _, detector = trained
    if runtime == 'openvino':
        pytest.importorskip('openvino')
    images, _ = preprocess_images(copy.deepcopy(cfg), detector.data_preprocessor, toy_images, network_input_size(cfg))
    assert onnx_domains(exported[translation]) == ['']
    actual = OnnxModel(exported[translation], runtime)(images.numpy())
    # Scores within 1e-3. Boxes are in input pixels, and those of far-off anchors
    # reach hundreds of pixels, where float32 rounding alone exceeds 1e-3: they
    # are held to 1e-3 plus 1e-5 of their magnitude.
    tolerance = {'boxes': dict(atol=1e-3, rtol=1e-5), 'scores': dict(atol=1e-3, rtol=0)}
    for name, want, got in zip(('boxes', 'scores'), eager_outputs(detector, images), actual):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, **tolerance[name], err_msg=name)
    # Every image has anchors above the test score threshold: detections to compare.
    assert (actual[1].max(axis=(1, 2)) > cfg.model.test_cfg.score_thr).all()


@pytest.mark.slow
def test_dynamic_file_runs_other_batches_and_sizes(trained, exported):
    _, _, detector = trained
    session = OnnxModel(exported['gridsample'], 'onnxruntime')
    assert session.input_shape == (None, 3, None, None)
    images = torch.rand(3, 3, 96, 160)
    for want, got in zip(eager_outputs(detector, images), session(images.numpy())):
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-3


def box_iou(a, b):
    lt, rb = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    overlap = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return overlap / np.maximum(area(a)[:, None] + area(b)[None] - overlap, 1e-12)


def unmatched(reference, candidate, iou=0.99, score_tolerance=1e-3):
    """Scores of the detections of ``reference`` with no partner in ``candidate`` (same
    class, IoU >= iou, score within score_tolerance), matched one to one, best first."""
    ious = box_iou(reference.bboxes.numpy(), candidate.bboxes.numpy())
    taken, missing = set(), []
    for i in np.argsort(-reference.scores.numpy(), kind='stable'):
        partners = [j for j in np.argsort(-ious[i]) if j not in taken and ious[i, j] >= iou
                    and candidate.labels[j] == reference.labels[i]
                    and abs(float(candidate.scores[j] - reference.scores[i])) <= score_tolerance]
        if partners:
            taken.add(partners[0])
        else:
            missing.append(float(reference.scores[i]))
    return missing


@pytest.mark.slow
@pytest.mark.parametrize('variant', ['nms', 'gridsample'])
def test_detections_match_pytorch_one_to_one(trained, exported, toy_images, variant):
    """The ONNX NMS graph (or the raw file with the detector's post-processing) against
    the PyTorch detector's own predictions, in original image pixels."""
    cfg, _, detector = trained
    from mmengine.dataset import Compose

    from mmyolo_dcnv3.apis import predict
    onnx_detector = OnnxDetector(cfg, exported[variant])
    pipeline = Compose([t for t in cfg.test_dataloader.dataset.pipeline if 'LoadAnnotations' not in str(t['type'])])
    score_thr = cfg.model.test_cfg.score_thr
    total = 0
    for image in toy_images:
        want, got = predict(detector, pipeline, image), onnx_detector.predict(image)
        total += len(want)
        # Only ties at the score threshold may fall either way.
        for missing in (unmatched(want, got), unmatched(got, want)):
            assert all(score <= score_thr + 1e-3 for score in missing), (image, missing)
    assert total > 0


@pytest.mark.slow
def test_onnx_map_equals_pytorch_map(trained, exported, toy, tmp_path):
    """tools/deployment/test_onnx.py and tools/test.py on the same images: each of the 12 COCO numbers within 0.002."""
    cfg, checkpoint, _ = trained
    options = as_cli(data_options(toy))
    torch_run = run([sys.executable, os.path.join(TOOLS, 'test.py'), DCNV3_CONFIG, checkpoint, '--work-dir',
                     str(tmp_path / 'torch'), *options])
    onnx_run = run([sys.executable, TEST_ONNX_TOOL, DCNV3_CONFIG, exported['gridsample'],
                    '--json', str(tmp_path / 'onnx.json'), *options])

    def coco_numbers(output):
        return [float(line.rsplit('= ', 1)[1]) for line in output.splitlines()
                if 'Average Precision' in line or 'Average Recall' in line]

    onnx_numbers = coco_numbers(onnx_run.stdout + onnx_run.stderr)
    torch_numbers = coco_numbers(torch_run.stdout + torch_run.stderr)
    assert len(onnx_numbers) == len(torch_numbers) == 12
    # A model this briefly trained may score 0 AP; its recall is what is compared then.
    assert max(torch_numbers) > 0
    assert all(abs(a - b) <= 0.002 for a, b in zip(onnx_numbers, torch_numbers)), (onnx_numbers, torch_numbers)
    import json
    assert json.loads((tmp_path / 'onnx.json').read_text())['metrics']['coco/bbox_mAP'] == onnx_numbers[0]


@pytest.mark.slow
def test_export_tool_writes_checks_and_compares(trained, toy, tmp_path):
    cfg, checkpoint, _ = trained
    out = tmp_path / 'model.onnx'
    result = run([sys.executable, EXPORT_TOOL, DCNV3_CONFIG, checkpoint, '--out', str(out),
                  '--nms', '--max-dets', '50', '--score-thr', '0.05', *as_cli(data_options(toy))])
    assert 'onnx.checker: ' in result.stdout and f'wrote {out}' in result.stdout
    differences = [float(line.rsplit(' ', 1)[1]) for line in result.stdout.splitlines()
                   if 'largest difference' in line]
    assert differences and max(differences) <= 1e-3
    assert 'num_dets: identical' in result.stdout
    metadata = read_metadata(str(out))
    assert metadata['nms'] == dict(score_threshold=0.05, iou_threshold=0.7, max_detections=50)
    assert metadata['classes'] == list(cfg.metainfo['classes'])


# What an INT8 file must keep, anchor by anchor: its raw outputs against the float file's at every
# anchor and class that either scores at least CONFIDENT_SCORE, those that can make a detection.
# Detections after NMS would test NMS instead: a box that moves by a pixel can change which of two
# overlapping boxes survives, or cross the score threshold, and whether it does depends on the CPU's
# kernels and on the model torch trained on it. The keep-float recipe keeps positions in float, so a
# box moves only as far as the INT8 features move it; quantising the box decoding (the DFL softmax)
# rounds every distribution to 256 levels and moves every box. The bounds sit between what the two
# recipes did on models trained and run under several ISAs (docs/deploy.md, How the INT8 test judges),
# and the quantize-all control must break them.
CONFIDENT_SCORE = 0.1
MIN_BOX_IOU = 0.93
MIN_MEAN_BOX_IOU = 0.97
MAX_SCORE_CHANGE = 0.05
# The bbox mAP of a model this briefly trained, on 8 images, does not tell the recipes apart (one
# detection reordered moves it by about 0.01): the bound catches a file evaluated wrongly
# (preprocessing, metadata, decoding). What INT8 costs in mAP is measured on the demo's models.
MAX_MAP_CHANGE = 0.05


def anchor_changes(float_path, int8_path, backend, images):
    """(IoU of the INT8 box with the float box, |INT8 score - float score|), one entry per anchor and
    class that either file scores at least CONFIDENT_SCORE on ``images`` (N, 3, H, W)."""
    float_model, int8_model = OnnxModel(float_path, backend), OnnxModel(int8_path, backend)
    ious, changes = [], []
    for image in images:
        (float_boxes, float_scores), (int8_boxes, int8_scores) = float_model(image[None]), int8_model(image[None])
        anchors, classes = np.nonzero(np.maximum(float_scores[0], int8_scores[0]) >= CONFIDENT_SCORE)
        ious.append(np.diagonal(box_iou(float_boxes[0, anchors], int8_boxes[0, anchors])))
        changes.append(np.abs(int8_scores[0, anchors, classes] - float_scores[0, anchors, classes]))
    return np.concatenate(ious), np.concatenate(changes)


def keeps_the_boxes_and_scores(ious, changes):
    return ious.min() >= MIN_BOX_IOU and ious.mean() >= MIN_MEAN_BOX_IOU and changes.max() <= MAX_SCORE_CHANGE


@pytest.mark.integration
@pytest.mark.parametrize('backend', ['onnxruntime', 'openvino'])
def test_int8_model_keeps_the_boxes_the_scores_and_the_map(trained, toy, toy_images, tmp_path, backend):
    """tools/deployment/quantize_onnx.py on the trained model, calibrated on the 8 toy images: the graph
    passes the float rule, every confident anchor keeps its box and score (the bounds above), which the
    quantize-all control breaks, and test_onnx.py's bbox mAP is within MAX_MAP_CHANGE of the float file's."""
    if backend == 'openvino':
        pytest.importorskip('nncf')
        pytest.importorskip('openvino')
    cfg, checkpoint, detector = trained
    options = as_cli(data_options(toy))
    suffix = '.onnx' if backend == 'onnxruntime' else '.xml'
    float_path = str(tmp_path / 'float.onnx')
    run([sys.executable, EXPORT_TOOL, DCNV3_CONFIG, checkpoint, '--out', float_path, *options])
    int8_paths, printed = {}, {}
    for recipe in ('keep-float', 'quantize-all'):
        int8_paths[recipe] = str(tmp_path / f'{recipe}{suffix}')
        printed[recipe] = run([sys.executable, QUANTIZE_TOOL, DCNV3_CONFIG, float_path, '--out', int8_paths[recipe],
                               '--backend', backend, '--calib-images', '8', '--recipe', recipe, *options]).stdout
    assert 'of 3 DCNv3 layers' in printed['keep-float']
    from mmyolo_dcnv3.deploy.quantize import quantized_float_paths
    int8_path = int8_paths['keep-float']
    assert quantized_float_paths(int8_path) == []
    assert read_metadata(int8_path)['quantization']['calibration_images'] == 8
    assert 'INT8 (keep-float recipe, 7-bit weights' in OnnxDetector(cfg, int8_path, backend).describe()

    images, _ = preprocess_images(copy.deepcopy(cfg), detector.data_preprocessor, toy_images,
                                  network_input_size(cfg))

    def summary(ious, changes):
        return (f'{len(ious)} anchors: IoU min {ious.min():.3f} mean {ious.mean():.3f}, '
                f'score change max {changes.max():.3f}')

    kept = anchor_changes(float_path, int8_path, backend, images.numpy())
    control = anchor_changes(float_path, int8_paths['quantize-all'], backend, images.numpy())
    print(f'{backend} keep-float: {summary(*kept)}; quantize-all: {summary(*control)}')  # shown by pytest -rA
    assert len(kept[0]) >= 20 and keeps_the_boxes_and_scores(*kept), summary(*kept)
    assert not keeps_the_boxes_and_scores(*control), f'quantize-all passes the rule: {summary(*control)}'

    def bbox_map(path):
        out = tmp_path / (os.path.basename(path) + '.json')
        run([sys.executable, TEST_ONNX_TOOL, DCNV3_CONFIG, path, '--runtime', backend, '--json', str(out), *options])
        return json.loads(out.read_text())['metrics']['coco/bbox_mAP']

    float_map, int8_map = bbox_map(float_path), bbox_map(int8_path)
    print(f'{backend} bbox mAP: float {float_map}, keep-float INT8 {int8_map}')
    assert float_map > 0 and abs(int8_map - float_map) <= MAX_MAP_CHANGE, (float_map, int8_map)


@pytest.mark.parametrize('arguments, message', [
    (['--calib-images', '4'], '--calib-images must be at least 8, got 4'),
    (['--backend', 'tensorrt'], "argument --backend: invalid choice: 'tensorrt'"),
    (['--calib-split', 'holdout'], "argument --calib-split: invalid choice: 'holdout'"),
    (['--weight-bits', '6'], 'argument --weight-bits: invalid choice: 6 (choose from 7, 8)'),
    (['--recipe', 'defaults', '--weight-bits', '8'], '--weight-bits does not apply to --recipe defaults'),
])
def test_quantize_tool_refuses_bad_arguments(tmp_path, arguments, message, capsys):
    model = tmp_path / 'model.onnx'
    model.write_bytes(b'')  # the arguments are refused before it is read
    module = load_tool(os.path.join('deployment', 'quantize_onnx.py'))
    argv = [DCNV3_CONFIG, str(model), '--out', str(tmp_path / 'int8.onnx'), *arguments]
    assert message in refusal(capsys, module.parse_args, argv)


def test_test_onnx_tool_refuses_a_precision_onnxruntime_lacks(tmp_path, capsys):
    model = tmp_path / 'model.onnx'
    model.write_bytes(b'')
    module = load_tool(os.path.join('deployment', 'test_onnx.py'))
    assert '--precision bf16 needs --runtime openvino' in refusal(
        capsys, module.parse_args, [DCNV3_CONFIG, str(model), '--precision', 'bf16'])


def test_quantize_tool_refuses_a_file_without_our_metadata_and_too_small_a_split(toy, tmp_path):
    """A plain ONNX file: the error says how to make one; a split with fewer images than asked for: the count."""
    bare = tmp_path / 'bare.onnx'
    torch.onnx.export(torch.nn.Conv2d(3, 4, 1), (torch.rand(1, 3, 8, 8),), str(bare), dynamo=True)
    module = load_tool(os.path.join('deployment', 'quantize_onnx.py'))
    out = tmp_path / 'int8.onnx'
    with pytest.raises(SystemExit, match='was not written by mmyolo_dcnv3.*export it with tools/deployment/'):
        module.main([DCNV3_CONFIG, str(bare), '--out', str(out)])
    cfg = toy_config(DCNV3_CONFIG, toy)
    model = tmp_path / 'model.onnx'
    from mmyolo_dcnv3.utils.config import build_detector
    export_detector(build_detector(cfg, init_weights=True).eval(), cfg, str(model))
    with pytest.raises(SystemExit, match='16 calibration images asked for, but the dataset has only 8'):
        module.main([DCNV3_CONFIG, str(model), '--out', str(out), '--calib-images', '16',
                     *as_cli(data_options(toy))])
    assert not out.exists()


@pytest.mark.integration
def test_plain_yolov8_exports_too(toy, tmp_path):
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope
    from mmyolo.registry import MODELS
    cfg = toy_config(PLAIN_CONFIG, toy)
    init_default_scope('mmyolo')
    detector = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    path, example = export_detector(detector, cfg, str(tmp_path / 'plain.onnx'))
    for want, got in zip(eager_outputs(detector, example), OnnxModel(path)(example.numpy())):
        assert np.abs(got - want).max() <= 1e-3


@pytest.mark.parametrize('arguments, message', [
    (['--opset', '15'], 'GridSample exists from opset 16'),
    (['--dcnv3', 'deformconv', '--opset', '18'], 'DeformConv exists from opset 19'),
    (['--score-thr', '0.3'], 'need --nms'),
])
def test_export_tool_refuses_bad_arguments(tmp_path, arguments, message, capsys):
    checkpoint = tmp_path / 'any.pth'  # the arguments are refused before it is read
    checkpoint.write_bytes(b'')
    error = refusal(capsys, load_tool('deployment/export_onnx.py').parse_args,
                    [DCNV3_CONFIG, str(checkpoint), '--out', str(tmp_path / 'x.onnx'), *arguments])
    assert message in error


def test_export_tool_refuses_a_checkpoint_of_another_model(tmp_path):
    """A DCNv3 checkpoint with the plain config: an error naming the mismatch, no file."""
    from mmengine.registry import init_default_scope
    from mmyolo.registry import MODELS
    init_default_scope('mmyolo')
    checkpoint = tmp_path / 'dcnv3.pth'
    torch.save({'state_dict': MODELS.build(Config.fromfile(DCNV3_CONFIG).model).state_dict()}, checkpoint)
    with pytest.raises(SystemExit, match='is not a checkpoint of .* does not match'):
        load_tool('deployment/export_onnx.py').main([PLAIN_CONFIG, str(checkpoint), '--out', str(tmp_path / 'x.onnx')])
    assert not (tmp_path / 'x.onnx').exists()


@pytest.mark.integration
def test_export_tool_builds_the_exported_model_with_the_cfg_options(toy, tmp_path):
    """--cfg-options reach the exported graph, not only its metadata: with multi_label off each anchor keeps
    only its best class's score."""
    checkpoint = save_initialised_checkpoint(DCNV3_CONFIG, str(tmp_path / 'init.pth'), classes=TOY_CLASSES)
    out = tmp_path / 'single_label.onnx'
    options = dict(data_options(toy), **{'model.test_cfg.multi_label': False})
    run([sys.executable, EXPORT_TOOL, DCNV3_CONFIG, checkpoint, '--out', str(out), '--img-size', str(IMAGE_SIZE),
         *as_cli(options)])
    assert read_metadata(str(out))['postprocess']['multi_label'] is False
    _, scores = OnnxModel(str(out))(np.random.default_rng(0).random((1, 3, IMAGE_SIZE, IMAGE_SIZE), np.float32))
    assert scores.shape[-1] == len(TOY_CLASSES)
    kept = scores > 0
    assert (scores[kept] == np.broadcast_to(scores.max(-1, keepdims=True), scores.shape)[kept]).all()
    assert not kept.all()  # with every class kept, a sigmoid score is never 0


@pytest.mark.slow
def test_example_detects_without_torch_or_openmmlab(trained, exported, toy, tmp_path):
    """examples/onnx_inference.py with torch and OpenMMLab unimportable: pictures written and
    the printed detections are the ones OnnxDetector finds (same preprocessing, same file)."""
    cfg, _, _ = trained
    folder = os.path.join(toy, 'train')
    onnx_detector = OnnxDetector(cfg, exported['nms'])
    predictions = {image: onnx_detector.predict(os.path.join(folder, image)) for image in sorted(os.listdir(folder))}
    scores = sorted((float(s) for p in predictions.values() for s in p.scores), reverse=True)
    threshold = scores[min(19, len(scores) - 1)]  # about 20 detections to compare
    blocker = ('import importlib.abc, runpy, sys\n'
               'class Block(importlib.abc.MetaPathFinder):\n'
               '    def find_spec(self, name, path=None, target=None):\n'
               "        if name.split('.')[0] in {'torch', 'mmcv', 'mmengine', 'mmdet', 'mmyolo', 'mmyolo_dcnv3'}:\n"
               '            raise ModuleNotFoundError(name)\n'
               'sys.meta_path.insert(0, Block())\n'
               f"sys.argv = ['onnx_inference.py', {exported['nms']!r}, {folder!r}, "
               f"'--out', {str(tmp_path)!r}, '--score-thr', {repr(str(threshold))}]\n"
               f"runpy.run_path({os.path.join(ROOT, 'examples', 'onnx_inference.py')!r}, run_name='__main__')\n")
    result = run([sys.executable, '-c', blocker])
    printed = [line.split() for line in result.stdout.splitlines() if line.endswith(tuple('0123456789'))]
    classes = cfg.metainfo['classes']
    for image, pred in predictions.items():
        assert os.path.isfile(tmp_path / image)
        keep = pred.scores >= threshold
        rows = [p for p in printed if p[0] == image]
        assert len(rows) == int(keep.sum()), image
        for row, box, label in zip(rows, pred.bboxes[keep].numpy(), pred.labels[keep].tolist()):
            assert row[1] == classes[label]
            assert box_iou(np.float32([row[3:]]), box[None])[0, 0] >= 0.98
    assert len(printed) >= min(20, len(scores)) > 0


class NmsOnly(torch.nn.Module):
    def __init__(self, settings):
        super().__init__()
        self.settings = settings

    def forward(self, boxes, scores):
        s = self.settings
        return multiclass_nms(boxes, scores, s.iou_threshold, s.score_threshold, s.max_detections)


def test_onnx_nms_graph_keeps_what_mmcv_batched_nms_keeps(tmp_path):
    """ONNX NonMaxSuppression + per-image top-k against the eager op (mmcv's batched_nms),
    with a dynamic batch, an image without any box above the threshold, and more
    survivors than max_detections."""
    g = torch.Generator().manual_seed(0)
    corner = torch.rand(3, 300, 2, generator=g) * 100
    boxes = torch.cat([corner, corner + 5 + 30 * torch.rand(3, 300, 2, generator=g)], -1)
    scores = torch.rand(3, 300, 4, generator=g)
    scores[1] *= 0.2  # nothing above the threshold
    settings = NmsSettings(score_threshold=0.25, iou_threshold=0.5, max_detections=40)
    batch = torch.export.Dim('batch', max=16)
    path = export_onnx(NmsOnly(settings).eval(), (boxes, scores), str(tmp_path / 'nms.onnx'),
                       extra_translations=nms_translation_table(18), dynamic_shapes=({0: batch}, {0: batch}))
    assert onnx_domains(path) == ['']
    expected = [t.numpy() for t in NmsOnly(settings)(boxes, scores)]
    actual = OnnxModel(path)(boxes.numpy(), scores.numpy())
    assert expected[0].ravel().tolist() == actual[0].ravel().tolist()
    assert expected[0][0, 0] == 40 and expected[0][1, 0] == 0
    for want, got in zip(expected[1:], actual[1:]):
        assert want.shape == got.shape and np.allclose(want, got, atol=1e-6)
