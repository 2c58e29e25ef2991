"""The health chart and the sparkline, pure: a known history in, the SVG parsed back (xml.etree) and measured.

Positions are checked against the chart's published geometry (PLOT_LEFT/RIGHT/TOP/BOTTOM), never
against a stored string, so a change of style does not break these tests and a wrong position does.
"""

from __future__ import annotations

import base64
import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from scan_bridge import health_chart as chart
from scan_bridge.health_history import HOUR, HealthHistory

NS = {"svg": chart.SVG_NS}
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # the window is 2026-03-09 12:00 .. 2026-03-10 12:00
WARN, STALE = 30.0, 60.0
PATH_PIECE = re.compile(r"M([-\d.]+) ([-\d.]+)h([-\d.]+)")


def x_at(at: datetime) -> float:
    return chart.PLOT_LEFT + (at - (NOW - timedelta(hours=24))).total_seconds() / 86400 * (chart.PLOT_RIGHT - chart.PLOT_LEFT)


def y_at(age: float) -> float:
    top = 2 * STALE
    return chart.PLOT_BOTTOM - min(age, top) / top * (chart.PLOT_BOTTOM - chart.PLOT_TOP)


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{{{chart.SVG_NS}}}svg"
    for element in root.iter():
        for name, value in element.attrib.items():
            assert not re.search(r"nan|inf", value, re.I) or name in ("id", "class"), (element.tag, name, value)
    return root


def group(root: ET.Element, name: str) -> ET.Element:
    found = root.find(f".//svg:g[@id='{name}']", NS)
    assert found is not None, f"no <g id={name!r}>"
    return found


def pieces(path: ET.Element) -> list[tuple[float, float, float]]:
    """(x, y, width) of each rectangle of a path written as M x y h w ... z."""
    return [(float(a), float(b), float(c)) for a, b, c in PATH_PIECE.findall(path.get("d", ""))]


def polylines(root: ET.Element) -> list[list[tuple[float, float]]]:
    return [[tuple(map(float, p.split(","))) for p in line.get("points", "").split()]  # type: ignore[misc]
            for line in group(root, "median").findall("svg:polyline", NS)]


def known_history() -> HealthHistory:
    """09:00 healthy (ages 2 and 4), 10:00 three healthy and one stale (70 s), a restart at 10:30, 11:00 nothing."""
    history = HealthHistory()
    history.record_check(NOW - timedelta(hours=3) + timedelta(minutes=10), "healthy", 2.0, 1)
    history.record_check(NOW - timedelta(hours=3) + timedelta(minutes=40), "healthy", 4.0, 2)
    for minute, status, age in ((5, "healthy", 1.0), (20, "healthy", 2.0), (29, "stale (bridge stuck)", 70.0), (35, "healthy", 3.0)):
        history.record_check(NOW - timedelta(hours=2) + timedelta(minutes=minute), status, age, 3 + minute)
    history.record_restart(NOW - timedelta(hours=1, minutes=30))
    history.record_change(NOW - timedelta(hours=1, minutes=30), "stale (bridge stuck)", "restart: bridge stuck", 70.0, 32)
    return history


