# YOLOv8-s on COCO with DCNv3 in the backbone: MMYOLO's config with the
# backbone switched to YOLOv8CSPDarknetDCNv3 (see _base_/yolov8_dcnv3_backbone.py
# for where DCNv3 goes and how to change it).
_base_ = [
    'mmyolo::yolov8/yolov8_s_syncbn_fast_8xb16-500e_coco.py',
    './_base_/yolov8_dcnv3_backbone.py',
]
custom_imports = dict(imports=['mmyolo_dcnv3'], allow_failed_imports=False)

model = dict(backbone=_base_.dcnv3_backbone)
