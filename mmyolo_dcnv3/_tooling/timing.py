"""Side-by-side timing for the benchmarks: alternatives take turns, so machine load hits them alike."""
import statistics
import time
from typing import Callable, Dict, List


def interleaved_times(fns: Dict[str, Callable[[], object]], repeat: int, warmup: int = 1,
                      synchronize: Callable[[], None] = lambda: None) -> Dict[str, List[float]]:
    """Wall time, in milliseconds, of each call of each of ``fns``: ``{name: [ms of round 0, ...]}``.

    Each of the ``repeat`` rounds calls every fn once, in order, so a burst of
    load on a shared machine slows all of them rather than one; ``warmup``
    untimed rounds come first. ``synchronize`` runs before and after each
    timed call (``torch.cuda.synchronize`` for GPU work).
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f'repeat must be >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}')
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            synchronize()
            start = time.perf_counter()
            fn()
            synchronize()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def interleaved_medians(fns: Dict[str, Callable[[], object]], repeat: int, warmup: int = 1,
                        synchronize: Callable[[], None] = lambda: None) -> Dict[str, float]:
    """Median of :func:`interleaved_times` for each of ``fns``, in milliseconds."""
    return medians(interleaved_times(fns, repeat, warmup, synchronize))


def medians(times: Dict[str, List[float]]) -> Dict[str, float]:
    """``{name: median of its times}`` for times as :func:`interleaved_times` returns them."""
    return {name: statistics.median(values) for name, values in times.items()}


def paired_ratio(times: Dict[str, List[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of ``times[numerator][i] / times[denominator][i]``.

    Both were timed in the same round, moments apart, so load that changes from
    round to round cancels out of each ratio; the median drops rounds where a
    burst hit only one of them. Steadier than the ratio of the two medians.
    """
    return statistics.median(a / b for a, b in zip(times[numerator], times[denominator], strict=True))
