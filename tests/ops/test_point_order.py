"""The sampling points' order (docs/operator.md, "Point order"): column outer, row inner, centre skipped."""
from mmyolo_dcnv3.ops.point_order import kernel_points, point_taps


def test_points_run_down_each_column_then_to_the_next_column():
    assert kernel_points(2, 3, False) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]


def test_remove_center_skips_the_centre_and_moves_later_points_down():
    points = kernel_points(3, 3, True)
    assert len(points) == 8 and (1, 1) not in points
    assert points[4] == (1, 2) == kernel_points(3, 3, False)[5]


def test_taps_are_offsets_from_the_kernel_centre_in_dilated_pixels():
    # 3 rows, 5 columns, dilation 1 along y and 2 along x: centre (4, 1).
    assert point_taps(3, 5, 1, 2, False)[:4] == [(-4, -1), (-4, 0), (-4, 1), (-2, -1)]
    # An even kernel's centre is the floor of its middle.
    assert point_taps(2, 2, 1, 1, False) == [(0, 0), (0, 1), (1, 0), (1, 1)]
