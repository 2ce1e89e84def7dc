"""INT8 post-training quantisation of an exported YOLOv8(-DCNv3) ONNX file for the CPU.

    python tools/deployment/quantize_onnx.py CONFIG model.onnx --out model_int8.onnx
    python tools/deployment/quantize_onnx.py CONFIG model.onnx --out model_int8.xml --backend openvino

Calibrates on --calib-images images of the config's --calib-split dataset,
preprocessed as tools/deployment/test_onnx.py does, and quantises every Conv,
MatMul and Gemm to INT8 except what must stay float: each DCNv3 layer's
sampling (offset and mask heads' outputs onward: grid arithmetic, mask
softmax, GridSample or DeformConv) and the box decoding (see
mmyolo_dcnv3.deploy.quantize). The result keeps the float file's metadata, so
tools/deployment/test_onnx.py and examples/onnx_inference.py run it
unchanged; the tool checks it (no quantisation on the float paths, every other Conv/MatMul
quantised) before it says done.

onnxruntime: ONNX Runtime's quantize_static, QDQ format, per-channel int8
weights, uint8 activations; an .onnx file (which OpenVINO runs too).
openvino: NNCF's post-training quantisation of OpenVINO's model of the file;
an OpenVINO IR (.xml, weights in the .bin beside it). Both evaluate with
tools/deployment/test_onnx.py CONFIG FILE [--runtime openvino].

Weights take 7 bits (--weight-bits 7, the default): the file then computes
the same on every x86 CPU. --weight-bits 8 is for files that run only on CPUs
with VNNI or AMX; on others their integer sums saturate (docs/deploy.md, Why
7-bit weights).
"""
import argparse
import os.path as osp
import sys
import time

from mmyolo_dcnv3.deploy.cpu import integer_dot_path
from mmyolo_dcnv3.deploy.quantize import BACKENDS, MIN_CALIBRATION_IMAGES, OUTPUT_SUFFIXES, RECIPES, WEIGHT_BITS
from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.cli import add_cfg_options_argument

register_all_modules(init_default_scope=False)  # modules in the registries, the stack fixes

SPLITS = ('train', 'val', 'test')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the config the model was exported from')
    parser.add_argument('model', help='the float .onnx file (tools/deployment/export_onnx.py)')
    parser.add_argument('--out', required=True, help='the INT8 model to write: .onnx (onnxruntime) or .xml (openvino)')
    parser.add_argument('--backend', choices=BACKENDS, default='onnxruntime',
                        help='the runtime the file is for (default onnxruntime)')
    parser.add_argument('--calib-images', type=int, default=32,
                        help=f'calibration images (default 32, at least {MIN_CALIBRATION_IMAGES})')
    parser.add_argument('--calib-split', choices=SPLITS, default='train',
                        help="the dataset of the config the images come from (default train)")
    parser.add_argument('--recipe', choices=RECIPES, default='keep-float',
                        help='keep-float (default): DCNv3 sampling and box decoding in float; quantize-all: '
                        "the same settings, nothing kept float; defaults: the quantiser's defaults "
                        '(the last two only to compare with)')
    parser.add_argument('--weight-bits', type=int, choices=WEIGHT_BITS, default=None,
                        help='7 (default): exact on every x86 CPU; 8: only for CPUs with VNNI or AMX, where the '
                        "integer sums cannot saturate (not with --recipe defaults, which takes the quantiser's own)")
    add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        parser.error(f'config file {args.config!r} does not exist')
    if not osp.isfile(args.model):
        parser.error(f'model {args.model!r} does not exist')
    if args.calib_images < MIN_CALIBRATION_IMAGES:
        parser.error(f'--calib-images must be at least {MIN_CALIBRATION_IMAGES}, got {args.calib_images}')
    suffix = OUTPUT_SUFFIXES[args.backend]
    if not args.out.endswith(suffix):
        parser.error(f'--out: the {args.backend} INT8 model is written as {suffix}, got {args.out!r}')
    if args.recipe == 'defaults' and args.weight_bits is not None:
        parser.error("--weight-bits does not apply to --recipe defaults, which takes the quantiser's own")
    if osp.abspath(args.out) == osp.abspath(args.model):
        parser.error('--out must not be the float model itself')
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmyolo_dcnv3.deploy.quantize import calibration_inputs, float_model_metadata, quantize, quantized_float_paths
    from mmyolo_dcnv3.utils.config import load_config
    try:
        metadata = float_model_metadata(args.model)  # before calibration, which takes a while
    except ValueError as error:
        sys.exit(f'error: {error}')
    cfg = load_config(args.config, args.cfg_options)
    start = time.perf_counter()
    try:
        images = calibration_inputs(cfg, metadata['input_size'], args.calib_split, args.calib_images)
    except ValueError as error:
        sys.exit(f'error: --calib-images/--calib-split: {error}')
    dot_path = integer_dot_path()
    print(f'calibrating on {len(images)} {args.calib_split} images; this CPU\'s integer dot products: '
          f'{dot_path.name}', flush=True)
    if args.weight_bits == 8:
        print('8-bit weights: deploy this file only to CPUs with VNNI or AMX; integer dot products without them '
              'saturate (docs/deploy.md, Why 7-bit weights)', flush=True)
    scope = quantize(args.model, args.out, images, backend=args.backend, recipe=args.recipe,
                     weight_bits=args.weight_bits,
                     settings=dict(calibration_split=args.calib_split, calibration_cpu=dot_path.name))
    problems = quantized_float_paths(args.out)
    if args.recipe == 'keep-float' and problems:
        sys.exit('error: the quantised graph breaks the float rule:\n  ' + '\n  '.join(problems))
    print(f'wrote {args.out} ({args.backend}, {args.recipe}) in {time.perf_counter() - start:.0f} s; kept float: '
          f'{len(scope.sampling)} sampling nodes of {scope.dcnv3_layers} DCNv3 layers, '
          f'{len(scope.decoding)} box-decoding nodes and {len(scope.boundary)} layers that feed them')
    return 0


if __name__ == '__main__':
    sys.exit(main())
