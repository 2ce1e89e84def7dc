"""mmyolo-dcnv3: DCNv3 (InternImage) for MMYOLO's YOLOv8.

Importing the package loads the DCNv3 kernels (:mod:`mmyolo_dcnv3.ops`) and,
where mmengine is installed, registers the modules in the OpenMMLab registries
(so ``custom_imports=dict(imports=['mmyolo_dcnv3'])`` in a config works) and
applies the fixes of :mod:`mmyolo_dcnv3.utils.compat`.
:mod:`mmyolo_dcnv3.ops` alone needs nothing but torch.
"""
import importlib.util
import os

from .utils.stack_warnings import silence_stack_warnings

# Before the stack is imported: its import-time deprecation warnings (see the module).
silence_stack_warnings()
# albumentations (in YOLOv8's pipelines) otherwise asks the network for updates.
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')

import mmyolo_dcnv3_config_scope  # noqa: E402

from . import ops  # noqa: E402
from .version import __version__  # noqa: E402

# `_base_ = 'mmyolo_dcnv3::...'` in configs (installed packages do this at start-up already).
mmyolo_dcnv3_config_scope.install()

if importlib.util.find_spec('mmengine') is not None:
    from . import engine, models  # noqa: F401  (register the hooks and modules)
    from .utils import compat
    compat.apply()

__all__ = ['ops', '__version__']
