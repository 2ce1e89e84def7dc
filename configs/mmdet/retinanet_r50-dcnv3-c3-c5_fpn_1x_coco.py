# RetinaNet R50-FPN with DCNv3 in ResNet stages c3-c5, like MMDetection's
# dconv-c3-c5 configs (which use mmcv's DCN): every 3x3 conv2 of the
# Bottlenecks of stages 2-4 becomes a DCNv3 conv layer. The ResNet-50
# ImageNet weights still load into every other layer.
#     mim train mmdet configs/mmdet/retinanet_r50-dcnv3-c3-c5_fpn_1x_coco.py
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmyolo_dcnv3'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        dcn=dict(type='DCNv3Conv2d', group=4),
        stage_with_dcn=(False, True, True, True)))
