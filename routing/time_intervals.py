"""Alertmanager's time intervals (timeinterval/timeinterval.go, 0.25), as pure functions of a timestamp.

A named entry of the top-level `time_intervals` (or deprecated `mute_time_intervals`) holds a list
of `TimeInterval`s; the entry is active at `ts` if any of them contains `ts`. Within one
TimeInterval every given field must match (times AND weekdays AND ...), and within one field any
of its ranges may match. Evaluation is in `location` (an IANA zone, default UTC), so DST is
handled by the wall clock there.

One deliberate difference from 0.25: a negative `days_of_month` counts from the real last day of
the month. Alertmanager 0.25 derived the month length from elapsed hours, which made `-1` the 30th
in a 31-day month with a spring-forward DST change; upstream fixed this (alertmanager PR #5447).
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.core.errors import ConfigError

_TIME_RE = re.compile(r"(?:(?:[01][0-9]|2[0-3]):[0-5][0-9])|24:00")
_ATOI_RE = re.compile(r"[+-]?[0-9]+")
WEEKDAYS = {"sunday": 0, "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6}
MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6,
    "july": 7, "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
}
INTERVAL_KEYS = frozenset({"times", "weekdays", "days_of_month", "months", "years", "location"})


def _atoi(s: str, path: str, what: str) -> int:
    if not _ATOI_RE.fullmatch(s):
        raise ConfigError(path, f"{s!r} is not a valid {what}")
    return int(s)


def _range_text(v: Any, path: str) -> str:
    # yaml.v2 hands a plain scalar to a string field as its text; PyYAML has typed it already.
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        raise ConfigError(path, f"must be a string range like 'a:b', got {type(v).__name__}")
    return str(v).lower()


def _split_range(text: str, path: str) -> tuple[str, str]:
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise ConfigError(path, f"couldn't parse range {text}, invalid format")
        return parts[0], parts[1]
    return text, text


def _parse_hhmm(v: Any, path: str) -> int:
    """Minutes into the day of "HH:MM" (00:00 to 24:00)."""
    if isinstance(v, int) and not isinstance(v, bool):
        # PyYAML (YAML 1.1) reads an unquoted 17:00 as the base-60 integer 1020; undo that.
        if 0 <= v <= 1440:
            v = f"{v // 60:02d}:{v % 60:02d}"
    if not isinstance(v, str):
        raise ConfigError(path, f"must be a time like '09:30', got {type(v).__name__}")
    if not _TIME_RE.fullmatch(v):
        raise ConfigError(path, f"couldn't parse timestamp {v}, invalid format (want HH:MM, 00:00 to 24:00)")
    h, m = v.split(":")
    return int(h) * 60 + int(m)


def _load_location(v: Any, path: str) -> tzinfo:
    if not isinstance(v, str):
        raise ConfigError(path, f"must be a time zone name, got {type(v).__name__}")
    if v in ("", "UTC"):
        return timezone.utc
    if v == "Local":
        raise ConfigError(path, "'Local' is not supported: name the IANA time zone, e.g. 'Europe/Berlin'")
    try:
        return ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(path, f"unknown time zone {v!r}") from None


def _time_range(t: Any, p: str) -> tuple[int, int]:
    if not isinstance(t, dict):
        raise ConfigError(p, "must be a mapping with start_time and end_time")
    for k in t:
        if k not in ("start_time", "end_time"):
            raise ConfigError(f"{p}.{k}", "unknown field in time range")
    if t.get("start_time") in (None, "") or t.get("end_time") in (None, ""):
        raise ConfigError(p, "both start and end times must be provided")
    start = _parse_hhmm(t["start_time"], f"{p}.start_time")
    end = _parse_hhmm(t["end_time"], f"{p}.end_time")
    if start >= end:
        raise ConfigError(p, "start time cannot be equal or greater than end time")
    return start, end


def _weekday_range(v: Any, p: str) -> tuple[int, int]:
    a, b = _split_range(_range_text(v, p), p)
    for name in (a, b):
        if name not in WEEKDAYS:
            raise ConfigError(p, f"{name} is not a valid weekday")
    lo, hi = WEEKDAYS[a], WEEKDAYS[b]
    if lo > hi:
        raise ConfigError(p, "start day cannot be before end day")
    return lo, hi


def _day_of_month_range(v: Any, p: str) -> tuple[int, int]:
    a, b = _split_range(_range_text(v, p), p)
    lo, hi = _atoi(a, p, "day of the month"), _atoi(b, p, "day of the month")
    for n in (lo, hi):
        if n == 0 or n < -31 or n > 31:
            raise ConfigError(p, f"{n} is not a valid day of the month: out of range")
    if lo < 0 and hi > 0:
        raise ConfigError(p, "end day must be negative if start day is negative")
    check_lo = 28 + lo if lo < 0 else lo
    check_hi = 28 + hi if hi < 0 else hi
    if check_lo > check_hi:
        raise ConfigError(p, f"end day {hi} is always before start day {lo}")
    return lo, hi


def _month_range(v: Any, p: str) -> tuple[int, int]:
    a, b = _split_range(_range_text(v, p), p)
    lo = MONTHS[a] if a in MONTHS else _atoi(a, p, "month")
    hi = MONTHS[b] if b in MONTHS else _atoi(b, p, "month")
    # Alertmanager 0.25 accepts 13 or 0 and then never matches; Tocsin says so instead.
    for n in (lo, hi):
        if not 1 <= n <= 12:
            raise ConfigError(p, f"{n} is not a valid month: out of range")
    if lo > hi:
        raise ConfigError(p, f"end month {b} is before start month {a}")
    return lo, hi


def _year_range(v: Any, p: str) -> tuple[int, int]:
    a, b = _split_range(_range_text(v, p), p)
    lo, hi = _atoi(a, p, "year"), _atoi(b, p, "year")
    if lo > hi:
        raise ConfigError(p, f"end year {hi} is before start year {lo}")
    return lo, hi


# The list fields of a time interval and how one item of each is read (in Alertmanager's order of checks).
_FIELD_PARSERS: dict[str, Callable[[Any, str], tuple[int, int]]] = {
    "times": _time_range,
    "weekdays": _weekday_range,
    "days_of_month": _day_of_month_range,
    "months": _month_range,
    "years": _year_range,
}


@dataclass(frozen=True)
class TimeInterval:
    """One entry of a named time interval. A field left out (None) does not restrict; an empty list
    matches nothing, as in Alertmanager. Ranges are inclusive, except times whose end is exclusive."""

    times: tuple[tuple[int, int], ...] | None = None  # (start_minute, end_minute) end exclusive
    weekdays: tuple[tuple[int, int], ...] | None = None  # 0 = Sunday
    days_of_month: tuple[tuple[int, int], ...] | None = None  # negative: from the month's end, -1 = last
    months: tuple[tuple[int, int], ...] | None = None  # 1 = January
    years: tuple[tuple[int, int], ...] | None = None
    location: tzinfo = timezone.utc

    @classmethod
    def from_config(cls, d: dict, path: str) -> TimeInterval:
        if not isinstance(d, dict):
            raise ConfigError(path, f"time interval must be a mapping, got {type(d).__name__}")
        for k in d:
            if k not in INTERVAL_KEYS:
                raise ConfigError(f"{path}.{k}", "unknown field in time interval")
        fields: dict[str, Any] = {}
        for key, parse_one in _FIELD_PARSERS.items():
            v = d.get(key)
            if v is None:
                continue
            if not isinstance(v, list):
                raise ConfigError(f"{path}.{key}", "must be a list")
            fields[key] = tuple(parse_one(item, f"{path}.{key}[{i}]") for i, item in enumerate(v))
        if d.get("location") is not None:
            fields["location"] = _load_location(d["location"], f"{path}.location")
        return cls(**fields)

    def contains(self, ts: float) -> bool:
        """AM's TimeInterval.ContainsTime for the epoch timestamp `ts`, read in `location`."""
        t = datetime.fromtimestamp(ts, self.location)
        if self.times is not None:
            minute = t.hour * 60 + t.minute
            if not any(s <= minute < e for s, e in self.times):
                return False
        if self.days_of_month is not None:
            dim = calendar.monthrange(t.year, t.month)[1]
            hit = False
            for lo, hi in self.days_of_month:
                begin = dim + lo + 1 if lo < 0 else lo
                end = dim + hi + 1 if hi < 0 else hi
                if begin > dim:  # e.g. the 31st in a 30-day month
                    continue
                begin = max(-dim, min(begin, dim))
                end = max(-dim, min(end, dim))
                if begin <= t.day <= end:
                    hit = True
                    break
            if not hit:
                return False
        if self.months is not None and not any(lo <= t.month <= hi for lo, hi in self.months):
            return False
        if self.weekdays is not None:
            wd = t.isoweekday() % 7  # Go: Sunday = 0
            if not any(lo <= wd <= hi for lo, hi in self.weekdays):
                return False
        if self.years is not None and not any(lo <= t.year <= hi for lo, hi in self.years):
            return False
        return True


