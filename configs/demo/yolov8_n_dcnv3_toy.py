# YOLOv8-n with DCNv3 in the last two backbone stages on the demo's toy shapes
# dataset: yolov8_n_toy.py with the backbone switch of yolov8_n_dcnv3_coco.py.
_base_ = './yolov8_n_toy.py'

custom_imports = dict(imports=['mmyolo_dcnv3'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='YOLOv8CSPDarknetDCNv3',
        dcn_stages=(False, False, True, True),
        dcnv3_cfg=dict(group=4)))
