"""mmyolo_dcnv3._tooling.timing: alternatives take turns and each gets a median."""
import pytest

from mmyolo_dcnv3._tooling.timing import interleaved_medians, interleaved_times, medians, paired_ratio


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


def test_interleaved_times_keeps_every_round_in_order(monkeypatch):
    """On a scripted clock each call takes a known time: round k of 'a' k + 1 ms, of 'b' 10 (k + 1) ms."""
    from mmyolo_dcnv3._tooling import timing
    clock, calls = [0.0], {'a': 0, 'b': 0}
    monkeypatch.setattr(timing.time, 'perf_counter', lambda: clock[0])

    def call(name, unit):
        def run():
            calls[name] += 1
            clock[0] += unit * calls[name] / 1e3
        return run

    times = interleaved_times({'a': call('a', 1), 'b': call('b', 10)}, repeat=4, warmup=1)
    # The warm-up round ran first (1 ms and 10 ms) and is not among the times.
    assert times == {'a': pytest.approx([2.0, 3.0, 4.0, 5.0]), 'b': pytest.approx([20.0, 30.0, 40.0, 50.0])}


def test_paired_ratio_is_the_median_of_per_round_ratios():
    # Load doubles both in round 1 and hits only 'a' in round 2: the ratio of the
    # medians says 4 / 1 = 4, the per-round ratios 2, 2, 6 give 2.
    times = {'a': [2.0, 4.0, 6.0], 'b': [1.0, 2.0, 1.0]}
    assert paired_ratio(times, 'a', 'b') == 2.0
    assert paired_ratio(times, 'b', 'a') == 0.5


def test_paired_ratio_refuses_unequal_rounds():
    with pytest.raises(ValueError):
        paired_ratio({'a': [1.0, 2.0], 'b': [1.0]}, 'a', 'b')


def test_medians_of_each_name():
    assert medians({'a': [3.0, 1.0, 2.0], 'b': [5.0]}) == {'a': 2.0, 'b': 5.0}
