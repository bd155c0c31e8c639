"""Go's time.Time and time.Duration as templates see them: `Format` with Go layouts, `String()`, methods.

A GoTime is an instant (integer nanoseconds since the Unix epoch) plus a location (a zoneinfo name, or UTC).
Printing follows Go: `2006-01-02 15:04:05.999999999 -0700 MST`; the zero time is 0001-01-01 00:00:00 UTC.
Durations print as Go's `Duration.String()` ("1h2m3.5s", "150ms", "0s").
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ZERO_UNIX_NS = -62135596800 * 10**9  # 0001-01-01T00:00:00Z
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]


class GoLocationError(Exception):
    pass


@lru_cache(maxsize=64)
def load_location(name: str):
    """time.LoadLocation: "" and "UTC" are UTC, "Local" is UTC here (Tocsin runs in UTC), else the IANA zone."""
    if name in ("", "UTC"):
        return timezone.utc
    if name == "Local":
        return timezone.utc
    try:
        return ZoneInfo(name)
    except Exception:
        raise GoLocationError(f"unknown time zone {name}") from None


class Month(int):
    def go_String(self) -> str:
        return MONTHS[self - 1]


class Weekday(int):
    def go_String(self) -> str:
        return DAYS[self]


class GoDuration(int):
    """time.Duration: integer nanoseconds."""

    go_type = "time.Duration"

    def go_String(self) -> str:
        return duration_string(int(self))

    def go_Seconds(self) -> float:
        return int(self) / 1e9

    def go_Minutes(self) -> float:
        return int(self) / 6e10

    def go_Hours(self) -> float:
        return int(self) / 3.6e12

    def go_Milliseconds(self) -> int:
        return int(int(self) / 10**6)

    def go_Nanoseconds(self) -> int:
        return int(self)

    def go_Round(self, m: int) -> "GoDuration":
        if m <= 0:
            return self
        r = abs(int(self)) % m
        d = int(self)
        if d < 0:
            r = -r
            if r + r > -m:
                return GoDuration(d - r)
            return GoDuration(d - r - m)
        if r + r < m:
            return GoDuration(d - r)
        return GoDuration(d + m - r)

    def go_Truncate(self, m: int) -> "GoDuration":
        if m <= 0:
            return self
        d = int(self)
        return GoDuration(d - int(d - d // m * m if d >= 0 else -((-d) % m)))


GO_METHOD_PARAMS = {"Round": ["Duration"], "Truncate": ["Duration"], "Format": ["string"], "In": ["Location"],
                    "Add": ["Duration"], "Sub": ["time.Time"], "Before": ["time.Time"], "After": ["time.Time"],
                    "Equal": ["time.Time"]}


def _fmt_frac(v: int, prec: int) -> tuple[str, int]:
    """Go's fmtFrac: the fraction of v/10**prec without trailing zeros, and v // 10**prec."""
    digits = ""
    printed = False
    for _ in range(prec):
        d = v % 10
        printed = printed or d != 0
        if printed:
            digits = str(d) + digits
        v //= 10
    return ("." + digits if printed else ""), v


def duration_string(d: int) -> str:
    if d == 0:
        return "0s"
    neg = d < 0
    u = -d if neg else d
    if u < 10**9:
        if u < 1000:
            s = f"{u}ns"
        elif u < 10**6:
            frac, w = _fmt_frac(u, 3)
            s = f"{w}{frac}µs"
        else:
            frac, w = _fmt_frac(u, 6)
            s = f"{w}{frac}ms"
    else:
        frac, w = _fmt_frac(u, 9)
        s = f"{w % 60}{frac}s"
        w //= 60
        if w > 0:
            s = f"{w % 60}m" + s
            w //= 60
            if w > 0:
                s = f"{w}h" + s
    return ("-" if neg else "") + s


class GoTime:
    """time.Time: nanoseconds since the epoch and a location."""

    go_type = "time.Time"
    __slots__ = ("ns", "loc")

    def __init__(self, ns: int, loc=timezone.utc):
        self.ns = int(ns)
        self.loc = loc

    @classmethod
    def from_epoch(cls, seconds: float) -> "GoTime":
        """Epoch seconds (Tocsin's float timestamps) -> a UTC time; 0 is Go's zero time."""
        if not seconds:
            return cls(ZERO_UNIX_NS)
        return cls(round(seconds * 1e6) * 1000)

    def parts(self) -> tuple[datetime, int]:
        sec, ns = divmod(self.ns, 10**9)
        dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=sec)
        return dt.astimezone(self.loc), ns

    def is_zero(self) -> bool:
        return self.ns == ZERO_UNIX_NS

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoTime) and other.ns == self.ns and other.loc == self.loc

    def __hash__(self) -> int:
        return hash(self.ns)

    # Go methods
    def go_String(self) -> str:
        return self.go_Format("2006-01-02 15:04:05.999999999 -0700 MST")

    def go_Format(self, layout: str) -> str:
        return go_format(self, layout)

    def go_Unix(self) -> int:
        return self.ns // 10**9

    def go_UnixNano(self) -> int:
        return self.ns

    def go_UnixMilli(self) -> int:
        return self.ns // 10**6

    def go_UTC(self) -> "GoTime":
        return GoTime(self.ns, timezone.utc)

    def go_Local(self) -> "GoTime":
        return GoTime(self.ns, timezone.utc)

    def go_In(self, loc) -> "GoTime":
        return GoTime(self.ns, loc)

    def go_IsZero(self) -> bool:
        return self.is_zero()

    def go_Add(self, d: int) -> "GoTime":
        return GoTime(self.ns + int(d), self.loc)

    def go_Sub(self, u: "GoTime") -> GoDuration:
        return GoDuration(self.ns - u.ns)

    def go_Before(self, u: "GoTime") -> bool:
        return self.ns < u.ns

    def go_After(self, u: "GoTime") -> bool:
        return self.ns > u.ns

    def go_Equal(self, u: "GoTime") -> bool:
        return self.ns == u.ns

    def go_Year(self) -> int:
        return self.parts()[0].year

    def go_Month(self) -> Month:
        return Month(self.parts()[0].month)

    def go_Day(self) -> int:
        return self.parts()[0].day

    def go_Hour(self) -> int:
        return self.parts()[0].hour

    def go_Minute(self) -> int:
        return self.parts()[0].minute

    def go_Second(self) -> int:
        return self.parts()[0].second

    def go_Nanosecond(self) -> int:
        return self.parts()[1]

    def go_Weekday(self) -> Weekday:
        return Weekday((self.parts()[0].weekday() + 1) % 7)

    def go_YearDay(self) -> int:
        return self.parts()[0].timetuple().tm_yday

    def go_Location(self) -> str:
        return _loc_name(self.loc)


def _loc_name(loc) -> str:
    if loc is timezone.utc:
        return "UTC"
    return getattr(loc, "key", str(loc))


def _zone(t: GoTime, dt: datetime) -> tuple[str, int]:
    off = int(dt.utcoffset().total_seconds())
    if t.loc is timezone.utc:
        return "UTC", 0
    name = dt.tzname() or ""
    return name, off


# Layout elements of Go's time.Format, longest first where one is a prefix of another.
_ELEMENTS = ("January", "Jan", "Monday", "Mon", "MST", "2006", "__2", "_2", "002", "01", "02", "03", "04", "05",
             "06", "15", "1", "2", "3", "4", "5", "PM", "pm", "-07:00:00", "-070000", "-07:00", "-0700", "-07",
             "Z07:00:00", "Z070000", "Z07:00", "Z0700", "Z07")


