"""What the model-level benchmarks share: the plain and the DCNv3 config of each YOLOv8 size."""
from typing import Tuple

YOLOV8_SIZES = ('n', 's', 'm', 'l', 'x')


def yolov8_configs(size: str) -> Tuple[str, str]:
    """(MMYOLO's plain YOLOv8 COCO config, this package's DCNv3 one) of a YOLOv8 size, as config paths
    that :func:`mmyolo_dcnv3.utils.config.load_config` reads."""
    if size not in YOLOV8_SIZES:
        raise ValueError(f'size must be one of {", ".join(YOLOV8_SIZES)}, got {size!r}')
    return (f'mmyolo::yolov8/yolov8_{size}_syncbn_fast_8xb16-500e_coco.py',
            f'mmyolo_dcnv3::yolov8_{size}_dcnv3_coco.py')