def test_points_thresholds_colours_and_restarts_sit_where_the_history_says() -> None:
    root = parse(chart.render_svg(known_history(), NOW, WARN, STALE))

    # Thresholds: dashed lines at the data ages they stand for.
    warn_line, stale_line = group(root, "thresholds").findall("svg:line", NS)
    assert float(warn_line.get("y1")) == pytest.approx(y_at(WARN), abs=0.06)
    assert float(stale_line.get("y1")) == pytest.approx(y_at(STALE), abs=0.06)
    assert stale_line.get("stroke") == chart.STATUS_COLOURS["stale"]
    texts = {t.text for t in root.iter(f"{{{chart.SVG_NS}}}text")}
    assert {"warn 30 s", "stale 60 s", "2 min"} <= texts

    # The median line: one run over two consecutive hours, at their centres and medians (3 s, 2.5 s).
    [line] = polylines(root)
    assert [round(x, 1) for x, _ in line] == [round(x_at(NOW - timedelta(hours=2, minutes=30)), 1),
                                             round(x_at(NOW - timedelta(hours=1, minutes=30)), 1)]
    assert [y for _, y in line] == [pytest.approx(y_at(3.0), abs=0.06), pytest.approx(y_at(2.5), abs=0.06)]

    # Worst bars: 09:00 reached 4 s (healthy tint), 10:00 reached 70 s (stale tint), up to their ages.
    worst = {p.get("class"): pieces(p) for p in group(root, "worst").findall("svg:path", NS)}
    assert [round(y, 1) for _, y, _ in worst["healthy"]] == [round(y_at(4.0), 1)]
    assert [round(y, 1) for _, y, _ in worst["stale"]] == [round(y_at(70.0), 1)]
    assert worst["stale"][0][0] == pytest.approx(x_at(NOW - timedelta(hours=2)) + 1, abs=0.06)

    # The band: 09:00 all green, 10:00 three quarters green and its last quarter red; 11:00 grey.
    band = {p.get("class"): (p.get("fill"), pieces(p)) for p in group(root, "band").findall("svg:path", NS)}
    hour_w = x_at(NOW) - x_at(NOW - timedelta(hours=1))
    green, red = band["healthy"], band["stale"]
    assert green[0] == chart.STATUS_COLOURS["healthy"] and red[0] == chart.STATUS_COLOURS["stale"]
    assert [(round(x, 1), round(w, 1)) for x, _, w in green[1]] == [(round(x_at(NOW - timedelta(hours=3)), 1), round(1.75 * hour_w, 1))]
    assert [(round(x, 1), round(w, 1)) for x, _, w in red[1]] == [(round(x_at(NOW - timedelta(hours=1, minutes=15)), 1), round(0.25 * hour_w, 1))]
    grey = group(root, "band").find("svg:rect", NS)
    assert grey.get("fill") == chart.NO_CHECKS_COLOUR and float(grey.get("width")) == pytest.approx(chart.PLOT_RIGHT - chart.PLOT_LEFT)

    # The restart, where it happened.
    [restart] = group(root, "restart").findall("svg:line", NS)
    assert float(restart.get("x1")) == pytest.approx(x_at(NOW - timedelta(hours=1, minutes=30)), abs=0.06)
    assert restart.get("stroke-dasharray") is None
    assert root.find(".//svg:g[@id='takeover']", NS) is None


def test_a_gap_breaks_the_line_and_restarts_no_longer_listed_are_marked_at_their_hour() -> None:
    history = HealthHistory(max_changes=1)
    for hours_ago in (20, 19, 5):
        history.record_check(NOW - timedelta(hours=hours_ago), "healthy", 2.0, hours_ago)
    history.record_restart(NOW - timedelta(hours=19, minutes=-10))  # evicted from the change list below
    history.record_change(NOW - timedelta(hours=19, minutes=-10), "down", "restart: exited", None, None)
    history.record_change(NOW - timedelta(hours=4, minutes=50), "healthy", "takeover: from daemon b", 2.0, 30)
    root = parse(chart.render_svg(history, NOW, WARN, STALE))

    assert [len(run) for run in polylines(root)] == [2, 2]  # 20:00-19:00, then 07:00 alone (its dot drawn twice)
    [evicted] = group(root, "restart").findall("svg:line", NS)
    assert evicted.get("stroke-dasharray") == "3 2"
    assert float(evicted.get("x1")) == pytest.approx(x_at(NOW - timedelta(hours=19) + timedelta(minutes=30)), abs=0.06)
    [takeover] = group(root, "takeover").findall("svg:line", NS)
    assert float(takeover.get("x1")) == pytest.approx(x_at(NOW - timedelta(hours=4, minutes=50)), abs=0.06)


