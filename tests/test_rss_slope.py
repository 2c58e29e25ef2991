"""The RSS slope (issue 17): one computation, shared by bench/bench_memory.py and the chaos harness's report."""

from __future__ import annotations

import pytest

from scan_bridge.chaos.harness import Sample
from scan_bridge.chaos.report import _process_figures
from scan_bridge.rss_slope import MB, SKIP_S, rss_slope_mb_per_h, slope_per_hour

pytestmark = pytest.mark.unit


def test_the_slope_of_a_line_is_its_rise_per_hour() -> None:
    assert slope_per_hour([(0.0, 100.0), (1800.0, 101.0), (3600.0, 102.0)]) == pytest.approx(2.0)
    assert slope_per_hour([(0.0, 5.0), (60.0, 5.0)]) == 0.0
    assert slope_per_hour([(0.0, 5.0)]) is None
    assert slope_per_hour([(7.0, 5.0), (7.0, 6.0)]) is None


def rss_run(minutes: int, rise_mb_per_h: float, *, young_growth_mb: float = 0.0, every_s: float = 10.0,
            t0: float = 1_000.0) -> list[tuple[float, int]]:
    """(s, RSS bytes) every ``every_s``: ``young_growth_mb`` in the first 10 minutes, then a steady rise."""
    out = []
    for i in range(int(minutes * 60 / every_s) + 1):
        t = i * every_s
        young = young_growth_mb * min(t, SKIP_S) / SKIP_S
        out.append((t0 + t, int((100.0 + young + rise_mb_per_h * t / 3600.0) * MB)))
    return out


def test_the_first_ten_minutes_are_left_out_and_mb_are_2_to_the_20() -> None:
    flat = rss_run(60, 0.0, young_growth_mb=30.0)  # a young process grows, then stays flat
    assert rss_slope_mb_per_h(flat) == pytest.approx(0.0, abs=0.01)
    assert rss_slope_mb_per_h(rss_run(60, 0.5, young_growth_mb=30.0)) == pytest.approx(0.5, abs=0.01)
    assert rss_slope_mb_per_h(flat, skip_s=0.0) > 10  # the young growth, if it were counted


def test_no_slope_without_ten_minutes_after_the_first_ten() -> None:
    assert rss_slope_mb_per_h(rss_run(19, 5.0)) is None
    assert rss_slope_mb_per_h(rss_run(21, 5.0)) == pytest.approx(5.0, abs=0.01)
    assert rss_slope_mb_per_h([]) is None


def test_the_chaos_report_gives_the_benchmarks_slope_for_daemon_and_bridge() -> None:
    run = rss_run(45, 0.8, young_growth_mb=20.0)
    figures = _process_figures([Sample(t, 4242, rss, 0.0) for t, rss in run])
    assert figures["rss_slope_mb_per_h"] == round(rss_slope_mb_per_h(run), 2) == pytest.approx(0.8, abs=0.01)
    assert figures["rss_last_mb"] == round(run[-1][1] / MB, 1)
    short = _process_figures([Sample(t, 4242, rss, 0.0) for t, rss in rss_run(12, 50.0)])
    assert short["rss_slope_mb_per_h"] is None, "a life too short for a slope (the old report called a warm-up 16 MB/h)"
