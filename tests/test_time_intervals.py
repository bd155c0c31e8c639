"""Time intervals: Alertmanager's ContainsTime at its edges, and config validation with paths."""
from __future__ import annotations

from datetime import datetime

import pytest
import yaml

from routing.time_intervals import TimeInterval, active, parse_time_intervals
from service.core.errors import ConfigError


def ts(iso: str) -> float:
    """Epoch seconds of an ISO-8601 time with an explicit offset."""
    return datetime.fromisoformat(iso).timestamp()


def ti(text: str) -> TimeInterval:
    return TimeInterval.from_config(yaml.safe_load(text), "time_intervals[0].time_intervals[0]")


# (interval yaml, instant, contained?)
CONTAINS = [
    # times: start inclusive, end exclusive, 24:00 allowed as the end
    ("times: [{start_time: '09:00', end_time: '17:00'}]", "2024-03-04T09:00:00+00:00", True),
    ("times: [{start_time: '09:00', end_time: '17:00'}]", "2024-03-04T08:59:59+00:00", False),
    ("times: [{start_time: '09:00', end_time: '17:00'}]", "2024-03-04T16:59:59+00:00", True),
    ("times: [{start_time: '09:00', end_time: '17:00'}]", "2024-03-04T17:00:00+00:00", False),
    ("times: [{start_time: '22:00', end_time: '24:00'}]", "2024-03-04T23:59:59+00:00", True),
    ("times: [{start_time: '22:00', end_time: '24:00'}]", "2024-03-05T00:00:00+00:00", False),
    ("times: [{start_time: '00:00', end_time: '06:00'}, {start_time: '22:00', end_time: '24:00'}]",
     "2024-03-05T03:00:00+00:00", True),
    # unquoted times: PyYAML's base-60 reading of 17:00 is undone
    ("times: [{start_time: 09:00, end_time: 17:00}]", "2024-03-04T16:30:00+00:00", True),
    ("times: [{start_time: 09:00, end_time: 24:00}]", "2024-03-04T23:30:00+00:00", True),
    # weekdays: names, ranges, case-insensitive; 2024-03-04 is a Monday
    ("weekdays: ['monday:friday']", "2024-03-04T12:00:00+00:00", True),
    ("weekdays: ['monday:friday']", "2024-03-09T12:00:00+00:00", False),
    ("weekdays: ['Saturday', 'SUNDAY']", "2024-03-10T12:00:00+00:00", True),
    ("weekdays: ['sunday']", "2024-03-09T23:59:59+00:00", False),
    # days_of_month: negative counts from the end; leap years
    ("days_of_month: ['-1']", "2024-02-29T12:00:00+00:00", True),
    ("days_of_month: ['-1']", "2024-02-28T12:00:00+00:00", False),
    ("days_of_month: ['-1']", "2023-02-28T12:00:00+00:00", True),
    ("days_of_month: ['-7:-1']", "2024-04-24T00:00:00+00:00", True),  # April has 30 days
    ("days_of_month: ['-7:-1']", "2024-04-23T23:59:59+00:00", False),
    ("days_of_month: ['1:5', '-3:-1']", "2024-06-03T00:00:00+00:00", True),
    ("days_of_month: ['1:5', '-3:-1']", "2024-06-27T00:00:00+00:00", False),
    ("days_of_month: ['1:5', '-3:-1']", "2024-06-28T00:00:00+00:00", True),
    ("days_of_month: ['31']", "2024-04-30T12:00:00+00:00", False),  # no 31st in April: skipped
    ("days_of_month: ['29:31']", "2023-02-28T12:00:00+00:00", False),
    ("days_of_month: ['25:31']", "2023-02-28T12:00:00+00:00", True),  # end clamped to the 28th
    ("days_of_month: [1, 15]", "2024-05-15T08:00:00+00:00", True),  # YAML ints are accepted
    # months and years
    ("months: ['january:march', 'December']", "2024-12-31T23:00:00+00:00", True),
    ("months: ['january:march', 'December']", "2024-04-01T00:00:00+00:00", False),
    ("months: ['2:3']", "2024-02-10T00:00:00+00:00", True),
    ("years: ['2023:2024']", "2024-12-31T23:59:59+00:00", True),
    ("years: ['2023:2024']", "2025-01-01T00:00:00+00:00", False),
    ("years: [2025]", "2025-06-01T00:00:00+00:00", True),
    # all fields must hold at once
    ("{weekdays: [saturday], times: [{start_time: '10:00', end_time: '12:00'}]}", "2024-03-09T11:00:00+00:00", True),
    ("{weekdays: [saturday], times: [{start_time: '10:00', end_time: '12:00'}]}", "2024-03-09T12:00:00+00:00", False),
    ("{weekdays: [saturday], times: [{start_time: '10:00', end_time: '12:00'}]}", "2024-03-10T11:00:00+00:00", False),
    # an empty interval holds always; an empty list holds never
    ("{}", "2024-03-09T11:00:00+00:00", True),
    ("weekdays: []", "2024-03-09T11:00:00+00:00", False),
    # location: evaluated on the local wall clock, through DST changes
    ("{location: Europe/Berlin, times: [{start_time: '09:00', end_time: '17:00'}]}",
     "2024-07-01T07:30:00+00:00", True),  # 09:30 CEST
    ("{location: Europe/Berlin, times: [{start_time: '09:00', end_time: '17:00'}]}",
     "2024-01-08T07:30:00+00:00", False),  # 08:30 CET
    ("{location: Europe/Berlin, times: [{start_time: '09:00', end_time: '17:00'}]}",
     "2024-01-08T08:00:00+00:00", True),  # 09:00 CET
    ("{location: Europe/Berlin, weekdays: [monday]}", "2024-03-10T23:30:00+00:00", True),  # Mon 00:30 local
    ("{location: Europe/Berlin, weekdays: [monday]}", "2024-03-10T22:30:00+00:00", False),  # Sun 23:30 local
    ("{location: Australia/Sydney, days_of_month: ['1']}", "2024-05-31T15:00:00+00:00", True),
    # spring forward, 2024-03-31 02:00 -> 03:00 in Berlin: 01:30 UTC is 03:30 CEST
    ("{location: Europe/Berlin, times: [{start_time: '03:00', end_time: '04:00'}]}",
     "2024-03-31T01:30:00+00:00", True),
    # fall back, 2024-11-03 in New York: both 01:30s are inside 01:00-02:00
    ("{location: America/New_York, times: [{start_time: '01:00', end_time: '02:00'}]}",
     "2024-11-03T05:30:00+00:00", True),
    ("{location: America/New_York, times: [{start_time: '01:00', end_time: '02:00'}]}",
     "2024-11-03T06:30:00+00:00", True),
    ("{location: America/New_York, times: [{start_time: '01:00', end_time: '02:00'}]}",
     "2024-11-03T07:30:00+00:00", False),
    # last day of a spring-forward month is the 31st, not the 30th (upstream's fix of the 0.25 bug)
    ("{location: America/New_York, days_of_month: ['-1']}", "2021-03-31T16:00:00+00:00", True),
    ("{location: America/New_York, days_of_month: ['-1']}", "2021-03-30T16:00:00+00:00", False),
    ("{location: UTC, times: [{start_time: '00:00', end_time: '01:00'}]}", "2024-03-31T00:30:00+00:00", True),
]