def _next_std(layout: str, i: int) -> str | None:
    """Go's nextStdChunk: the layout element starting at i, if any."""
    rest = layout[i:]
    if rest[0] in ".," and len(rest) > 1 and rest[1] in "09":
        j = 1
        while j < len(rest) and rest[j] == rest[1]:
            j += 1
        return None if j < len(rest) and rest[j].isdigit() else rest[:j]
    for e in _ELEMENTS:
        if rest.startswith(e):
            if e == "Mon" and not rest.startswith("Monday") and len(rest) > 3 and rest[3].islower():
                return None  # "Month" is not a weekday
            if e == "_2" and rest.startswith("_2006"):
                return None  # "_" then "2006"
            return e
    return None


def _fmt_hour12(dt: datetime, std: str) -> str:
    h = dt.hour % 12 or 12
    return str(h) if std == "3" else f"{h:02d}"


_FORMATTERS = {
    "2006": lambda dt: f"{dt.year:04d}", "06": lambda dt: f"{dt.year % 100:02d}",
    "January": lambda dt: MONTHS[dt.month - 1], "Jan": lambda dt: MONTHS[dt.month - 1][:3],
    "01": lambda dt: f"{dt.month:02d}", "1": lambda dt: str(dt.month),
    "Monday": lambda dt: DAYS[(dt.weekday() + 1) % 7], "Mon": lambda dt: DAYS[(dt.weekday() + 1) % 7][:3],
    "2": lambda dt: str(dt.day), "_2": lambda dt: f"{dt.day:2d}", "02": lambda dt: f"{dt.day:02d}",
    "__2": lambda dt: f"{dt.timetuple().tm_yday:3d}", "002": lambda dt: f"{dt.timetuple().tm_yday:03d}",
    "15": lambda dt: f"{dt.hour:02d}", "3": lambda dt: _fmt_hour12(dt, "3"), "03": lambda dt: _fmt_hour12(dt, "03"),
    "4": lambda dt: str(dt.minute), "04": lambda dt: f"{dt.minute:02d}",
    "5": lambda dt: str(dt.second), "05": lambda dt: f"{dt.second:02d}",
    "PM": lambda dt: "PM" if dt.hour >= 12 else "AM", "pm": lambda dt: "pm" if dt.hour >= 12 else "am",
}


def _fmt_element(std: str, dt: datetime, ns: int, zname: str, off: int) -> str:
    f = _FORMATTERS.get(std)
    if f is not None:
        return f(dt)
    if std == "MST":
        return zname or _offset(off, "-0700")
    if std[0] in "-Z":
        return "Z" if std[0] == "Z" and off == 0 else _offset(off, "-" + std[1:])
    frac = f"{ns:09d}"[:len(std) - 1]  # .000 / .999 (fraction of a second)
    if std[1] == "9":
        frac = frac.rstrip("0")
        return std[0] + frac if frac else ""
    return std[0] + frac


def go_format(t: GoTime, layout: str) -> str:
    """time.Time.Format with a Go layout ("2006-01-02 15:04:05.999999999 -0700 MST")."""
    dt, ns = t.parts()
    zname, off = _zone(t, dt)
    out: list[str] = []
    i = 0
    while i < len(layout):
        std = _next_std(layout, i)
        if std is None:
            out.append(layout[i])
            i += 1
            continue
        i += len(std)
        out.append(_fmt_element(std, dt, ns, zname, off))
    return "".join(out)


def _offset(off: int, std: str) -> str:
    sign = "-" if off < 0 else "+"
    off = abs(off)
    h, m, s = off // 3600, off // 60 % 60, off % 60
    if std == "-07":
        return f"{sign}{h:02d}"
    if std == "-0700":
        return f"{sign}{h:02d}{m:02d}"
    if std == "-07:00":
        return f"{sign}{h:02d}:{m:02d}"
    if std == "-070000":
        return f"{sign}{h:02d}{m:02d}{s:02d}"
    return f"{sign}{h:02d}:{m:02d}:{s:02d}"
