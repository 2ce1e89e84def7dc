# Faster R-CNN R50-FPN with DCNv3 in ResNet stages c3-c5: the counterpart of
# MMDetection's dcn/faster-rcnn_r50-dconv-c3-c5_fpn_1x_coco.py, which uses
# mmcv's DCN (v1) there. Every 3x3 conv2 of the Bottlenecks of stages 2-4
# becomes a DCNv3 conv layer (stride 2 in each stage's first block, as the
# conv it replaces). The ResNet-50 ImageNet weights still load into every
# other layer; the DCNv3 layers start from their own initialisation.
#     mim train mmdet configs/mmdet/faster-rcnn_r50-dcnv3-c3-c5_fpn_1x_coco.py
_base_ = 'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmyolo_dcnv3'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        dcn=dict(type='DCNv3Conv2d', group=4),  # any conv_cfg-style DCNv3 argument: offset_scale, ...
        stage_with_dcn=(False, True, True, True)))
