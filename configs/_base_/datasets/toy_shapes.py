# The demo's toy shapes (tools/dataset_makers/make_toy_coco.py): five classes of rigid shapes
# under mild warps, 400 train / 100 val images of 192 px. Paths are relative to
# the working directory. A dataset config of tools/analysis_tools/ablate_dcnv3_placement.py.
data_root = 'data/toy_coco/'
class_name = ('ellipse', 'triangle', 'rectangle', 'star', 'cross')
palette = [(220, 20, 60), (0, 130, 200), (60, 180, 75), (245, 130, 48), (145, 30, 180)]
img_scale = (192, 192)  # width, height
train_ann_file = 'annotations/instances_train.json'
train_data_prefix = 'train/'
val_ann_file = 'annotations/instances_val.json'
val_data_prefix = 'val/'
