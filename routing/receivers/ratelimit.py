"""Per-channel pacing for chat targets (Slack allows about one message per second per channel).

`ChannelPacer` hands out send slots per key (a channel, or a hashed routing key): each key gets at
most one slot per `interval`, and `pause(key, seconds)` (after a 429 with Retry-After) holds back only
that key. Waiting uses the injected Clock, so tests drive it with a ManualClock. A caller that would
have to wait longer than `max_wait` gets `PacingDelay` instead, so it can give the message back to the
outbox (retry later) rather than hold a worker.

The decision is the pure function `next_slot(next_free, now, interval)`.
"""
from __future__ import annotations

from service.core.clock import Clock


class PacingDelay(Exception):
    """The key is paused or busy for `wait` more seconds (more than the caller accepts to wait)."""

    def __init__(self, key: str, wait: float):
        super().__init__(f"channel is rate limited for {wait:.1f}s more")
        self.key = key
        self.wait = wait


def next_slot(next_free: float | None, now: float) -> float:
    """When the next send on a key may start: now, or when the key becomes free."""
    return now if next_free is None or next_free <= now else next_free


class ChannelPacer:
    def __init__(self, clock: Clock, interval: float = 1.0, max_wait: float = 10.0):
        self.clock = clock
        self.interval = interval
        self.max_wait = max_wait
        self._next_free: dict[str, float] = {}

    def delay(self, key: str) -> float:
        """Seconds until `key` may send (0 when it may send now)."""
        now = self.clock.now()
        return next_slot(self._next_free.get(key), now) - now

    def reserve(self, key: str, max_wait: float | None = None) -> float:
        """Take the next slot on `key` and return how long to wait for it; PacingDelay if too long."""
        now = self.clock.now()
        slot = next_slot(self._next_free.get(key), now)
        wait = slot - now
        limit = self.max_wait if max_wait is None else max_wait
        if wait > limit:
            raise PacingDelay(key, wait)
        self._next_free[key] = slot + self.interval
        self._gc(now)
        return wait

    async def acquire(self, key: str, max_wait: float | None = None) -> None:
        """Wait (on the injected clock) for this key's next slot."""
        wait = self.reserve(key, max_wait)
        if wait > 0:
            await self.clock.sleep(wait)

    def pause(self, key: str, seconds: float) -> None:
        """Hold `key` back for `seconds` from now (e.g. Slack's Retry-After); other keys are unaffected."""
        until = self.clock.now() + max(0.0, seconds)
        if until > self._next_free.get(key, 0.0):
            self._next_free[key] = until

    def _gc(self, now: float) -> None:
        if len(self._next_free) > 10_000:
            self._next_free = {k: t for k, t in self._next_free.items() if t > now}
