"""mmyolo_dcnv3.timing: alternatives take turns and each gets a median."""
import pytest

from mmyolo_dcnv3.timing import interleaved_medians


def test_alternatives_take_turns_in_every_round():
    calls = []
    medians = interleaved_medians({'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')},
                                  repeat=3, warmup=1)
    assert calls == ['a', 'b'] * 4
    assert set(medians) == {'a', 'b'} and all(ms >= 0 for ms in medians.values())


def test_synchronize_brackets_every_timed_call():
    events = []
    interleaved_medians({'a': lambda: events.append('call')}, repeat=2, warmup=0,
                        synchronize=lambda: events.append('sync'))
    assert events == ['sync', 'call', 'sync'] * 2


@pytest.mark.parametrize('repeat, warmup', [(0, 1), (1, -1)])
def test_bad_counts_are_refused(repeat, warmup):
    with pytest.raises(ValueError, match='repeat must be >= 1 and warmup >= 0'):
        interleaved_medians({'a': lambda: None}, repeat=repeat, warmup=warmup)
