"""The health history as pictures: an SVG chart for the artifact, one line of blocks for a terminal.

An operator glancing at the Prefect UI at 3 a.m. reads a line faster than a table, so the
``scan-bridge-health`` artifact starts with a chart of the last 24 hours: the data age per hour
(median as a line, worst as a bar) against the warning and stale thresholds, the share of each
status per hour as a coloured band, and restarts marked where they happened. ``deploy.py status``
shows the same hours as one line of Unicode blocks, the way ``htop`` or a CI status line does.

Both are drawn from :class:`~scan_bridge.health_history.HealthHistory`, which the daemon already
keeps (hourly summaries plus the newest state changes), so the pictures add no state and no I/O.
Everything here is pure: the time is passed in, nothing is read or written.

Why SVG written by hand (with ``xml.etree``, which escapes every text and attribute): the chart is
a few dozen rectangles, lines and labels. pygal would add a dependency and ~20 KB of CSS and
script per chart (stripped anyway when the SVG is shown as an image), and matplotlib costs tens of
MB and a second of import in a daemon that runs for months. A hand-written chart is ~5 KB, renders
in about a millisecond and needs nothing but the standard library (docs/daemon.md).

Prefect's UI strips an inline ``<svg>`` from markdown but shows a markdown image, so the chart
travels as ``![…](data:image/svg+xml;base64,…)``.
"""

from __future__ import annotations

import base64
import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import names
from .health_history import HOUR, SEVERITY, HealthHistory, HourSummary, _hour_of, _utc, severity
from .settings import DaemonSettings

__all__ = [
    "DEFAULT_THRESHOLDS",
    "MARKERS",
    "STATUS_COLOURS",
    "markdown_image",
    "render_svg",
    "restarts_in",
    "sparkline",
    "sparkline_legend",
]

SVG_NS = "http://www.w3.org/2000/svg"

#: (warn_after_s, stale_after_s) at their defaults, for callers that do not know the daemon's settings.
DEFAULT_THRESHOLDS: tuple[float, float] = (
    float(DaemonSettings.model_fields["warn_after_s"].default),
    float(DaemonSettings.model_fields["stale_after_s"].default),
)

#: Fill of each status in the band (and the sparkline's terminal colour, below). Unknown: "other".
STATUS_COLOURS: dict[str, str] = {
    "healthy": "#2f9e44",
    "warning": "#f59f00",
    "missing": "#e8590c",
    "stale": "#e03131",
    "down": "#a61e4d",
    "error": "#7048e8",
    "other": "#495057",
}
NO_CHECKS_COLOUR = "#dee2e6"
MEDIAN_COLOUR = "#1c4e80"
WORST_COLOUR = "#a5c3e6"
#: The worst bars' tint by the threshold reached: pale blue below warning, pale amber, pale red.
WORST_COLOURS: dict[str, str] = {"healthy": WORST_COLOUR, "warning": "#ffd8a8", "stale": "#ffa8a8"}

#: Events marked on the chart: a history change whose note starts with the prefix (``restart: …``).
#: Takeovers (failover between daemons) have their place here once they exist.
MARKERS: tuple[tuple[str, str, str], ...] = (
    (names.RESTART_NOTE, "restart", "#5f3dc4"),
    (names.TAKEOVER_NOTE, "takeover", "#0b7285"),
)

#: The note the daemon writes when it stops on purpose (``daemon stopped: SIGTERM``); until the
#: next change (the next run's first check) no daemon ran, drawn grey like an hour without checks.
STOPPED_NOTE = names.STOPPED_NOTE

# Geometry, in SVG user units (pixels at 100 %). The plot's y axis is linear from 0 to twice the
# stale threshold, so the two threshold lines sit at the same height in every chart; ages above the
# top are drawn at the top with their value written beside.
WIDTH = 720
PLOT_LEFT, PLOT_RIGHT = 44.0, 654.0
PLOT_TOP, PLOT_BOTTOM = 28.0, 150.0
BAND_TOP, BAND_BOTTOM = 156.0, 170.0
AXIS_LABEL_Y = 184.0
LEGEND_Y = 204.0
HEIGHT = 214
MIN_PIECE = 2.0  # the narrowest piece of the status band for a status other than healthy
FONT = "font-family:DejaVu Sans,Helvetica,Arial,sans-serif"

