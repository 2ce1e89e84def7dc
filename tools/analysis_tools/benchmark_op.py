"""Times the compiled DCNv3 kernel against what a user would run instead, in one run.

For each shape (N, H, W, C, group) with a 3x3 kernel, stride 1, pad 1, it
times forward and forward+backward (gradients of every input) of:

* ``compiled``: our kernel (``torch.ops.mmyolo_dcnv3.dcnv3_forward``), in the
  chosen dtype and, on the side, in bfloat16;
* ``grid_sample``: DCNv3 through ``F.grid_sample`` with autograd
  (:func:`mmyolo_dcnv3.ops.grid_sample.dcnv3_grid_sample`, InternImage's
  fallback approach): what runs without our kernels;
* ``depthwise``: a depthwise 3x3 convolution of the same shape, channels-last
  (the cost floor of a 3x3 spatial mix; oneDNN/cuDNN);
* ``dcnv2``: torchvision's ``deform_conv2d`` (DCNv2, same kernel, channels and
  offset groups, with its dense C x C weight), where torchvision is installed.

The implementations take turns within each repetition, so machine load hits
them alike; every time is the median over repetitions and every ratio the
median of the per-repetition ratios. It reports the ratios (backward /
forward, speed-up over grid_sample, cost against the depthwise conv, bfloat16
against the chosen dtype), the kernel's GFLOP/s (10 flops per output channel
per sampling point) against a float32 matmul timed in the same run and, on a
GPU, its GB/s (input, offset and mask read once, output written once) against
a device copy.

    python tools/analysis_tools/benchmark_op.py                      # CUDA if available, else CPU
    python tools/analysis_tools/benchmark_op.py --device cpu --json results.json
"""
import argparse
import json
import statistics
import sys
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F

from mmyolo_dcnv3._tooling.timing import interleaved_medians, interleaved_times, medians, paired_ratio
from mmyolo_dcnv3.ops._library import compiled_kernels
from mmyolo_dcnv3.ops.grid_sample import dcnv3_grid_sample

try:
    from torchvision.ops import deform_conv2d
except ImportError:  # the peer is optional
    deform_conv2d = None

# (N, H, W, C, group): YOLOv8 stages P3/P4/P5 at 640 px (s and m widths) and a
# larger batch; then a wide-group and a many-group case.
SHAPES = [
    (2, 80, 80, 64, 4),
    (2, 40, 40, 128, 4),
    (2, 20, 20, 256, 8),
    (8, 40, 40, 128, 4),
    (2, 40, 40, 256, 16),
    (1, 64, 64, 384, 24),
]
KERNEL = 3
FLOPS_PER_CHANNEL_POINT = 10  # 4 bilinear multiply-adds, the mask multiply-add


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=('cpu', 'cuda'), default=None,
                        help='device to time on (default: cuda if available, else cpu)')
    parser.add_argument('--dtype', choices=('float32', 'float16', 'bfloat16'), default='float32',
                        help='dtype of the timed tensors (default: float32); bfloat16 is always timed '
                             'beside it')
    parser.add_argument('--repeat', type=int, default=None,
                        help='timed repetitions per shape (default: 7 on CPU, 30 on CUDA)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed rounds first (default: 2)')
    parser.add_argument('--shapes', type=int, default=len(SHAPES), metavar='K',
                        help=f'time only the first K shapes (default: all {len(SHAPES)})')
    parser.add_argument('--json', metavar='PATH', help='also write the figures to this JSON file')
    args = parser.parse_args(argv)
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch sees no CUDA GPU')
    if not compiled_kernels().available(args.device):
        parser.error(f'--device {args.device}: no compiled kernel to time '
                     f'({compiled_kernels().why_missing(args.device)})')
    if args.repeat is None:
        args.repeat = 30 if args.device == 'cuda' else 7
    if args.repeat < 1:
        parser.error(f'--repeat must be >= 1, got {args.repeat}')
    if args.warmup < 0:
        parser.error(f'--warmup must be >= 0, got {args.warmup}')
    if not 1 <= args.shapes <= len(SHAPES):
        parser.error(f'--shapes must be between 1 and {len(SHAPES)}, got {args.shapes}')
    return args


