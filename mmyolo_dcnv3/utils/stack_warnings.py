"""Silences the deprecation warnings that the OpenMMLab stack's own code raises on every run.

They come from code this package does not own, a user cannot act on them,
and a training prints each of them dozens of times (once per import, per
dataloader worker, per forward). Each filter is narrow: one message, raised
by the named modules only; every other warning, ours included, still shows.
:func:`mmyolo_dcnv3.utils.register_all_modules` installs them, process-wide
(a filter cannot be limited to the stack's calls); ``import
mmyolo_dcnv3.ops`` does not.
"""
import warnings

# (message prefix, category, modules the warning is attributed to)
_STACK_WARNINGS = (
    # setuptools >= 70 on `import pkg_resources`, which mmengine, mmcv and openmim do (setuptools < 81 is pinned
    # because they need it); at module level it is attributed to importlib.
    ('pkg_resources is deprecated as an API', UserWarning, r'(mmengine|mmcv|mmdet|mmyolo|mim|importlib)(\..*)?$'),
    # torch.meshgrid without `indexing`, in mmdet's and mmyolo's prior generators.
    ('torch.meshgrid: in an upcoming release', UserWarning, r'torch\.functional$'),
)


def silence_stack_warnings() -> None:
    for message, category, modules in _STACK_WARNINGS:
        warnings.filterwarnings('ignore', message=message, category=category, module=modules)
