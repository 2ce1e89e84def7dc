"""What the model-level benchmarks share: the plain and the DCNv3 config of each YOLOv8 size."""
from typing import Optional, Tuple

YOLOV8_SIZES = ('n', 's', 'm', 'l', 'x')


def yolov8_configs(size: str) -> Tuple[str, str]:
    """(MMYOLO's plain YOLOv8 COCO config, this package's DCNv3 one) of a YOLOv8 size, as config paths
    that :func:`mmyolo_dcnv3.utils.config.load_config` reads."""
    if size not in YOLOV8_SIZES:
        raise ValueError(f'size must be one of {", ".join(YOLOV8_SIZES)}, got {size!r}')
    return (f'mmyolo::yolov8/yolov8_{size}_syncbn_fast_8xb16-500e_coco.py',
            f'mmyolo_dcnv3::yolov8_{size}_dcnv3_coco.py')


def add_model_benchmark_arguments(parser, repeat: int, threads: Optional[int], threads_help: str) -> None:
    """--sizes, --img-size, --repeat and --threads, as the model-level benchmarks share them;
    :func:`check_model_benchmark_arguments` after parsing."""
    from mmyolo_dcnv3.utils.cli import add_img_size_argument
    parser.add_argument('--sizes', nargs='+', choices=YOLOV8_SIZES, default=['n', 's'],
                        help='YOLOv8 sizes (default n s)')
    add_img_size_argument(parser, 'default 640')
    parser.add_argument('--repeat', type=int, default=repeat, help=f'timed rounds (default {repeat})')
    parser.add_argument('--threads', type=int, default=threads, help=threads_help)


def check_model_benchmark_arguments(parser, args) -> None:
    """Parses --img-size into (height, width), default 640 x 640; refuses a --repeat or --threads below 1."""
    from mmyolo_dcnv3.utils.cli import parse_img_size
    args.img_size = parse_img_size(parser, args.img_size) or (640, 640)
    for name in ('repeat', 'threads'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f'--{name} must be at least 1, got {value}')
