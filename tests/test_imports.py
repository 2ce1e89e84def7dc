"""What importing the package changes, each case in a fresh interpreter.

``import mmyolo_dcnv3.ops`` needs torch alone and changes nothing observable;
registration (``register_all_modules``, or ``import mmyolo_dcnv3`` once
mmengine is in use, as in a config's ``custom_imports``) makes exactly the
documented changes, once.
"""
import json
import os
import sys
import textwrap

import pytest

from tests.conftest import ROOT, run_command

# Run first in each fresh interpreter: snapshot() gathers what an import could change for the rest of the
# process, diff() compares two snapshots. Registry entries and the classes and functions of the stack's
# modules are compared by identity, so a replaced or patched one shows.
PROBE = '''
import json, logging, os, sys, warnings
# torch._dynamo is imported by torch.library's fake-kernel registration, which any torch.library op does; its
# import sets torch's own environment variables and warning filters, so it comes before the snapshots.
import numpy, torch, torch._dynamo

STACK = ('mmcv', 'mmdet', 'mmengine', 'mmyolo')


def name(obj):
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def snapshot():
    flat = {'warning filters': [repr(f) for f in warnings.filters],
            'environment': dict(os.environ),
            'meta path': [name(type(f)) for f in sys.meta_path],
            'sys.path': list(sys.path),
            'torch safe globals': sorted(name(g) for g in torch.serialization.get_safe_globals()),
            'torch settings': [str(torch.get_default_dtype()), torch.get_num_threads(), torch.is_grad_enabled(),
                               torch.are_deterministic_algorithms_enabled(), torch.get_float32_matmul_precision()],
            'root logger': [logging.getLogger().level, len(logging.getLogger().handlers)],
            'stack modules': sorted(m for m in sys.modules if m.split('.')[0] in STACK)}
    Registry = None
    if sys.modules.get('mmengine.registry') is not None:
        from mmengine.registry import DefaultScope, Registry
        scope = DefaultScope.get_current_instance()
        flat['default scope'] = scope and scope.scope_name
    for module_name, module in list(sys.modules.items()):
        if module is None or module_name.split('.')[0] not in STACK:
            continue
        for attr, value in list(vars(module).items()):
            if Registry is not None and isinstance(value, Registry):
                # A registry is reachable from every module that imported it: keyed by its scope and name.
                for key, registered in value.module_dict.items():
                    flat[f'registry {value.scope}.{value.name}[{key}]'] = f'{name(registered)} {id(registered)}'
            elif getattr(value, '__module__', None) == module_name and callable(value):
                flat[f'{module_name}.{attr}'] = id(value)
                if isinstance(value, type):
                    for cls_attr, member in vars(value).items():
                        flat[f'{module_name}.{attr}.{cls_attr}'] = id(member)
    return flat


def diff(before, after):
    return {key: [before.get(key), after.get(key)] for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)}


def report(**results):
    print('RESULTS ' + json.dumps(results))
'''

LAYERS = ('DCNv3', 'DCNv3Conv2d', 'DCNv3ConvModule', 'DarknetBottleneckDCNv3', 'CSPLayerWithTwoConvDCNv3')
BACKBONES = ('YOLOv8CSPDarknetDCNv3', 'CSPNeXtDCNv3', 'CSPNeXtLayerDCNv3')
# What registration adds to torch's weights-only allow-list (mmengine's message hub in checkpoints).
CHECKPOINT_GLOBALS = {'mmengine.logging.history_buffer.HistoryBuffer', 'numpy.ndarray', 'numpy.dtype',
                      'numpy._core.multiarray._reconstruct', 'numpy._core.multiarray.scalar',
                      *(f'numpy.dtypes.{kind}DType' for kind in ('Float64', 'Float32', 'Float16', 'Int64', 'Int32',
                                                                 'Bool'))}
# The stack's modules that registration uses, imported before the "before" snapshot so that what the stack's own
# imports register does not count as the package's doing.
STACK_IMPORTS = ('import mmengine.config, mmengine.dataset, mmengine.hooks, mmengine.logging, mmengine.model, '
                 'mmengine.registry, mmcv.cnn, mmdet.models.layers, mmyolo.models, mmyolo.datasets.utils')