def parse_time_intervals(
    items: list[dict] | None, path: str, *, into: dict[str, list[TimeInterval]] | None = None
) -> dict[str, list[TimeInterval]]:
    """The top-level `time_intervals` (or deprecated `mute_time_intervals`) list -> name -> intervals.

    Pass the result of one list as `into` when parsing the other: a name defined twice, in one list
    or across both, is a ConfigError, as in Alertmanager.
    """
    out: dict[str, list[TimeInterval]] = {} if into is None else into
    if items is None:
        return out
    if not isinstance(items, list):
        raise ConfigError(path, "must be a list of named time intervals")
    for i, item in enumerate(items):
        p = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(p, "must be a mapping with name and time_intervals")
        for k in item:
            if k not in ("name", "time_intervals"):
                raise ConfigError(f"{p}.{k}", "unknown field in time interval")
        name = item.get("name")
        if not name or not isinstance(name, str):
            raise ConfigError(f"{p}.name", "missing name in time interval")
        if name in out:
            raise ConfigError(f"{p}.name", f"time interval {name!r} is not unique")
        raw = item.get("time_intervals")
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise ConfigError(f"{p}.time_intervals", "must be a list")
        out[name] = [TimeInterval.from_config(ti, f"{p}.time_intervals[{j}]") for j, ti in enumerate(raw)]
    return out


def active(named: Mapping[str, list[TimeInterval]], names: Iterable[str], ts: float) -> bool:
    """True if any interval of any of the named entries contains `ts` (AM's TimeMuteStage /
    TimeActiveStage use: mute if active(mute names), send only if active(active names) when given).
    An unknown name raises KeyError: check names at config load with Route.check_references."""
    return any(ti.contains(ts) for name in names for ti in named[name])
