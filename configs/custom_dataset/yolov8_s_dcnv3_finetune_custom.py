# Fine-tune YOLOv8-s + DCNv3 on your own COCO-format dataset, starting from a
# plain MMYOLO YOLOv8-s COCO checkpoint.
#
# 1. Your data, in COCO format: one annotation JSON per split (COCO's
#    "images", "annotations" with "bbox" [x, y, width, height] in pixels,
#    "categories") and a folder of images per split, e.g.
#        data/my_dataset/annotations/train.json   data/my_dataset/images/train/
#        data/my_dataset/annotations/val.json     data/my_dataset/images/val/
#    `class_name` must list the "categories" names you train on, in the order
#    of the file's "categories" (mmdet numbers the labels in that order and
#    names them from `class_name`, so another order mislabels them).
# 2. Edit the block "Your dataset and schedule" below (everything a new
#    dataset needs is there). tools/train.py and tools/test.py also move
#    the data with `--cfg-options data_root=/data/my_dataset/`; they stop
#    with the missing path if the files are not where the config says.
# 3. Train, evaluate, look at the results:
#        python tools/train.py THIS_CONFIG           # or: mim train mmyolo THIS_CONFIG
#        python tools/test.py THIS_CONFIG work_dirs/THIS_CONFIG_NAME/best_coco_bbox_mAP_epoch_N.pth
#        python tools/image_demo.py THIS_CONFIG CHECKPOINT my_images/ --out results/
#
# What `load_from` brings: every weight of plain YOLOv8-s loads (the DCNv3
# backbone keeps YOLOv8's names for everything but the DCNv3 convs). The
# DCNv3 convs of backbone stages 3 and 4 are new: they start from their own
# initialisation (offsets and masks at zero, i.e. a plain 3x3 average of the
# sampled points). When training starts, the log says how many weights
# loaded and lists the new ones (LoadFromReportHook below); when your class
# count is not COCO's 80 it also lists the classification output convs
# (bbox_head.head_module.cls_preds.*.2), whose shapes differ and which then
# start from scratch.
_base_ = '../yolov8_s_dcnv3_coco.py'

# ---- Your dataset and schedule ------------------------------------------------------------
data_root = 'data/my_dataset/'
class_name = ('person', 'bicycle', 'car')  # the "categories" names to train on, in the file's order
train_ann_file = 'annotations/train.json'  # relative to data_root
train_image_dir = 'images/train/'
val_ann_file = 'annotations/val.json'
val_image_dir = 'images/val/'
max_epochs = 100
close_mosaic_epochs = 10  # the last epochs train without mosaic
val_interval = 10  # evaluate (and keep the best checkpoint) every N epochs
train_batch_size_per_gpu = 16
train_num_workers = 4
base_lr = 0.01 / 4  # YOLOv8's SGD rate for a batch of 8 x 16, scaled down for fine-tuning
# MMYOLO's plain YOLOv8-s, trained on COCO (a local path works too).
load_from = 'https://download.openmmlab.com/mmyolo/v0/yolov8/yolov8_s_syncbn_fast_8xb16-500e_coco/yolov8_s_syncbn_fast_8xb16-500e_coco_20230117_180101-5aa5f0f1.pth'  # noqa: E501
# ------------------------------------------------------------------------------------------

num_classes = len(class_name)
metainfo = dict(classes=class_name)

model = dict(
    bbox_head=dict(head_module=dict(num_classes=num_classes)),
    train_cfg=dict(assigner=dict(num_classes=num_classes)))

# The pipelines are MMYOLO's YOLOv8-s ones (../yolov8_s_dcnv3_coco.py's base), at 640 x 640 px, the size the
# checkpoint was trained at; configs/demo/yolov8_n_toy.py shows them redefined for another size.
train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=train_num_workers,
    persistent_workers=train_num_workers > 0,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=train_ann_file,
        data_prefix=dict(img=train_image_dir)))
val_dataloader = dict(
    num_workers=train_num_workers,
    persistent_workers=train_num_workers > 0,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file=val_ann_file,
        data_prefix=dict(img=val_image_dir)))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann_file)
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=base_lr, batch_size_per_gpu=train_batch_size_per_gpu))
default_hooks = dict(
    param_scheduler=dict(max_epochs=max_epochs),
    checkpoint=dict(interval=val_interval, max_keep_ckpts=2, save_best='coco/bbox_mAP', rule='greater'))
custom_hooks = [
    _base_.custom_hooks[0],  # MMYOLO's EMA
    # MMYOLO's switch to its train_pipeline_stage2 (no mosaic), for the last close_mosaic_epochs.
    dict(_base_.custom_hooks[1], switch_epoch=max_epochs - close_mosaic_epochs),
    # Logs which weights load_from provided and which are new (the DCNv3 layers).
    dict(type='LoadFromReportHook'),
]
train_cfg = dict(
    max_epochs=max_epochs,
    val_interval=val_interval,
    dynamic_intervals=[(max_epochs - close_mosaic_epochs, 1)])
