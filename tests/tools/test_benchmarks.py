"""The benchmark tools run end to end (shortened) and refuse bad arguments; no timing is checked."""
import json
import os
import sys

import pytest

from tests.conftest import ROOT, load_tool, refusal
from tests.conftest import run_command as run

TOOLS = os.path.join(ROOT, 'tools')
OP_BENCHMARK = os.path.join(TOOLS, 'analysis_tools', 'benchmark_op.py')
MODEL_BENCHMARK = os.path.join(TOOLS, 'analysis_tools', 'benchmark_model.py')
ONNX_BENCHMARK = os.path.join(TOOLS, 'deployment', 'benchmark_onnx.py')


def test_op_benchmark_times_every_peer_and_writes_the_ratios(tmp_path):
    out = tmp_path / 'op.json'
    result = run([sys.executable, OP_BENCHMARK, '--device', 'cpu', '--shapes', '1',
                  '--repeat', '1', '--warmup', '0', '--json', str(out)])
    assert 'medians over shapes: compiled vs grid_sample' in result.stdout
    row = json.loads(out.read_text())['rows'][0]
    assert {'compiled', 'grid_sample', 'depthwise', 'compiled_bf16'} <= set(row['ms'])
    assert set(row['speedup_over_grid_sample']) == set(row['cost_over_depthwise']) == {'fwd', 'fwd+bwd'}
    assert row['backward_over_forward'] > 0 and row['bf16_over_dtype']['fwd'] > 0


@pytest.mark.integration
def test_model_benchmark_compares_plain_and_dcnv3_yolov8():
    result = run([sys.executable, MODEL_BENCHMARK, '--sizes', 'n', '--img-size', '64',
                  '--batch-size', '1', '--repeat', '1', '--warmup', '0', '--threads', '1'])
    lines = [line for line in result.stdout.splitlines() if line.strip().startswith('yolov8_n')]
    assert [line.split('|')[0].strip() for line in lines] == ['yolov8_n plain', 'yolov8_n dcnv3']
    assert lines[0].rstrip().endswith('1.000x')


@pytest.mark.integration
def test_onnx_benchmark_times_float_and_int8_in_both_runtimes(tmp_path):
    pytest.importorskip('onnxruntime')
    pytest.importorskip('openvino')
    pytest.importorskip('nncf')
    out = tmp_path / 'onnx.json'
    result = run([sys.executable, ONNX_BENCHMARK, '--sizes', 'n', '--img-size', '64',
                  '--repeat', '2', '--threads', '1', '--json', str(out)])
    assert 'DCNv3 (gridsample) / plain, ONNX Runtime' in result.stdout
    assert 'INT8 / float, OpenVINO: plain' in result.stdout and 'OpenVINO float operations in f32' in result.stdout
    results = json.loads(out.read_text())
    times = results['times_ms']['n']
    assert set(times) == {'PyTorch eager plain', 'PyTorch eager DCNv3', 'ONNX Runtime plain',
                          'ONNX Runtime DCNv3 gridsample', 'ONNX Runtime DCNv3 deformconv', 'OpenVINO plain',
                          'OpenVINO DCNv3', 'ONNX Runtime INT8 plain', 'ONNX Runtime INT8 DCNv3',
                          'OpenVINO INT8 plain', 'OpenVINO INT8 DCNv3'}
    assert all(len(t) == 2 and min(t) > 0 for t in times.values())
    assert results['openvino_precision'] == 'f32'


@pytest.mark.parametrize('tool, args, message', [
    (OP_BENCHMARK, ['--device', 'cpu', '--shapes', '0'], '--shapes must be between 1 and 6, got 0'),
    (OP_BENCHMARK, ['--device', 'cpu', '--repeat', '0'], '--repeat must be >= 1, got 0'),
    (MODEL_BENCHMARK, ['--img-size', '100'], '--img-size takes one or two sizes (height [width]), positive '
     'multiples of 32, got 100'),
    (MODEL_BENCHMARK, ['--repeat', '0'], '--repeat must be at least 1, got 0'),
    (ONNX_BENCHMARK, ['--img-size', '640', '100'], 'positive multiples of 32, got 640 100'),
    (ONNX_BENCHMARK, ['--threads', '0'], '--threads must be at least 1, got 0'),
    (ONNX_BENCHMARK, ['--precision', 'int4'], "argument --precision: invalid choice: 'int4'"),
])
def test_benchmarks_reject_bad_arguments(tool, args, message, capsys):
    module = load_tool(os.path.relpath(tool, TOOLS))
    assert message in refusal(capsys, module.parse_args, args)
