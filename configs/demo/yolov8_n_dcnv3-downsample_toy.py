# Placement ablation (tools/analysis_tools/ablate_dcnv3_placement.py): the stride-2
# downsampling convs of the last two stages (P4, P5) become DCNv3ConvModules
# (1x1 conv + BN + SiLU, DCNv3, BN, SiLU); plain C2f layers.
_base_ = './yolov8_n_dcnv3_toy.py'

model = dict(
    backbone=dict(dcn_stages=(False, False, False, False), dcn_downsample_stages=(False, False, True, True)))
