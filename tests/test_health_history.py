"""The rolling health history: hourly summaries, pruning, the changes cap, gaps, JSON, size (no clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scan_bridge.health_history import MAX_AGES_PER_HOUR, HealthHistory, severity

T0 = datetime(2024, 6, 13, 14, 0, 0, tzinfo=UTC)


def at(hours: float = 0, minutes: float = 0, seconds: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def hour_rows(markdown: str) -> list[str]:
    section = markdown.split("### State changes")[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| Hour")]


def change_rows(markdown: str) -> list[str]:
    section = markdown.split("### State changes")[1]
    return [
        line
        for line in section.splitlines()
        if line.startswith("| ") and not line.startswith("| When") and not line.startswith("| **")
    ]


def simulate_day(history: HealthHistory, flapping: bool, start: datetime = T0) -> datetime:
    """24 h of checks every 30 s, 2 scans per check; flapping: a state change every 2 minutes."""
    status, scan, t = "healthy", 100_000, start
    for i in range(24 * 120):
        t = start + timedelta(seconds=7 + 30 * i)
        scan += 2
        if flapping and i % 4 == 0:
            status = "stale" if status == "healthy" else "healthy"
            cause = " (scanner silent)" if status == "stale" else ""
            history.record_change(t, status + cause, "state change", 95.3 if status == "stale" else 3.2, scan)
            if i % 40 == 0:
                history.record_restart(t)
                history.record_change(t, "down", "restart: bridge stuck (newer complete file on disk)", 123.4, scan)
        history.record_check(t, status, 95.3 if status == "stale" else 3.2, scan)
    return t


# -- hourly summaries ------------------------------------------------------------------------------


def test_checks_are_summarised_per_utc_hour() -> None:
    h = HealthHistory()
    ages = [4.0, 1.0, 9.0, 2.0, 3.0]
    for i, age in enumerate(ages):
        h.record_check(at(minutes=10 * i), "healthy" if i != 2 else "stale (scanner silent)", age, 500 + 3 * i)
    h.record_check(at(hours=1, minutes=1), "warning", 40.0, 520)
    h.record_restart(at(minutes=30))
    h.record_restart(at(minutes=31))

    first, second = h.hours[T0], h.hours[at(hours=1)]
    assert first.checks == 5 and second.checks == 1
    assert first.statuses == {"healthy": 4, "stale": 1}  # the cause is not part of the status name
    assert first.healthy_fraction == pytest.approx(0.8)
    assert first.worst_age_s == 9.0
    assert first.median == 3.0
    assert first.worst_status() == "stale"
    assert (first.first_scan, first.last_scan, first.scans) == (500, 512, 12)
    # Scans that arrived between the last check of one hour and the first of the next count for the next.
    assert second.scans == 520 - 512
    assert (first.restarts, second.restarts) == (2, 0)


def test_an_hour_is_reduced_to_its_summary_when_a_later_hour_starts() -> None:
    h = HealthHistory()
    h.record_check(at(minutes=1), "healthy", 2.0, None)
    h.record_check(at(minutes=2), "healthy", 4.0, None)
    assert h.hours[T0].ages == [2.0, 4.0]  # open: the ages are kept for an exact median
    h.record_check(at(hours=1, minutes=1), "healthy", 100.0, None)
    closed = h.hours[T0]
    assert closed.ages is None
    assert closed.median == 3.0  # the mean of the two middle values, frozen
    assert h.hours[at(hours=1)].ages == [100.0]


def test_the_median_of_a_busy_hour_stays_representative_with_bounded_memory() -> None:
    h = HealthHistory()
    n = 3600  # a check every second
    for i in range(n):
        h.record_check(at(seconds=i), "healthy", float(i), None)
    hour = h.hours[T0]
    assert hour.ages is not None and len(hour.ages) < MAX_AGES_PER_HOUR
    assert hour.median == pytest.approx(n / 2, rel=0.02)  # evenly sampled, not just the hour's start
    assert hour.worst_age_s == n - 1


def test_scan_number_reset_and_long_silences_do_not_make_up_scans() -> None:
    h = HealthHistory()
    h.record_check(at(minutes=0), "healthy", 1.0, 900)
    h.record_check(at(minutes=1), "healthy", 1.0, 905)
    h.record_check(at(minutes=2), "healthy", 1.0, 3)  # the scanner's numbering restarted
    h.record_check(at(minutes=3), "healthy", 1.0, 10)
    assert h.hours[T0].scans == 5 + 7
    h.record_check(at(hours=5), "healthy", 1.0, 5000)  # five hours unwatched: not pinned on hour 5
    assert h.hours[at(hours=5)].scans == 0


def test_severity_order() -> None:
    order = ["healthy", "warning", "missing", "stale", "down", "error"]
    assert sorted(["error", "healthy", "down", "missing", "warning", "stale"], key=severity) == order
    assert severity("stale (bridge stuck)") == severity("stale")
    assert severity("something new") > severity("error")


def test_hour_row_shows_the_figures() -> None:
    h = HealthHistory()
    for i, (status, age) in enumerate([("healthy", 2.0), ("stale", 80.25), ("warning", 35.0), ("healthy", 3.0)]):
        h.record_check(at(minutes=i), status, age, 10 + i)
    h.record_restart(at(minutes=2))
    h.record_change(at(minutes=1), "stale (scanner silent)")
    rows = hour_rows(h.render_markdown(at(minutes=5)))
    assert rows == [
        "| 06-13 14:00 | 4 | 50 | stale 1, warning 1 | 19 / 80.2 | 3 | 1 | 1 |",
        "| 06-12 14:00–06-13 14:00 | no checks | | | | | | |",  # the window before the history began
    ]


# -- pruning and the cap ---------------------------------------------------------------------------


def test_everything_older_than_keep_is_dropped() -> None:
    h = HealthHistory(keep=timedelta(hours=24))
    h.record_check(at(minutes=5), "down", None, None)
    h.record_change(at(minutes=5), "down", "old news")
    h.record_restart(at(minutes=5))
    h.record_check(at(hours=24, minutes=30), "healthy", 1.0, 1)
    assert T0 in h.hours  # the 14:00 hour still overlaps the last 24 h
    h.record_check(at(hours=25, minutes=1), "healthy", 1.0, 2)
    assert T0 not in h.hours
    assert h.changes == []
    assert sorted(h.hours) == [at(hours=24), at(hours=25)]
    md = h.render_markdown(at(hours=25, minutes=2))
    assert "old news" not in md and "down" not in md
    # A late record for a time already outside the window is ignored.
    h.record_check(at(minutes=10), "error", None, None)
    assert T0 not in h.hours


def test_changes_are_capped_keeping_the_newest_and_saying_how_many_were_dropped() -> None:
    h = HealthHistory(max_changes=10)
    for i in range(25):
        h.record_change(at(minutes=i), "healthy" if i % 2 else "warning", f"change {i}")
    assert len(h.changes) == 10
    assert [c.note for c in h.changes] == [f"change {i}" for i in range(15, 25)]
    md = h.render_markdown(at(minutes=30))
    rows = change_rows(md)
    assert len(rows) == 10 and "change 24" in rows[0] and "change 15" in rows[-1]  # newest first
    assert "15 older changes in this window not listed" in md
    assert hour_rows(md) == ["| 06-12 14:00–now | no checks | | | | | | |"]  # changes alone are no checks
    # Once the hour of the dropped changes has left the window, they are no longer mentioned.
    h.record_check(at(hours=25, minutes=1), "healthy", 1.0, None)
    assert "not listed" not in h.render_markdown(at(hours=25, minutes=1))


# -- rendering -------------------------------------------------------------------------------------


def test_gap_labels() -> None:
    h = HealthHistory()
    for hour in (0, 1, 5, 9, 11):  # 14:00, 15:00, 19:00, 23:00, 01:00 the next day
        h.record_check(at(hours=hour, minutes=10), "healthy", 2.0, None)
    rows = hour_rows(h.render_markdown(at(hours=11, minutes=40)))
    labels = [row.split(" | ")[0].removeprefix("| ") for row in rows]
    assert labels == [
        "06-14 01:00",
        "06-14 00:00–01:00",
        "06-13 23:00",
        "06-13 20:00–23:00",
        "06-13 19:00",
        "06-13 16:00–19:00",
        "06-13 15:00",
        "06-13 14:00",
        "06-13 01:00–14:00",  # before the history began: the window's start
    ]
    gap = rows[3]
    assert gap == "| 06-13 20:00–23:00 | no checks | | | | | | |"


def test_a_gap_up_to_now_and_across_midnight() -> None:
    h = HealthHistory()
    h.record_check(at(hours=9, minutes=10), "healthy", 2.0, None)  # 23:10
    rows = hour_rows(h.render_markdown(at(hours=13, minutes=20)))  # 03:20 the next day
    assert rows[0] == "| 06-14 00:00–now | no checks | | | | | | |"
    h2 = HealthHistory()
    h2.record_check(at(hours=8), "healthy", 2.0, None)  # 22:00
    h2.record_check(at(hours=13), "healthy", 2.0, None)  # 03:00 the next day
    rows = hour_rows(h2.render_markdown(at(hours=13, minutes=1)))
    assert rows[1] == "| 06-13 23:00–06-14 03:00 | no checks | | | | | | |"


def test_state_changes_table() -> None:
    h = HealthHistory()
    h.record_check(at(hours=9, minutes=59), "healthy", 2.0, 7)
    h.record_change(at(hours=9, minutes=59), "healthy", "state change", 2.04, 7)
    h.record_change(at(hours=10, minutes=1), "down", "restart: exit | code\n9", None, None)
    md = h.render_markdown(at(hours=10, minutes=2))
    section = md.split("### State changes, last 24 hours (newest first)")[1]
    assert section.splitlines()[4:] == [
        "| **2024-06-14** | | | | |",
        "| 00:01:00 | down | — | — | restart: exit \\| code 9 |",
        "| **2024-06-13** | | | | |",
        "| 23:59:00 | healthy | 2 | 7 | state change |",
    ]
    assert "### Last 24 hours, by hour (UTC)" in md
    assert "_None._" in HealthHistory().render_markdown(T0)


# -- JSON ------------------------------------------------------------------------------------------


def test_round_trip_continues_the_open_hour() -> None:
    h = HealthHistory()
    h.record_check(at(minutes=10), "stale", 70.0, 100)
    h.record_check(at(hours=1, minutes=1), "healthy", 1.0, 104)
    h.record_check(at(hours=1, minutes=2), "healthy", 5.0, 110)
    h.record_restart(at(hours=1, minutes=2))
    h.record_change(at(hours=1, minutes=2), "healthy", "state change", 5.0, 110)
    data = json.loads(json.dumps(h.to_json()))  # really JSON

    restored = HealthHistory.from_json(data)
    assert restored.render_markdown(at(hours=1, minutes=3)) == h.render_markdown(at(hours=1, minutes=3))
    assert restored.to_json() == data

    # The daemon restarted: the next checks land in the restored open hour, median over all of them.
    for history in (h, restored):
        history.record_check(at(hours=1, minutes=30), "warning", 40.0, 113)
    hour = restored.hours[at(hours=1)]
    assert hour.checks == 3 and hour.median == 5.0 and hour.worst_age_s == 40.0
    assert hour.scans == (104 - 100) + (110 - 104) + (113 - 110)
    assert restored.to_json() == h.to_json()
    restored.record_check(at(hours=2, minutes=1), "healthy", 1.0, 114)
    assert restored.hours[at(hours=1)].ages is None and restored.hours[at(hours=1)].median == 5.0


def test_a_fresh_hour_keeps_its_data_age_of_zero_through_json() -> None:
    # CI failed on this: the daemon's first healthy check read an age under 0.05 s, the JSON left the
    # "zero" out, and `deploy.py status` showed the hour as "?" (no data age) until the next artifact.
    from scan_bridge.health_chart import NO_AGE_CHAR, sparkline

    h = HealthHistory()
    h.record_check(at(minutes=1), "healthy", 0.04, 0)  # scan #0: a scanner that counts from zero
    restored = HealthHistory.from_json(json.loads(json.dumps(h.to_json())))
    hour = restored.hours[at()]
    assert (hour.worst_age_s, hour.median, hour.first_scan, hour.last_scan) == (0.0, 0.0, 0, 0)
    assert not sparkline(restored, at(minutes=2), 30, 60).endswith(NO_AGE_CHAR)
    h.record_check(at(hours=1, minutes=1), "healthy", 0.01, 1)  # the first hour closes: its median stays
    closed = HealthHistory.from_json(json.loads(json.dumps(h.to_json()))).hours[at()]
    assert (closed.worst_age_s, closed.median) == (0.0, 0.0)


def test_from_json_applies_the_callers_limits() -> None:
    h = HealthHistory()
    for i in range(30):
        h.record_change(at(minutes=i), "healthy", f"n{i}")
    restored = HealthHistory.from_json(h.to_json(), max_changes=5)
    assert [c.note for c in restored.changes] == [f"n{i}" for i in range(25, 30)]
    assert restored.hours[T0].changes == 30 and restored.hours[T0].changes_dropped == 25


@pytest.mark.parametrize(
    "garbage",
    [
        None,
        "not a dict",
        42,
        [],
        {},
        {"version": 99, "hours": [], "changes": []},
        {"version": 1, "hours": "nope", "changes": {"a": 1}},
        {"version": 1, "newest": "yesterday", "hours": [None, 1, {"hour": 5}], "changes": [[], ["x"], [1, 2]]},
        {"version": 1, "hours": [{"hour": "2024-06-13T14:30Z", "checks": 3}]},  # not an hour boundary
    ],
)
def test_garbled_json_gives_an_empty_history(garbage: Any) -> None:
    h = HealthHistory.from_json(garbage)
    assert h.hours == {} and h.changes == [] and h.newest is None
    h.record_check(T0, "healthy", 1.0, 1)  # and it works
    assert h.hours[T0].checks == 1


def test_partial_json_keeps_what_is_good() -> None:
    h = HealthHistory()
    h.record_check(at(minutes=1), "healthy", 1.0, 10)
    h.record_check(at(hours=1, minutes=1), "stale", 90.0, 10)
    h.record_change(at(minutes=1), "healthy", "good change")
    data = h.to_json()
    data["hours"].insert(0, {"hour": "garbage"})
    data["hours"][1]["age_worst"] = "very old"
    data["hours"][1]["statuses"] = {"healthy": -3, "warning": 2, "": 5}
    data["hours"][2]["ages"] = [1, "x", None, float("nan"), 3]
    data["changes"].append(["2024-06-13T15:30:00Z", None, 1.0])  # no status
    data["changes"].append(["2024-06-13T15:31:00Z", "down", "fast", True, 5])  # bad fields

    restored = HealthHistory.from_json(data)
    assert sorted(restored.hours) == [T0, at(hours=1)]
    first, second = restored.hours[T0], restored.hours[at(hours=1)]
    assert first.worst_age_s is None and first.median == 1.0 and first.statuses == {"warning": 2}
    assert second.ages == [1.0, 3.0] and second.median == 2.0
    assert [(c.status, c.note, c.data_age_s, c.scan_number) for c in restored.changes] == [
        ("healthy", "good change", None, None),
        ("down", "", None, None),
    ]
    restored.render_markdown(at(hours=1, minutes=40))  # renders


# -- size ------------------------------------------------------------------------------------------


def test_a_flapping_day_renders_under_8_kb() -> None:
    h = HealthHistory()
    end = simulate_day(h, flapping=True)
    md = h.render_markdown(end)
    size = len(md.encode())
    assert size < 8 * 1024, size
    rows = hour_rows(md)
    assert len(rows) == 25 and rows[-1] == "| 06-13 13:00–14:00 | no checks | | | | | | |"  # before the start
    assert len(change_rows(md)) == h.max_changes
    assert "older changes in this window not listed" in md
    # 30 flips and 3 restarts an hour: the hourly figures still tell the story of the whole day.
    assert all("| 50 | stale 60 | 49.2 / 95.3 |" in row and row.endswith("| 33 | 3 |") for row in rows[:-1])
    # And it stays bounded: a second day, in the same history, renders no bigger.
    end = simulate_day(h, flapping=True, start=T0 + timedelta(hours=24))
    md = h.render_markdown(end)
    assert len(md.encode()) < 8 * 1024 and len(hour_rows(md)) == 25
    assert len(json.dumps(h.to_json(), separators=(",", ":")).encode()) < 12 * 1024


def test_a_calm_day_is_small() -> None:
    h = HealthHistory()
    end = simulate_day(h, flapping=False)
    md = h.render_markdown(end)
    assert len(md.encode()) < 2 * 1024
    rows = hour_rows(md)
    assert all(row.endswith("| 120 | 100 | — | 3.2 / 3.2 | 240 | 0 | 0 |") for row in rows[:-2])
    assert "_None._" in md


pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers
