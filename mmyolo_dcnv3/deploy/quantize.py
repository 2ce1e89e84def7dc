"""INT8 post-training quantisation of an exported detector, DCNv3 sampling and box decoding kept in float.

A quantiser left to its defaults quantises every tensor it can, including the
ones that carry *positions*: the sampling grid built from a DCNv3 layer's
learned offsets, its softmax-normalised mask weights, and the distribution
(DFL softmax) the YOLOv8 head decodes boxes from. Rounding those to 256 levels
moves the sampled points and the boxes. :func:`float_scope` finds these
subgraphs from the graph's structure (never from node names, which a new
exporter may change), in an ONNX graph or in OpenVINO's model of it:

* **sampling**, per DCNv3 layer: everything from the offset and mask heads'
  outputs to the sampled values: the grid arithmetic, the mask softmax, the
  ``GridSample`` or ``DeformConv`` and the mask-weighted sum. Found by walking
  back from each ``GridSample``'s grid, the mask it is weighted with and each
  ``DeformConv``'s offset and mask, and forward from their outputs, in both
  directions up to the next convolution or matrix product;
* **decoding**: everything between the head's last convolutions and the
  graph's outputs (class sigmoid, DFL softmax and integral, distance-to-box
  arithmetic, ``NonMaxSuppression``);
* **boundary**: the convolutions and matrix products that produce the inputs
  of those two (the offset and mask heads, the head's last convolutions).
  Their inputs and weights may be INT8, their outputs not. NNCF quantises
  only the inputs of an operation: all of them run in INT8. ONNX Runtime's QDQ
  format quantises a quantised Conv's output too, so the convolutions stay
  float there, while every matrix product keeps a float output and runs in
  INT8 (``MatMulIntegerToFloat``).

Every other convolution and matrix product runs in INT8, calibrated on the
images given. :func:`quantize` writes the INT8 model:

* ``onnxruntime``: ONNX Runtime's ``quantize_static``, QDQ format, per-channel
  int8 weights (in 7 bits: ``reduce_range``), uint8 activations, MinMax
  ranges; an ONNX file, which OpenVINO runs too;
* ``openvino``: NNCF's post-training quantisation of OpenVINO's model of the
  ONNX file (OpenVINO's own route; NNCF's ONNX backend writes QDQ files for
  ONNX Runtime, which OpenVINO runs less accurately: docs/deploy.md), weights
  in every layer (in 7 bits: ``OverflowFix.ENABLE``), activation ranges from
  the min and max over all images (as MinMax); an OpenVINO IR (``.xml`` and
  ``.bin``).

Weights take 7 bits by default: x86 CPUs without VNNI or AMX multiply uint8 by
int8 into 16-bit sums that saturate with full 8-bit weights (:mod:`.cpu`),
and an INT8 file runs on whatever CPU it is deployed to. ``weight_bits=8`` is
for files that only run where the sums are exact (docs/deploy.md: measured,
it gains nothing there).

The model keeps the float file's metadata with the settings added under
``quantization``, so ``tools/deployment/test_onnx.py``,
``benchmark_onnx.py`` and ``examples/onnx_inference.py`` run it unchanged.
:func:`quantized_float_paths` checks a quantised model against the rule above
(the tests and ``tools/deployment/quantize_onnx.py`` run it).

Needs onnx and the backend's packages (onnxruntime; openvino and nncf), and reads the
file's metadata with :mod:`.yolov8` (mmengine); :func:`calibration_inputs`
reads images through the config's dataset (mmdet, mmyolo).
"""
import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from .runtime import INSTALL_HINT

OUTPUT_SUFFIXES = {'onnxruntime': '.onnx', 'openvino': '.xml'}  # what each backend's INT8 model is written as
BACKENDS = tuple(OUTPUT_SUFFIXES)
RECIPES = ('keep-float', 'quantize-all', 'defaults')
WEIGHT_BITS = (7, 8)
MIN_CALIBRATION_IMAGES = 8
_PACKAGES = {'onnxruntime': ('onnxruntime',), 'openvino': ('openvino', 'nncf')}


