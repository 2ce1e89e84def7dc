# The warped-digits deformation benchmark (tools/dataset_makers/make_warped_digits_coco.py):
# real handwritten MNIST digits under strong scale, rotation, shear,
# perspective and elastic deformation on real photographs, 10 classes, 500
# train / 150 val images of 192 px. Paths are relative to the working
# directory. A dataset config of tools/analysis_tools/ablate_dcnv3_placement.py.
data_root = 'data/warped_digits/'
class_name = ('0', '1', '2', '3', '4', '5', '6', '7', '8', '9')
img_scale = (192, 192)  # width, height
train_ann_file = 'annotations/instances_train.json'
train_data_prefix = 'train/'
val_ann_file = 'annotations/instances_val.json'
val_data_prefix = 'val/'
