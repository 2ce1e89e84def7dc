"""COCO evaluation of an exported ONNX model in ONNX Runtime or OpenVINO.

    python tools/deployment/test_onnx.py CONFIG model.onnx [--runtime onnxruntime|openvino]

The same test set, pipeline, data preprocessor and metric as tools/test.py
(the 12 COCO numbers), with the network run by the runtime instead of
PyTorch. A file exported without --nms is post-processed exactly as the
PyTorch detector does (score filter, class-wise NMS, max_per_img of the
config's test_cfg); one with --nms is taken as it is.
"""
import argparse
import json
import os.path as osp
import sys
import time

from mmyolo_dcnv3.deploy.runtime import PRECISIONS, RUNTIMES
from mmyolo_dcnv3.utils import register_all_modules
from mmyolo_dcnv3.utils.cli import add_cfg_options_argument

register_all_modules(init_default_scope=False)  # modules in the registries, the stack fixes


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the config the model was exported from')
    parser.add_argument('model', help='the .onnx file (tools/deployment/export_onnx.py)')
    parser.add_argument('--runtime', choices=RUNTIMES, default='onnxruntime', help='default onnxruntime')
    parser.add_argument('--threads', type=int, help="CPU threads of the runtime (default: the runtime's)")
    parser.add_argument('--precision', choices=PRECISIONS, default='f32',
                        help='what float operations compute in (default f32; bf16 and f16: openvino only, '
                        'on CPUs that have them, else f32 runs)')
    parser.add_argument('--json', help='also write the metrics and the time per image to this JSON file')
    add_cfg_options_argument(parser)
    args = parser.parse_args(argv)
    if not osp.isfile(args.model):
        parser.error(f'model {args.model!r} does not exist')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be at least 1, got {args.threads}')
    if args.precision != 'f32' and args.runtime != 'openvino':
        parser.error(f"--precision {args.precision} needs --runtime openvino (ONNX Runtime's CPU provider "
                     'computes in f32 only)')
    return args


def main(argv=None):
    args = parse_args(argv)
    from mmengine.evaluator import Evaluator
    from mmengine.logging import MMLogger
    from mmengine.runner import Runner

    from mmyolo_dcnv3.deploy.onnx_detector import OnnxDetector
    from mmyolo_dcnv3.utils.config import load_config
    cfg = load_config(args.config, args.cfg_options)
    MMLogger.get_instance('mmyolo_dcnv3.test_onnx', log_level='INFO')  # CocoMetric prints through it
    detector = OnnxDetector(cfg, args.model, args.runtime, args.threads, args.precision)
    dataloader = Runner.build_dataloader(detector.cfg.test_dataloader)
    evaluator = Evaluator(detector.cfg.test_evaluator)
    evaluator.dataset_meta = dataloader.dataset.metainfo
    print(f'evaluating {args.model} ({detector.describe()}) on {len(dataloader.dataset)} images', flush=True)

    start = time.perf_counter()
    for batch in dataloader:
        samples = batch['data_samples']
        for sample, result in zip(samples, detector.predict_batch(batch)):
            sample.pred_instances = result
        evaluator.process(data_samples=samples, data_batch=batch)
    seconds = time.perf_counter() - start
    metrics = evaluator.evaluate(len(dataloader.dataset))
    ms_per_image = 1e3 * seconds / len(dataloader.dataset)
    print(f'{detector.describe()}: {ms_per_image:.1f} ms per image (preprocessing, network, post-processing)')
    print(json.dumps(metrics, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(metrics=metrics, runtime=args.runtime, precision=detector.model.precision,
                           quantization=detector.metadata.get('quantization'), ms_per_image=ms_per_image),
                      f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
