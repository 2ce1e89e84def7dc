# The DCNv3 switch shared by the YOLOv8-DCNv3 configs: the backbone that
# replaces YOLOv8CSPDarknet (merged into `model.backbone`; the configs that use
# it import this package with `custom_imports`).
#
# Two placements, one boolean per stage (strides 4, 8, 16, 32) each:
# - `dcn_stages`: DCNv3 replaces the second 3x3 conv of every C2f bottleneck;
# - `dcn_downsample_stages`: the stage's stride-2 3x3 conv becomes a
#   DCNv3ConvModule (1x1 conv + BN + SiLU, stride-2 DCNv3, BN, SiLU), the
#   block of the YOLOv8-DCNv3 write-ups.
# Default: the C2f placement in the last two stages (P4/P5), where objects are
# large and feature maps small, so the extra cost stays small. The placement
# ablation (tools/analysis_tools/ablate_dcnv3_placement.py, docs/ablation.md)
# is what this default rests on. `dcnv3_cfg` goes to every
# DCNv3 layer (group=4 divides every DCNv3 stage's width for all of n/s/m/l/x).
dcnv3_backbone = dict(
    type='YOLOv8CSPDarknetDCNv3',
    dcn_stages=(False, False, True, True),
    dcn_downsample_stages=(False, False, False, False),
    dcnv3_cfg=dict(group=4))
