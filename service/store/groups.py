"""Aggregation groups in Redis: group state and membership (Lua `group_upsert`), the per-shard group timers
(claimed by Lua `claim_due_groups`), the inhibition source index, and a flush's commit (Lua `commit_flush`).

The pipeline (service/pipeline/dispatch.py) decides; this module reads and writes what it decided, each batch in
one round trip. Group ids, route ids and group keys are opaque strings here.

Every write of a group timer goes through here, so a single writer (replay) that keeps its own copy of its timers
sets `due_log` and is told each one as it is written: `group(gid, t | None)` (ZADD / ZREM, t in seconds),
`touch_group(gid, t)` (ZADD XX), `claimed(shard, gids, lease_until, earliest | None)` (a claim's answer).
"""
from __future__ import annotations

from service.core import fastjson as json
from dataclasses import dataclass, field
from typing import Any, Sequence

from redis.asyncio import Redis

from service.store.keys import Keys, Scripts, execute_behind, queue_script

GROUP_TTL = 7 * 24 * 3600  # idle group state is dropped after a week without alerts
STATE_TTL = 30 * 24 * 3600

# group shard -> gid -> (group header: gid, route id, group key, labels JSON, group_wait ms;
#                        flat memberships: fp, generation, startsAt ms, ...)
Memberships = dict[int, dict[str, tuple[list[Any], list[Any]]]]


def _s(b: Any) -> str:
    return b.decode() if isinstance(b, bytes) else b


@dataclass
class RawGroup:
    """A group's stored state, decoded to strings (the notification log entries still JSON)."""

    meta: dict[str, str]  # route, key, labels (JSON), created, flushed
    members: dict[str, str]  # fp -> generation
    nflog: dict[str, Any]  # integration -> Entry JSON


@dataclass
class Commit:
    """What one flush commits (Lua `commit_flush`): the notification log entries, the outbox entries, the
    members to remove, and the next due time; applied only while `token` still holds the group's claim."""

    gid: str
    token: str
    next_due_ms: int
    nflog: list[tuple[str, str]] = field(default_factory=list)  # (integration, Entry JSON)
    notifications: list[tuple[str, str, str]] = field(default_factory=list)  # (integration, receiver, JSON)
    removals: list[tuple[str, str]] = field(default_factory=list)  # (fp, generation)
    empties: bool = False  # every member leaves: commit_flush deletes the group (and its timer)