@pytest.mark.parametrize("text,instant,want", CONTAINS)
def test_contains(text, instant, want):
    """ContainsTime is true exactly when every given field holds at that instant in the location."""
    assert ti(text).contains(ts(instant)) is want


INVALID = [
    ("times: [{start_time: '17:00', end_time: '09:00'}]", ".times[0]", "start time cannot be equal or greater"),
    ("times: [{start_time: '09:00', end_time: '09:00'}]", ".times[0]", "start time cannot be equal or greater"),
    ("times: [{start_time: '9:00', end_time: '17:00'}]", ".times[0].start_time", "invalid format"),
    ("times: [{start_time: '09:00', end_time: '24:01'}]", ".times[0].end_time", "invalid format"),
    ("times: [{start_time: '09:00', end_time: '25:00'}]", ".times[0].end_time", "invalid format"),
    ("times: [{start_time: '09:00'}]", ".times[0]", "both start and end times must be provided"),
    ("times: [{start_time: '09:00', end_time: '10:00', tz: x}]", ".times[0].tz", "unknown field"),
    ("weekdays: ['friday:monday']", ".weekdays[0]", "start day cannot be before end day"),
    ("weekdays: ['funday']", ".weekdays[0]", "funday is not a valid weekday"),
    ("weekdays: ['1']", ".weekdays[0]", "not a valid weekday"),
    ("weekdays: ['monday:tuesday:friday']", ".weekdays[0]", "invalid format"),
    ("days_of_month: ['0']", ".days_of_month[0]", "out of range"),
    ("days_of_month: ['32']", ".days_of_month[0]", "out of range"),
    ("days_of_month: ['-32']", ".days_of_month[0]", "out of range"),
    ("days_of_month: ['-5:5']", ".days_of_month[0]", "end day must be negative if start day is negative"),
    ("days_of_month: ['10:1']", ".days_of_month[0]", "always before start day"),
    ("days_of_month: ['-1:-5']", ".days_of_month[0]", "always before start day"),
    ("days_of_month: ['1 ']", ".days_of_month[0]", "not a valid day of the month"),
    ("months: ['march:january']", ".months[0]", "end month january is before start month march"),
    ("months: ['13']", ".months[0]", "out of range"),
    ("months: ['smarch']", ".months[0]", "not a valid month"),
    ("years: ['2024:2020']", ".years[0]", "end year 2020 is before start year 2024"),
    ("location: Mars/Olympus", ".location", "unknown time zone"),
    ("location: Local", ".location", "IANA"),
    ("weekday: [monday]", ".weekday", "unknown field"),
    ("weekdays: monday", ".weekdays", "must be a list"),
]


