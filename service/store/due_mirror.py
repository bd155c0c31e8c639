"""A single writer's copy of its timer sets (replay): every group flush time (`{sN}:due`) and incident lifecycle
time (`{inc:D}:due`) it writes, kept as it writes them, so that it knows its next timer without asking Redis and
claims only the shards that have a group due.

Only for a process that is the one writer of its key prefix (replay's private prefix): there every write to
those sorted sets is this process's own, and each one tells the mirror (Dispatcher, Scheduler and IncidentStore
call it where they queue the write). Redis stays the state store; the mirror only says when to look. It is
allowed to be early, never late: an entry may be earlier than Redis's score (a group whose last flush deleted
it), which costs one claim that finds nothing and then corrects the entry from the claim's answer (the shard's
earliest remaining time); it is never later than Redis's score, or a timer would be skipped.

Times are seconds (Redis holds group times in milliseconds, incident times in seconds).
"""
from __future__ import annotations

import heapq
from typing import Any, Callable


class _Timers:
    """member -> due time, with the earliest found through a heap (stale heap entries dropped lazily)."""

    def __init__(self) -> None:
        self.at: dict[Any, float] = {}
        self.heap: list[tuple[float, Any]] = []

    def set(self, key: Any, t: float | None) -> None:
        if t is None:
            self.at.pop(key, None)
            return
        if self.at.get(key) == t:
            return
        self.at[key] = t
        heapq.heappush(self.heap, (t, key))
        if len(self.heap) > 2 * len(self.at) + 1024:  # drop entries superseded since
            self.heap = [(t2, k) for k, t2 in self.at.items()]
            heapq.heapify(self.heap)

    def next(self) -> float | None:
        heap = self.heap
        while heap:
            t, key = heap[0]
            if self.at.get(key) == t:
                return t
            heapq.heappop(heap)
        return None

    def pop_due(self, now: float) -> list[Any]:
        """Remove and return every member due by `now`."""
        out = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            t, key = heapq.heappop(heap)
            if self.at.get(key) == t:
                del self.at[key]
                out.append(key)
        return out


class DueMirror:
    def __init__(self, shard_of: Callable[[str], int]):
        self.shard_of = shard_of  # group id -> shard (Keys.shard_of)
        self.groups = _Timers()  # (shard, gid) -> flush time
        self.incidents = _Timers()  # (domain key base, iid) -> lifecycle time
        self._taken: dict[int, list[str]] = {}  # shard -> groups handed to a claim that has not answered yet

    # -- the sorted sets, as written --------------------------------------------------------------------------

    def group(self, gid: str, t: float | None) -> None:
        """ZADD (t) or ZREM (None) of a group's flush time."""
        self.groups.set((self.shard_of(gid), gid), t)

    def touch_group(self, gid: str, t: float) -> None:
        """ZADD XX: only a group that exists."""
        key = (self.shard_of(gid), gid)
        if key in self.groups.at:
            self.groups.set(key, t)

    def incident(self, base: str, iid: str, t: float | None) -> None:
        self.incidents.set((base, iid), t)

    # -- reading ------------------------------------------------------------------------------------------------

    def next(self) -> float | None:
        """The earliest timer (never later than Redis's)."""
        g, i = self.groups.next(), self.incidents.next()
        return i if g is None else g if i is None else min(g, i)

    def incident_due(self, now: float) -> bool:
        t = self.incidents.next()
        return t is not None and t <= now

    def incidents_due(self, base: str, now: float) -> list[str]:
        return [key[1] for key, t in self.incidents.at.items() if key[0] == base and t <= now]

    def take_due_shards(self, now: float) -> list[int]:
        """The shards with a group due by `now`, in order; their due groups wait for the claim's answer
        (`claimed`), which says which of them really were due."""
        for shard, gid in self.groups.pop_due(now):
            self._taken.setdefault(shard, []).append(gid)
        return sorted(self._taken)

    def taken(self) -> list[str]:
        """The groups `take_due_shards` handed out (expected in the claim's answer), in shard order."""
        return [gid for shard in sorted(self._taken) for gid in self._taken[shard]]

    def claimed(self, shard: int, gids: list[str], leased_until: float, earliest: float | None) -> None:
        """A claim of `shard` answered: `gids` are leased until `leased_until`; every other group of the shard is
        due at `earliest` or later (None: the shard has no group left)."""
        for gid in gids:
            self.groups.set((shard, gid), leased_until)
        for gid in self._taken.pop(shard, []):
            key = (shard, gid)
            if key not in self.groups.at and earliest is not None:
                self.groups.set(key, earliest)
