"""configs/metafile.yml: every config listed once, every listed file there, schedule and batch as the config says."""
import glob
import os

import pytest
import yaml
from mmengine.config import Config

import mmyolo_dcnv3  # noqa: F401  (the mmyolo_dcnv3:: scope, the custom_imports)
from tests.conftest import ROOT

with open(os.path.join(ROOT, 'configs', 'metafile.yml'), encoding='utf-8') as f:
    METAFILE = yaml.safe_load(f)
MODELS = METAFILE['Models']


def test_every_config_is_listed_once_and_every_listed_config_exists():
    configs = sorted(os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'),
                                                                      recursive=True)
                     if os.sep + '_base_' + os.sep not in path)
    listed = [model['Config'] for model in MODELS]
    assert sorted(listed) == configs
    assert all(os.path.isfile(os.path.join(ROOT, config)) for config in listed)


def test_models_are_named_after_their_file_and_belong_to_a_listed_collection():
    collections = {collection['Name'] for collection in METAFILE['Collections']}
    for model in MODELS:
        assert model['Name'] == os.path.splitext(os.path.basename(model['Config']))[0]
        assert model['In Collection'] in collections, model['Name']
    for collection in METAFILE['Collections']:
        assert os.path.isfile(os.path.join(ROOT, collection['README']))


@pytest.mark.parametrize('model', MODELS, ids=[model['Name'] for model in MODELS])
def test_listed_epochs_and_batch_are_the_configs(model):
    cfg = Config.fromfile(os.path.join(ROOT, model['Config']))
    assert model['Metadata']['Epochs'] == cfg.train_cfg.max_epochs
    assert model['Metadata']['Batch Size per GPU'] == cfg.train_dataloader.batch_size
