"""export_onnx's check that the compiled op is in use when the model holds DCNv3 layers."""
import pytest
import torch

pytest.importorskip('mmengine', reason='the DCNv3 modules need mmengine')

from mmyolo_dcnv3.deploy import export_onnx  # noqa: E402
from mmyolo_dcnv3.models.layers import DCNv3, DCNv3Conv2d  # noqa: E402


class RenamedDCNv3(DCNv3):
    """A user's subclass: a different class name, still a DCNv3 block."""


@pytest.mark.parametrize('layer', [DCNv3(channels=8, group=2), RenamedDCNv3(channels=8, group=2),
                                   torch.nn.Sequential(DCNv3Conv2d(8, 8, 3, padding=1, group=2))],
                         ids=['DCNv3', 'subclass', 'nested in DCNv3Conv2d'])
def test_export_refuses_dcnv3_layers_without_the_compiled_op(layer, monkeypatch, tmp_path):
    monkeypatch.setenv('MMYOLO_DCNV3_IMPL', 'reference')
    with pytest.raises(RuntimeError, match='compiled op torch.ops.mmyolo_dcnv3.dcnv3_forward.*not in use'):
        export_onnx(layer.eval(), (torch.rand(1, 8, 8, 8),), str(tmp_path / 'model.onnx'))
    assert not (tmp_path / 'model.onnx').exists()
