"""mmyolo_dcnv3.utils.compat: checkpoints load weights-only; anything else is refused."""
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub

from mmyolo_dcnv3.utils import register_all_modules

register_all_modules(init_default_scope=False)


def test_mmengine_message_hub_round_trips_through_the_weights_only_loader(tmp_path):
    hub = MessageHub.get_instance('compat_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('epoch', 3)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'message_hub': hub.state_dict(),
                'meta': {'seed': 1, 'array': np.arange(3)}}, path)
    loaded = torch.load(path, weights_only=True)
    assert loaded['message_hub']['log_scalars']['train/loss'].mean() == 1.0
    assert loaded['meta']['array'].tolist() == [0, 1, 2]


def test_history_buffer_statistics_still_work_after_loading(tmp_path):
    buffer = HistoryBuffer()
    buffer.update(2.0)
    buffer.update(4.0)
    path = tmp_path / 'buffer.pth'
    torch.save({'buffer': buffer}, path)
    loaded = torch.load(path, weights_only=True)['buffer']
    assert loaded.max() == 4.0 and loaded.mean() == 3.0 and loaded.statistics('min') == 2.0


class Payload:
    def __reduce__(self):
        return (print, ('this must not run',))


def test_checkpoint_holding_another_object_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        torch.save({'state_dict': {}, 'meta': Payload()}, f)
    with pytest.raises(pickle.UnpicklingError, match='print'):
        torch.load(path, weights_only=True)


def test_getattr_is_not_trusted(tmp_path):
    path = tmp_path / 'getattr.pth'
    torch.save({'f': getattr(HistoryBuffer, 'min')}, path, pickle_protocol=2)
    with pytest.raises(pickle.UnpicklingError, match='getattr'):
        torch.load(path, weights_only=True)
