"""LoadFromReportHook: what load_from provided, counted as the strict loader counts it."""
import types

import torch
from torch import nn

from mmyolo_dcnv3.engine import LoadFromReportHook


class Logged:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(text)


def report(model, checkpoint, tmp_path, resume=False):
    path = tmp_path / 'load_from.pth'
    torch.save(checkpoint, path)
    runner = types.SimpleNamespace(cfg=dict(load_from=str(path), resume=resume), model=model, logger=Logged())
    LoadFromReportHook().before_train(runner)
    return '\n'.join(runner.logger.lines)


def test_new_mismatched_and_unused_weights_are_named(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    state = {'0.weight': torch.zeros(3, 2), '0.bias': torch.zeros(3), '1.weight': torch.zeros(5, 3),
             'extra.weight': torch.zeros(1)}
    text = report(model, dict(state_dict=state), tmp_path)
    assert 'model weights loaded' in text and ': 2 of 4 model weights loaded' in text
    assert '1 new (not in the checkpoint' in text and '    1.bias' in text
    assert '1 not loaded, shapes differ' in text and '    1.weight' in text
    assert '1 in the checkpoint but not in the model (ignored)' in text and '    extra.weight' in text


def test_a_ddp_checkpoints_module_prefix_counts_as_loaded(tmp_path):
    model = nn.Linear(2, 3)
    state = {f'module.{key}': value for key, value in model.state_dict().items()}
    text = report(model, dict(state_dict=state), tmp_path)
    assert ': 2 of 2 model weights loaded' in text and 'new' not in text and 'ignored' not in text


def test_nothing_is_reported_when_resuming(tmp_path):
    assert report(nn.Linear(2, 3), {}, tmp_path, resume=True) == ''
