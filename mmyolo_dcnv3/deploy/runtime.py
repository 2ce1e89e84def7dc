"""Running an ONNX file in ONNX Runtime or OpenVINO (numpy in, numpy out)."""
from typing import Dict, List, Optional, Sequence

import numpy as np

RUNTIMES = ('onnxruntime', 'openvino')
# What float operations compute in: ONNX Runtime's CPU provider only in f32;
# OpenVINO's CPU plugin in f32 or, where the CPU has it, bf16 (AVX-512 BF16,
# AMX) or f16 (AVX-512 FP16, AMX-FP16), its own default there.
PRECISIONS = ('f32', 'bf16', 'f16')
_PACKAGES = {'onnxruntime': 'onnxruntime', 'openvino': 'openvino'}
# What every deployment module's ImportError says (the versions tested are
# pinned in a checkout's requirements/constraints.txt).
INSTALL_HINT = 'install the deployment packages: pip install "mmyolo-dcnv3[deploy]"'


class OnnxModel:
    """An ONNX file loaded in one runtime, on the CPU.

    Args:
        path: the .onnx file (or, for OpenVINO, an IR .xml, as tools/deployment/quantize_onnx.py writes).
        runtime: ``'onnxruntime'`` or ``'openvino'``.
        threads: CPU threads the runtime may use (None: its default).
        precision: what float operations compute in: ``'f32'`` (default) or,
            OpenVINO only, ``'bf16'`` or ``'f16'`` (faster on CPUs with those
            instructions; boxes move by pixels). INT8 layers of a quantised file
            run in INT8 whatever this is.

    Attributes:
        input_names, output_names: the graph's, in order.
        input_shape: the first input's shape, None for each dynamic dimension.
        precision: the float precision the runtime compiled for (OpenVINO's
            ``INFERENCE_PRECISION_HINT`` as compiled; it may fall back to f32).

    Raises:
        ValueError: unknown runtime or precision, or a precision the runtime
        does not offer; FileNotFoundError: no such file;
        ImportError: the runtime's package is not installed (says how to install it).
    """

    def __init__(self, path: str, runtime: str = 'onnxruntime', threads: Optional[int] = None,
                 precision: str = 'f32'):
        if runtime not in RUNTIMES:
            raise ValueError(f'runtime must be one of {", ".join(RUNTIMES)}, got {runtime!r}')
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {", ".join(PRECISIONS)}, got {precision!r}')
        if runtime == 'onnxruntime' and precision != 'f32':
            raise ValueError(f"precision {precision!r} needs runtime 'openvino': ONNX Runtime's CPU provider "
                             'computes float operations in f32 only')
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f'threads must be a positive int or None, got {threads!r}')
        import os
        if not os.path.isfile(path):
            raise FileNotFoundError(f'ONNX file {path!r} does not exist')
        if path.endswith('.xml') and runtime != 'openvino':
            raise ValueError(f"{path} is an OpenVINO IR: it runs in runtime 'openvino' only")
        self.path, self.runtime = path, runtime
        try:
            module = __import__(_PACKAGES[runtime])
        except ImportError as error:
            raise ImportError(f'runtime {runtime!r} is not installed ({error}); {INSTALL_HINT}') from error
        if runtime == 'onnxruntime':
            options = module.SessionOptions()
            # Idle intra-op threads sleep instead of spinning: spinning ones take
            # the cores from whatever runs next in the process, such as PyTorch
            # in the side-by-side timings (docs/deploy.md).
            options.add_session_config_entry('session.intra_op.allow_spinning', '0')
            if threads is not None:
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
            self._session = module.InferenceSession(path, options, providers=['CPUExecutionProvider'])
            self.input_names = [i.name for i in self._session.get_inputs()]
            first = self._session.get_inputs()[0].shape
            self.input_shape = tuple(d if isinstance(d, int) else None for d in first)
            self.output_names = [o.name for o in self._session.get_outputs()]
            self.precision = 'f32'
        else:
            core = module.Core()
            config = {} if threads is None else {'INFERENCE_NUM_THREADS': threads}
            # Asked for explicitly: OpenVINO would otherwise pick bf16/f16 on CPUs that have it.
            config['INFERENCE_PRECISION_HINT'] = precision
            self._compiled = core.compile_model(core.read_model(path), 'CPU', config)
            self.precision = self._compiled.get_property('INFERENCE_PRECISION_HINT').to_string()
            self.input_names = [i.get_any_name() for i in self._compiled.inputs]
            first = self._compiled.inputs[0].get_partial_shape()
            self.input_shape = tuple(d.get_length() if d.is_static else None for d in first)
            self.output_names = [o.get_any_name() for o in self._compiled.outputs]

    def __call__(self, *inputs: np.ndarray) -> List[np.ndarray]:
        """The outputs, in the file's output order, for inputs in its input order."""
        if len(inputs) != len(self.input_names):
            raise ValueError(f'{self.path} takes {len(self.input_names)} input(s) '
                             f'({", ".join(self.input_names)}), got {len(inputs)}')
        feeds = {name: np.ascontiguousarray(x) for name, x in zip(self.input_names, inputs)}
        if self.runtime == 'onnxruntime':
            return self._session.run(None, feeds)
        results = self._compiled(feeds)
        return [np.asarray(results[output]) for output in self._compiled.outputs]

    def named(self, *inputs: np.ndarray) -> Dict[str, np.ndarray]:
        """The outputs by name."""
        return dict(zip(self.output_names, self(*inputs)))


def onnx_domains(path: str) -> Sequence[str]:
    """The operator domains the graph (and its functions) use; '' is the standard ONNX domain."""
    import onnx
    model = onnx.load(path)
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    return sorted({n.domain for n in nodes})
