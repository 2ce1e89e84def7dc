"""Makes ``_base_ = 'mmyolo_dcnv3::CONFIG'`` resolve in mmengine configs.

mmengine resolves ``PACKAGE::path`` only for the OpenMMLab packages it lists
itself (``MODULE2PACKAGE``) and only for paths with a folder in them, so it
cannot find this package's configs on its own. This module teaches
``Config`` the ``mmyolo_dcnv3::`` prefix: the path is looked up in the
installed package's ``.mim/configs/`` folder (where ``pip install`` puts
``configs/``), or, in a source checkout, in its ``configs/`` folder.

It must work before anything imports ``mmyolo_dcnv3``: ``mim train mmyolo
my_config.py`` runs MMYOLO's train script, which parses the config (and so
its ``_base_``) before the config's ``custom_imports`` import this package.
The installed package therefore carries ``mmyolo_dcnv3_config_scope.pth``,
which Python's ``site`` runs at start-up: it calls :func:`install`, which
costs nothing until ``mmengine.config`` is imported (no torch, no mmengine
imported here), and then patches ``Config`` once. ``import mmyolo_dcnv3``
calls :func:`install` too, for source checkouts that have no ``.pth``.
"""
import importlib.abc
import importlib.util
import os.path as osp
import sys

PREFIX = 'mmyolo_dcnv3::'
_CONFIG_MODULE = 'mmengine.config.config'


def package_root() -> str:
    """The folder holding the package's ``configs/`` and ``tools/``: ``mmyolo_dcnv3/.mim`` in an installed
    package, the repository in a source checkout (the package is located, not imported)."""
    spec = importlib.util.find_spec('mmyolo_dcnv3')
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError('mmyolo_dcnv3::... configs need the mmyolo_dcnv3 package: '
                                  'pip install mmyolo-dcnv3 (or this repository)')
    package_dir = osp.dirname(spec.origin)
    for root in (osp.join(package_dir, '.mim'), osp.dirname(package_dir)):
        if osp.isdir(osp.join(root, 'configs')):
            return root
    raise FileNotFoundError(f'mmyolo_dcnv3 at {package_dir} has no configs: neither {package_dir}/.mim/configs '
                            f'(an installed package) nor {osp.dirname(package_dir)}/configs (a source checkout) '
                            'exists')


def package_configs_dir() -> str:
    """The folder that ``mmyolo_dcnv3::`` paths are relative to."""
    return osp.join(package_root(), 'configs')


def resolve(cfg_path: str) -> str:
    """The file of ``mmyolo_dcnv3::RELATIVE/PATH.py``."""
    relative = cfg_path[len(PREFIX):]
    configs_dir = package_configs_dir()
    path = osp.join(configs_dir, relative)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{cfg_path!r}: no config {relative!r} in {configs_dir}')
    return path


def patch_config_class(config_cls) -> None:
    """Wraps ``Config._get_cfg_path`` so that it resolves ``mmyolo_dcnv3::`` paths (once)."""
    original = config_cls._get_cfg_path
    if getattr(original, 'resolves_mmyolo_dcnv3', False):
        return

    def _get_cfg_path(cfg_path, filename):
        if cfg_path.startswith(PREFIX):
            # No scope: the configs stamp their own (`mmyolo::`/`mmdet::` bases),
            # and 'mmyolo_dcnv3' is no registry scope.
            return resolve(cfg_path), None
        return original(cfg_path, filename)

    _get_cfg_path.resolves_mmyolo_dcnv3 = True
    config_cls._get_cfg_path = staticmethod(_get_cfg_path)


class _PatchWhenImported(importlib.abc.MetaPathFinder):
    """Patches ``mmengine.config.config.Config`` right after that module is executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _CONFIG_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            patch_config_class(module.Config)

        spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Patches ``Config`` now if mmengine's config module is loaded, else when it is."""
    module = sys.modules.get(_CONFIG_MODULE)
    if module is not None and hasattr(module, 'Config'):
        patch_config_class(module.Config)
    elif not any(isinstance(finder, _PatchWhenImported) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchWhenImported())
