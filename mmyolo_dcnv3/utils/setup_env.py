"""Registration in the OpenMMLab registries, explicit and idempotent (MMYOLO's ``register_all_modules``).

Nothing here imports the OpenMMLab stack at module level: importing this
module (or :mod:`mmyolo_dcnv3.utils`) costs nothing; calling
:func:`register_all_modules` imports the stack and registers.
"""
import importlib.util
import sys
from typing import List

#: What :func:`register_all_modules` imports (the models layer needs all four).
STACK = ('mmengine', 'mmcv', 'mmdet', 'mmyolo')


def missing_stack_packages() -> List[str]:
    """The packages of :data:`STACK` that cannot be imported here, without importing any of them."""
    missing = []
    for name in STACK:
        if name in sys.modules:
            # Imported, or None: imports of it are blocked.
            if sys.modules[name] is None:
                missing.append(name)
            continue
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # a finder that refuses it
            found = False
        if not found:
            missing.append(name)
    return missing


def register_all_modules(init_default_scope: bool = True) -> None:
    """Registers the package's modules and hooks, and applies the stack fixes.

    * the DCNv3 layers (``DCNv3``, ``DCNv3Conv2d``, ``DCNv3ConvModule``,
      ``DarknetBottleneckDCNv3``, ``CSPLayerWithTwoConvDCNv3``) in mmengine's
      root ``MODELS``, so ``conv_cfg=dict(type='DCNv3Conv2d')`` works from
      any scope;
    * the backbones (``YOLOv8CSPDarknetDCNv3``, ``CSPNeXtDCNv3``,
      ``CSPNeXtLayerDCNv3``) in MMYOLO's ``MODELS``;
    * ``LoadFromReportHook`` in mmengine's root ``HOOKS``;
    * the fixes of :mod:`mmyolo_dcnv3.utils.compat` (mmengine checkpoints
      under torch's weights-only loader, ``yolov5_collate`` with ``_scope_``),
      the ``mmyolo_dcnv3::`` config prefix (:mod:`mmyolo_dcnv3_config_scope`)
      and the warning filters of :mod:`mmyolo_dcnv3.utils.stack_warnings`.

    Calling it again changes nothing. ``import mmyolo_dcnv3`` calls it (with
    ``init_default_scope=False``) when mmengine is already imported, which is
    the case of a config's ``custom_imports=dict(imports=['mmyolo_dcnv3'])``.

    Args:
        init_default_scope: as in MMYOLO's function of this name: make
            ``'mmyolo'`` the default registry scope (mmengine's
            ``init_default_scope``; a scope of another name already current is
            replaced, with mmengine's warning).

    Raises:
        ModuleNotFoundError: a package of the OpenMMLab stack is not installed
            (each one missing is named).
    """
    missing = missing_stack_packages()
    if missing:
        raise ModuleNotFoundError(
            f'mmyolo_dcnv3.utils.register_all_modules needs the OpenMMLab stack ({", ".join(STACK)}); '
            f'not installed: {", ".join(missing)} (tools/setup_env.sh installs it; mmyolo_dcnv3.ops alone '
            'needs torch only)', name=missing[0])
    from .stack_warnings import silence_stack_warnings
    silence_stack_warnings()  # before the imports below, which raise some of them

    from mmengine.config import Config

    import mmyolo_dcnv3_config_scope
    from mmyolo_dcnv3 import engine, models  # noqa: F401  (their classes register on import)

    from . import compat
    mmyolo_dcnv3_config_scope.patch_config_class(Config)
    compat.apply()
    if init_default_scope:
        from mmengine.registry import init_default_scope as init_scope
        init_scope('mmyolo')