@dataclass(frozen=True)
class _Dialect:
    """The operation types the rules need, in one graph representation."""

    compute: Tuple[str, ...]         # convolutions and matrix products: where a float region ends
    convolutions: Tuple[str, ...]    # where the decoding's region ends
    samplers: Dict[str, Tuple[int, ...]]  # sampling op -> its position inputs (offsets, mask); GridSample: grid
    multiply: str
    quantizers: Tuple[str, ...]      # nodes that round to 8 bits
    dequantize: str                  # the node an INT8 input comes out of
    shape_ops: Tuple[str, ...]       # shape-only outputs: a path through them carries no values
    layout_ops: Tuple[str, ...]      # move or select values as they are: a dequantisation may precede them


ONNX = _Dialect(
    compute=('Conv', 'MatMul', 'Gemm'), convolutions=('Conv',),
    samplers={'GridSample': (1,), 'DeformConv': (2, 4)}, multiply='Mul',
    quantizers=('QuantizeLinear', 'DequantizeLinear'), dequantize='DequantizeLinear', shape_ops=('Shape', 'Size'),
    layout_ops=('Transpose', 'Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Concat', 'Split', 'Slice', 'Gather',
                'MaxPool', 'Resize', 'Pad', 'Identity'))
OPENVINO = _Dialect(
    compute=('Convolution', 'GroupConvolution', 'MatMul'), convolutions=('Convolution', 'GroupConvolution'),
    samplers={'GridSample': (1,), 'DeformableConvolution': (1, 3)}, multiply='Multiply',
    quantizers=('FakeQuantize',), dequantize='FakeQuantize', shape_ops=('ShapeOf',),
    layout_ops=('Transpose', 'Reshape', 'Squeeze', 'Unsqueeze', 'Concat', 'Split', 'VariadicSplit', 'StridedSlice',
                'Slice', 'Gather', 'MaxPool', 'Interpolate', 'Pad'))


@dataclass(frozen=True)
class FloatScope:
    """Names of the nodes a quantised model keeps in float (see the module docstring)."""

    sampling: Tuple[str, ...]
    decoding: Tuple[str, ...]
    boundary: Tuple[str, ...]
    dcnv3_layers: int

    @property
    def nodes(self) -> Tuple[str, ...]:
        """All of them, sorted."""
        return tuple(sorted(set(self.sampling) | set(self.decoding) | set(self.boundary)))


@dataclass
class _Node:
    """One operation: its name, type, input and output tensor ids, and whether it is an integer constant."""

    name: str
    op_type: str
    input: List[str]
    output: List[str]
    integer_constant: bool = False