def test_a_single_bad_check_in_an_hour_stays_visible_in_the_band_and_pieces_fill_their_hour() -> None:
    history = HealthHistory()
    start = NOW - timedelta(hours=2)
    for i in range(120):  # 10:00: one stale check among 120; 11:00: one warning, one stale, the rest error
        history.record_check(start + timedelta(seconds=30 * i), "stale (bridge stuck)" if i == 60 else "healthy", 2.0, i)
        status = "warning" if i == 1 else "stale (scanner silent)" if i == 2 else "error"
        history.record_check(start + HOUR + timedelta(seconds=30 * i), status, None, None)
    root = parse(chart.render_svg(history, NOW, WARN, STALE))
    band = {p.get("class"): pieces(p) for p in group(root, "band").findall("svg:path", NS)}
    hour_w = x_at(NOW) - x_at(NOW - HOUR)
    assert band["stale"][0][2] >= chart.MIN_PIECE
    assert sum(w for _, _, w in band["healthy"]) + band["stale"][0][2] == pytest.approx(hour_w, abs=0.15)
    last_hour = [w for kind in ("warning", "stale", "error") for x, _, w in band[kind] if x >= x_at(NOW - HOUR) - 0.1]
    assert sum(last_hour) == pytest.approx(hour_w, abs=0.15) and min(last_hour) >= chart.MIN_PIECE


def test_the_time_no_daemon_ran_is_grey_even_inside_hours_that_had_checks() -> None:
    history = HealthHistory()
    stop, start = NOW - timedelta(hours=5, minutes=50), NOW - timedelta(hours=4, minutes=10)  # 06:10 to 07:50
    history.record_check(stop - timedelta(seconds=30), "healthy", 2.0, 1)
    history.record_change(stop, "healthy", "daemon stopped: SIGTERM", 2.0, 1)
    history.record_check(start, "healthy", 2.0, 9)
    history.record_change(start, "healthy", "state change", 2.0, 9)  # the next run's first check
    root = parse(chart.render_svg(history, NOW, WARN, STALE))

    [shade] = group(root, "gaps").findall("svg:rect", NS)
    assert float(shade.get("x")) == pytest.approx(x_at(stop), abs=0.06)
    assert float(shade.get("width")) == pytest.approx(x_at(start) - x_at(stop), abs=0.12)
    band_greys = [r for r in group(root, "band").findall("svg:rect", NS) if r.get("fill") == chart.NO_CHECKS_COLOUR]
    assert [round(float(r.get("x")), 1) for r in band_greys][1:] == [round(x_at(stop), 1)]  # [0] is the whole band's ground
    assert [len(run) for run in polylines(root)] == [2]  # 06:00 and 07:00 both had checks: the line goes on


@pytest.mark.parametrize("checks", [0, 1])
def test_an_empty_or_one_check_history_gives_a_whole_chart(checks: int) -> None:
    history = HealthHistory()
    if checks:
        history.record_check(NOW - timedelta(minutes=20), "warning", 42.0, 7)
    root = parse(chart.render_svg(history, NOW, WARN, STALE))

    assert len(group(root, "thresholds").findall("svg:line", NS)) == 2
    assert group(root, "band").find("svg:rect", NS) is not None
    empty = root.find(".//svg:text[@id='empty']", NS)
    if checks:
        assert empty is None
        [[first, second]] = polylines(root)  # one point, drawn as a zero-length line with its dot
        assert first == second == (pytest.approx(x_at(NOW - timedelta(minutes=30)), abs=0.06), pytest.approx(y_at(42.0), abs=0.06))
        assert [p.get("class") for p in group(root, "worst").findall("svg:path", NS)] == ["warning"]
    else:
        assert empty is not None and "no health checks" in empty.text
        assert polylines(root) == [] and group(root, "worst").findall("svg:path", NS) == []


