"""Group timers as data: per-shard sorted sets scored by due time, claimed atomically (Lua
`claim_due_groups`), so that with several replicas each flush happens exactly once and nothing is lost on a
restart (an unfinished claim is retried when its lease runs out).
"""
from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any, Sequence

import structlog

from service.core.clock import Clock, wait_event
from service.pipeline.dispatch import Dispatcher
from service.store.groups import GroupStore
from service.store.keys import ms

log = structlog.get_logger("tocsin.scheduler")


class Scheduler:
    def __init__(self, groups: GroupStore, dispatcher: Dispatcher, clock: Clock,
                 replica_id: str | None = None, lease: float = 30.0, batch: int = 128, max_idle: float = 1.0,
                 chunk: int = 256):
        self.groups = groups
        self.dispatcher = dispatcher
        self.clock = clock
        self.replica_id = replica_id or uuid.uuid4().hex[:12]
        self.lease = lease
        self.batch = batch
        self.max_idle = max_idle
        self.chunk = chunk  # groups flushed together in one batch
        self._counter = itertools.count()
        self._wake = asyncio.Event()
        self._next_local: float | None = None
        self.on_flushed: list[Any] = []  # callbacks(plan) after each committed flush

    def wake(self, due: float) -> None:
        """Called when this replica scheduled a group at `due`: wake the loop early if that is sooner."""
        if self._next_local is None or due < self._next_local:
            self._next_local = due
            self._wake.set()

    async def claim(self, now: float, shards: list[int] | None = None,
                    prefetch: Sequence[str] = ()) -> tuple[list[tuple[str, str]], float | None]:
        """Claim the groups due by `now` (in `shards`, default all; a single writer knows which have any).
        `prefetch`: groups expected to be claimed, whose state is read in the same round trip."""
        tok = f"{self.replica_id}.{next(self._counter)}"
        return await self.groups.claim_due(ms(now), ms(self.lease), self.batch, tok, shards, prefetch)

    async def run_due(self, shards: list[int] | None = None,
                      prefetch: Sequence[str] = ()) -> tuple[int, float | None]:
        """Flush every group due now (in `shards`, default all; `prefetch`: see claim). Returns (groups flushed,
        earliest remaining due time, of those shards)."""
        total = 0
        while True:
            now = self.clock.now()
            claimed, nxt = await self.claim(now, shards, prefetch)
            prefetch = ()
            if not claimed:
                return total, nxt
            for i in range(0, len(claimed), self.chunk):
                await self._flush_chunk(claimed[i:i + self.chunk])
            total += len(claimed)
            if len(claimed) < self.batch:
                # Anything that became due meanwhile is picked up by the next round.
                now2 = self.clock.now()
                if nxt is None or nxt > now2:
                    return total, nxt

    async def _flush_chunk(self, claimed: list[tuple[str, str]]) -> None:
        """Flush a chunk of claimed groups in one batch (a few round trips for all of them). A failing batch is
        retried group by group, so one bad group does not hold up the others (its claim's lease retries it)."""
        try:
            plans = await self.dispatcher.flush_many(claimed)
        except Exception as e:
            if len(claimed) == 1:
                log.error("flush_failed", gid=claimed[0][0], error=repr(e))
                return
            for one in claimed:
                await self._flush_chunk([one])
            return
        for plan in plans:
            if plan is not None:
                for cb in self.on_flushed:
                    await cb(plan)
        await asyncio.sleep(0)  # let waiting requests in between chunks

    async def next_due(self) -> float | None:
        return await self.groups.next_due()

    async def run(self) -> None:
        """The serve loop: flush what is due, then wait until the next timer or an earlier local wake-up."""
        nxt: float | None = None
        while True:
            self._wake.clear()
            self._next_local = None
            try:
                _, nxt = await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis down: keep trying; ingest answers 503 meanwhile
                log.warning("scheduler_error", error=repr(e))
                nxt = None
            while True:
                now = self.clock.now()
                target = now + self.max_idle
                for t in (nxt, self._next_local):
                    if t is not None and t < target:
                        target = t
                if target <= now:
                    break
                self._wake.clear()
                # Waiting for I/O (a wake-up from ingest) in real time; timers themselves are data in Redis.
                if not await wait_event(self._wake, target - now):
                    break
