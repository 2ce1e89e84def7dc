"""tools/image_demo.py (folders, images, videos) and mmdet's DetInferencer with this project's configs."""
import json
import os
import sys

import cv2
import numpy as np
import pytest

from tests.conftest import ROOT, TOY_CLASSES, load_tool, refusal, run_command, save_initialised_checkpoint

DEMO = os.path.join(ROOT, 'tools', 'image_demo.py')
TOY_DCNV3 = os.path.join(ROOT, 'configs', 'demo', 'yolov8_n_dcnv3_toy.py')
TOY_PLAIN = os.path.join(ROOT, 'configs', 'demo', 'yolov8_n_toy.py')


@pytest.fixture(scope='module')
def confident_checkpoint(tmp_path_factory):
    """The toy DCNv3 model, untrained, with every anchor scoring sigmoid(3) = 0.95: boxes get drawn."""
    path = tmp_path_factory.mktemp('demo_ckpt') / 'dcnv3_toy.pth'
    return save_initialised_checkpoint(TOY_DCNV3, str(path), classes=TOY_CLASSES, cls_bias=3.0)


@pytest.mark.integration
def test_folder_in_drawn_pictures_and_detections_out_with_a_progress_bar(confident_checkpoint, toy_coco, tmp_path):
    images = os.path.join(toy_coco, 'val')
    result = run_command([sys.executable, DEMO, TOY_DCNV3, confident_checkpoint, images,
                          '--out', str(tmp_path), '--score-thr', '0.5'])
    names = sorted(os.listdir(images))
    assert sorted(os.listdir(tmp_path / 'vis')) == names
    for name in names:
        original, drawn = cv2.imread(os.path.join(images, name)), cv2.imread(str(tmp_path / 'vis' / name))
        assert drawn.shape == original.shape and not np.array_equal(drawn, original)
        detections = json.loads((tmp_path / 'preds' / name.replace('.jpg', '.json')).read_text())
        assert len(detections['bboxes']) == len(detections['scores']) == len(detections['labels']) > 0
        assert all(0 <= label < len(TOY_CLASSES) for label in detections['labels'])
    assert f'{len(names)} images, ' in result.stdout
    assert 'Inference' in result.stdout + result.stderr  # the progress bar


@pytest.mark.integration
def test_video_in_video_with_the_detections_out(confident_checkpoint, toy_coco, tmp_path):
    frames = [cv2.imread(os.path.join(toy_coco, 'val', name)) for name in sorted(os.listdir(toy_coco + 'val'))]
    video = str(tmp_path / 'clip.mp4')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5, (128, 128))
    for frame in frames:
        writer.write(frame)
    writer.release()
    result = run_command([sys.executable, DEMO, TOY_DCNV3, confident_checkpoint, video,
                          '--out', str(tmp_path / 'out')])
    assert f'{len(frames)} frames: ' in result.stdout
    reader = cv2.VideoCapture(str(tmp_path / 'out' / 'clip.mp4'))
    assert int(reader.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
    ok, first = reader.read()
    assert ok and first.shape == (128, 128, 3)


def test_a_checkpoint_of_another_model_is_refused_before_anything_is_written(confident_checkpoint, toy_coco,
                                                                            tmp_path, capsys):
    error = refusal(capsys, load_tool('image_demo.py').main,
                    [TOY_PLAIN, confident_checkpoint, toy_coco + 'val', '--out', str(tmp_path / 'out')])
    assert 'missing from the checkpoint' in error and 'in the checkpoint but not in the model' in error
    assert '.dcnv3.' in error and '--allow-partial-checkpoint' in error
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('inputs,args,message', [
    ('val', ['--score-thr', '1.5'], '--score-thr must be in [0, 1], got 1.5'),
    ('no_such_input', [], "input 'no_such_input' does not exist"),
    ('annotations', [], "holds no images (.jpg"),
])
def test_bad_arguments_are_named(confident_checkpoint, toy_coco, inputs, args, message, capsys):
    path = inputs if inputs == 'no_such_input' else os.path.join(toy_coco, inputs)
    assert message in refusal(capsys, load_tool('image_demo.py').main, [TOY_DCNV3, confident_checkpoint, path, *args])


# mmdet's DetInferencer builds the test pipeline in the scope it is given
# (default 'mmdet'); MMYOLO's transforms there carry no scope of their own, so
# MMYOLO-based configs need scope='mmyolo', as in MMYOLO's own documentation.
@pytest.mark.parametrize('config,scope', [('yolov8_s_dcnv3_coco.py', 'mmyolo'),
                                          ('rtmdet/rtmdet_s_dcnv3_coco.py', 'mmyolo'),
                                          ('mmdet/retinanet_r50-dcnv3-c3-c5_fpn_1x_coco.py', 'mmdet')])
@pytest.mark.integration
def test_mmdet_det_inferencer_runs_our_configs(config, scope, toy_coco, tmp_path):
    from mmdet.apis import DetInferencer
    config = os.path.join(ROOT, 'configs', config)
    checkpoint = save_initialised_checkpoint(config, str(tmp_path / 'model.pth'))
    inferencer = DetInferencer(model=config, weights=checkpoint, device='cpu', scope=scope, show_progress=False)
    image = os.path.join(toy_coco, 'val', sorted(os.listdir(toy_coco + 'val'))[0])
    result = inferencer(image, return_vis=True, pred_score_thr=0.0)
    prediction = result['predictions'][0]
    assert set(prediction) >= {'bboxes', 'labels', 'scores'}
    assert result['visualization'][0].shape == (128, 128, 3)
