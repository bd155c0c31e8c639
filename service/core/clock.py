"""Injected time. Nothing in Tocsin's logic reads the wall clock: it asks a Clock.

`SystemClock` is what `tocsin serve` uses. `ManualClock` is driven by hand (tests) or by the
timestamps of recorded events (`tocsin replay`); its `sleep` never waits on the wall clock.
All times are float seconds since the Unix epoch (UTC).
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # asyncio is imported where a clock sleeps: `tocsin check-config` never loads it
    import asyncio


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Wall-clock time; the only place Tocsin reads it."""

    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when told to. Sleepers wake when `advance`/`set` passes their deadline."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    def set(self, t: float) -> None:
        if t < self._now:
            return  # time never goes backwards
        self._now = float(t)
        due = [s for s in self._sleepers if s[0] <= self._now]
        self._sleepers = [s for s in self._sleepers if s[0] > self._now]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    def advance(self, seconds: float) -> None:
        self.set(self._now + seconds)

    async def sleep(self, seconds: float) -> None:
        import asyncio

        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + seconds, fut))
        await fut


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait (in real time: for I/O, such as a wake-up from ingest) until `event` is set or `timeout` passes; True
    if it was set. Unlike `asyncio.wait_for(event.wait(), timeout)` on Python 3.11, which returns normally when
    the event fires in the loop iteration that cancels the waiter, a cancellation here is never swallowed, so
    loops built on it stop on shutdown."""
    import asyncio

    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=max(0.0, timeout))
    finally:
        waiter.cancel()
    return bool(done)


ZERO_TIME = "0001-01-01T00:00:00Z"
# The times Tocsin accepts and stores: what RFC 3339 (four-digit years), Alertmanager's API (Go's time.Time
# marshalled as JSON) and the Redis records (integer milliseconds, formatted exactly in Lua) can all express.
MIN_TIME = -62135596800.0  # 0001-01-01T00:00:00Z (Go's zero time, which reads as "unset")
MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z


def ms(t: float) -> int:
    """Epoch seconds as integer milliseconds (how times are stored: sorted-set scores, Lua arguments)."""
    return int(round(t * 1000))


def in_range(ts: float) -> bool:
    return MIN_TIME < ts <= MAX_TIME


def clamp_time(ts: float) -> float:
    """A time bounded to [MIN_TIME, MAX_TIME] (computed ends such as now + resolve_timeout near year 9999)."""
    return MAX_TIME if ts > MAX_TIME else (MIN_TIME if ts < MIN_TIME else ts)


def to_rfc3339(ts: float | None) -> str:
    """Format epoch seconds the way Alertmanager does; None is Go's zero time. Times outside what RFC 3339 can
    express (only possible in records stored before the bound existed) are shown clamped, never an error."""
    if ts is None or ts != ts:
        return ZERO_TIME
    dt = datetime.fromtimestamp(clamp_time(ts), tz=timezone.utc)
    s = f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    frac = f"{dt.microsecond:06d}".rstrip("0")
    return f"{s}.{frac}Z" if frac else f"{s}Z"


def parse_rfc3339(value: str) -> float | None:
    """Parse an RFC 3339 timestamp to epoch seconds; Go's zero time and "" give None."""
    if not value or value.startswith("0001-01-01"):
        return None
    v = value.strip()
    if v.endswith("Z") or v.endswith("z"):
        v = v[:-1] + "+00:00"
    # Python's fromisoformat accepts at most 6 fractional digits; Go sends up to 9.
    if "." in v:
        head, rest = v.split(".", 1)
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        v = head + "." + rest[:i][:6].ljust(1, "0") + rest[i:]
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return dt.timestamp()
