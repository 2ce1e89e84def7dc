"""mmyolo-dcnv3: DCNv3 (InternImage) for MMYOLO's YOLOv8.

What importing does:

* ``import mmyolo_dcnv3.ops`` (the operator) needs torch alone and imports
  nothing of the OpenMMLab stack; its only global change is the operator
  itself, ``torch.ops.mmyolo_dcnv3`` (the compiled library, where built).
* ``import mmyolo_dcnv3`` does the same, and, when mmengine is already
  imported and the stack is installed, registers the package's modules as
  :func:`mmyolo_dcnv3.utils.register_all_modules` does (without changing the
  default scope). That is the case of a config's
  ``custom_imports=dict(imports=['mmyolo_dcnv3'])``, which mmengine's
  ``Config`` processes.
* A script that builds from the registries calls
  ``mmyolo_dcnv3.utils.register_all_modules()`` (MMYOLO's name and meaning),
  whatever it imported before; calling it again changes nothing.

Python runs this file before any submodule, so it must not import the stack
unless the stack is already in use: ``import mmyolo_dcnv3.ops`` in a fresh
interpreter with mmengine installed and mmyolo absent has to work.
"""
import sys

from . import ops
from .utils.setup_env import missing_stack_packages, register_all_modules
from .version import __version__

if 'mmengine' in sys.modules and not missing_stack_packages():
    register_all_modules(init_default_scope=False)

__all__ = ['ops', '__version__']