class _Graph:
    """Producers and consumers of every tensor of an ONNX graph or an OpenVINO model."""

    def __init__(self, model):
        if hasattr(model, 'graph'):  # onnx.ModelProto
            self.dialect = ONNX
            self.nodes = [_Node(n.name, n.op_type, list(n.input), list(n.output)) for n in model.graph.node]
            self.outputs = [o.name for o in model.graph.output]
        else:  # openvino.Model
            self.dialect = OPENVINO
            self.nodes, self.outputs = [], []
            tensor = lambda port: f'{port.get_node().get_name()}:{port.get_index()}'  # noqa: E731
            for op in model.get_ordered_ops():
                inputs = [tensor(i.get_source_output()) for i in op.inputs()]
                if op.get_type_name() == 'Result':
                    self.outputs += inputs
                    continue
                integer = op.get_type_name() == 'Constant' and op.get_element_type().is_integral()
                self.nodes.append(_Node(op.get_friendly_name(), op.get_type_name(), inputs,
                                        [tensor(o) for o in op.outputs()], integer))
        self.producer = {name: node for node in self.nodes for name in node.output if name}
        self.consumers: Dict[str, list] = {}
        for node in self.nodes:
            for name in node.input:
                if name:
                    self.consumers.setdefault(name, []).append(node)

    def walk_back(self, tensors: Iterable[str], stop_ops: Sequence[str]) -> Tuple[List, List]:
        """(nodes on the paths into ``tensors``, the ``stop_ops`` nodes where those paths start)."""
        inside, stops, seen = {}, {}, set()
        pending = [t for t in tensors if t]
        while pending:
            tensor = pending.pop()
            node = self.producer.get(tensor)
            if tensor in seen or node is None:  # a graph input or an initializer
                continue
            seen.add(tensor)
            if node.op_type in stop_ops:
                stops[id(node)] = node
                continue
            inside[id(node)] = node
            if node.op_type not in self.dialect.shape_ops:
                pending.extend(t for t in node.input if t)
        return list(inside.values()), list(stops.values())

    def walk_forward(self, tensors: Iterable[str], stop_ops: Sequence[str]) -> List:
        """The nodes on the paths out of ``tensors`` up to (not including) ``stop_ops`` nodes."""
        inside, pending = {}, [t for t in tensors if t]
        while pending:
            for node in self.consumers.get(pending.pop(), ()):
                if node.op_type in stop_ops or id(node) in inside:
                    continue
                inside[id(node)] = node
                pending.extend(t for t in node.output if t)
        return list(inside.values())

    def dequantized(self, tensor: str) -> bool:
        """Whether ``tensor`` is 8-bit data made float again: it comes out of a dequantisation,
        directly or through layout operations, or (OpenVINO) is an integer constant decompressed."""
        node = self.producer.get(tensor)
        if node is None:
            return False
        if node.op_type == self.dialect.dequantize or node.integer_constant:
            return True
        if node.op_type in self.dialect.layout_ops:
            data = node.input if node.op_type == 'Concat' else node.input[:1]
            return all(self.dequantized(t) for t in data)
        if self.dialect is OPENVINO and node.op_type in ('Convert', 'Subtract', 'Multiply'):
            return self.dequantized(node.input[0])  # weights decompressed: Constant(i8) -> Convert -> ...
        return False

    def samplers(self) -> List:
        return [n for n in self.nodes if n.op_type in self.dialect.samplers]

    def sampling_inputs(self) -> List[str]:
        """The tensors that carry DCNv3 sampling positions and weights: each ``GridSample``'s
        grid and the mask its samples are multiplied by, each ``DeformConv``'s offset and mask."""
        tensors = []
        for node in self.samplers():
            tensors += [node.input[i] for i in self.dialect.samplers[node.op_type] if i < len(node.input)]
            if node.op_type != 'GridSample':
                continue
            sampled = node.output[0]
            consumers = self.consumers.get(sampled, ())
            while len(consumers) == 1 and consumers[0].op_type in self.dialect.quantizers:  # a quantised model
                sampled = consumers[0].output[0]
                consumers = self.consumers.get(sampled, ())
            if len(consumers) != 1 or consumers[0].op_type != self.dialect.multiply:
                raise ValueError(f'GridSample {node.name!r} is not followed by one multiplication (its mask '
                                 'weighting): this is not the DCNv3 GridSample translation of mmyolo_dcnv3')
            tensors += [t for t in consumers[0].input if t != sampled]
        return tensors


def _load(model):
    """An onnx.ModelProto or openvino.Model: ``model`` itself, or read from a .onnx or .xml path."""
    if not isinstance(model, (str, os.PathLike)):
        return model
    if str(model).endswith('.xml'):
        import openvino
        return openvino.Core().read_model(str(model))
    import onnx
    return onnx.load(model, load_external_data=False)


def sampling_inputs(model) -> List[str]:
    """The ids of the tensors that carry DCNv3 sampling positions and weights in ``model``
    (ONNX: tensor names; OpenVINO: ``operation:port``)."""
    return _Graph(_load(model)).sampling_inputs()


def float_scope(model) -> FloatScope:
    """The nodes of ``model`` that INT8 must leave in float (ONNX node names; OpenVINO
    friendly names). ``model``: an ``onnx.ModelProto``, an ``openvino.Model`` or a path."""
    graph = _Graph(_load(model))
    sampling, sampling_boundary = graph.walk_back(graph.sampling_inputs(), graph.dialect.compute)
    samplers = graph.samplers()
    sampling += samplers + graph.walk_forward([n.output[0] for n in samplers], graph.dialect.compute)
    decoding, decoding_boundary = graph.walk_back(graph.outputs, graph.dialect.convolutions)
    names = lambda nodes: tuple(sorted({n.name for n in nodes}))  # noqa: E731
    return FloatScope(sampling=names(sampling), decoding=names(decoding),
                      boundary=names(sampling_boundary + decoding_boundary), dcnv3_layers=len(samplers))


