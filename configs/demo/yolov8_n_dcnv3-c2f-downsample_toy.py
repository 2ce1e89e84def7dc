# Placement ablation (tools/analysis_tools/ablate_dcnv3_placement.py): both placements in the
# last two stages (P4, P5): DCNv3 downsampling convs and DCNv3 C2f bottlenecks.
_base_ = './yolov8_n_dcnv3_toy.py'

model = dict(
    backbone=dict(dcn_stages=(False, False, True, True), dcn_downsample_stages=(False, False, True, True)))
