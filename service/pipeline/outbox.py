"""Durable delivery: every decided notification is in a Redis stream (the outbox) before it is sent.

Delivery is at-least-once, in order per (group, integration), with bounded exponential backoff on retryable
failures (5xx, 429, network errors). Each outbox entry carries a per-group, per-integration sequence number:
an entry whose predecessor is not yet delivered waits; an entry already delivered (a redelivery after a crash)
is acknowledged without sending again. Entries left pending by a killed replica are resumed on its restart (it
reads its own pending entries first) or claimed by another replica after `claim_idle` (XAUTOCLAIM). A Redis
restarted empty loses the consumer groups: a NOGROUP answer recreates them and delivery goes on.
"""
from __future__ import annotations

import asyncio
import contextlib
from service.core import fastjson as json
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import structlog
from redis.exceptions import ResponseError

from routing.receivers.base import NotifyError, Receiver
from routing.receivers.fields import GO_TEMPLATES

from service.core.clock import Clock, wait_event
from service.core.models import Notification
from service.store.outbox import MarkBatch, OutboxStore

log = structlog.get_logger("tocsin.outbox")


@dataclass
class Entry:
    shard: int
    id: str
    gid: str
    integration: str
    seq: int
    notification: Notification


def _s(b: Any) -> str:
    return b.decode() if isinstance(b, bytes) else str(b)


