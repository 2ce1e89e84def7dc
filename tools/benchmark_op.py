"""Times the DCNv3 implementations side by side, in one run.

For each shape (N, H, W, C, group) with a 3x3 kernel it measures, as the
median of several repetitions after a warm-up:

* forward and forward+backward of the pure-PyTorch reference and of the
  compiled kernel;
* torchvision's ``deform_conv2d`` (DCNv2: same kernel size, channels and
  offset groups, with its dense C x C weight), where torchvision is installed.

It reports the compiled kernel's speed-up over the reference, its achieved
GFLOP/s (10 flops per output channel per sampling point) against a float32
matmul measured in the same run and, on a GPU, its achieved GB/s (compulsory
traffic: input, offset and mask read once, output written once) against a
device-to-device copy measured in the same run.

    python tools/benchmark_op.py                      # CUDA if available, else CPU
    python tools/benchmark_op.py --device cpu --json results.json
"""
import argparse
import json
import statistics
import sys
import time

import torch

from mmyolo_dcnv3.ops import dcnv3_reference
from mmyolo_dcnv3.ops._library import compiled_kernels

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
                        help='dtype of the timed tensors (default: float32)')
    parser.add_argument('--repeat', type=int, default=None,
                        help='timed repetitions per measurement (default: 7 on CPU, 30 on CUDA)')
    parser.add_argument('--warmup', type=int, default=2, help='untimed calls first (default: 2)')
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
    if args.repeat < 1 or args.warmup < 0:
        parser.error('--repeat must be >= 1 and --warmup >= 0')
    return args


def median_ms(fn, device, repeat, warmup):
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == 'cuda':
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def matmul_gflops(device, repeat):
    size = 4096 if device == 'cuda' else 1024
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    ms = median_ms(lambda: a @ b, device, repeat, warmup=2)
    return 2 * size ** 3 / (ms * 1e-3) / 1e9


def copy_gbps(device, repeat):
    src = torch.empty(64 * 2 ** 20, dtype=torch.float32, device=device)  # 256 MiB
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src), device, repeat, warmup=2)
    return 2 * src.numel() * src.element_size() / (ms * 1e-3) / 1e9


def make_inputs(shape, device, dtype):
    n, h, w, c, group = shape
    points = KERNEL * KERNEL
    generator = torch.Generator().manual_seed(0)
    input = torch.randn(n, h, w, c, generator=generator)
    offset = 2 * torch.randn(n, h, w, group * points * 2, generator=generator)
    mask = torch.randn(n, h, w, group, points, generator=generator).softmax(-1).view(n, h, w, -1)
    return [t.to(device=device, dtype=dtype).requires_grad_() for t in (input, offset, mask)]