@pytest.mark.parametrize("text,suffix,msg", INVALID)
def test_invalid_intervals_name_the_path(text, suffix, msg):
    """Invalid interval config is a ConfigError at the offending field, worded like Alertmanager's."""
    with pytest.raises(ConfigError) as ei:
        ti(text)
    assert ei.value.path == "time_intervals[0].time_intervals[0]" + suffix
    assert msg in ei.value.message


CONFIG = """
time_intervals:
- name: office-hours
  time_intervals:
  - weekdays: ['monday:friday']
    times: [{start_time: '09:00', end_time: '17:00'}]
- name: weekends
  time_intervals:
  - weekdays: [saturday, sunday]
  - days_of_month: ['25']
    months: [december]
mute_time_intervals:
- name: legacy-nights
  time_intervals:
  - times: [{start_time: '00:00', end_time: '06:00'}]
"""


def test_parse_time_intervals_and_active():
    """Named intervals parse from both lists; active() is true if any interval of any name holds."""
    cfg = yaml.safe_load(CONFIG)
    named = parse_time_intervals(cfg["mute_time_intervals"], "mute_time_intervals")
    parse_time_intervals(cfg["time_intervals"], "time_intervals", into=named)
    assert set(named) == {"office-hours", "weekends", "legacy-nights"}
    christmas_wed = ts("2024-12-25T12:00:00+00:00")
    assert active(named, ["weekends"], christmas_wed)
    assert active(named, ["office-hours"], christmas_wed)
    assert not active(named, ["legacy-nights"], christmas_wed)
    assert not active(named, [], christmas_wed)
    assert active(named, ["legacy-nights", "weekends"], ts("2024-03-09T12:00:00+00:00"))


def test_duplicate_names_are_errors_across_both_lists():
    """A name defined in both time_intervals and mute_time_intervals is a ConfigError at the second."""
    cfg = yaml.safe_load(CONFIG)
    cfg["time_intervals"].append({"name": "legacy-nights", "time_intervals": []})
    named = parse_time_intervals(cfg["mute_time_intervals"], "mute_time_intervals")
    with pytest.raises(ConfigError) as ei:
        parse_time_intervals(cfg["time_intervals"], "time_intervals", into=named)
    assert ei.value.path == "time_intervals[2].name"
    assert "not unique" in ei.value.message


@pytest.mark.parametrize(
    "items,path,msg",
    [
        ([{"time_intervals": []}], "ti[0].name", "missing name"),
        ([{"name": "x", "intervals": []}], "ti[0].intervals", "unknown field"),
        ([{"name": "x", "time_intervals": [{"weekdays": ["nope"]}]}], "ti[0].time_intervals[0].weekdays[0]",
         "not a valid weekday"),
        ("x", "ti", "list"),
    ],
)
def test_parse_time_intervals_errors(items, path, msg):
    """Errors in the named list point at the entry and field."""
    with pytest.raises(ConfigError) as ei:
        parse_time_intervals(items, "ti")
    assert ei.value.path == path and msg in ei.value.message
