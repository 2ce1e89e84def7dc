"""Support code: registration, stack fixes, configs, checkpoints, dataset checks, complexity, the tools' shared
arguments. Importing this package imports nothing of the OpenMMLab stack (most of its modules do)."""
from .setup_env import register_all_modules

__all__ = ['register_all_modules']