def quantized_float_paths(model) -> List[str]:
    """What breaks the rule in a quantised model (ONNX with QDQ, or an OpenVINO IR with
    FakeQuantize), one line each (empty: none): a quantisation on a path into a DCNv3
    sampling input or into a graph output (after the layers that produce them), or a
    convolution or matrix product outside them whose activation or weight is not quantised."""
    graph = _Graph(_load(model))
    dialect = graph.dialect
    problems = []
    checks = (('DCNv3 sampling input', graph.sampling_inputs(), dialect.compute),
              ('graph output', graph.outputs, dialect.convolutions))
    kept: Set[int] = set()
    for what, tensors, stop_ops in checks:
        for tensor in tensors:
            inside, stops = graph.walk_back([tensor], stop_ops)
            kept.update(id(n) for n in inside + stops)
            quantizers = sorted(n.name for n in inside if n.op_type in dialect.quantizers)
            if quantizers:
                listed = ', '.join(quantizers[:3]) + (', ...' if len(quantizers) > 3 else '')
                problems.append(f'{what} {tensor!r} is computed through {len(quantizers)} '
                                f'{"/".join(dialect.quantizers)} nodes ({listed})')
    for node in graph.nodes:
        if node.op_type in dialect.compute and id(node) not in kept:
            if not all(graph.dequantized(t) for t in node.input[:2]):
                problems.append(f'{node.op_type} {node.name!r} is not quantised')
    return problems


def calibration_indices(dataset_size: int, count: int) -> List[int]:
    """``count`` indices spread evenly over a dataset of ``dataset_size`` images."""
    if isinstance(count, bool) or not isinstance(count, int) or count < MIN_CALIBRATION_IMAGES:
        raise ValueError(f'calibration needs at least {MIN_CALIBRATION_IMAGES} images, got {count!r}')
    if count > dataset_size:
        raise ValueError(f'{count} calibration images asked for, but the dataset has only {dataset_size}')
    return sorted({int(round(i)) for i in np.linspace(0, dataset_size - 1, count)})


def calibration_inputs(cfg, input_size: Tuple[int, int], split: str, count: int) -> np.ndarray:
    """(count, 3, H, W) float32 network inputs at ``input_size`` (H, W: the exported
    file's, its metadata's ``input_size``) for ``count`` images spread evenly over the
    config's ``split`` (``'train'``, ``'val'`` or ``'test'``) dataset, preprocessed as
    :class:`.onnx_detector.OnnxDetector` feeds the network."""
    import copy

    from mmengine.registry import init_default_scope
    from mmyolo.registry import DATASETS, MODELS

    from .yolov8 import preprocess_images
    loader = cfg.get(f'{split}_dataloader')
    if loader is None:
        raise ValueError(f'the config has no {split}_dataloader to calibrate on')
    dataset_cfg = copy.deepcopy(loader.dataset)
    if 'pipeline' in dataset_cfg:  # only the image paths are read
        dataset_cfg.pipeline = []
    init_default_scope(cfg.get('default_scope', 'mmyolo'))
    dataset = DATASETS.build(dataset_cfg)
    dataset.full_init()
    indices = calibration_indices(len(dataset), count)
    image_paths = [dataset.get_data_info(i)['img_path'] for i in indices]
    images, _ = preprocess_images(copy.deepcopy(cfg), MODELS.build(cfg.model.data_preprocessor), image_paths,
                                  tuple(input_size))
    return images.numpy()


def _import_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f'backend must be one of {", ".join(BACKENDS)}, got {backend!r}')
    for package in _PACKAGES[backend]:
        try:
            __import__(package)
        except ImportError as error:
            raise ImportError(f'INT8 for {backend} needs {" and ".join(_PACKAGES[backend])} ({error}); '
                              f'{INSTALL_HINT}') from error


def float_model_metadata(model_path: str) -> Dict:
    """The deployment metadata of ``model_path``, a float model written by
    :func:`.yolov8.export_detector`. ValueError: the file has no such metadata or
    is already quantised."""
    from .yolov8 import read_metadata
    metadata = read_metadata(model_path)
    if 'quantization' in metadata:
        raise ValueError(f'{model_path} is already quantised; quantise the float file it was made from')
    return metadata