def synchronizer(device):
    return torch.cuda.synchronize if device == 'cuda' else (lambda: None)


def matmul_gflops(device, repeat):
    size = 4096 if device == 'cuda' else 1024
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    ms = interleaved_medians({'matmul': lambda: a @ b}, repeat, 2, synchronizer(device))['matmul']
    return 2 * size ** 3 / (ms * 1e-3) / 1e9


def copy_gbps(device, repeat):
    src = torch.empty(64 * 2 ** 20, dtype=torch.float32, device=device)  # 256 MiB
    dst = torch.empty_like(src)
    ms = interleaved_medians({'copy': lambda: dst.copy_(src)}, repeat, 2, synchronizer(device))['copy']
    return 2 * src.numel() * src.element_size() / (ms * 1e-3) / 1e9


def dcnv3_inputs(shape, device, dtype):
    n, h, w, c, group = shape
    points = KERNEL * KERNEL
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(n, h, w, c, generator=generator)
    offset = 2 * torch.randn(n, h, w, group * points * 2, generator=generator)
    mask = torch.randn(n, h, w, group, points, generator=generator).softmax(-1).view(n, h, w, -1)
    return [t.to(device=device, dtype=dtype).requires_grad_() for t in (input, offset, mask)]


def dcnv3_args(shape):
    c, group = shape[3], shape[4]
    return (KERNEL, KERNEL, 1, 1, 1, 1, 1, 1, group, c // group, 1.0, 256, False)


def forward_and_backward(fn: Callable, inputs: List[torch.Tensor]) -> Dict[str, Callable[[], object]]:
    """{'fwd': forward without autograd, 'fwd+bwd': forward and backward of a unit gradient}."""
    def forward():
        with torch.no_grad():
            fn(*inputs)

    def forward_backward():
        # As after optimizer.zero_grad(): backward writes fresh gradients
        # instead of adding to the last round's.
        for tensor in inputs:
            tensor.grad = None
        out = fn(*inputs)
        out.backward(torch.ones_like(out))

    return {'fwd': forward, 'fwd+bwd': forward_backward}


def peers(shape, device, dtype) -> Dict[str, Dict[str, Callable[[], object]]]:
    """Implementation name -> its timed calls on this shape."""
    n, h, w, c, group = shape
    params = dcnv3_args(shape)
    compiled = torch.ops.mmyolo_dcnv3.dcnv3_forward
    inputs = dcnv3_inputs(shape, device, dtype)
    calls = {
        'compiled': forward_and_backward(lambda *t: compiled(*t, *params), inputs),
        'grid_sample': forward_and_backward(lambda *t: dcnv3_grid_sample(*t, *params), inputs),
    }
    if dtype != torch.bfloat16:
        bf16_inputs = [t.detach().bfloat16().requires_grad_() for t in inputs]
        calls['compiled_bf16'] = forward_and_backward(lambda *t: compiled(*t, *params), bf16_inputs)
    features = torch.randn(n, c, h, w, device=device, dtype=dtype).to(memory_format=torch.channels_last)
    depthwise_weight = torch.randn(c, 1, KERNEL, KERNEL, device=device, dtype=dtype) / KERNEL
    calls['depthwise'] = forward_and_backward(
        lambda x, weight: F.conv2d(x, weight, padding=KERNEL // 2, groups=c),
        [features.requires_grad_(), depthwise_weight.requires_grad_()])
    if deform_conv2d is not None and dtype != torch.bfloat16:
        points = KERNEL * KERNEL
        offset = torch.randn(n, 2 * group * points, h, w, device=device, dtype=dtype, requires_grad=True)
        mask = torch.rand(n, group * points, h, w, device=device, dtype=dtype, requires_grad=True)
        weight = (torch.randn(c, c, KERNEL, KERNEL, device=device, dtype=dtype) / (3 * c)).requires_grad_()
        calls['dcnv2'] = forward_and_backward(
            lambda x, o, m: deform_conv2d(x, o, weight, padding=KERNEL // 2, mask=m),
            [torch.randn(n, c, h, w, device=device, dtype=dtype, requires_grad=True), offset, mask])
    return calls


def benchmark_shape(shape, args, dtype) -> dict:
    calls = peers(shape, args.device, dtype)
    flat = {f'{name} {pass_}': fn for name, passes in calls.items() for pass_, fn in passes.items()}
    times = interleaved_times(flat, args.repeat, args.warmup, synchronizer(args.device))
    median_ms = medians(times)
    ms = {name: (median_ms[f'{name} fwd'], median_ms[f'{name} fwd+bwd']) for name in calls}

    def ratios(numerator, denominator):  # per pass, each the median of the per-round ratios
        return {pass_: paired_ratio(times, f'{numerator} {pass_}', f'{denominator} {pass_}')
                for pass_ in ('fwd', 'fwd+bwd')}

    n, h, w, c, _ = shape
    compiled_fwd = ms['compiled'][0]
    row = {'shape': dict(zip(('N', 'H', 'W', 'C', 'group'), shape)), 'kernel': KERNEL,
           'ms': {name: {'fwd': f, 'fwd+bwd': fb} for name, (f, fb) in ms.items()}}
    row['backward_over_forward'] = statistics.median(
        (fwd_bwd - fwd) / fwd for fwd, fwd_bwd in zip(times['compiled fwd'], times['compiled fwd+bwd']))
    row['speedup_over_grid_sample'] = ratios('grid_sample', 'compiled')
    row['cost_over_depthwise'] = ratios('compiled', 'depthwise')
    if 'compiled_bf16' in ms:
        row['bf16_over_dtype'] = ratios('compiled_bf16', 'compiled')
    row['compiled_forward_gflops'] = n * h * w * c * KERNEL * KERNEL * FLOPS_PER_CHANNEL_POINT / (
        compiled_fwd * 1e-3) / 1e9
    if args.device == 'cuda':
        element = torch.finfo(dtype).bits // 8
        traffic = element * n * h * w * (c + 3 * shape[4] * KERNEL * KERNEL + c)
        row['compiled_forward_gbps'] = traffic / (compiled_fwd * 1e-3) / 1e9
    return row


def print_row(shape, row, baseline):
    ms = row['ms']

    def pair(name):
        return f'{ms[name]["fwd"]:7.2f} / {ms[name]["fwd+bwd"]:7.2f}' if name in ms else f'{"n/a":>17}'

    def ratio(key):
        return f'{row[key]["fwd"]:5.2f}x / {row[key]["fwd+bwd"]:5.2f}x' if key in row else f'{"n/a":>15}'

    line = (f'{",".join(map(str, shape)):>15} | {pair("compiled")} | {row["backward_over_forward"]:4.2f} | '
            f'{pair("grid_sample")} | {ratio("speedup_over_grid_sample")} | {pair("depthwise")} | '
            f'{ratio("cost_over_depthwise")} | {ratio("bf16_over_dtype")} | '
            f'{100 * row["compiled_forward_gflops"] / baseline["matmul_float32_gflops"]:5.1f}% | {pair("dcnv2")}')
    if 'compiled_forward_gbps' in row:
        line += f' | {100 * row["compiled_forward_gbps"] / baseline["copy_gbps"]:5.1f}%'
    print(line, flush=True)


def main(argv=None):
    args = parse_args(argv)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    device_name = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'DCNv3 benchmark on {device_name}, {args.dtype}, kernel {KERNEL}x{KERNEL}, median of '
          f'{args.repeat} interleaved rounds (torch {torch.__version__}); times in ms, fwd / fwd+bwd',
          flush=True)
    baseline = {'matmul_float32_gflops': matmul_gflops(args.device, args.repeat)}
    if args.device == 'cuda':
        baseline['copy_gbps'] = copy_gbps(args.device, args.repeat)
    print('  float32 matmul: {:.1f} GFLOP/s'.format(baseline['matmul_float32_gflops'])
          + ('; device copy: {:.1f} GB/s'.format(baseline['copy_gbps']) if 'copy_gbps' in baseline else ''))
    header = (f'{"N,H,W,C,G":>15} | {"compiled":>17} | {"b/f":>4} | {"grid_sample":>17} | '
              f'{"speed-up vs gs":>15} | {"depthwise 3x3":>17} | {"cost vs dw":>15} | {"bf16 vs dtype":>15} | '
              f'{"% mm":>6} | {"DCNv2 (tv)":>17}' + (f' | {"% copy":>6}' if args.device == 'cuda' else ''))
    print(header)
    print('-' * len(header))
    rows = []
    for shape in SHAPES[:args.shapes]:
        rows.append(benchmark_shape(shape, args, dtype))
        print_row(shape, rows[-1], baseline)

    def median_of(key, pass_=None):
        return statistics.median(r[key][pass_] if pass_ else r[key] for r in rows)

    summary = {
        'max_backward_over_forward': max(r['backward_over_forward'] for r in rows),
        'min_speedup_over_grid_sample_fwd_bwd': min(r['speedup_over_grid_sample']['fwd+bwd'] for r in rows),
        'median_speedup_over_grid_sample_fwd': median_of('speedup_over_grid_sample', 'fwd'),
        'median_speedup_over_grid_sample_fwd_bwd': median_of('speedup_over_grid_sample', 'fwd+bwd'),
        'median_cost_over_depthwise_fwd': median_of('cost_over_depthwise', 'fwd'),
        'median_cost_over_depthwise_fwd_bwd': median_of('cost_over_depthwise', 'fwd+bwd'),
        'median_forward_fraction_of_matmul': statistics.median(
            r['compiled_forward_gflops'] / baseline['matmul_float32_gflops'] for r in rows),
    }
    if all('bf16_over_dtype' in r for r in rows):
        summary['median_bf16_over_dtype_fwd'] = median_of('bf16_over_dtype', 'fwd')
        summary['median_bf16_over_dtype_fwd_bwd'] = median_of('bf16_over_dtype', 'fwd+bwd')
    if args.device == 'cuda':
        summary['median_forward_fraction_of_copy'] = statistics.median(
            r['compiled_forward_gbps'] / baseline['copy_gbps'] for r in rows)
    print('medians over shapes: compiled vs grid_sample {:.1f}x fwd, {:.1f}x fwd+bwd (lowest {:.1f}x); '
          'cost vs depthwise conv {:.1f}x fwd, {:.1f}x fwd+bwd; backward / forward at most {:.2f}; '
          'forward at {:.1f}% of matmul GFLOP/s'.format(
              summary['median_speedup_over_grid_sample_fwd'], summary['median_speedup_over_grid_sample_fwd_bwd'],
              summary['min_speedup_over_grid_sample_fwd_bwd'], summary['median_cost_over_depthwise_fwd'],
              summary['median_cost_over_depthwise_fwd_bwd'], summary['max_backward_over_forward'],
              100 * summary['median_forward_fraction_of_matmul'])
          + ('; bfloat16 / {} {:.2f}x fwd, {:.2f}x fwd+bwd'.format(
              args.dtype, summary['median_bf16_over_dtype_fwd'], summary['median_bf16_over_dtype_fwd_bwd'])
             if 'median_bf16_over_dtype_fwd' in summary else '')
          + ('; {:.1f}% of copy GB/s'.format(100 * summary['median_forward_fraction_of_copy'])
             if args.device == 'cuda' else ''))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump({'device': device_name, 'dtype': args.dtype, 'torch': torch.__version__,
                       'repeat': args.repeat, **baseline, 'rows': rows, 'summary': summary}, f, indent=2)
        print(f'wrote {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
