"""The order of DCNv3's sampling points (docs/operator.md, "Point order"), written once.

Point ``p = i * kernel_h + j`` is kernel column ``i`` (outer loop) and row
``j`` (inner loop); with ``remove_center`` the centre point is skipped and
the later points move down by one.
"""
from typing import List, Tuple


def kernel_points(kernel_h: int, kernel_w: int, remove_center: bool) -> List[Tuple[int, int]]:
    """(column i, row j) of each sampling point of a group, in the op's point order."""
    return [(i, j) for i in range(kernel_w) for j in range(kernel_h)
            if not (remove_center and i == kernel_w // 2 and j == kernel_h // 2)]


def point_taps(kernel_h: int, kernel_w: int, dilation_h: int, dilation_w: int,
               remove_center: bool) -> List[Tuple[int, int]]:
    """(x, y) of each point's fixed grid position relative to the kernel centre, in input pixels, in point order."""
    centre_x, centre_y = (dilation_w * (kernel_w - 1)) // 2, (dilation_h * (kernel_h - 1)) // 2
    return [(i * dilation_w - centre_x, j * dilation_h - centre_y)
            for i, j in kernel_points(kernel_h, kernel_w, remove_center)]
