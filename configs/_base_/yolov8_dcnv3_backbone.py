# The DCNv3 switch shared by the YOLOv8-DCNv3 configs: import the package and
# the backbone that replaces YOLOv8CSPDarknet (merged into `model.backbone`).
#
# DCNv3 replaces the second 3x3 conv of every C2f bottleneck in the last two
# stages (strides 16 and 32, P4/P5): the deformable sampling helps most where
# objects are large, and those stages have the smallest feature maps, so the
# extra cost stays small. Change `dcn_stages` (one boolean per stage) to move
# it; `dcnv3_cfg` goes to every DCNv3 layer (group=4 divides every DCNv3
# stage's bottleneck width for all of n/s/m/l/x).
custom_imports = dict(imports=['mmyolo_dcnv3'], allow_failed_imports=False)

dcnv3_backbone = dict(
    type='YOLOv8CSPDarknetDCNv3',
    dcn_stages=(False, False, True, True),
    dcnv3_cfg=dict(group=4))
