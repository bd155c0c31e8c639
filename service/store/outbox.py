"""The outbox in Redis: one stream per shard of decided notifications (consumer group "delivery"), and per
(group, integration) lane its delivered sequence number and receiver state (Lua `mark_delivered` writes both and
acknowledges the entry). service/pipeline/outbox.py decides what to deliver when; this module reads and writes.

A NOGROUP ResponseError (Redis restarted empty) is left to the caller, which answers it with `ensure_groups`.
"""
from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.store.keys import CONSUMER_GROUP, Keys, Scripts, queue_script

MARK_TTL = 30 * 86400  # a lane's delivery state outlives its group by this much
READ_COUNT = 256  # entries read per shard and call

# (shard, entry id, fields) as the stream holds them (bytes)
RawEntry = tuple[int, Any, dict[Any, Any]]


class MarkBatch:
    """Marks (`mark_delivered`) queued to be written together in one round trip."""

    def __init__(self, store: OutboxStore):
        self.store = store
        self.pipe = store.redis.pipeline(transaction=False)
        self.queued = 0

    def add(self, shard: int, entry_id: str, gid: str, integration: str, seq: int, state_json: str) -> None:
        queue_script(self.pipe, self.store.scripts.mark_delivered, keys=self.store._mark_keys(gid, shard),
                     args=[integration, seq, state_json, CONSUMER_GROUP, entry_id, MARK_TTL])
        self.queued += 1

    async def flush(self) -> None:
        if self.queued:
            await self.pipe.execute()
            self.queued = 0


class OutboxStore:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts):
        self.redis = redis
        self.keys = keys
        self.scripts = scripts

    async def ensure_groups(self) -> None:
        for shard in range(self.keys.shards):
            try:
                await self.redis.xgroup_create(self.keys.outbox(shard), CONSUMER_GROUP, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    async def depth(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.xlen(self.keys.outbox(shard))
        return sum(int(x) for x in await pipe.execute())

    async def read(self, consumer: str, start: str) -> tuple[list[RawEntry], bool]:
        """Entries for `consumer` from every shard in one round trip: start=">" new ones, start="0" its own
        pending ones (deleted entries, which come back with no fields, left out). Also whether some shard gave
        a full batch (there may be more)."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(self.keys.shards):
            pipe.xreadgroup(CONSUMER_GROUP, consumer, {self.keys.outbox(shard): start}, count=READ_COUNT)
        out: list[RawEntry] = []
        full = False
        for shard, res in enumerate(await pipe.execute()):
            for _stream, entries in res or []:
                full |= len(entries) >= READ_COUNT
                for eid, fields in entries:
                    if fields:
                        out.append((shard, eid, fields))
        return out, full

    async def autoclaim(self, consumer: str, min_idle_ms: int) -> list[RawEntry]:
        """Entries idle for `min_idle_ms` with another consumer (a replica that died), now `consumer`'s."""
        out: list[RawEntry] = []
        for shard in range(self.keys.shards):
            try:
                res = await self.redis.xautoclaim(self.keys.outbox(shard), CONSUMER_GROUP, consumer,
                                                  min_idle_time=min_idle_ms, start_id="0-0", count=READ_COUNT)
            except ResponseError:
                continue
            for eid, fields in res[1]:
                if fields:
                    out.append((shard, eid, fields))
        return out

    async def keep(self, shard: int, entry_id: str, consumer: str) -> None:
        """Claim an entry again for `consumer` (resets its idle time: no other replica's autoclaim takes it)."""
        await self.redis.xclaim(self.keys.outbox(shard), CONSUMER_GROUP, consumer, 0, [entry_id], justid=True)

    async def lane_state(self, gid: str, integration: str) -> tuple[Any, Any]:
        """A lane's (delivered sequence number, state JSON) as stored (None, None before its first mark)."""
        seq, state = await self.redis.hmget(self.keys.delivery_state(gid), f"{integration}:seq",
                                            f"{integration}:state")
        return seq, state

    async def lane_states(self, lanes: list[tuple[str, str]]) -> list[tuple[Any, Any]]:
        """`lane_state` of several lanes (gid, integration) in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for gid, integ in lanes:
            pipe.hmget(self.keys.delivery_state(gid), f"{integ}:seq", f"{integ}:state")
        return [(seq, state) for seq, state in await pipe.execute()]

    def _mark_keys(self, gid: str, shard: int) -> list[str]:
        return [self.keys.delivery_state(gid), self.keys.outbox(shard)]

    async def mark(self, shard: int, entry_id: str, gid: str, integration: str, seq: int, state_json: str) -> None:
        """Record `seq` as delivered on its lane (with the receiver's state, "" to keep it) and acknowledge and
        delete the entry."""
        await self.scripts.mark_delivered(keys=self._mark_keys(gid, shard),
                                          args=[integration, seq, state_json, CONSUMER_GROUP, entry_id, MARK_TTL])

    def marks(self) -> MarkBatch:
        return MarkBatch(self)

    async def enqueue(self, gid: str, ttl: int, notifications: list[tuple[str, str, str]]) -> None:
        """Append notifications (integration, receiver, JSON) on `gid`'s lanes with their next sequence numbers
        (Lua `enqueue_notifications`), for what no group flush commits (a digest item escalated at once)."""
        args: list[Any] = [gid, ttl]
        for integ, receiver, doc in notifications:
            args += [integ, receiver, doc]
        shard = self.keys.shard_of(gid)
        await self.scripts.enqueue_notifications(keys=[self.keys.outbox(shard), self.keys.seq(gid)], args=args)