def run_fresh(code: str, **env) -> dict:
    """Runs PROBE then ``code`` in a new interpreter; returns what ``code`` passed to ``report()``."""
    result = run_command([sys.executable, '-c', PROBE + textwrap.dedent(code)], env=env, timeout=300)
    lines = [line for line in result.stdout.splitlines() if line.startswith('RESULTS ')]
    assert len(lines) == 1, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(lines[0][len('RESULTS '):])


def run_dcnv3_code(module: str) -> str:
    """Code calling ``dcnv3`` from ``module`` on a small input; reports the output's shape as ``shape``."""
    return f'''
        from {module} import dcnv3
        out = dcnv3(torch.rand(1, 4, 4, 4), torch.zeros(1, 4, 4, 2 * 9 * 2), torch.ones(1, 4, 4, 2 * 9),
                    3, 3, 1, 1, 1, 1, 1, 1, 2, 2, 1.0)
        shape = list(out.shape)
    '''


@pytest.mark.parametrize('module', ['mmyolo_dcnv3.ops', 'mmyolo_dcnv3'])
def test_importing_the_op_changes_nothing_and_imports_none_of_the_stack(module):
    results = run_fresh(f'''
        before = snapshot()
        import {module}
        after = snapshot()
        {run_dcnv3_code('mmyolo_dcnv3.ops').strip()}
        report(changes=diff(before, after), shape=shape)
    ''')
    assert results == dict(changes={}, shape=[1, 4, 4, 4])


@pytest.mark.parametrize('stack_in_use', [False, True], ids=['fresh', 'mmengine imported'])
def test_ops_work_with_mmengine_installed_and_mmyolo_absent(stack_in_use):
    results = run_fresh(f'''
        sys.modules['mmyolo'] = None  # any import of mmyolo now fails, as if it were not installed
        if {stack_in_use}:
            import mmengine.registry
        before = snapshot()
        import mmyolo_dcnv3
        {run_dcnv3_code('mmyolo_dcnv3.ops').strip()}
        changes = diff(before, snapshot())
        try:
            mmyolo_dcnv3.utils.register_all_modules()
            error = None
        except ModuleNotFoundError as exc:
            error = [str(exc), exc.name]
        report(changes=changes, shape=shape, error=error)
    ''')
    assert results['changes'] == {} and results['shape'] == [1, 4, 4, 4]
    message, missing = results['error']
    assert missing == 'mmyolo'
    assert 'register_all_modules needs the OpenMMLab stack (mmengine, mmcv, mmdet, mmyolo); not installed: mmyolo' \
        in message


def unexpected_registration_changes(changes: dict) -> dict:
    """Checks the documented changes in ``changes`` (a diff of snapshots around the first registration) and
    returns the others."""
    unexpected = dict(changes)
    added = {key for key, (before, _) in changes.items() if key.startswith('registry ') and before is None}
    assert added == {*(f'registry mmengine.model[{name}]' for name in LAYERS),
                     *(f'registry mmyolo.model[{name}]' for name in BACKBONES),
                     'registry mmengine.hook[LoadFromReportHook]'}
    for key in added:
        assert unexpected.pop(key)[1].startswith('mmyolo_dcnv3.'), key
    # yolov5_collate, wrapped to accept `_scope_` (functools.wraps keeps its name).
    before, after = unexpected.pop('registry mmengine.function[yolov5_collate]')
    assert before.split()[0] == after.split()[0] and before.startswith('mmyolo.')
    # Checkpoints that mmengine writes no longer pickle builtins.getattr: mmengine's __getstate__ is replaced.
    before, after = unexpected.pop('mmengine.logging.history_buffer.HistoryBuffer.__getstate__')
    assert None not in (before, after) and before != after
    before, after = unexpected.pop('torch safe globals')
    assert set(after) - set(before) == CHECKPOINT_GLOBALS and set(before) <= set(after)
    # Two of the stack's deprecation warnings, ignored (each filter names its message).
    before, after = unexpected.pop('warning filters')
    added = [f for f in after if f not in before]
    assert len(added) == 2 and after[2:] == before and all(f.startswith("('ignore', ") for f in added)
    assert 'pkg_resources is deprecated as an API' in added[1] and 'torch.meshgrid: in an upcoming' in added[0]
    # `mmyolo_dcnv3::` configs; the start-up hook of an installed package has done it already.
    unexpected.pop('mmengine.config.config.Config._get_cfg_path', None)
    return unexpected


