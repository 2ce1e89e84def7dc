# RTMDet-s on COCO with DCNv3 in the last two backbone stages (strides 16
# and 32): MMYOLO's config with CSPNeXt switched to CSPNeXtDCNv3, whose
# CSPNeXt blocks there use a 3x3 DCNv3 conv instead of their 5x5
# depthwise-separable conv. The CSPNeXt-s ImageNet weights of the base
# config load into every other layer.
#     mim train mmyolo configs/rtmdet/rtmdet_s_dcnv3_coco.py
_base_ = 'mmyolo::rtmdet/rtmdet_s_syncbn_fast_8xb32-300e_coco.py'

custom_imports = dict(imports=['mmyolo_dcnv3'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='CSPNeXtDCNv3',
        dcn_stages=(False, False, True, True),
        dcnv3_cfg=dict(group=4)))