def quantize(model_path: str, out_path: str, images: np.ndarray, *, backend: str = 'onnxruntime',
             recipe: str = 'keep-float', weight_bits: Optional[int] = None,
             settings: Optional[dict] = None) -> FloatScope:
    """Writes the INT8 version of the float ONNX file ``model_path`` to ``out_path``.

    Args:
        out_path: a ``.onnx`` file for ``'onnxruntime'``, an OpenVINO IR ``.xml``
            (its weights in the ``.bin`` beside it) for ``'openvino'``.
        images: (N, 3, H, W) float32 calibration inputs, preprocessed as the
            file expects them (:func:`calibration_inputs`).
        backend: ``'onnxruntime'`` or ``'openvino'`` (see the module docstring).
        recipe: ``'keep-float'`` keeps :func:`float_scope` in float;
            ``'quantize-all'`` uses the same settings and keeps nothing in
            float; ``'defaults'`` is the quantiser called with its defaults
            (``quantize_static(model, out, reader)``, ``nncf.quantize(model,
            dataset)``). The last two are there to compare with.
        weight_bits: 7 (default) or 8, for ``'keep-float'`` and
            ``'quantize-all'`` (``'defaults'`` takes the quantiser's own).
            8 only for CPUs whose integer dot products do not saturate
            (VNNI, AMX: :func:`.cpu.integer_dot_path`).
        settings: more entries for the ``quantization`` metadata (e.g. the
            calibration split).

    Returns:
        The float scope kept (empty unless ``'keep-float'``).

    Raises:
        ValueError: bad backend, recipe, weight_bits, images or output suffix; a file without our
        metadata or already quantised. ImportError: the backend's packages are missing.
    """
    import onnx

    _import_backend(backend)
    if recipe not in RECIPES:
        raise ValueError(f'recipe must be one of {", ".join(RECIPES)}, got {recipe!r}')
    if recipe == 'defaults' and weight_bits is not None:
        raise ValueError(f"weight_bits applies to the keep-float and quantize-all recipes; the 'defaults' recipe "
                         f"takes the quantiser's own, got weight_bits={weight_bits!r}")
    if recipe != 'defaults':
        weight_bits = 7 if weight_bits is None else weight_bits
        if type(weight_bits) is not int or weight_bits not in WEIGHT_BITS:
            raise ValueError(f'weight_bits must be 7 or 8, got {weight_bits!r}')
    suffix = OUTPUT_SUFFIXES[backend]
    if not out_path.endswith(suffix):
        raise ValueError(f'the {backend} INT8 model is written as {suffix}, got {out_path!r}')
    metadata = float_model_metadata(model_path)
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3 or images.dtype != np.float32 or len(images) < 1:
        raise ValueError(f'images must be float32 (N, 3, H, W), got {images.dtype} {images.shape}')
    model = onnx.load(model_path)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    metadata['quantization'] = dict(settings or {}, backend=backend, recipe=recipe, calibration_images=len(images))
    if weight_bits is not None:
        metadata['quantization']['weight_bits'] = weight_bits
    quantize_backend = _quantize_onnxruntime if backend == 'onnxruntime' else _quantize_openvino
    return quantize_backend(model, out_path, images, recipe, weight_bits, metadata)


# ONNX Runtime's quantiser advises its shape-inference pre-processing (the
# exported graphs have their shapes) and says that a 1-D weight (a norm's) is
# quantised per tensor instead of per channel.
_BENIGN_ONNXRUNTIME_WARNINGS = ('Please consider to run pre-processing', 'Please consider pre-processing',
                                'Axis 1 is out-of-range for weight')


@contextlib.contextmanager
def _ignored_log_records(logger: logging.Logger, prefixes: Sequence[str]):
    """Drops the records of ``logger`` whose message starts with one of ``prefixes``."""
    def keep(record):
        return not str(record.msg).startswith(tuple(prefixes))

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _unshare_initializers(model, float_nodes: Set[str]) -> None:
    """Gives the float nodes their own copy of each initializer they share with other nodes:
    a quantiser that quantises a shared constant for one consumer rewires all of them."""
    initializers = {i.name: i for i in model.graph.initializer}
    users: Dict[str, Set[bool]] = {}
    for node in model.graph.node:
        for name in node.input:
            if name in initializers:
                users.setdefault(name, set()).add(node.name in float_nodes)
    shared = {name for name, kinds in users.items() if kinds == {True, False}}
    for name in sorted(shared):
        duplicate = model.graph.initializer.add()
        duplicate.CopyFrom(initializers[name])
        duplicate.name = f'{name}_float'
    for node in model.graph.node:
        if node.name in float_nodes:
            for i, name in enumerate(node.input):
                if name in shared:
                    node.input[i] = f'{name}_float'


