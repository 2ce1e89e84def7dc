"""Checks, before a runner is built, that the data a config names exists.

mmengine builds the datasets lazily, deep inside the runner, after it has
created the work dir and its logs; a missing annotation file then surfaces
as a ``FileNotFoundError`` traceback from pycocotools. :func:`check_dataset_paths`
looks at the config alone and names every missing path with the config key
it came from, and how to point the config at the data.

``--cfg-options data_root=DIR`` moves every dataset and evaluator that uses
the config's ``data_root`` to DIR (:func:`rebase_data_root`).
"""
import os
import os.path as osp
from typing import Iterator, List, Sequence, Tuple

# The dataloader each evaluator goes with.
EVALUATOR_OF = {'train_dataloader': None, 'val_dataloader': 'val_evaluator',
                'test_dataloader': 'test_evaluator'}


class DatasetNotFoundError(FileNotFoundError):
    """A file or folder that the config's datasets or evaluators name does not exist."""


def _dataset_paths(dataset: dict, key: str) -> Iterator[Tuple[str, str]]:
    """(config key, path) of the annotation file and data folders of a dataset config and the datasets it wraps."""
    if 'datasets' in dataset:  # ConcatDataset
        for index, child in enumerate(dataset['datasets']):
            yield from _dataset_paths(child, f'{key}.datasets.{index}')
    if isinstance(dataset.get('dataset'), dict):  # RepeatDataset, MultiImageMixDataset, ...
        yield from _dataset_paths(dataset['dataset'], f'{key}.dataset')
    data_root = dataset.get('data_root') or ''
    if dataset.get('ann_file'):
        yield f'{key}.ann_file', osp.join(data_root, dataset['ann_file'])
    for name, prefix in (dataset.get('data_prefix') or {}).items():
        if prefix:
            yield f'{key}.data_prefix.{name}', osp.join(data_root, prefix)


def _evaluator_paths(evaluator, key: str) -> Iterator[Tuple[str, str]]:
    evaluators = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    for index, metric in enumerate(evaluators):
        metric_key = f'{key}.{index}' if isinstance(evaluator, (list, tuple)) else key
        if isinstance(metric, dict) and metric.get('ann_file'):
            yield f'{metric_key}.ann_file', metric['ann_file']


def missing_dataset_paths(cfg, dataloaders: Sequence[str]) -> List[Tuple[str, str]]:
    """(config key, path) of every local path of the named dataloaders' datasets and their evaluators
    that does not exist."""
    paths = []
    for loader in dataloaders:
        if cfg.get(loader) is None:
            continue
        paths += _dataset_paths(cfg[loader]['dataset'], f'{loader}.dataset')
        evaluator = EVALUATOR_OF[loader]
        if evaluator and cfg.get(evaluator) is not None:
            paths += _evaluator_paths(cfg[evaluator], evaluator)
    # Remote storage (s3://, http://, ...) is the file backend's business.
    return [(key, path) for key, path in paths if '://' not in path and not osp.exists(path)]


def check_dataset_paths(cfg, dataloaders: Sequence[str], config_file: str) -> None:
    """Raises DatasetNotFoundError naming each missing path, its config key and how to point the config at the data."""
    missing = missing_dataset_paths(cfg, dataloaders)
    if not missing:
        return
    lines = [f'{config_file}: the dataset is not where the config says '
             f'(relative paths are from the working directory {os.getcwd()}):']
    lines += [f'  {key} = {path!r}: no such file or folder' for key, path in missing]
    if cfg.get('data_root'):
        lines.append(f'Point the config at your data with --cfg-options data_root=/path/to/your/data/ '
                     f'(the config has data_root={cfg.data_root!r}), or set the keys above with --cfg-options.')
    else:
        lines.append('Point the config at your data by setting the keys above with --cfg-options KEY=VALUE.')
    raise DatasetNotFoundError('\n'.join(lines))


def rebase_data_root(cfg, old_root: str, new_root: str) -> None:
    """Moves every dataset with ``data_root == old_root``, and every ``ann_file`` under it, to ``new_root``.

    A config's ``data_root`` variable is copied into the dataset and
    evaluator dicts when the config is read, so overriding the variable
    alone would change nothing.
    """
    if old_root.endswith('/') and not new_root.endswith('/'):
        new_root += '/'

    def visit(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == 'data_root' and value == old_root:
                    node[key] = new_root
                elif key == 'ann_file' and isinstance(value, str) and value.startswith(old_root):
                    node[key] = new_root + value[len(old_root):]
                else:
                    visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)

    visit(cfg._cfg_dict if hasattr(cfg, '_cfg_dict') else cfg)
    cfg.data_root = new_root
