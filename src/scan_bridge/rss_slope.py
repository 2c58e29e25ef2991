"""The RSS slope of a long-running process, in MB an hour: one computation for every report of it.

Issue 17 asks for the same figure from the memory benchmark (``bench/bench_memory.py``) and from
the chaos harness's report (:mod:`scan_bridge.chaos.report`): the least-squares line through the
RSS samples after the first :data:`SKIP_S` (start-up: imports, caches filling, the first artifact),
in MB (2**20 bytes) per hour. Target: under :data:`TARGET_MB_PER_H` for the daemon and the bridge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

MB = 2**20
"""A megabyte as docs/performance.md counts RSS (2**20 bytes)."""

SKIP_S = 600.0
"""The first ten minutes of a process's life are left out of its slope: a young process grows (Prefect's
client, caches, the first artifact) without that being growth by the hour (docs/reliability.md)."""

MIN_SPAN_S = 600.0
"""A slope needs samples spanning this long after :data:`SKIP_S`, or there is none: a few minutes of
noise extrapolated to an hour say nothing."""

TARGET_MB_PER_H = 1.0
"""Issue 17's target: no growth beyond noise, under 1 MB an hour after the first ten minutes."""


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of ``(seconds, value)`` points, in value per hour; None for fewer than two distinct times."""
    n = len(points)
    if n < 2:
        return None
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600.0


def rss_slope_mb_per_h(
    samples: Iterable[tuple[float, int]],
    *,
    start: float | None = None,
    skip_s: float = SKIP_S,
    min_span_s: float = MIN_SPAN_S,
) -> float | None:
    """The slope of ``(seconds, rss bytes)`` samples of one process, in MB (2**20) per hour, after ``skip_s``.

    ``start`` is when the process (or the measurement) started; by default the first sample's time.
    None when the samples after ``skip_s`` span less than ``min_span_s``.
    """
    samples = list(samples)
    if not samples:
        return None
    origin = samples[0][0] if start is None else start
    points = [(t, rss / MB) for t, rss in samples if t >= origin + skip_s]
    if len(points) < 2 or points[-1][0] - points[0][0] < min_span_s:
        return None
    return slope_per_hour(points)
