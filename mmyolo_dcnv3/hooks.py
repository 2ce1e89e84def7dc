"""Runner hooks (registered in mmengine's root HOOKS, so any config scope finds them)."""
from typing import Dict, List

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def compare_state_dicts(model_state: Dict[str, torch.Tensor],
                        checkpoint_state: Dict[str, torch.Tensor]) -> Dict[str, List[str]]:
    """Which of the model's weights a checkpoint provides.

    Returns ``loaded`` (same name and shape), ``new`` (the model's, absent from
    the checkpoint), ``shape_mismatch`` (in both, different shapes: the model
    keeps its own) and ``unused`` (the checkpoint's, absent from the model).
    """
    report = dict(loaded=[], new=[], shape_mismatch=[], unused=[])
    for key, value in model_state.items():
        if key not in checkpoint_state:
            report['new'].append(key)
        elif tuple(checkpoint_state[key].shape) != tuple(value.shape):
            report['shape_mismatch'].append(key)
        else:
            report['loaded'].append(key)
    report['unused'] = [key for key in checkpoint_state if key not in model_state]
    return report


@HOOKS.register_module()
class LoadFromReportHook(Hook):
    """Logs, when training starts from ``load_from``, which weights it did not provide.

    Fine-tuning a DCNv3 model from a plain checkpoint is a deliberate partial
    load: mmengine loads it leniently and prints the mismatches as one long
    line. This hook logs a summary the user can check at a glance: how many
    weights loaded, and the names of those that are new (keep their
    initialisation: the DCNv3 layers), that did not fit (another class count)
    or that the model does not use. Does nothing when resuming or without
    ``load_from``.
    """

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        load_from = runner.cfg.get('load_from')
        if not load_from or runner.cfg.get('resume'):
            return
        from mmengine.model import is_model_wrapper
        from mmengine.runner import CheckpointLoader
        checkpoint = CheckpointLoader.load_checkpoint(load_from, map_location='cpu')
        checkpoint_state = checkpoint.get('state_dict', checkpoint)
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        report = compare_state_dicts(model.state_dict(), checkpoint_state)
        lines = [f'load_from {load_from}: {len(report["loaded"])} of {len(model.state_dict())} '
                 f'model weights loaded']
        titles = dict(new='new (not in the checkpoint; they keep their initialisation)',
                      shape_mismatch='not loaded, shapes differ (they keep their initialisation)',
                      unused='in the checkpoint but not in the model (ignored)')
        for name, title in titles.items():
            if report[name]:
                lines.append(f'{len(report[name])} {title}:')
                lines += [f'    {key}' for key in report[name]]
        runner.logger.info('\n'.join(lines))