class Outbox:
    def __init__(self, store: OutboxStore, clock: Clock, consumer: str,
                 receivers: Callable[[str], Receiver | None], *, max_attempts: int = 12,
                 backoff_initial: float = 0.5, backoff_max: float = 60.0, claim_idle: float = 60.0,
                 metrics: Any = None, on_delivered: Callable[[Notification, dict[str, Any]], Awaitable[None]] | None = None):
        self.store = store
        self.clock = clock
        self.consumer = consumer
        self.receivers = receivers
        self.go_templates: Any = None  # the configuration's Go templates (the engine sets them, also on reload)
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.claim_idle = claim_idle
        self.metrics = metrics
        self.on_delivered = on_delivered
        self._wake = asyncio.Event()
        self._lanes: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._queues: dict[tuple[str, str], list[Entry]] = defaultdict(list)
        self._seen: set[tuple[int, str]] = set()
        self._woken = True  # until the first drain: our own pending entries may be waiting
        self._maybe_pending = True  # entries of ours read but not marked may exist (until a drain reads them)
        self._read_full = False  # the last _read got a full batch from some shard (there may be more)
        # True only for the one writer of a private key prefix (replay): then it knows every lane's delivered
        # sequence number and state from its own marks (lane -> (seq, state); None: not known, read it).
        self.single_writer = False
        self._lanes_known: dict[tuple[str, str], tuple[int, dict[str, Any] | None] | None] = {}

    async def ensure_groups(self) -> None:
        await self.store.ensure_groups()

    def wake(self) -> None:
        self._wake.set()
        self._woken = True

    @property
    def woken(self) -> bool:
        """Whether something was enqueued (wake() was called) since the last drain began."""
        return self._woken

    async def depth(self) -> int:
        return await self.store.depth()

    def _parse(self, shard: int, eid: Any, fields: dict[Any, Any]) -> Entry:
        f = {_s(k): _s(v) for k, v in fields.items()}
        n = Notification.from_json(f["n"])
        n.id = f"{f['gid']}:{f['integration']}:{f['seq']}"
        return Entry(shard, _s(eid), f["gid"], f["integration"], int(f["seq"]), n)

    async def _read(self, start: str) -> list[Entry]:
        """Read entries for this consumer: start=">" new ones, start="0" our own pending ones."""
        self._read_full = False
        raw, self._read_full = await self.store.read(self.consumer, start)
        return [self._parse(shard, eid, fields) for shard, eid, fields in raw]

    async def _autoclaim(self) -> list[Entry]:
        raw = await self.store.autoclaim(self.consumer, int(self.claim_idle * 1000))
        return [self._parse(shard, eid, fields) for shard, eid, fields in raw]

    def _dispatch(self, entries: list[Entry]) -> None:
        self._maybe_pending = True  # lanes run on their own: a drain reads our pending entries again
        for e in entries:
            if (e.shard, e.id) in self._seen:  # entry ids are per stream: the same id can exist in two shards
                continue
            self._seen.add((e.shard, e.id))
            lane = (e.gid, e.integration)
            q = self._queues[lane]
            q.append(e)
            q.sort(key=lambda x: x.seq)
            if lane not in self._lanes or self._lanes[lane].done():
                self._lanes[lane] = asyncio.create_task(self._run_lane(lane))

    async def _run_lane(self, lane: tuple[str, str]) -> None:
        q = self._queues[lane]
        try:
            while q:
                e = q.pop(0)
                try:
                    if not await self._deliver(e):
                        q.append(e)  # an earlier entry of this lane arrived meanwhile (e.g. reclaimed): it goes first
                        q.sort(key=lambda x: x.seq)
                        continue
                except asyncio.CancelledError:
                    self._seen.discard((e.shard, e.id))
                    raise
                except Exception as err:  # Redis hiccup, receiver bug: leave it pending; autoclaim retries it
                    log.error("delivery_error", integration=e.integration, notification=e.notification.id,
                              error=repr(err))
                self._seen.discard((e.shard, e.id))
        finally:
            for e in q:  # entries left behind by a cancelled lane are picked up again later
                self._seen.discard((e.shard, e.id))
            self._queues.pop(lane, None)
            self._lanes.pop(lane, None)

    async def _delivered_seq(self, e: Entry) -> tuple[int, dict[str, Any] | None]:
        seq, state = await self.store.lane_state(e.gid, e.integration)
        return int(seq or 0), (json.loads(state) if state else None)

    def _queue_mark(self, marks: MarkBatch, e: Entry, state: dict[str, Any] | None) -> None:
        marks.add(e.shard, e.id, e.gid, e.integration, e.seq, json.dumps(state) if state is not None else "")

    async def _mark(self, e: Entry, state: dict[str, Any] | None) -> None:
        await self.store.mark(e.shard, e.id, e.gid, e.integration, e.seq,
                              json.dumps(state) if state is not None else "")

    async def _deliver(self, e: Entry, failed: NotifyError | None = None) -> bool:
        """Deliver (or give up on) one entry; False when an earlier entry of its lane is queued and must go first.
        `failed`: the first attempt was made by the caller (drain) and failed so; go on from there."""
        attempt = 0
        waited_for_predecessor = 0
        while True:
            if failed is not None:
                err, failed = failed, None
                attempt += 1
                if await self._failed(e, err, attempt):
                    return True
                continue
            done_seq, state = await self._delivered_seq(e)
            if done_seq >= e.seq:
                await self._mark(e, None)  # a redelivery of something already sent
                return True
            q = self._queues.get((e.gid, e.integration))
            if q and any(x.seq < e.seq for x in q):
                return False
            if done_seq < e.seq - 1 and waited_for_predecessor < 600:
                # The predecessor is still on its way (maybe with another replica): keep order. Keep the entry
                # claimed meanwhile, so that no other replica's autoclaim takes it and sends it twice.
                waited_for_predecessor += 1
                if waited_for_predecessor % 50 == 0:
                    await self.store.keep(e.shard, e.id, self.consumer)
                await self.clock.sleep(0.1)
                continue
            receiver = self.receivers(e.integration)
            if receiver is None:
                log.error("delivery_dropped_no_receiver", integration=e.integration, notification=e.notification.id)
                self._count("failed", e, "undeliverable")
                await self._mark(e, None)
                return True
            try:
                GO_TEMPLATES.set(self.go_templates)
                result = await receiver.send(e.notification, state)
            except NotifyError as err:
                attempt += 1
                if await self._failed(e, err, attempt):
                    return True
                continue
            new_state = result.state if result is not None and result.state else None
            merged = dict(state or {})
            if new_state:
                merged.update(new_state)
            await self._mark(e, merged if new_state else None)
            self._count("sent", e, "")
            if self.on_delivered is not None:
                await self.on_delivered(e.notification, merged)
            return True

    async def _failed(self, e: Entry, err: NotifyError, attempt: int) -> bool:
        """After failed attempt number `attempt`: give up (True; the entry is marked) or back off (False)."""
        self._count("failed", e, err.label)
        if not err.retryable or attempt >= self.max_attempts:
            log.error("delivery_failed", integration=e.integration, notification=e.notification.id,
                      reason=err.reason, attempts=attempt, retryable=err.retryable)
            await self._mark(e, None)  # give up: do not block the lane forever
            return True
        delay = err.retry_after if err.retry_after is not None else min(
            self.backoff_max, self.backoff_initial * (2 ** (attempt - 1)))
        delay *= 1 + random.uniform(0, 0.1) if err.retry_after is None else 1
        log.warning("delivery_retry", integration=e.integration, notification=e.notification.id,
                    reason=err.reason, attempt=attempt, delay=round(delay, 3))
        # Keep the entry ours while we back off, so that no other replica claims it meanwhile.
        await self.store.keep(e.shard, e.id, self.consumer)
        await self.clock.sleep(delay)
        return False

    def _count(self, what: str, e: Entry, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.notification(what, e.notification.receiver, e.integration, reason)

    async def drain(self) -> int:
        """Deliver everything currently in the outbox for this consumer and wait for it (replay, tests).

        Unlike the serve loop (one task per lane, lanes concurrently), entries are delivered one after another in
        the order they were read (our pending ones, then the new ones, shard by shard: per lane, sequence order),
        so the order of the deliveries does not depend on which Redis reply comes back first: replay prints the
        same notifications in the same order every run."""
        n = 0
        self._woken = False
        while True:
            try:
                # Our own pending entries only when some may be left (a failed delivery, a lane, a restart).
                mine, full = [], False
                if self._maybe_pending:
                    mine, full = await self._read("0"), self._read_full
                self._maybe_pending = False
                new = await self._read(">")
                full |= self._read_full
            except ResponseError as e:
                self._maybe_pending = True
                if "NOGROUP" not in str(e):
                    raise
                await self.ensure_groups()  # Redis restarted empty
                continue
            fresh = [e for e in mine + new if (e.shard, e.id) not in self._seen]
            n += len(fresh)
            lanes = [t for t in self._lanes.values() if not t.done()]
            if not lanes and not fresh:
                return n
            if fresh:
                await self._deliver_in_order(fresh)
            if lanes:
                await asyncio.gather(*lanes, return_exceptions=True)
            elif not self._maybe_pending and not full:
                return n  # everything read was delivered and marked, and no shard had more than one read's worth

    async def _deliver_in_order(self, entries: list[Entry]) -> None:
        """Deliver `entries` in order with a constant number of round trips: one read of every lane's delivered
        sequence number and state, the sends, then one pipeline of marks. An entry that cannot go that way (its
        predecessor is not delivered yet, a failed send, an on_delivered hook) takes `_deliver`, after the marks
        queued before it are written."""
        for e in entries:
            self._seen.add((e.shard, e.id))
        try:
            known = await self._lane_states(list(dict.fromkeys((e.gid, e.integration) for e in entries)))
            marks = self.store.marks()
            for e in entries:
                lane = (e.gid, e.integration)
                cur = known.get(lane)
                receiver = self.receivers(e.integration)
                if cur is not None and cur[0] >= e.seq:
                    self._queue_mark(marks, e, None)  # a redelivery of something already sent
                    continue
                if cur is None or cur[0] != e.seq - 1 or receiver is None or self.on_delivered is not None:
                    await marks.flush()
                    await self._deliver_logged(e)
                    known[lane] = None  # unknown from here: the rest of this lane takes _deliver too
                    continue
                try:
                    GO_TEMPLATES.set(self.go_templates)
                    result = await receiver.send(e.notification, cur[1])
                except NotifyError as err:
                    await marks.flush()
                    await self._deliver_logged(e, err)  # counts, backs off and retries as a lane would
                    known[lane] = None
                    continue
                new_state = result.state if result is not None and result.state else None
                merged = dict(cur[1] or {})
                if new_state:
                    merged.update(new_state)
                self._queue_mark(marks, e, merged if new_state else None)
                known[lane] = (e.seq, merged if new_state else cur[1])
                self._count("sent", e, "")
            await marks.flush()
            if self.single_writer:
                self._lanes_known.update(known)  # None: it took _deliver, read it next time
        except asyncio.CancelledError:
            raise
        except Exception as err:  # Redis hiccup: what is not marked stays pending; the next read retries it
            self._maybe_pending = True
            self._lanes_known.clear()
            log.error("delivery_error", entries=len(entries), error=repr(err))
        finally:
            for e in entries:
                self._seen.discard((e.shard, e.id))

    async def _lane_states(self, lanes: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """lane -> (delivered sequence number, state), in one round trip (none for a single writer, whose own
        marks are the only ones: a lane it never delivered on is at 0)."""
        known: dict[tuple[str, str], Any] = {}
        if self.single_writer:
            known = {lane: self._lanes_known.get(lane, (0, None)) for lane in lanes}
            lanes = [lane for lane in lanes if known[lane] is None]
        if lanes:
            known.update({lane: (int(seq or 0), json.loads(state) if state else None)
                          for lane, (seq, state) in zip(lanes, await self.store.lane_states(lanes))})
        return known

    async def _deliver_logged(self, e: Entry, failed: NotifyError | None = None) -> None:
        try:
            await self._deliver(e, failed)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # Redis hiccup, receiver bug: leave it pending; autoclaim retries it
            self._maybe_pending = True
            log.error("delivery_error", integration=e.integration, notification=e.notification.id, error=repr(err))

    async def run(self, poll: float = 0.2) -> None:
        """The serve loop: resume our own pending entries, then follow the outbox."""
        while True:
            try:
                await self.ensure_groups()
                self._dispatch(await self._read("0"))
                break
            except asyncio.CancelledError:
                raise
            except Exception as e:  # Redis not reachable yet
                log.warning("outbox_waiting_for_redis", error=repr(e))
                await self.clock.sleep(1.0)
        last_claim = self.clock.now()
        while True:
            try:
                self._dispatch(await self._read(">"))
                if self.clock.now() - last_claim >= self.claim_idle / 2:
                    last_claim = self.clock.now()
                    self._dispatch(await self._autoclaim())
            except asyncio.CancelledError:
                raise
            except ResponseError as e:
                if "NOGROUP" not in str(e):
                    log.warning("outbox_error", error=repr(e))
                else:  # Redis restarted empty (or the stream was deleted): recreate the groups and go on
                    log.warning("outbox_groups_recreated", error=str(e)[:200])
                    with contextlib.suppress(Exception):
                        await self.ensure_groups()
            except Exception as e:
                log.warning("outbox_error", error=repr(e))
            self._wake.clear()
            await wait_event(self._wake, poll)

    async def close(self) -> None:
        for t in self._lanes.values():
            t.cancel()
        await asyncio.gather(*self._lanes.values(), return_exceptions=True)
