# YOLOv8-n with DCNv3 in the last two backbone stages on the demo's toy shapes
# dataset: yolov8_n_toy.py with the DCNv3 backbone of the COCO configs.
_base_ = ['./yolov8_n_toy.py', '../_base_/yolov8_dcnv3_backbone.py']

model = dict(backbone=_base_.dcnv3_backbone)
