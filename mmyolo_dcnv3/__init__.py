"""mmyolo-dcnv3: DCNv3 (InternImage) for MMYOLO's YOLOv8.

Importing the package loads the DCNv3 kernels (:mod:`mmyolo_dcnv3.ops`) and,
where mmengine is installed, registers the modules in the OpenMMLab registries
(so ``custom_imports=dict(imports=['mmyolo_dcnv3'])`` in a config works).
:mod:`mmyolo_dcnv3.ops` alone needs nothing but torch.
"""
import importlib.util

from . import ops
from .version import __version__

if importlib.util.find_spec('mmengine') is not None:
    from . import models  # noqa: F401  (registers the modules)

__all__ = ['ops', '__version__']
