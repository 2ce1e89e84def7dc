"""Side-by-side timing for the benchmarks: alternatives take turns, so machine load hits them alike."""
import statistics
import time
from typing import Callable, Dict, List


def interleaved_medians(fns: Dict[str, Callable[[], object]], repeat: int, warmup: int = 1,
                        synchronize: Callable[[], None] = lambda: None) -> Dict[str, float]:
    """Median wall time, in milliseconds, of each of ``fns``.

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
    return {name: statistics.median(values) for name, values in times.items()}