def test_off_scale_ages_are_clipped_and_labelled_and_bad_thresholds_do_not_break_the_chart() -> None:
    history = HealthHistory()
    history.record_check(NOW - timedelta(minutes=30), "stale (scanner silent)", 4 * 3600.0, 1)
    history.record_check(NOW - timedelta(minutes=20), "healthy", -3.0, 2)  # a scan from the future: age below 0
    svg = chart.render_svg(history, NOW, math.nan, -5.0)  # thresholds unusable: the defaults are drawn
    root = parse(svg)
    [bar] = pieces(group(root, "worst").find("svg:path", NS))
    assert bar[1] == pytest.approx(chart.PLOT_TOP)
    assert any(t.text == "4h" for t in root.iter(f"{{{chart.SVG_NS}}}text"))
    [[point, _]] = polylines(root)
    assert chart.PLOT_TOP <= point[1] <= chart.PLOT_BOTTOM


def test_the_markdown_image_carries_the_svg_as_a_base64_data_uri() -> None:
    history = known_history()
    image = chart.markdown_image(history, NOW, WARN, STALE)
    match = re.fullmatch(r"!\[[^\]]+\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", image)
    assert match is not None
    assert base64.b64decode(match.group(1)).decode() == chart.render_svg(history, NOW, WARN, STALE)


# -- the sparkline ----------------------------------------------------------------------------------


def test_the_sparkline_is_one_character_per_hour_by_worst_data_age() -> None:
    history = HealthHistory()
    history.record_check(NOW - timedelta(hours=22, minutes=30), "healthy", 1.0, 1)  # 13:30 yesterday: the oldest hour shown
    history.record_check(NOW - timedelta(hours=3, minutes=30), "warning", 45.0, 2)
    history.record_check(NOW - timedelta(hours=2, minutes=30), "stale (bridge stuck)", 75.0, 3)
    history.record_check(NOW - timedelta(hours=1, minutes=30), "stale (scanner silent)", 900.0, 3)
    history.record_check(NOW - timedelta(minutes=30), "error", None, None)
    history.record_check(NOW + timedelta(minutes=5), "healthy", 2.0, 4)  # the hour in progress, 12:00
    line = chart.sparkline(history, NOW + timedelta(minutes=5), WARN, STALE)

    assert len(line) == 24
    assert line[0] == "▁"  # 1 s, below warning
    assert line[1:19] == "·" * 18  # no checks
    assert line[19] in "▄▅" and line[20] in "▆▇" and line[21] == "█"  # 45 s, 75 s, 900 s
    assert line[22] == "?"  # checked, but Hazelcast gave no data age
    assert line[23] == "▁"
    assert chart.sparkline(history, NOW + timedelta(minutes=5), WARN, STALE, hours=3) == line[-3:]


def test_the_sparkline_levels_follow_the_thresholds_and_colour_is_optional() -> None:
    levels = [chart._level(age, WARN, STALE) for age in (0, 9.9, 10, 29.9, 30, 45, 59.9, 60, 90, 119.9, 120, 1e9)]
    assert levels == [0, 0, 1, 2, 3, 4, 4, 5, 6, 6, 7, 7]
    history = HealthHistory()
    history.record_check(NOW, "stale (scanner silent)", 70.0, 1)
    coloured = chart.sparkline(history, NOW, WARN, STALE, hours=1, colour=True)
    assert coloured == "\x1b[31m▆\x1b[0m"
    assert chart.sparkline(HealthHistory(), NOW, WARN, STALE, hours=4) == "····"


def test_deploy_py_status_line_reads_the_history_from_the_artifact_markdown() -> None:
    from scan_bridge.control import freshness_line
    from scan_bridge.daemon_artifact import render_markdown
    from scan_bridge.daemon_status import DaemonStatus

    history = known_history()
    line = freshness_line(render_markdown(DaemonStatus(), history), NOW)
    assert line is not None
    blocks, legend = line.split("  ", 1)
    assert blocks == chart.sparkline(history, NOW, WARN, STALE) and len(blocks) == 24
    assert blocks[-4:] == "▁▆··"  # 09:00 healthy, 10:00 reached 70 s (stale), 11:00 and the 12:00 just begun unchecked
    assert legend.startswith("worst data age per hour") and legend.endswith("; 1 restart")
    assert freshness_line(None, NOW) is None and freshness_line("## Scan bridge: HEALTHY", NOW) is None