class GroupStore:
    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts):
        self.redis = redis
        self.keys = keys
        self.scripts = scripts
        self.due_log: Any = None  # a single writer's copy of its timers, told every timer write (see above)

    def _log_upserts(self, memberships: Memberships, dues: list[float]) -> None:
        if self.due_log is not None:  # group_upsert answers each group's due time, in the order of its arguments
            for gid, d in zip((gid for items in memberships.values() for gid in items), dues):
                self.due_log.group(gid, d / 1000)

    # -- memberships ----------------------------------------------------------------------------------------

    def _queue_upserts(self, pipe: Any, shard: int, items: dict[str, tuple[list[Any], list[Any]]],
                       now_ms: int) -> None:
        """One `group_upsert` call for a shard: per group its header (gid, route, key, labels, group_wait) and
        all the memberships this request writes into it (fp, generation, startsAt), so a batch that brings 64
        alerts of one group writes the group once."""
        keys = [self.keys.due(shard)]
        args: list[Any] = [now_ms, GROUP_TTL]
        for gid, (head, members) in items.items():
            keys += [self.keys.group_meta(gid), self.keys.group_members(gid)]
            args += head
            args.append(len(members) // 3)
            args += members
        queue_script(pipe, self.scripts.group_upsert, keys=keys, args=args)

    async def write_ingest(self, sources: dict[str, dict[str, int]], memberships: Memberships,
                           grouped: dict[int, list[str]], config_hash: str, now_ms: int) -> list[float]:
        """An ingest request's writes in one round trip: the inhibition sources (key -> fp -> endsAt ms), the
        group upserts, and last the alerts whose memberships are now written under `config_hash` (alert shard ->
        fps: after a crash in between, the next re-send writes the memberships again). Returns the due times (ms)
        the group upserts answered."""
        pipe = self.redis.pipeline(transaction=False)
        queued = 0
        for k, mapping in sources.items():
            pipe.hset(k, mapping=mapping)
            pipe.expire(k, GROUP_TTL)
            queued += 2
        group_slots: list[int] = []  # positions of group_upsert results in the pipeline
        for shard, items in memberships.items():
            self._queue_upserts(pipe, shard, items, now_ms)
            group_slots.append(queued)
            queued += 1
        for shard, fps in grouped.items():
            pipe.hset(self.keys.alerts_grouped(shard), mapping=dict.fromkeys(fps, config_hash))
            queued += 1
        if not queued:
            return []
        res = await pipe.execute()
        dues = [float(d) for i in group_slots for d in res[i]]
        self._log_upserts(memberships, dues)
        return dues

    async def upsert(self, memberships: Memberships, now_ms: int) -> list[float]:
        """Group upserts alone (one script call per shard, one round trip); returns the due times (ms)."""
        if not memberships:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for shard, items in memberships.items():
            self._queue_upserts(pipe, shard, items, now_ms)
        dues = [float(d) for res in await pipe.execute() for d in res]
        self._log_upserts(memberships, dues)
        return dues

    async def member_fingerprints(self, gid: str) -> list[str]:
        return [_s(k) for k in await self.redis.hgetall(self.keys.group_members(gid))]

    async def drop_members(self, drops: list[tuple[str, list[str]]], behind: bool = False) -> None:
        """Remove memberships: (gid, fingerprints) pairs, in one round trip (`behind`: with a write-behind
        client, sent with its next call)."""
        pipe = self.redis.pipeline(transaction=False)
        for gid, fps in drops:
            if fps:
                pipe.hdel(self.keys.group_members(gid), *fps)
        await (execute_behind(pipe) if behind else pipe.execute())

    async def memberships(self, chunk: int = 500) -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
        """Every group with a timer: (fingerprint -> {gid: generation}, gid -> group labels), `chunk` groups per
        round trip."""
        gids: list[str] = []
        for shard in range(self.keys.shards):
            gids += [_s(g) for g in await self.redis.zrange(self.keys.due(shard), 0, -1)]
        current: dict[str, dict[str, str]] = {}
        labels: dict[str, dict[str, str]] = {}
        for i in range(0, len(gids), chunk):
            part = gids[i:i + chunk]
            pipe = self.redis.pipeline(transaction=False)
            for gid in part:
                pipe.hget(self.keys.group_meta(gid), "labels")
                pipe.hgetall(self.keys.group_members(gid))
            res = await pipe.execute()
            for j, gid in enumerate(part):
                gl, members = res[2 * j], res[2 * j + 1]
                if gl is not None:
                    labels[gid] = json.loads(_s(gl))
                for fp, gen in members.items():
                    current.setdefault(_s(fp), {})[gid] = _s(gen)
        return current, labels

    # -- reading groups -------------------------------------------------------------------------------------

    async def load(self, gids: list[str]) -> dict[str, RawGroup]:
        """Groups' stored state in one round trip (a group that does not exist is left out)."""
        pipe = self.redis.pipeline(transaction=False)
        for gid in gids:
            pipe.hgetall(self.keys.group_meta(gid))
            pipe.hgetall(self.keys.group_members(gid))
            pipe.hgetall(self.keys.nflog(gid))
        res = await pipe.execute()
        out: dict[str, RawGroup] = {}
        for i, gid in enumerate(gids):
            meta, members, nflog = res[3 * i: 3 * i + 3]
            if not meta:
                continue
            out[gid] = RawGroup({_s(k): _s(v) for k, v in meta.items()}, {_s(k): _s(v) for k, v in members.items()},
                                {_s(k): v for k, v in nflog.items()})
        return out

    # -- inhibition sources ---------------------------------------------------------------------------------

    async def inhibit_sources(self, keys: list[str]) -> list[dict[str, int]]:
        """Each source index (fp -> endsAt ms), in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.hgetall(k)
        return [{_s(fp): int(e) for fp, e in h.items()} for h in await pipe.execute()]

    async def prune_inhibit_sources(self, stale: dict[str, list[str]]) -> None:
        """Forget sources (key -> fps) that ended long ago, so the index does not grow forever."""
        if not stale:
            return
        pipe = self.redis.pipeline(transaction=False)
        for k, fps in stale.items():
            pipe.hdel(k, *fps)
        await pipe.execute()

    # -- timers ---------------------------------------------------------------------------------------------

    async def touch(self, gids: list[str], now_ms: int) -> None:
        """Make existing groups due now (ZADD XX: a group that is gone stays gone)."""
        pipe = self.redis.pipeline(transaction=False)
        for gid in gids:
            pipe.zadd(self.keys.due(self.keys.shard_of(gid)), {gid: now_ms}, xx=True)
            if self.due_log is not None:
                self.due_log.touch_group(gid, now_ms / 1000)
        await execute_behind(pipe)

    async def forget_timers(self, gids: list[str]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for gid in gids:
            pipe.zrem(self.keys.due(self.keys.shard_of(gid)), gid)
            if self.due_log is not None:
                self.due_log.group(gid, None)
        await pipe.execute()

    async def claim_due(self, now_ms: int, lease_ms: int, batch: int, token: str, shards: list[int] | None = None,
                        prefetch: Sequence[str] = ()) -> tuple[list[tuple[str, str]], float | None]:
        """Claim up to `batch` due groups per shard (of `shards`, default all) under `token` for `lease_ms` (one
        round trip). Returns the (gid, fencing token) pairs and the earliest due time (s) left, if any.
        `prefetch`: groups expected to be claimed, whose state is read in the same round trip (a single writer's
        read cache keeps it for the flush that loads it next)."""
        shards = list(range(self.keys.shards)) if shards is None else shards
        pipe = self.redis.pipeline(transaction=False)
        for shard in shards:
            queue_script(pipe, self.scripts.claim_due_groups, keys=[self.keys.due(shard), self.keys.claims(shard)],
                         args=[now_ms, lease_ms, batch, token])
        for gid in prefetch:
            pipe.hgetall(self.keys.group_meta(gid))
            pipe.hgetall(self.keys.group_members(gid))
            pipe.hgetall(self.keys.nflog(gid))
        claimed: list[tuple[str, str]] = []
        nxt: float | None = None
        for shard, res in zip(shards, (await pipe.execute())[:len(shards)]):
            *items, earliest = res
            first = len(claimed)
            for i in range(0, len(items), 3):
                claimed.append((_s(items[i]), _s(items[i + 1])))
            e = float(earliest)
            if e >= 0 and (nxt is None or e / 1000 < nxt):
                nxt = e / 1000
            if self.due_log is not None:
                self.due_log.claimed(shard, [gid for gid, _ in claimed[first:]], (now_ms + lease_ms) / 1000,
                                     e / 1000 if e >= 0 else None)
        return claimed, nxt

    async def next_due(self) -> float | None:
        """The earliest group timer (s)."""
        best = None
        for t in await self.first_scores([self.keys.due(shard) for shard in range(self.keys.shards)]):
            if t is not None:
                t /= 1000
                best = t if best is None or t < best else best
        return best

    async def first_scores(self, zsets: list[str]) -> list[float | None]:
        """The lowest score of each sorted set (None: empty), in one round trip: the group timers' keys and any
        other timer index (the incident store's lifecycle times)."""
        pipe = self.redis.pipeline(transaction=False)
        for k in zsets:
            pipe.zrange(k, 0, 0, withscores=True)
        return [float(r[0][1]) if r else None for r in await pipe.execute()]

    # -- commit ---------------------------------------------------------------------------------------------

    def _queue_commit(self, pipe: Any, c: Commit) -> None:
        shard = self.keys.shard_of(c.gid)
        args: list[Any] = [c.gid, c.token, c.next_due_ms, max(GROUP_TTL, 5 * 24 * 3600), len(c.nflog),
                           len(c.notifications), len(c.removals), STATE_TTL]
        for integ, entry in c.nflog:
            args += [integ, entry]
        for integ, receiver, doc in c.notifications:
            args += [integ, receiver, doc]
        for fp, gen in c.removals:
            args += [fp, gen]
        gid = c.gid
        queue_script(pipe, self.scripts.commit_flush,
                     keys=[self.keys.group_meta(gid), self.keys.group_members(gid), self.keys.due(shard),
                           self.keys.claims(shard), self.keys.nflog(gid), self.keys.outbox(shard), self.keys.seq(gid)],
                     args=args)

    async def commit(self, commits: list[Commit]) -> list[bool]:
        """Commit flushes (one script call each, one round trip); False where the claim was lost."""
        if not commits:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for c in commits:
            self._queue_commit(pipe, c)
        done = [bool(int(ok)) for ok in await pipe.execute()]
        if self.due_log is not None:
            for c, ok in zip(commits, done):
                if ok:
                    self.due_log.group(c.gid, None if c.empties else c.next_due_ms / 1000)
        return done