# The sparkline's eight heights; "·" is an hour without checks, "?" one whose checks saw no data age.
BLOCKS = "▁▂▃▄▅▆▇█"
NO_CHECKS_CHAR = "·"
NO_AGE_CHAR = "?"
_ANSI = {"healthy": "32", "warning": "33", "missing": "33", "stale": "31", "down": "31", "error": "35", "other": "35"}


def _num(value: float) -> str:
    """A coordinate as short text; never "nan"/"inf" (a guard: every input is finite already)."""
    if not math.isfinite(value):
        value = 0.0
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def _seconds(value: float, compact: bool = False) -> str:
    """An age for a label: "45 s", "12 min", "3.2 h", "4 d" (compact: "45s", "12m", "3.2h", "4d")."""
    if value < 120:
        number, unit = f"{value:.0f}", "s"
    elif value < 7200:
        number, unit = f"{value / 60:.0f}", "m" if compact else "min"
    elif value < 172800:
        number, unit = f"{value / 3600:.1f}".removesuffix(".0"), "h"
    else:
        number, unit = f"{value / 86400:.0f}", "d"
    return f"{number}{'' if compact else ' '}{unit}"


def _thresholds(warn_after_s: float, stale_after_s: float) -> tuple[float, float]:
    """Sane thresholds whatever is passed: positive, finite, warning not above stale."""
    stale = stale_after_s if math.isfinite(stale_after_s) and stale_after_s > 0 else DEFAULT_THRESHOLDS[1]
    warn = warn_after_s if math.isfinite(warn_after_s) and 0 < warn_after_s <= stale else min(DEFAULT_THRESHOLDS[0], stale)
    return warn, stale


