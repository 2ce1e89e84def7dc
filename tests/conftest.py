"""Shared fixtures: the toy COCO dataset, a subprocess runner for the command lines, the tools in-process."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOY_CLASSES = ('ellipse', 'triangle', 'rectangle', 'star', 'cross')


def run_command(args, env=None, check=True, timeout=900, cwd=None):
    """Runs a command with the checkout importable; fails with its output when it fails."""
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    result = subprocess.run(args, capture_output=True, text=True, env=full_env, timeout=timeout, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f'{" ".join(map(str, args))} failed ({result.returncode}):\n'
                             f'{result.stdout[-3000:]}\n{result.stderr[-5000:]}')
    return result


def load_tool(relative):
    """A tool of tools/ (e.g. ``'deployment/export_onnx.py'``) as a module, to call its ``parse_args`` or
    ``main`` in-process: the same code as the command line, without a new interpreter for each refusal."""
    return load_script(os.path.join('tools', relative))


def load_script(path):
    """A Python script as a module, as :func:`load_tool` does; ``path`` relative to the repository or absolute."""
    name = re.sub(r'\W', '_', os.path.relpath(os.path.join(ROOT, path), ROOT)[:-3])
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_deployment_stack():
    """Skips the calling test module unless the deployment packages (requirements/deploy.txt) and the compiled
    DCNv3 op are there. Call it at the module's top, before importing from them."""
    for package in ('onnxscript', 'onnxruntime'):
        pytest.importorskip(package, reason='deployment packages not installed (requirements/deploy.txt)')
    from mmyolo_dcnv3.ops import dcnv3_implementation
    if dcnv3_implementation('cpu') != 'compiled':
        pytest.skip('the compiled DCNv3 op is not built', allow_module_level=True)


def refusal(capsys, call, *args):
    """The error output of ``call(*args)``, which must stop with exit status 2 (argparse's, or a tool's own)."""
    try:
        status = call(*args)
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    assert status == 2, (status, captured.err[-3000:])
    return captured.err


@pytest.fixture(scope='session')
def toy_coco(tmp_path_factory):
    """8 training and 4 validation images of 128 px (tools/dataset_makers/make_toy_coco.py); the root ends with '/'."""
    root = tmp_path_factory.mktemp('toy_coco_shared')
    run_command([sys.executable, os.path.join(ROOT, 'tools', 'dataset_makers', 'make_toy_coco.py'), '--out', str(root),
                 '--train-images', '8', '--val-images', '4', '--img-size', '128'])
    return str(root) + '/'


def save_initialised_checkpoint(config: str, out_path: str, classes=None, cls_bias=None) -> str:
    """A checkpoint of the config's model as initialised (no training), as mmengine saves one.

    ``classes`` go into its dataset_meta; ``cls_bias`` (a YOLOv8 head) sets
    the classification biases, so that every anchor scores sigmoid(cls_bias)
    and the drawn pictures have boxes.
    """
    import torch
    from mmengine.config import Config
    from mmengine.registry import MODELS, init_default_scope

    from mmyolo_dcnv3.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if cls_bias is not None:
        for branch in model.bbox_head.head_module.cls_preds:
            torch.nn.init.constant_(branch[-1].bias, cls_bias)
    meta = dict(dataset_meta=dict(classes=tuple(classes))) if classes else {}
    torch.save(dict(meta=meta, state_dict=model.state_dict()), out_path)
    return out_path


def user_dataset(toy_coco, tmp_path, classes=TOY_CLASSES, **overrides):
    """The toy set copied into another layout (images/train2017, ...) and a dataset config for it."""
    root = tmp_path / 'my_data'
    for split, folder in (('train', 'train2017'), ('val', 'val2017')):
        shutil.copytree(os.path.join(toy_coco, split), root / 'images' / folder)
        os.makedirs(root / 'labels', exist_ok=True)
        shutil.copy(os.path.join(toy_coco, 'annotations', f'instances_{split}.json'), root / 'labels' / f'{split}.json')
    keys = dict(data_root=str(root) + '/', class_name=tuple(classes), train_ann_file='labels/train.json',
                train_data_prefix='images/train2017/', val_ann_file='labels/val.json',
                val_data_prefix='images/val2017/', **overrides)
    config = tmp_path / 'my_dataset.py'
    config.write_text(''.join(f'{key} = {value!r}\n' for key, value in keys.items()))
    return str(config)
