# Placement ablation (tools/analysis_tools/ablate_dcnv3_placement.py): DCNv3 in the C2f
# bottlenecks of the last two stages (P4, P5), plain downsampling convs.
_base_ = './yolov8_n_dcnv3_toy.py'

model = dict(
    backbone=dict(dcn_stages=(False, False, True, True), dcn_downsample_stages=(False, False, False, False)))
