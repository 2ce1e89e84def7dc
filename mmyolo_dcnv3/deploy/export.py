"""torch.onnx.export with the DCNv3 translations, for any module (torch, onnx, onnxscript only)."""
import importlib.util
import os
from typing import Any, Callable, Dict, Optional, Sequence

import torch

from ..ops import dcnv3_implementation
from .onnx_ops import DEFAULT_OPSET, check_translation, dcnv3_translation_table


def _holds_dcnv3_layers(model: torch.nn.Module) -> bool:
    """Whether ``model`` contains a :class:`mmyolo_dcnv3.models.layers.DCNv3` block (or a subclass's).

    The block is an mmengine-registered module, so it exists only where mmengine is installed; without
    mmengine no model can hold one, and this module keeps needing torch alone.
    """
    if importlib.util.find_spec('mmengine') is None:
        return False
    from ..models.layers import DCNv3
    return any(isinstance(module, DCNv3) for module in model.modules())


def export_onnx(model: torch.nn.Module, args: tuple, path: str, *, translation: str = 'gridsample',
                opset: Optional[int] = None, input_names: Optional[Sequence[str]] = None,
                output_names: Optional[Sequence[str]] = None, dynamic_shapes: Any = None,
                extra_translations: Optional[Dict[Callable, Callable]] = None) -> str:
    """Exports ``model(*args)`` to one self-contained ONNX file with torch's
    torch.export-based exporter, DCNv3 translated by ``translation``, and checks
    it with ``onnx.checker``.

    Args:
        model: the module, in eval mode.
        args: example inputs (their shapes are baked in unless ``dynamic_shapes``
            says otherwise).
        path: the .onnx file to write (its folder is created).
        translation: ``'gridsample'`` (default) or ``'deformconv'``.
        opset: ONNX opset; default 18 for gridsample, 19 for deformconv.
        input_names, output_names: names of the graph's inputs and outputs.
        dynamic_shapes: as for ``torch.export.export`` (e.g. ``{'x': {0: 'batch'}}``).
        extra_translations: more ``custom_translation_table`` entries.

    Returns:
        ``path``.

    Raises:
        ValueError: bad translation or opset; ImportError: onnx/onnxscript missing;
        RuntimeError: the model has DCNv3 layers but the compiled op is not in use.
    """
    opset = DEFAULT_OPSET.get(translation, 18) if opset is None else opset
    check_translation(translation, opset)
    if _holds_dcnv3_layers(model) and dcnv3_implementation('cpu') != 'compiled':
        raise RuntimeError('ONNX export translates the compiled op torch.ops.mmyolo_dcnv3.dcnv3_forward, '
                           'which is not in use (MMYOLO_DCNV3_IMPL=reference, or the kernels are not built): '
                           'build them with `python setup.py build_ext --inplace` and unset MMYOLO_DCNV3_IMPL')
    table = dcnv3_translation_table(translation, opset)
    table.update(extra_translations or {})
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, args, path, dynamo=True, opset_version=opset, custom_translation_table=table,
                          input_names=list(input_names) if input_names else None,
                          output_names=list(output_names) if output_names else None,
                          dynamic_shapes=dynamic_shapes, external_data=False, verbose=False)
    import onnx
    onnx.checker.check_model(path, full_check=True)
    return path
