"""Configs, one way each: load one with ``--cfg-options``, build its detector, its inference pipeline, its classes.

Every tool goes through these, so that ``--cfg-options`` reach the model the
tool builds, and ``data_root=DIR`` moves every dataset and evaluator.
"""
import copy
import os.path as osp
from typing import List, Optional

from mmengine.config import Config

from mmyolo_dcnv3_config_scope import package_root

from .dataset_checks import rebase_data_root

__all__ = ['package_root', 'shipped_config', 'load_config', 'build_detector', 'inference_pipeline',
           'dataset_meta', 'class_names']


def shipped_config(relative: str) -> str:
    """The file of one of the package's own configs, e.g. ``'demo/yolov8_n_toy.py'`` (checkout or installed)."""
    path = osp.join(package_root(), 'configs', relative)
    if not osp.isfile(path):
        raise FileNotFoundError(f'no config {relative!r} in {osp.join(package_root(), "configs")}')
    return path


def load_config(config: str, cfg_options: Optional[dict] = None) -> Config:
    """A config file, or a ``mmyolo::``/``mmdet::``/``mmyolo_dcnv3::`` config path, with ``cfg_options`` merged.

    ``cfg_options`` is what ``--cfg-options`` parses to (mmengine's
    ``DictAction``). ``data_root=DIR`` among them moves every dataset and
    evaluator that uses the config's ``data_root`` to DIR
    (:func:`~mmyolo_dcnv3.utils.dataset_checks.rebase_data_root`), since the
    config copied the old value into them when it was read.
    """
    if '::' in config:
        config, _ = Config._get_cfg_path(config, '')
    if not osp.isfile(config):
        raise FileNotFoundError(f'config file {config!r} does not exist')
    cfg = Config.fromfile(config)
    if cfg_options:
        old_root = cfg.get('data_root')
        cfg.merge_from_dict(cfg_options)
        if 'data_root' in cfg_options and old_root:
            rebase_data_root(cfg, old_root, cfg_options['data_root'])
    return cfg


def build_detector(cfg: Config, *, init_weights: bool = False):
    """The config's detector on the CPU, SyncBatchNorm reverted to BatchNorm, in eval mode.

    ``init_weights`` runs the model's initialisation (the random weights of
    a benchmark); without it the weights are the constructors' defaults, to be
    overwritten by a checkpoint. No pretrained weights are downloaded either way
    unless the config's ``init_cfg`` asks for them and ``init_weights`` is set.
    """
    from mmengine.model.utils import revert_sync_batchnorm
    from mmengine.registry import MODELS, init_default_scope

    from .setup_env import register_all_modules
    register_all_modules(init_default_scope=False)  # whatever the caller imported first
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(cfg.model)))
    if init_weights:
        model.init_weights()
    return model.eval()


def inference_pipeline(cfg: Config) -> List[dict]:
    """The test pipeline's transforms without ``LoadAnnotations``: an image in, the network's sample out."""
    return [copy.deepcopy(t) for t in cfg.test_dataloader.dataset.pipeline if 'LoadAnnotations' not in str(t['type'])]


def dataset_meta(cfg: Config, checkpoint: Optional[dict] = None) -> dict:
    """The detector's ``classes`` (and ``palette`` where known): the checkpoint's ``meta.dataset_meta``, else the
    config's test set's metainfo, else its dataset class's ``METAINFO``. ValueError when none names any classes."""
    meta = ((checkpoint or {}).get('meta') or {}).get('dataset_meta') or {}
    meta = {key.lower(): value for key, value in meta.items()}
    if meta.get('classes'):
        return meta
    dataset = cfg.test_dataloader.dataset
    metainfo = dict(dataset.get('metainfo') or {})
    if metainfo.get('classes'):
        return metainfo
    from mmengine.registry import DATASETS
    dataset_type = dataset.get('type')
    if isinstance(dataset_type, str):
        # The config scope's own registry (mmyolo's, mmdet's), as building the dataset would use.
        with DATASETS.switch_scope_and_registry(cfg.get('default_scope', 'mmdet')) as registry:
            dataset_type = registry.get(dataset_type)
    metainfo = dict(getattr(dataset_type, 'METAINFO', {}))
    if not metainfo.get('classes'):
        raise ValueError("the checkpoint has no meta.dataset_meta and the config's test dataset names no classes "
                         '(test_dataloader.dataset.metainfo): cannot tell the class names')
    return metainfo


def class_names(cfg: Config, checkpoint: Optional[dict] = None) -> List[str]:
    """The detector's class names (see :func:`dataset_meta`)."""
    return list(dataset_meta(cfg, checkpoint)['classes'])