@dataclass(frozen=True)
class _Window:
    """The time span shown and its mapping to x."""

    start: datetime
    end: datetime

    def x(self, at: datetime) -> float:
        span = (self.end - self.start).total_seconds()
        fraction = (at - self.start).total_seconds() / span if span > 0 else 1.0
        return PLOT_LEFT + min(1.0, max(0.0, fraction)) * (PLOT_RIGHT - PLOT_LEFT)

    def clip(self, start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
        lo, hi = max(start, self.start), min(end, self.end)
        return (lo, hi) if hi > lo else None


def _window(history: HealthHistory, now: datetime) -> _Window:
    end = _utc(now)
    if history.newest is not None and history.newest > end:
        end = history.newest
    return _Window(end - history.keep, end)


def _hours_in(history: HealthHistory, window: _Window) -> list[tuple[HourSummary, datetime, datetime]]:
    """The hours with checks, oldest first, each with its span clipped to the window."""
    shown = []
    for start in sorted(history.hours):
        hour = history.hours[start]
        span = window.clip(start, start + HOUR)
        if hour.checks > 0 and span is not None:
            shown.append((hour, *span))
    return shown


def _daemon_gaps(history: HealthHistory, window: _Window) -> list[tuple[float, float]]:
    """x spans with no daemon running: from a "daemon stopped" change to the next change (the next run's first check).

    Exact where the hour summaries are not: an upgrade from 07:01 to 08:51 leaves both hours with
    checks, yet nothing was checked in between. A daemon that was killed leaves no such note; its
    gap shows only as hours without checks.
    """
    spans = []
    changes = history.changes
    for index, change in enumerate(changes):
        if change.note.startswith(STOPPED_NOTE) and index + 1 < len(changes):
            span = window.clip(change.at, changes[index + 1].at)
            if span is not None:
                spans.append((window.x(span[0]), window.x(span[1])))
    return spans


def _shade(group: ET.Element, spans: list[tuple[float, float]], top: float, bottom: float, fill: str | None = None) -> None:
    for x1, x2 in spans:
        _rect(group, x1, top, x2 - x1, bottom - top, fill)


def _group(svg: ET.Element, name: str) -> ET.Element:
    found = svg.find(f"g[@id='{name}']")
    if found is None:
        raise ValueError(f"no group {name!r} in the chart")
    return found


def _marker_kind(note: str) -> tuple[str, str, str] | None:
    for marker in MARKERS:
        if note.startswith(marker[0]):
            return marker
    return None


# -- the SVG ----------------------------------------------------------------------------------------


def render_svg(history: HealthHistory, now: datetime, warn_after_s: float, stale_after_s: float) -> str:
    """The last ``history.keep`` as an SVG document (a string), ready for a data URI.

    Empty or one-hour histories give a complete chart too (axes, thresholds, a grey "no checks"
    band and a note), never an empty or broken image.
    """
    warn, stale = _thresholds(warn_after_s, stale_after_s)
    top = 2 * stale
    window = _window(history, now)
    hours = _hours_in(history, window)

    def y(age: float) -> float:
        return PLOT_BOTTOM - min(max(age, 0.0), top) / top * (PLOT_BOTTOM - PLOT_TOP)

    svg = ET.Element("svg", {
        "xmlns": SVG_NS, "width": str(WIDTH), "height": str(HEIGHT), "viewBox": f"0 0 {WIDTH} {HEIGHT}",
        "style": f"{FONT};font-size:11px",
    })
    hours_label = f"{history.keep.total_seconds() / 3600:g}"
    ET.SubElement(svg, "title").text = f"Data age and health, last {hours_label} hours (UTC)"
    ET.SubElement(svg, "rect", {"width": str(WIDTH), "height": str(HEIGHT), "fill": "#ffffff"})
    _text(svg, 8, 16, f"Data age, last {hours_label} h (UTC): median per hour (line), worst per hour (bars)",
          {"font-weight": "bold", "font-size": "12px", "fill": "#212529"})
    _axes(svg, window, y, warn, stale, top)
    gaps = _daemon_gaps(history, window)
    _shade(ET.SubElement(svg, "g", {"id": "gaps", "fill": NO_CHECKS_COLOUR, "opacity": "0.6"}),
           gaps, PLOT_TOP, PLOT_BOTTOM)
    _worst_bars(svg, window, hours, y, warn, stale)
    _median_line(svg, window, hours, y)
    _band(svg, window, hours)
    _shade(_group(svg, "band"), gaps, BAND_TOP, BAND_BOTTOM, NO_CHECKS_COLOUR)
    markers = _markers(svg, history, window)
    if not hours:
        _text(svg, (PLOT_LEFT + PLOT_RIGHT) / 2, (PLOT_TOP + PLOT_BOTTOM) / 2,
              f"no health checks in the last {hours_label} hours", {"id": "empty", "text-anchor": "middle", "fill": "#868e96"})
    _legend(svg, hours, markers)
    return ET.tostring(svg, encoding="unicode")


def markdown_image(history: HealthHistory, now: datetime, warn_after_s: float, stale_after_s: float) -> str:
    """The chart as a markdown image with a base64 data URI (Prefect's UI strips inline ``<svg>``)."""
    svg = render_svg(history, now, warn_after_s, stale_after_s)
    data = base64.b64encode(svg.encode()).decode("ascii")
    hours = f"{history.keep.total_seconds() / 3600:g}"
    return f"![Data age and health, last {hours} hours](data:image/svg+xml;base64,{data})"


def _text(parent: ET.Element, x: float, y: float, text: str, attrs: dict[str, str] | None = None) -> ET.Element:
    element = ET.SubElement(parent, "text", {"x": _num(x), "y": _num(y), **(attrs or {})})
    element.text = text
    return element


def _line(parent: ET.Element, x1: float, y1: float, x2: float, y2: float, stroke: str | None = None, **attrs: str) -> ET.Element:
    coords = {"x1": _num(x1), "y1": _num(y1), "x2": _num(x2), "y2": _num(y2)}
    if stroke is not None:
        coords["stroke"] = stroke
    return ET.SubElement(parent, "line", {**coords, **{k.replace("_", "-"): v for k, v in attrs.items()}})


def _rect(parent: ET.Element, x: float, y: float, w: float, h: float, fill: str | None = None) -> ET.Element:
    attrs = {"x": _num(x), "y": _num(y), "width": _num(max(w, 0.0)), "height": _num(max(h, 0.0))}
    if fill is not None:
        attrs["fill"] = fill
    return ET.SubElement(parent, "rect", attrs)


def _axes(svg: ET.Element, window: _Window, y: Callable[[float], float], warn: float, stale: float, top: float) -> None:
    group = ET.SubElement(svg, "g", {"id": "axes", "fill": "#495057"})
    _rect(group, PLOT_LEFT, PLOT_TOP, PLOT_RIGHT - PLOT_LEFT, PLOT_BOTTOM - PLOT_TOP, "#f8f9fa")
    for value in (0.0, warn, stale, top):
        _text(group, PLOT_LEFT - 4, y(value) + 4, _seconds(value), {"text-anchor": "end"})
    # Hour ticks every 3 hours (UTC), with the date at midnight.
    tick, last_label = _hour_of(window.start) + HOUR, window.start
    while tick <= window.end:
        if tick.hour % 3 == 0:
            x = window.x(tick)
            _line(group, x, PLOT_TOP, x, PLOT_BOTTOM, "#e9ecef")
            label = f"{tick:%m-%d}" if tick.hour == 0 else f"{tick:%H:%M}"
            _text(group, x, AXIS_LABEL_Y, label, {"text-anchor": "middle"})
            last_label = tick
        tick += HOUR
    if window.end - last_label > timedelta(minutes=90):  # no room beside a tick label closer than that
        _text(group, PLOT_RIGHT, AXIS_LABEL_Y, "now", {"text-anchor": "end"})
    _line(group, PLOT_LEFT, PLOT_BOTTOM, PLOT_RIGHT, PLOT_BOTTOM, "#868e96")
    _text(group, 8, BAND_BOTTOM - 3, "status")
    # The thresholds: what "warning" and "stale" mean, at the same height in every chart.
    thresholds = ET.SubElement(svg, "g", {"id": "thresholds", "stroke-width": "1.5", "stroke-dasharray": "6 4"})
    for name, value in (("warn", warn), ("stale", stale)):
        colour = STATUS_COLOURS["warning" if name == "warn" else "stale"]
        _line(thresholds, PLOT_LEFT, y(value), PLOT_RIGHT, y(value), colour)
        _text(svg, PLOT_RIGHT + 4, y(value) + 4, f"{name} {_seconds(value)}", {"fill": colour})


def _tier(age: float, warn: float, stale: float) -> str:
    """Which threshold an age reached: the worst bars are tinted by it."""
    return "stale" if age > stale else "warning" if age > warn else "healthy"


def _worst_bars(svg: ET.Element, window: _Window, hours: list[tuple[HourSummary, datetime, datetime]],
                y: Callable[[float], float], warn: float, stale: float) -> None:
    """One bar per hour up to its worst data age, tinted by the threshold it reached; one path per tint.

    Ages off the scale (above twice the stale threshold) are written above their bar.
    """
    group = ET.SubElement(svg, "g", {"id": "worst"})
    labels = ET.SubElement(svg, "g", {"fill": STATUS_COLOURS["stale"], "text-anchor": "middle", "font-size": "9px"})
    paths: dict[str, list[str]] = {}
    last_label_x = -1e9
    for hour, start, end in hours:
        if hour.worst_age_s is None:
            continue
        x1, x2 = window.x(start) + 1, window.x(end) - 1
        level = y(hour.worst_age_s)
        paths.setdefault(_tier(hour.worst_age_s, warn, stale), []).append(
            f"M{_num(x1)} {_num(level)}h{_num(max(x2 - x1, 0.5))}V{_num(PLOT_BOTTOM)}H{_num(x1)}z")
        centre = (x1 + x2) / 2
        if hour.worst_age_s > 2 * stale and centre - last_label_x >= 22:  # off the scale: say how far (if there is room)
            _text(labels, centre, PLOT_TOP + 10, _seconds(hour.worst_age_s, compact=True))
            last_label_x = centre
    for tier, parts in paths.items():
        ET.SubElement(group, "path", {"class": tier, "fill": WORST_COLOURS[tier], "d": "".join(parts)})


def _median_line(svg: ET.Element, window: _Window, hours: list[tuple[HourSummary, datetime, datetime]], y: Callable[[float], float]) -> None:
    """A polyline per run of consecutive hours (a gap without checks breaks it), a dot on every point.

    The dots are the polyline's own markers; a run of one hour repeats its point so it gets its dot.
    """
    group = ET.SubElement(svg, "g", {"id": "median", "fill": "none", "stroke": MEDIAN_COLOUR, "stroke-width": "2"})
    marker = ET.SubElement(ET.SubElement(group, "defs"), "marker", {
        "id": "dot", "viewBox": "0 0 6 6", "refX": "3", "refY": "3", "markerWidth": "3", "markerHeight": "3"})
    ET.SubElement(marker, "circle", {"cx": "3", "cy": "3", "r": "3", "fill": MEDIAN_COLOUR, "stroke": "none"})
    runs: list[list[tuple[float, float]]] = []
    previous: datetime | None = None
    for hour, start, end in hours:
        median = hour.median
        if median is None:
            previous = None
            continue
        point = ((window.x(start) + window.x(end)) / 2, y(median))
        if previous is None or hour.start - previous != HOUR:
            runs.append([])
        runs[-1].append(point)
        previous = hour.start
    for run in runs:
        points = run if len(run) > 1 else run * 2
        ET.SubElement(group, "polyline", {
            "points": " ".join(f"{_num(px)},{_num(py)}" for px, py in points),
            "marker-start": "url(#dot)", "marker-mid": "url(#dot)", "marker-end": "url(#dot)",
        })


def _shares(hour: HourSummary) -> list[tuple[str, int]]:
    """The hour's statuses, healthy first and worst last (the order the band shows them in)."""
    named = [(name if name in SEVERITY else "other", count) for name, count in hour.statuses.items()]
    merged: dict[str, int] = {}
    for name, count in sorted(named, key=lambda item: severity(item[0])):
        merged[name] = merged.get(name, 0) + count
    return list(merged.items())


def _band(svg: ET.Element, window: _Window, hours: list[tuple[HourSummary, datetime, datetime]]) -> None:
    """The status band: grey where nothing was checked, else each hour split by its share of each status.

    Touching pieces of one colour are drawn as one rectangle (a calm day is one green bar), and
    each colour is one path, which keeps the chart small in every artifact version.
    """
    group = ET.SubElement(svg, "g", {"id": "band"})
    pieces: list[list[float | str]] = []  # [x1, x2, colour]
    for hour, start, end in hours:
        x1, x2 = window.x(start), window.x(end)
        shares = _shares(hour)
        total = sum(count for _, count in shares) or 1
        # A minute of "stale" is 1/60 of an hour's width: at least MIN_PIECE wide, or nobody sees it.
        widths = [max((x2 - x1) * count / total, MIN_PIECE) if name != "healthy" else 0.0 for name, count in shares]
        if shares[0][0] == "healthy":
            widths[0] = max(0.0, (x2 - x1) - sum(widths))
        excess = sum(widths) - (x2 - x1)
        if excess > 0:  # rare statuses beside a common one: the common one gives up the room, else all shrink
            biggest = widths.index(max(widths))
            if widths[biggest] - excess >= MIN_PIECE:
                widths[biggest] -= excess
            else:
                widths = [w * (x2 - x1) / sum(widths) for w in widths]
        x = x1
        for (name, _count), w in zip(shares, widths, strict=True):
            colour = STATUS_COLOURS[name]
            if pieces and pieces[-1][2] == colour and abs(float(pieces[-1][1]) - x) < 0.01:
                pieces[-1][1] = x + w
            else:
                pieces.append([x, x + w, colour])
            x += w
    _rect(group, PLOT_LEFT, BAND_TOP, PLOT_RIGHT - PLOT_LEFT, BAND_BOTTOM - BAND_TOP, NO_CHECKS_COLOUR)
    paths: dict[str, list[str]] = {}  # one path per status: a flapping day has 48 pieces
    for x1, x2, colour in pieces:
        paths.setdefault(str(colour), []).append(
            f"M{_num(float(x1))} {_num(BAND_TOP)}h{_num(float(x2) - float(x1))}v{_num(BAND_BOTTOM - BAND_TOP)}H{_num(float(x1))}z")
    names = {colour: name for name, colour in STATUS_COLOURS.items()}
    for colour, parts in paths.items():
        ET.SubElement(group, "path", {"class": names[colour], "fill": colour, "d": "".join(parts)})


def _markers(svg: ET.Element, history: HealthHistory, window: _Window) -> list[tuple[str, str, str]]:
    """Restarts (and takeovers) where they happened; restarts counted but no longer listed, at their hour.

    Each kind is a group ``<g id="restart">`` of vertical lines across the plot and the band, with
    a small triangle on top; a dashed line is a restart whose exact time the history no longer has.
    """
    groups: dict[str, ET.Element] = {}
    listed: dict[datetime, int] = {}

    def mark(x: float, marker: tuple[str, str, str], exact: bool) -> None:
        _prefix, label, colour = marker
        if label not in groups:
            groups[label] = ET.SubElement(svg, "g", {"id": label, "stroke": colour, "fill": colour, "stroke-width": "1.5"})
        line = _line(groups[label], x, PLOT_TOP, x, BAND_BOTTOM)
        if not exact:
            line.set("stroke-dasharray", "3 2")
        ET.SubElement(groups[label], "path", {"d": f"M{_num(x - 4)} {_num(PLOT_TOP - 7)}h8l-4 6z", "stroke": "none"})

    for change in history.changes:
        marker = _marker_kind(change.note)
        if marker is None or not window.start < change.at <= window.end:
            continue
        mark(window.x(change.at), marker, exact=True)
        if marker[0] == names.RESTART_NOTE:
            listed[_hour_of(change.at)] = listed.get(_hour_of(change.at), 0) + 1
    # Restarts whose change was evicted by the history's cap: one dashed mark at the middle of their hour.
    for start in sorted(history.hours):
        span = window.clip(start, start + HOUR)
        if history.hours[start].restarts > listed.get(start, 0) and span is not None:
            mark((window.x(span[0]) + window.x(span[1])) / 2, MARKERS[0], exact=False)
    return [marker for marker in MARKERS if marker[1] in groups]


def _legend(svg: ET.Element, hours: list[tuple[HourSummary, datetime, datetime]], markers: list[tuple[str, str, str]]) -> None:
    group = ET.SubElement(svg, "g", {"id": "legend", "fill": "#343a40"})
    present = sorted({name for hour, _, _ in hours for name, _ in _shares(hour)}, key=severity)
    entries: list[tuple[str, str, str]] = [("line", MEDIAN_COLOUR, "median"), ("box", WORST_COLOUR, "worst")]
    entries += [("box", STATUS_COLOURS[name], name) for name in present]
    entries.append(("box", NO_CHECKS_COLOUR, "no checks"))
    entries += [("mark", colour, label) for _prefix, label, colour in markers]
    x = 8.0
    for kind, colour, label in entries:
        if kind == "line":
            _line(group, x, LEGEND_Y - 4, x + 14, LEGEND_Y - 4, colour, stroke_width="2")
        elif kind == "mark":
            _line(group, x + 7, LEGEND_Y - 10, x + 7, LEGEND_Y + 1, colour, stroke_width="1.5")
        else:
            _rect(group, x + 2, LEGEND_Y - 9, 10, 10, colour)
        _text(group, x + 18, LEGEND_Y, label)
        x += 26 + 6.5 * len(label)


# -- the sparkline ----------------------------------------------------------------------------------


def _level(age: float, warn: float, stale: float) -> int:
    """Block index 0-7 for an age: 0-2 below warning, 3-4 warning, 5-6 stale, 7 at twice stale or more."""
    age = max(age, 0.0)
    if age < warn:
        return min(2, int(3 * age / warn))
    if age < stale:
        return 3 + min(1, int(2 * (age - warn) / (stale - warn))) if stale > warn else 4
    if age < 2 * stale:
        return 5 + min(1, int(2 * (age - stale) / stale))
    return 7


def sparkline(history: HealthHistory, now: datetime, warn_after_s: float, stale_after_s: float,
              hours: int = 24, colour: bool = False) -> str:
    """``hours`` characters, oldest hour first, the hour in progress last: each hour's worst data age.

    ``▁▂▃`` below the warning threshold, ``▄▅`` warning, ``▆▇`` stale, ``█`` twice stale or more;
    ``·`` an hour without checks (no daemon ran), ``?`` one whose checks read no data age (Hazelcast
    unreachable, or no scan yet). With ``colour`` each character takes its hour's worst status as an
    ANSI colour, for a terminal.
    """
    warn, stale = _thresholds(warn_after_s, stale_after_s)
    last = _hour_of(_window(history, now).end)
    chars: list[str] = []
    for index in range(max(1, hours) - 1, -1, -1):
        hour = history.hours.get(last - index * HOUR)
        if hour is None or hour.checks == 0:
            chars.append(NO_CHECKS_CHAR)
            continue
        char = NO_AGE_CHAR if hour.worst_age_s is None else BLOCKS[_level(hour.worst_age_s, warn, stale)]
        worst = hour.worst_status()
        if colour and worst is not None:
            char = f"\x1b[{_ANSI.get(worst, _ANSI['other'])}m{char}\x1b[0m"
        chars.append(char)
    return "".join(chars)


def sparkline_legend(warn_after_s: float, stale_after_s: float) -> str:
    """What the sparkline's characters mean, for beside it."""
    warn, stale = _thresholds(warn_after_s, stale_after_s)
    return ("worst data age per hour, oldest first "
            f"({BLOCKS[3]} warning ≥ {_seconds(warn)}, {BLOCKS[5]} stale ≥ {_seconds(stale)}, "
            f"{NO_CHECKS_CHAR} no checks)")


def restarts_in(history: HealthHistory, now: datetime, hours: int = 24) -> int:
    """Restarts counted in the last ``hours`` hours (the hour in progress included)."""
    last = _hour_of(_window(history, now).end)
    return sum(h.restarts for start, h in history.hours.items() if last - (hours - 1) * HOUR <= start <= last)
