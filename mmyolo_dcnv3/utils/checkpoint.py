"""Loading a checkpoint into a model that must match it.

mmengine's ``load_checkpoint`` (what ``Runner.load_from`` and mmdet's
``init_detector`` use) loads with ``strict=False``: a checkpoint of another
model only logs "missing keys ... unexpected key ..." and the evaluation then
runs on freshly initialised layers. Evaluation and export go through
:func:`load_checkpoint_strictly` instead, which refuses such a checkpoint and
says which keys differ; a partial load (fine-tuning from a plain YOLOv8
checkpoint, say) must be asked for.
"""
import copy
import dataclasses
import os
from typing import Dict, List, Sequence

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.runner.checkpoint import _load_checkpoint

#: How many keys of each kind an error message lists before "and N more".
_KEYS_SHOWN = 8


class CheckpointMismatchError(ValueError):
    """A checkpoint whose weights do not fit the model built from the config.

    Attributes:
        missing_keys: in the model, not in the checkpoint.
        unexpected_keys: in the checkpoint, not in the model.
        shape_mismatches: ``key: checkpoint shape vs model shape`` lines.
    """

    def __init__(self, filename: str, missing_keys: Sequence[str], unexpected_keys: Sequence[str],
                 shape_mismatches: Sequence[str]):
        self.missing_keys = list(missing_keys)
        self.unexpected_keys = list(unexpected_keys)
        self.shape_mismatches = list(shape_mismatches)
        lines = [f'checkpoint {filename!r} does not match the model built from the config:']
        for what, keys in (('missing from the checkpoint (left at their initialisation)', missing_keys),
                           ('in the checkpoint but not in the model', unexpected_keys),
                           ('of a different shape', shape_mismatches)):
            if keys:
                lines.append(f'  {len(keys)} keys {what}: {_summarise(keys)}')
        lines.append('Check that the checkpoint was trained with this config (model type, size, DCNv3 '
                     'stages); to load the matching weights anyway, ask for a partial load.')
        super().__init__('\n'.join(lines))


def _summarise(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:_KEYS_SHOWN])
    return shown if len(keys) <= _KEYS_SHOWN else f'{shown}, ... and {len(keys) - _KEYS_SHOWN} more'


def model_state_dict(checkpoint: dict) -> Dict[str, object]:
    """The model weights of a loaded checkpoint file, without DDP's ``module.`` prefix.

    mmengine checkpoints keep them under ``state_dict`` (with the EMA weights
    swapped in when the run used an EMA hook); a bare state dict is taken as is.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    return {key[len('module.'):] if key.startswith('module.') else key: value
            for key, value in state_dict.items()}


@dataclasses.dataclass
class StateDictComparison:
    """Which of a model's weights a checkpoint's state dict provides (keys after the modules' load hooks).

    Attributes:
        loaded: the model's keys that the checkpoint has, with the same shape.
        missing: the model's keys that the checkpoint lacks.
        unexpected: the checkpoint's keys that the model lacks.
        shape_mismatches: key -> ``key (checkpoint shape) vs (model shape)``, for keys in both of other shapes.
    """
    loaded: List[str]
    missing: List[str]
    unexpected: List[str]
    shape_mismatches: Dict[str, str]

    @property
    def matches(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatches)


def compare_state_dict(model: nn.Module, checkpoint: dict) -> StateDictComparison:
    """Compares a loaded checkpoint's weights (:func:`model_state_dict`) with ``model``'s.

    The keys are compared after the modules' own load hooks (which rename
    legacy keys), on a meta-device copy: ``model`` is left unchanged.
    """
    state_dict = model_state_dict(checkpoint)
    own = model.state_dict()
    shape_mismatches = {key: f'{key} {tuple(value.shape)} vs {tuple(own[key].shape)}'
                        for key, value in state_dict.items()
                        if key in own and hasattr(value, 'shape') and tuple(value.shape) != tuple(own[key].shape)}
    probe = copy.deepcopy(model).to('meta')
    result = probe.load_state_dict({key: value.to('meta') if hasattr(value, 'to') else value
                                    for key, value in state_dict.items() if key not in shape_mismatches},
                                   strict=False, assign=True)
    # Keys of another shape were left out of the probe, so they would count as missing too.
    missing = [key for key in result.missing_keys if key not in shape_mismatches]
    loaded = [key for key in own if key not in missing and key not in shape_mismatches]
    return StateDictComparison(loaded, missing, list(result.unexpected_keys), shape_mismatches)


def load_checkpoint_strictly(model: nn.Module, filename: str, *, allow_partial: bool = False,
                             map_location: str = 'cpu') -> dict:
    """Loads ``filename``'s weights into ``model``; returns the whole checkpoint.

    Args:
        model: the model built from the checkpoint's config.
        filename: a checkpoint file (mmengine's format, or a bare state dict).
        allow_partial: load the weights whose names and shapes match and
            leave the rest of the model at its initialisation, logging which
            keys were missing, unexpected or of another shape; otherwise any
            difference raises before the model is changed.
        map_location: where the checkpoint's tensors are loaded.

    Raises:
        FileNotFoundError: ``filename`` does not exist.
        ValueError: the file holds no state dict.
        CheckpointMismatchError: the weights do not match and ``allow_partial``
            is false.
    """
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename!r} does not exist')
    checkpoint = _load_checkpoint(filename, map_location=map_location)
    if not isinstance(checkpoint, dict):
        raise ValueError(f'checkpoint {filename!r} holds a {type(checkpoint).__name__}, not a state dict')
    state_dict = model_state_dict(checkpoint)
    comparison = compare_state_dict(model, checkpoint)
    if not comparison.matches and not allow_partial:
        raise CheckpointMismatchError(filename, comparison.missing, comparison.unexpected,
                                      list(comparison.shape_mismatches.values()))
    model.load_state_dict({key: value for key, value in state_dict.items()
                           if key not in comparison.shape_mismatches}, strict=False)
    for what, keys in (('missing from the checkpoint, left at their initialisation', comparison.missing),
                       ('in the checkpoint but not in the model, ignored', comparison.unexpected),
                       ('of another shape in the checkpoint, left at their initialisation',
                        list(comparison.shape_mismatches.values()))):
        if keys:
            print_log(f'partial load of {filename}: {len(keys)} keys {what}: {", ".join(keys)}',
                      logger='current')
    return checkpoint