def _metadata_json(metadata: dict, scope: FloatScope) -> str:
    metadata['quantization']['float_nodes'] = len(scope.nodes)
    return json.dumps(metadata)


def _metadata_key() -> str:
    from .yolov8 import METADATA_KEY
    return METADATA_KEY


def _quantize_onnxruntime(model, out_path, images, recipe, weight_bits, metadata) -> FloatScope:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    scope = FloatScope((), (), (), 0)
    if recipe == 'keep-float':
        # A quantised Conv's output is quantised too: the convolutions feeding the float
        # parts stay float. Matrix products keep a float output (below) and run in INT8.
        scope = float_scope(model)
        convolutions = {n.name for n in model.graph.node if n.op_type in ONNX.convolutions}
        scope = FloatScope(scope.sampling, scope.decoding, tuple(n for n in scope.boundary if n in convolutions),
                           scope.dcnv3_layers)
    _unshare_initializers(model, set(scope.nodes))
    input_name = model.graph.input[0].name

    class Images(CalibrationDataReader):
        def __init__(self):
            self._images = iter(images)

        def get_next(self):
            image = next(self._images, None)
            return None if image is None else {input_name: image[None]}

    options = {}
    if recipe != 'defaults':
        options = dict(quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=weight_bits == 7,
                       activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                       nodes_to_exclude=list(scope.nodes))
    if recipe == 'keep-float':
        # ONNX Runtime runs these as MatMulIntegerToFloat: the offset and mask heads in INT8
        # with float outputs, faster than with the heads in float (docs/deploy.md, INT8 on the CPU).
        options['extra_options'] = {'OpTypesToExcludeOutputQuantization': ['MatMul']}
    with _ignored_log_records(logging.getLogger(), _BENIGN_ONNXRUNTIME_WARNINGS):
        quantize_static(model, out_path, Images(), **options)
    quantized = onnx.load(out_path)
    onnx.helper.set_model_props(quantized, {_metadata_key(): _metadata_json(metadata, scope)})
    onnx.save(quantized, out_path)
    return scope


def _quantize_openvino(model, out_path, images, recipe, weight_bits, metadata) -> FloatScope:
    import nncf
    import onnx
    import openvino
    from nncf.common.logging import nncf_logger
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    with tempfile.TemporaryDirectory() as folder:  # OpenVINO reads ONNX from a file
        path = os.path.join(folder, 'model.onnx')
        onnx.save(model, path)
        ov_model = openvino.Core().read_model(path)
    scope = float_scope(ov_model) if recipe == 'keep-float' else FloatScope((), (), (), 0)
    options = {}
    if recipe != 'defaults':
        # Activation ranges: the min and max over all calibration images, as ONNX Runtime's
        # MinMax. NNCF's default, the mean of per-image ranges, clips the rarer large values
        # (docs/deploy.md, why min-max activation ranges).
        overflow_fix = nncf.OverflowFix.ENABLE if weight_bits == 7 else nncf.OverflowFix.DISABLE
        advanced = AdvancedQuantizationParameters(overflow_fix=overflow_fix,
                                                  activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)
        options = dict(subset_size=len(images), target_device=nncf.TargetDevice.CPU, advanced_parameters=advanced)
    if recipe == 'keep-float':
        # NNCF quantises the inputs of an operation, not its output: the boundary stays INT8.
        options['ignored_scope'] = nncf.IgnoredScope(names=list(scope.sampling + scope.decoding))
        scope = FloatScope(scope.sampling, scope.decoding, (), scope.dcnv3_layers)
    level = nncf_logger.level
    nncf.set_log_level(logging.WARNING)  # its INFO lists every node it leaves alone
    try:
        quantized = nncf.quantize(ov_model, nncf.Dataset(list(images), lambda image: image[None]), **options)
    finally:
        nncf.set_log_level(level)
    quantized.set_rt_info(_metadata_json(metadata, scope), ['framework', _metadata_key()])
    openvino.save_model(quantized, out_path)
    return scope