def test_registration_makes_only_the_documented_changes_once():
    results = run_fresh(f'''
        {STACK_IMPORTS}
        before = snapshot()
        import mmyolo_dcnv3  # registers: mmengine is in use
        first = snapshot()
        mmyolo_dcnv3.utils.register_all_modules(init_default_scope=False)
        again = snapshot()
        from mmengine.config import Config
        report(first=diff(before, first), again=diff(first, again),
               config_prefix=getattr(Config._get_cfg_path, 'resolves_mmyolo_dcnv3', False))
    ''')
    assert unexpected_registration_changes(results['first']) == {}
    assert results['again'] == {} and results['config_prefix']


def test_register_all_modules_sets_mmyolo_as_default_scope_like_mmyolo():
    results = run_fresh(f'''
        {STACK_IMPORTS}
        from mmyolo_dcnv3.utils import register_all_modules
        register_all_modules()
        first = snapshot()
        register_all_modules()
        report(scope=first['default scope'], again=diff(first, snapshot()))
    ''')
    assert results == dict(scope='mmyolo', again={})


def test_config_custom_imports_registers_everything(tmp_path):
    config = tmp_path / 'my_config.py'
    config.write_text("custom_imports = dict(imports=['mmyolo_dcnv3'], allow_failed_imports=False)\n")
    results = run_fresh(f'''
        from mmengine.config import Config
        Config.fromfile({str(config)!r})
        from mmengine.registry import HOOKS, MODELS
        from mmyolo.registry import MODELS as MMYOLO_MODELS
        block = MODELS.build(dict(type='DCNv3', channels=8, group=2))
        report(layers=sorted(set({LAYERS!r}) & set(MODELS.module_dict)),
               backbones=sorted(set({BACKBONES!r}) & set(MMYOLO_MODELS.module_dict)),
               hook='LoadFromReportHook' in HOOKS.module_dict, block=type(block).__module__)
    ''')
    assert results == dict(layers=sorted(LAYERS), backbones=sorted(BACKBONES), hook=True,
                           block='mmyolo_dcnv3.models.layers.dcnv3')


def test_start_up_hook_adds_one_finder_and_imports_nothing_until_mmengine_config_is_imported():
    pth = open(os.path.join(ROOT, 'mmyolo_dcnv3_config_scope.pth')).read()
    # -S: no site, so that the hook runs here, not at start-up; this interpreter's site-packages (a venv's, which
    # only site would find) are put on the path by hand.
    site_packages = [path for path in sys.path if path.endswith('site-packages')]
    code = f'''
        import json, sys
        sys.path[1:1] = {site_packages!r}
        modules, finders = set(sys.modules), list(sys.meta_path)
        exec({pth!r})
        # Without site, the standard library modules it would have loaded are imported here: only others count.
        imported = sorted(m for m in set(sys.modules) - modules if m.split('.')[0] not in sys.stdlib_module_names)
        added = [type(f).__name__ for f in sys.meta_path if f not in finders]
        from mmengine.config import Config
        print(json.dumps(dict(imported=imported, added=added, left=[f for f in sys.meta_path if f not in finders] != [],
                              patched=getattr(Config._get_cfg_path, 'resolves_mmyolo_dcnv3', False))))
    '''
    result = run_command([sys.executable, '-S', '-c', textwrap.dedent(code)], timeout=300)
    assert json.loads(result.stdout.splitlines()[-1]) == dict(
        imported=['mmyolo_dcnv3_config_scope'], added=['_PatchWhenImported'], left=False, patched=True)
