"""The installable package: metadata, the .mim layout, `mmyolo_dcnv3::` configs from anywhere, CUDA archs.

The cheap tests lay the package out as a wheel installs it (setup.py's
build_py: sources, .mim/configs, .mim/tools, the start-up .pth; plus the
kernels built in the checkout) in a fresh virtual environment that sees the
shared environment's packages but not this checkout, and use it from a
temporary folder. The integration test builds the real wheel (`pip wheel`) in
an environment of only PATH and HOME with nvcc reached through a wrapper script
(about 6 minutes on 2 cores, for the default GPU architectures), installs it
there, loads both kernel libraries, trains through `mim train mmyolo` from
outside the checkout and runs installed tools, which must write only into the
working directory. The CUDA toolkit detection that build relies on is tested
quickly on a wrapper of the real nvcc and on a fake distribution layout.
"""
import email
import glob
import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
import zipfile

import pytest
import torch
from packaging.specifiers import SpecifierSet

from tests.conftest import ROOT, run_command

USER_CONFIG = "_base_ = 'mmyolo_dcnv3::yolov8_s_dcnv3_coco.py'\n"
LOAD_USER_CONFIG = ('from mmengine.config import Config\n'
                    'cfg = Config.fromfile("my_config.py")\n'
                    'import mmyolo_dcnv3\n'
                    'print("backbone", cfg.model.backbone.type)\n'
                    'print("package", mmyolo_dcnv3.__file__)\n')


