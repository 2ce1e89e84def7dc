"""A runner hook that reports what ``load_from`` provided (registered in mmengine's root HOOKS)."""
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...utils.checkpoint import compare_state_dict


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
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        report = compare_state_dict(model, checkpoint)
        lines = [f'load_from {load_from}: {len(report.loaded)} of {len(model.state_dict())} model weights loaded']
        for keys, title in ((report.missing, 'new (not in the checkpoint; they keep their initialisation)'),
                            (report.shape_mismatches, 'not loaded, shapes differ (they keep their initialisation)'),
                            (report.unexpected, 'in the checkpoint but not in the model (ignored)')):
            if keys:
                lines.append(f'{len(keys)} {title}:')
                lines += [f'    {key}' for key in keys]
        runner.logger.info('\n'.join(lines))
