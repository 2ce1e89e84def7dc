# Plain YOLOv8-n on the demo's toy shapes dataset (tools/dataset_makers/make_toy_coco.py):
# 5 classes, 192 px images, trained from scratch on 2 CPU cores.
# yolov8_n_dcnv3_toy.py is this config with DCNv3 in the backbone.
#
# The schedule (AdamW, a short warm-up, an EMA that ramps down within the run,
# 36 epochs) fits a from-scratch run on 2 CPU cores in the demo's time; how it
# was chosen, with the figures: configs/README.md, The demo's schedule.
_base_ = 'mmyolo::yolov8/yolov8_n_syncbn_fast_8xb16-500e_coco.py'
# Nothing of this package is in the model, but its stack fixes are needed to
# train through `mim train mmyolo` (the '_scope_' in yolov5_collate).
custom_imports = dict(imports=['mmyolo_dcnv3'], allow_failed_imports=False)

data_root = 'data/toy_coco/'
class_name = ('ellipse', 'triangle', 'rectangle', 'star', 'cross')
num_classes = len(class_name)
metainfo = dict(
    classes=class_name,
    palette=[(220, 20, 60), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180)])
img_scale = (192, 192)  # width, height

max_epochs = 36
close_mosaic_epochs = 8
warmup_iters = 100
ema_gamma = 500  # iterations over which the EMA's momentum ramps down to 0.0001
base_lr = 0.002
train_batch_size_per_gpu = 8
train_num_workers = 1  # one worker keeps up with a model on 1 to 2 cores
val_interval = 4
randomness = dict(seed=0)

model = dict(
    bbox_head=dict(head_module=dict(num_classes=num_classes)),
    train_cfg=dict(assigner=dict(num_classes=num_classes)))

# MMYOLO's pipelines, at this image size.
random_affine = dict(
    type='YOLOv5RandomAffine',
    max_rotate_degree=0.0,
    max_shear_degree=0.0,
    scaling_ratio_range=(0.5, 1.5),
    max_aspect_ratio=100,
    border_val=(114, 114, 114))
train_pipeline = [
    *_base_.pre_transform,
    dict(type='Mosaic', img_scale=img_scale, pad_val=114.0, pre_transform=_base_.pre_transform),
    dict(**random_affine, border=(-img_scale[0] // 2, -img_scale[1] // 2)),
    *_base_.last_transform,
]
train_pipeline_stage2 = [
    *_base_.pre_transform,
    dict(type='YOLOv5KeepRatioResize', scale=img_scale),
    dict(type='LetterResize', scale=img_scale, allow_scale_up=True, pad_val=dict(img=114.0)),
    random_affine,
    *_base_.last_transform,
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='YOLOv5KeepRatioResize', scale=img_scale),
    dict(type='LetterResize', scale=img_scale, allow_scale_up=False, pad_val=dict(img=114)),
    dict(type='LoadAnnotations', with_bbox=True, _scope_='mmdet'),
    dict(
        type='mmdet.PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'pad_param')),
]

train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=train_num_workers,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=train_num_workers,
    pin_memory=False,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# AdamW converges far faster than YOLOv8's SGD on a schedule this short.
optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='AdamW',
        lr=base_lr,
        betas=(0.9, 0.999),
        weight_decay=0.0005,
        batch_size_per_gpu=train_batch_size_per_gpu))
default_hooks = dict(
    param_scheduler=dict(max_epochs=max_epochs, warmup_epochs=0, warmup_mim_iter=warmup_iters),
    checkpoint=dict(interval=val_interval, max_keep_ckpts=2, save_best='coco/bbox_mAP', rule='greater'),
    logger=dict(type='LoggerHook', interval=10))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0001, gamma=ema_gamma, update_buffers=True,
         strict_load=False, priority=49),
    dict(type='mmdet.PipelineSwitchHook', switch_epoch=max_epochs - close_mosaic_epochs,
         switch_pipeline=train_pipeline_stage2),
]
train_cfg = dict(
    max_epochs=max_epochs,
    val_interval=val_interval,
    dynamic_intervals=[(max_epochs - close_mosaic_epochs, 2)])