def load_setup_module():
    spec = importlib.util.spec_from_file_location('mmyolo_dcnv3_setup', os.path.join(ROOT, 'setup.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: defines the helpers, runs no setup()
    return module


def make_env_outside_checkout(path):
    """A venv whose site-packages sees the shared environment's packages (not its .pth files, so not
    this checkout's editable install) and nothing of the checkout."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(path)], check=True)
    venv_site = glob.glob(os.path.join(str(path), 'lib', 'python*', 'site-packages'))[0]
    with open(os.path.join(venv_site, 'shared_environment.pth'), 'w') as f:
        f.write('\n'.join(site.getsitepackages()) + '\n')
    return os.path.join(str(path), 'bin', 'python'), venv_site


def run_outside(python, args, cwd, extra_env=None, **kwargs):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(extra_env or {})
    return subprocess.run([python, *args], capture_output=True, text=True, cwd=cwd, env=env, **kwargs)


@pytest.fixture(scope='module')
def laid_out_package(tmp_path_factory):
    """setup.py build_py's output (what a wheel holds, kernels aside) and its metadata."""
    out = tmp_path_factory.mktemp('build_py')
    run_command([sys.executable, 'setup.py', '-q', 'build_py', '--build-lib', str(out / 'lib'),
                 'egg_info', '--egg-base', str(out)], env=dict(FORCE_CUDA='0'), cwd=ROOT)
    for library in glob.glob(os.path.join(ROOT, 'mmyolo_dcnv3', '_C*.so')):
        shutil.copy(library, out / 'lib' / 'mmyolo_dcnv3')
    return out


def test_package_data_holds_configs_tools_and_the_config_scope_hook(laid_out_package):
    lib = laid_out_package / 'lib'
    for config in ('yolov8_s_dcnv3_coco.py', '_base_/yolov8_dcnv3_backbone.py', 'demo/yolov8_n_toy.py',
                   'custom_dataset/yolov8_s_dcnv3_finetune_custom.py', 'rtmdet/rtmdet_s_dcnv3_coco.py',
                   'mmdet/faster-rcnn_r50-dcnv3-c3-c5_fpn_1x_coco.py'):
        assert (lib / 'mmyolo_dcnv3' / '.mim' / 'configs' / config).is_file(), config
    for tool in ('train.py', 'test.py', 'image_demo.py'):
        assert (lib / 'mmyolo_dcnv3' / '.mim' / 'tools' / tool).is_file(), tool
    assert not list((lib / 'mmyolo_dcnv3' / '.mim' / 'tools').glob('*.sh'))
    assert (lib / 'mmyolo_dcnv3_config_scope.py').is_file()
    assert (lib / 'mmyolo_dcnv3_config_scope.pth').read_text().startswith('import mmyolo_dcnv3_config_scope')


def test_metadata_names_version_license_python_torch_and_the_extras(laid_out_package):
    info = email.message_from_string((laid_out_package / 'mmyolo_dcnv3.egg-info' / 'PKG-INFO').read_text())
    assert info['Name'] == 'mmyolo-dcnv3' and info['Version'] == load_setup_module().read_version()
    assert SpecifierSet(info['Requires-Python']) == SpecifierSet('>=3.10,<3.12')
    assert info['License'] == 'Apache-2.0' or 'Apache-2.0' in info.get('License-Expression', '')
    assert 'torch>=2.4' in info.get_all('Requires-Dist')
    assert any(r.startswith('mmyolo==0.6.0') and 'openmmlab' in r for r in info.get_all('Requires-Dist'))
    deploy = {r.split(';')[0].strip() for r in info.get_all('Requires-Dist') if 'extra == "deploy"' in r}
    assert deploy == {'onnx', 'onnxscript', 'onnx-ir', 'onnxruntime', 'openvino', 'nncf'}  # requirements/deploy.txt
    assert '## Quick start' in info.get_payload()
    assert (laid_out_package / 'mmyolo_dcnv3.egg-info' / 'SOURCES.txt').read_text().count('LICENSE') == 1


def test_mmyolo_dcnv3_configs_inherit_from_any_folder_without_importing_the_package(laid_out_package, tmp_path):
    python, venv_site = make_env_outside_checkout(tmp_path / 'venv')
    for entry in os.listdir(laid_out_package / 'lib'):
        source = laid_out_package / 'lib' / entry
        (shutil.copytree if source.is_dir() else shutil.copy)(source, os.path.join(venv_site, entry))
    work = tmp_path / 'my_project'
    work.mkdir()
    (work / 'my_config.py').write_text(USER_CONFIG)
    # Config.fromfile first: the `mmyolo_dcnv3::` base resolves before anything imports mmyolo_dcnv3.
    result = run_outside(python, ['-c', LOAD_USER_CONFIG], cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'backbone YOLOv8CSPDarknetDCNv3' in result.stdout
    assert f'package {venv_site}' in result.stdout  # the installed copy, not the checkout
    # A missing config is named with the folder it was looked for in.
    (work / 'bad_config.py').write_text("_base_ = 'mmyolo_dcnv3::no_such_config.py'\n")
    result = run_outside(python, ['-c', 'from mmengine.config import Config; Config.fromfile("bad_config.py")'],
                         cwd=work)
    assert result.returncode != 0
    assert "no config 'no_such_config.py' in " + os.path.join(venv_site, 'mmyolo_dcnv3', '.mim', 'configs') \
        in result.stderr


def test_source_checkout_resolves_mmyolo_dcnv3_configs_to_its_configs_folder(tmp_path):
    from mmengine.config import Config

    from mmyolo_dcnv3.utils import register_all_modules
    register_all_modules(init_default_scope=False)  # teaches Config the prefix
    config = tmp_path / 'my_config.py'
    config.write_text(USER_CONFIG + 'model = dict(backbone=dict(dcnv3_cfg=dict(group=8)))\n')
    cfg = Config.fromfile(str(config))
    assert cfg.model.backbone.type == 'YOLOv8CSPDarknetDCNv3' and cfg.model.backbone.dcnv3_cfg.group == 8
    assert cfg.custom_imports.imports == ['mmyolo_dcnv3']


def test_wheel_libraries_are_built_from_csrc_alone_and_register_only_the_public_ops(monkeypatch):
    """Test-only code (the CUDA-on-CPU tier of tests/ops/cuda_on_cpu/) stays out of the wheel's libraries."""
    monkeypatch.setenv('FORCE_CUDA', '0')
    sources = [source for extension in load_setup_module().extensions() for source in extension.sources]
    assert sources and all(source.startswith('csrc/') for source in sources), sources
    from mmyolo_dcnv3.ops._library import compiled_kernels
    if not compiled_kernels().available('cpu'):
        pytest.skip('the CPU kernels are not built')
    public = sorted(name for name in torch._C._dispatch_get_all_op_names() if name.startswith('mmyolo_dcnv3::'))
    assert public == ['mmyolo_dcnv3::dcnv3_backward', 'mmyolo_dcnv3::dcnv3_forward']


def test_setup_picks_the_release_architectures_nvcc_supports():
    setup_module = load_setup_module()
    supported = ['5.0', '6.0', '7.5', '8.0', '8.6', '8.9', '9.0', '10.0', '12.0', '12.1']
    assert setup_module.default_cuda_arch_list(supported) == '7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX'
    assert setup_module.default_cuda_arch_list(['7.0', '7.5', '8.0']) == '7.5;8.0+PTX'
    with pytest.raises(SystemExit, match='set TORCH_CUDA_ARCH_LIST'):
        setup_module.default_cuda_arch_list(['3.5', '5.0'])


def test_setup_sets_and_announces_an_arch_list_only_when_no_gpu_is_visible_and_none_is_given(
        tmp_path, monkeypatch, capsys):
    import torch.utils.cpp_extension as cpp_extension
    setup_module = load_setup_module()
    nvcc = tmp_path / 'bin' / 'nvcc'
    nvcc.parent.mkdir()
    nvcc.write_text('#!/bin/sh\n[ "$1" = --list-gpu-arch ] && printf "compute_75\\ncompute_80\\ncompute_86\\n'
                    'compute_89\\ncompute_90\\ncompute_100\\ncompute_120\\n"\n')
    nvcc.chmod(0o755)
    monkeypatch.setattr(cpp_extension, 'CUDA_HOME', str(tmp_path))
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    monkeypatch.setenv('TORCH_CUDA_ARCH_LIST', '9.0')
    setup_module.choose_cuda_arch_list(torch)
    assert os.environ['TORCH_CUDA_ARCH_LIST'] == '9.0' and capsys.readouterr().err == ''
    monkeypatch.delenv('TORCH_CUDA_ARCH_LIST')
    setup_module.choose_cuda_arch_list(torch)
    assert os.environ['TORCH_CUDA_ARCH_LIST'] == '7.5;8.0;8.6;8.9;9.0;10.0;12.0+PTX'
    assert 'no GPU visible and TORCH_CUDA_ARCH_LIST not set' in capsys.readouterr().err
    if torch.version.cuda is not None:
        # torch's builder accepts the list: no IndexError from asking an absent GPU.
        flags = cpp_extension._get_cuda_arch_flags()
        assert '-gencode=arch=compute_90,code=sm_90' in flags


def executable(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def nvcc_wrapper(folder):
    """``folder/bin/nvcc``: a script running this machine's nvcc, as /usr/local/bin/nvcc may be."""
    real = shutil.which('nvcc')
    if torch.version.cuda is None or real is None:
        pytest.skip('needs a CUDA build of torch and an nvcc on PATH')
    return executable(folder / 'bin' / 'nvcc', f'#!/bin/sh\nexec {real} "$@"\n')


CUDA_BUILD_SEEN_BY_SETUP = """
import json, setup, torch.utils.cpp_extension as cpp_extension
guess = cpp_extension.CUDA_HOME
cuda = next(e for e in setup.extensions() if e.name == 'mmyolo_dcnv3._C_cuda')
print(json.dumps(dict(guess=guess, cuda_home=cpp_extension.CUDA_HOME, include_dirs=cuda.include_dirs,
                      library_dirs=cuda.library_dirs)))
"""


def test_setup_builds_with_the_toolkit_behind_an_nvcc_wrapper_on_path(tmp_path):
    wrapper = nvcc_wrapper(tmp_path)
    env = dict(PATH=f'{wrapper.parent}:/usr/bin:/bin', HOME=os.environ.get('HOME', str(tmp_path)))
    result = subprocess.run([sys.executable, '-c', CUDA_BUILD_SEEN_BY_SETUP], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen['guess'] == str(tmp_path)  # torch's own guess: the folder above the wrapper's bin/
    root = seen['cuda_home']
    assert root != str(tmp_path) and f'the CUDA toolkit is {root}' in result.stderr
    with open(os.path.join(root, 'bin', 'nvcc'), 'rb') as real_nvcc:
        assert real_nvcc.read(4) == b'\x7fELF'  # the compiler itself, not a wrapper
    assert any(os.path.isfile(os.path.join(d, 'cuda_runtime_api.h')) for d in seen['include_dirs'])
    assert any(os.path.isfile(os.path.join(d, 'libcudart.so')) for d in seen['library_dirs'])


def fake_distribution_nvcc(prefix, libraries):
    """A Debian-like layout under ``prefix``: ``usr/bin/nvcc`` runs ``usr/lib/nvidia-cuda-toolkit/bin/nvcc``,
    whose ``--dryrun`` names ``usr/include`` and the ``-L`` folders ``libraries`` (under ``usr``); the headers
    and libcudart are in ``usr/include`` and ``usr/lib/x86_64-linux-gnu``, not under the toolkit's folder."""
    usr = prefix / 'usr'
    (usr / 'include').mkdir(parents=True)
    (usr / 'include' / 'cuda_runtime_api.h').write_text('')
    (usr / 'lib' / 'x86_64-linux-gnu').mkdir(parents=True)
    (usr / 'lib' / 'x86_64-linux-gnu' / 'libcudart.so').write_text('')
    here = usr / 'lib' / 'nvidia-cuda-toolkit' / 'bin'
    link_flags = ' '.join(f'"-L{usr / folder}"' for folder in libraries)
    executable(here / 'nvcc', f"""#!/bin/sh
cat >&2 <<'END'
#$ _HERE_={here}
#$ TOP={here.parent}
#$ INCLUDES="-I{usr / 'include'}"
#$ LIBRARIES=  {link_flags}
END
""")
    executable(usr / 'bin' / 'nvcc', f'#!/bin/sh\nexec {here / "nvcc"} "$@"\n')
    return usr


@pytest.fixture
def torch_guessing_cuda_home(monkeypatch):
    """Sets torch's CUDA_HOME as torch guesses it when no CUDA_HOME is in the environment."""
    import torch.utils.cpp_extension as cpp_extension
    for variable in ('CUDA_HOME', 'CUDA_PATH', 'PYTORCH_NVCC'):
        monkeypatch.delenv(variable, raising=False)
    return lambda guess: monkeypatch.setattr(cpp_extension, 'CUDA_HOME', str(guess))


@pytest.mark.parametrize('libraries', [['lib/x86_64-linux-gnu'], []], ids=['named', 'system-default'])
def test_setup_takes_a_distribution_nvccs_toolkit_folders_not_torchs_guess(
        tmp_path, torch_guessing_cuda_home, capsys, libraries):
    import torch.utils.cpp_extension as cpp_extension
    usr = fake_distribution_nvcc(tmp_path, libraries)
    torch_guessing_cuda_home(usr)  # the folder above /usr/bin/nvcc's bin/
    setup_module = load_setup_module()
    toolkit = setup_module.find_cuda_toolkit()
    assert toolkit.root == os.path.realpath(usr / 'lib' / 'nvidia-cuda-toolkit')
    assert toolkit.include_dirs == [os.path.realpath(usr / 'include')]
    # Named folders are passed to the linker; with none, nvcc and the linker search the system's own.
    assert toolkit.library_dirs == [os.path.realpath(usr / folder) for folder in libraries]
    setup_module.build_with_cuda_toolkit(toolkit)
    assert cpp_extension.CUDA_HOME == toolkit.root
    assert f'the CUDA toolkit is {toolkit.root} (as {usr}/bin/nvcc says)' in capsys.readouterr().err


def test_setup_keeps_an_explicit_cuda_home_and_still_asks_its_nvcc_for_the_folders(
        tmp_path, torch_guessing_cuda_home, monkeypatch, capsys):
    import torch.utils.cpp_extension as cpp_extension
    usr = fake_distribution_nvcc(tmp_path, ['lib/x86_64-linux-gnu'])
    torch_guessing_cuda_home(usr)
    monkeypatch.setenv('CUDA_HOME', str(usr))  # which torch read on import
    setup_module = load_setup_module()
    toolkit = setup_module.find_cuda_toolkit()
    assert toolkit.root == str(usr)
    assert toolkit.library_dirs == [os.path.realpath(usr / 'lib' / 'x86_64-linux-gnu')]
    setup_module.build_with_cuda_toolkit(toolkit)
    assert cpp_extension.CUDA_HOME == str(usr) and capsys.readouterr().err == ''


def test_setup_names_the_nvcc_and_the_fix_when_its_library_folders_lack_libcudart(
        tmp_path, torch_guessing_cuda_home):
    usr = fake_distribution_nvcc(tmp_path, ['lib'])
    torch_guessing_cuda_home(usr)
    expected = (f'{usr}/bin/nvcc --dryrun names no library folder with libcudart.so '
                f'({os.path.realpath(usr / "lib")}); set CUDA_HOME to the CUDA toolkit')
    with pytest.raises(SystemExit, match=re.escape(expected)):
        load_setup_module().find_cuda_toolkit()


USER_TOY_CONFIG = """_base_ = 'mmyolo_dcnv3::demo/yolov8_n_dcnv3_toy.py'
data_root = '{root}'
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file='{root}annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_epochs=1, val_interval=1)
"""


def files_under(folder):
    return {os.path.join(path, name) for path, _, names in os.walk(folder) for name in names}


@pytest.mark.integration
def test_wheel_built_with_only_path_and_home_installs_trains_and_writes_only_into_the_working_directory(
        tmp_path, toy_coco):
    """The README's `pip wheel` with nothing exported (no CUDA_HOME, no TORCH_CUDA_ARCH_LIST; nvcc a wrapper
    script on PATH), the wheel installed outside the checkout: its CUDA library loads, `mim train mmyolo`
    trains a user's config inheriting `mmyolo_dcnv3::`, and its tools write data, work dirs and outputs into
    the working directory, nothing into site-packages.

    Built from a copy of the source tree: in the checkout, build/ may hold an up-to-date _C_cuda.so, and
    setuptools would then skip the link this test is about.
    """
    wrapper = nvcc_wrapper(tmp_path / 'wrapper')
    source = tmp_path / 'source'
    listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split('\0')
    for name in listed:
        if os.path.isfile(os.path.join(ROOT, name)):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), source / name)
    wheels = tmp_path / 'wheels'
    built = subprocess.run(
        ['env', '-i', f'PATH={wrapper.parent}:{os.environ["PATH"]}', f'HOME={os.environ.get("HOME", tmp_path)}',
         sys.executable, '-m', 'pip', 'wheel', '--no-build-isolation', '--no-deps', '-w', str(wheels), str(source)],
        capture_output=True, text=True, cwd=tmp_path, timeout=3600)
    assert built.returncode == 0, (built.stdout + built.stderr)[-5000:]
    wheel = next(wheels.glob('mmyolo_dcnv3-*.whl'))
    names = zipfile.ZipFile(wheel).namelist()
    for required in ('mmyolo_dcnv3/_C.so', 'mmyolo_dcnv3/_C_cuda.so',
                     'mmyolo_dcnv3/.mim/configs/yolov8_s_dcnv3_coco.py', 'mmyolo_dcnv3/.mim/tools/train.py',
                     'mmyolo_dcnv3/.mim/tools/deployment/export_onnx.py', 'mmyolo_dcnv3_config_scope.py',
                     'mmyolo_dcnv3_config_scope.pth'):
        assert required in names, required
    assert any(n.endswith('.dist-info/licenses/LICENSE') or n.endswith('.dist-info/LICENSE') for n in names)

    python, venv_site = make_env_outside_checkout(tmp_path / 'venv')
    # Without the checkout on PYTHONPATH: pip wheel may leave mmyolo_dcnv3.egg-info there, and pip would take
    # that for an installed copy of the same version and skip the wheel.
    installed = run_outside(sys.executable, ['-m', 'pip', '--python', python, 'install', '--no-deps', str(wheel)],
                            cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert os.path.isfile(os.path.join(venv_site, 'mmyolo_dcnv3_config_scope.pth')), installed.stdout
    loaded = run_outside(python, ['-c', 'import json, mmyolo_dcnv3.ops._library as lib; k = lib.compiled_kernels(); '
                                  'print(json.dumps([lib.PACKAGE_DIR, sorted(k.devices), k.missing]))'], cwd=tmp_path)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert json.loads(loaded.stdout) == [os.path.join(venv_site, 'mmyolo_dcnv3'), ['cpu', 'cuda'], {}]

    installed_files = files_under(venv_site)
    work = tmp_path / 'my_project'
    work.mkdir()
    (work / 'my_config.py').write_text(USER_TOY_CONFIG.format(root=toy_coco))
    env = dict(PYTHONDONTWRITEBYTECODE='1')  # bytecode caches aside, nothing may be written into site-packages
    result = run_outside(python, ['-m', 'mim', 'train', 'mmyolo', 'my_config.py', '--gpus', '0',
                                  '--work-dir', 'work'], cwd=work, timeout=900, extra_env=env)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    assert 'Epoch(train) [1][2/2]' in log and 'coco/bbox_mAP' in log
    assert (work / 'work' / 'epoch_1.pth').is_file()
    # The installed tools' defaults: data/, outputs/ and work dirs under the working directory.
    tools = os.path.join(venv_site, 'mmyolo_dcnv3', '.mim', 'tools')
    result = run_outside(python, [os.path.join(tools, 'image_demo.py'), 'my_config.py', 'work/epoch_1.pth',
                                  toy_coco + 'val'], cwd=work, timeout=600, extra_env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert len(list((work / 'outputs' / 'image_demo' / 'vis').iterdir())) == 4
    result = run_outside(python, [os.path.join(tools, 'analysis_tools', 'ablate_dcnv3_placement.py'), '--variants',
                                  'plain', '--seeds', '0', '--epochs', '1', '--train-images', '4', '--val-images', '2',
                                  '--img-size', '64', '--latency-images', '1'], cwd=work, timeout=900, extra_env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert (work / 'data' / 'toy_coco' / 'annotations' / 'instances_val.json').is_file()
    assert (work / 'outputs' / 'ablation' / 'toy-shapes' / 'results.md').is_file()
    assert files_under(venv_site) == installed_files