def op_args(shape):
    c, group = shape[3], shape[4]
    return (KERNEL, KERNEL, 1, 1, 1, 1, 1, 1, group, c // group, 1.0, 256, False)


def timed_pair(fn, inputs, device, repeat, warmup):
    """(forward ms, forward+backward ms) of fn(*inputs)."""
    def forward():
        with torch.no_grad():
            fn(*inputs)

    def forward_backward():
        out = fn(*inputs)
        out.backward(torch.ones_like(out))

    return (median_ms(forward, device, repeat, warmup),
            median_ms(forward_backward, device, repeat, warmup))


def dcnv2_peer(shape, device, dtype):
    """torchvision deform_conv2d with the same kernel, channels and offset groups."""
    n, h, w, c, group = shape
    points = KERNEL * KERNEL
    input = torch.randn(n, c, h, w, device=device, dtype=dtype, requires_grad=True)
    offset = torch.randn(n, 2 * group * points, h, w, device=device, dtype=dtype, requires_grad=True)
    mask = torch.rand(n, group * points, h, w, device=device, dtype=dtype, requires_grad=True)
    weight = (torch.randn(c, c, KERNEL, KERNEL, device=device, dtype=dtype) / (3 * c)).requires_grad_()

    def fn(input, offset, mask):
        return deform_conv2d(input, offset, weight, padding=1, mask=mask)

    return fn, [input, offset, mask]


def benchmark_shape(shape, args, dtype):
    device, repeat, warmup = args.device, args.repeat, args.warmup
    inputs = make_inputs(shape, device, dtype)
    params = op_args(shape)
    compiled = torch.ops.mmyolo_dcnv3.dcnv3_forward
    row = {'shape': dict(zip(('N', 'H', 'W', 'C', 'group'), shape)), 'kernel': KERNEL}
    row['reference_ms'] = timed_pair(lambda *t: dcnv3_reference(*t, *params), inputs, device,
                                     max(1, repeat // 2), min(warmup, 1))
    row['compiled_ms'] = timed_pair(lambda *t: compiled(*t, *params), inputs, device, repeat, warmup)
    if deform_conv2d is not None and dtype != torch.bfloat16:
        fn, peer_inputs = dcnv2_peer(shape, device, dtype)
        row['dcnv2_torchvision_ms'] = timed_pair(fn, peer_inputs, device, repeat, warmup)
    n, h, w, c, _ = shape
    flops = n * h * w * c * KERNEL * KERNEL * FLOPS_PER_CHANNEL_POINT
    row['compiled_forward_gflops'] = flops / (row['compiled_ms'][0] * 1e-3) / 1e9
    row['speedup_forward'] = row['reference_ms'][0] / row['compiled_ms'][0]
    row['speedup_forward_backward'] = row['reference_ms'][1] / row['compiled_ms'][1]
    if device == 'cuda':
        traffic = sum(t.numel() for t in inputs) * inputs[0].element_size() + n * h * w * c * inputs[0].element_size()
        row['compiled_forward_gbps'] = traffic / (row['compiled_ms'][0] * 1e-3) / 1e9
    return row


def main(argv=None):
    args = parse_args(argv)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    device_name = torch.cuda.get_device_name() if args.device == 'cuda' else f'CPU, {torch.get_num_threads()} threads'
    print(f'DCNv3 benchmark on {device_name}, {args.dtype}, kernel {KERNEL}x{KERNEL}, '
          f'median of {args.repeat} (torch {torch.__version__})', flush=True)
    baseline = {'matmul_float32_gflops': matmul_gflops(args.device, args.repeat)}
    if args.device == 'cuda':
        baseline['copy_gbps'] = copy_gbps(args.device, args.repeat)
    print('  float32 matmul: {:.1f} GFLOP/s'.format(baseline['matmul_float32_gflops'])
          + ('; device copy: {:.1f} GB/s'.format(baseline['copy_gbps']) if 'copy_gbps' in baseline else ''))

    header = (f'{"N,H,W,C,G":>18} | {"reference fwd/fwd+bwd ms":>24} | {"compiled fwd/fwd+bwd ms":>23} | '
              f'{"speed-up fwd/f+b":>16} | {"GFLOP/s (% mm)":>14} | {"DCNv2 tv ms":>15}'
              + (f' | {"GB/s (% copy)":>13}' if args.device == 'cuda' else ''))
    print(header)
    print('-' * len(header))
    rows = []
    for shape in SHAPES:
        row = benchmark_shape(shape, args, dtype)
        rows.append(row)
        peer = row.get('dcnv2_torchvision_ms')
        line = (f'{",".join(map(str, shape)):>18} | {row["reference_ms"][0]:10.2f} / {row["reference_ms"][1]:10.2f} | '
                f'{row["compiled_ms"][0]:9.3f} / {row["compiled_ms"][1]:10.3f} | '
                f'{row["speedup_forward"]:6.1f}x / {row["speedup_forward_backward"]:6.1f}x | '
                f'{row["compiled_forward_gflops"]:6.1f} ({100 * row["compiled_forward_gflops"] / baseline["matmul_float32_gflops"]:4.1f}%) | '
                + (f'{peer[0]:6.2f} / {peer[1]:6.2f}' if peer else f'{"n/a":>15}'))
        if args.device == 'cuda':
            line += f' | {row["compiled_forward_gbps"]:6.1f} ({100 * row["compiled_forward_gbps"] / baseline["copy_gbps"]:4.1f}%)'
        print(line, flush=True)

    summary = {
        'median_speedup_forward': statistics.median(r['speedup_forward'] for r in rows),
        'median_speedup_forward_backward': statistics.median(r['speedup_forward_backward'] for r in rows),
        'median_forward_fraction_of_matmul': statistics.median(
            r['compiled_forward_gflops'] / baseline['matmul_float32_gflops'] for r in rows),
    }
    if args.device == 'cuda':
        summary['median_forward_fraction_of_copy'] = statistics.median(
            r['compiled_forward_gbps'] / baseline['copy_gbps'] for r in rows)
    print('medians over shapes: compiled vs reference {:.1f}x forward, {:.1f}x forward+backward; '
          'forward at {:.1f}% of matmul GFLOP/s'.format(summary['median_speedup_forward'],
                                                       summary['median_speedup_forward_backward'],
                                                       100 * summary['median_forward_fraction_of_matmul'])
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
