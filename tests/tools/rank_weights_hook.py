"""A test hook: every rank saves its model's parameters when training ends.

(BN running statistics are buffers, not parameters: without SyncBatchNorm each
rank updates its own from its own batch.)"""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SaveRankWeightsHook(Hook):
    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        torch.save({k: v.detach().clone() for k, v in model.named_parameters()},
                   osp.join(runner.work_dir, f'weights_rank{get_rank()}.pth'))
