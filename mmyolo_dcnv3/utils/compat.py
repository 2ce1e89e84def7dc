"""Fixes for the OpenMMLab stack on current torch, applied by ``register_all_modules``.

Each is a process-wide change, the narrowest that fixes its problem; they
are applied by :func:`mmyolo_dcnv3.utils.register_all_modules` (so by a
config's ``custom_imports``), never by ``import mmyolo_dcnv3.ops``, and
applying them again changes nothing.

* Checkpoints: torch >= 2.6 loads with ``weights_only=True``, and checkpoints
  that mmengine 0.10.7 writes hold a few non-tensor types (its
  ``HistoryBuffer``, numpy arrays and scalars in the message hub). They are
  allow-listed for the weights-only unpickler, exactly those and nothing else,
  so ``mim test``/``--resume`` load our checkpoints while any other object
  is still refused. HistoryBuffer is also made to stop pickling its table of
  statistics functions, which would need ``builtins.getattr`` to load.
* Collate functions: configs that inherit ``mmyolo::...`` get
  ``_scope_='mmyolo'`` stamped into every dict with a ``type``, including
  ``collate_fn=dict(type='yolov5_collate')``, which mmengine's runner then
  passes on as a keyword argument. ``yolov5_collate`` is re-registered to
  accept (and ignore) that one keyword.
"""
import functools

import numpy as np
import torch


def mmengine_checkpoint_types() -> list:
    """The non-tensor globals in mmengine's checkpoints (message hub: HistoryBuffer, numpy)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    multiarray = (getattr(np, '_core', None) or np.core).multiarray
    # numpy >= 1.25 pickles a dtype's class too (numpy.dtypes.Float64DType, ...).
    dtype_classes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32,
                                                np.bool_)]
    return [HistoryBuffer, np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar, *dtype_classes]


def _history_buffer_state(self) -> dict:
    """HistoryBuffer's pickled state without its table of statistics functions.

    mmengine pickles that table (HistoryBuffer.min, ...), which unpickles only
    through ``builtins.getattr``, a global the weights-only loader must not
    trust. ``HistoryBuffer.__setstate__`` restores the table anyway (it is
    class-level and re-registered on import), so nothing is lost.
    """
    state = dict(self.__dict__)
    state.pop('statistics_methods', None)
    return state


def allow_mmengine_checkpoints() -> None:
    """Lets torch's weights-only loader read mmengine's checkpoints, and only them."""
    from mmengine.logging.history_buffer import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_state
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_types())


def accept_scope_in_yolov5_collate() -> None:
    """Replaces MMYOLO's ``yolov5_collate`` in mmengine's ``COLLATE_FUNCTIONS`` by a wrapper that also
    accepts the ``_scope_`` keyword (once: the wrapper is not wrapped again)."""
    from mmengine.dataset import COLLATE_FUNCTIONS
    from mmyolo.datasets.utils import yolov5_collate
    if getattr(COLLATE_FUNCTIONS.module_dict.get('yolov5_collate'), 'accepts_scope', False):
        return

    @functools.wraps(yolov5_collate)
    def collate(data_batch, *args, _scope_=None, **kwargs):
        return yolov5_collate(data_batch, *args, **kwargs)

    collate.accepts_scope = True
    COLLATE_FUNCTIONS.register_module('yolov5_collate', module=collate, force=True)


def apply() -> None:
    """Applies both fixes (idempotent)."""
    allow_mmengine_checkpoints()
    accept_scope_in_yolov5_collate()


def init_cpu_distributed(cfg) -> None:
    """Makes ``cfg`` run distributed on CPUs (gloo) when no GPU is visible.

    mmengine's launcher calls ``torch.cuda.set_device`` and its DDP wrapper
    passes ``device_ids``, both of which fail on a machine without a GPU. Here
    the process group is created with gloo from torchrun's environment
    (mmengine then sees it and skips its own set-up), and DDP gets no device
    ids. SyncBatchNorm needs GPUs, so YOLO detectors' ``use_syncbn`` is
    turned off (with a warning): each process normalises its own batch, and
    rank 0's running statistics are broadcast to the others. Does nothing for
    ``launcher='none'`` or when CUDA is available.
    """
    import os
    import warnings

    import torch.distributed as dist
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    if cfg.launcher != 'pytorch':
        raise ValueError(f"launcher={cfg.launcher!r} on a machine without a GPU: only 'pytorch' "
                         '(torchrun) is supported there')
    missing = [name for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT') if name not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher pytorch needs torchrun\'s environment; {", ".join(missing)} '
                           'not set (start with `torchrun --nproc_per_node=N tools/train.py ...`)')
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(type='MMDistributedDataParallel')
    wrapper['device_ids'] = None
    # Without SyncBatchNorm the ranks' BN statistics would drift apart; rank 0's are broadcast.
    wrapper['broadcast_buffers'] = True
    cfg.model_wrapper_cfg = wrapper
    if cfg.model.get('use_syncbn', 'type' in cfg.model and 'YOLO' in str(cfg.model.type)):
        warnings.warn('distributed on CPUs: SyncBatchNorm needs GPUs, so model.use_syncbn is set to '
                      'False and each process normalises its own batch')
        cfg.model.use_syncbn = False
