"""All of Tocsin's Redis keys and Lua scripts, in one place.

Key layout (``P`` is the configurable prefix; ``{sN}`` is a hash tag, so everything one script touches lives in
one Redis Cluster slot):

  P:{sN}:alerts            hash  fingerprint -> alert record      (alert store, sharded by fingerprint)
  P:{sN}:alerts:ends       zset  fingerprint -> endsAt ms         (retention sweeps, listing)
  P:{sN}:alerts:grouped    hash  fingerprint -> config hash        (its group memberships are written)
  P:{sN}:due               zset  group id -> next flush ms        (group timers, sharded by group id)
  P:{sN}:claims            hash  group id -> fencing token
  P:{sN}:g:<gid>           hash  route, key, labels, created, flushed
  P:{sN}:gm:<gid>          hash  fingerprint -> generation        (group membership)
  P:{sN}:nf:<gid>          hash  integration -> notification-log entry
  P:{sN}:seq:<gid>         hash  integration -> last enqueued sequence number
  P:{sN}:ds:<gid>          hash  integration:seq / integration:state (delivery progress)
  P:{sN}:outbox            stream of decided notifications (consumer group "delivery")
  P:{sN}:esc:<eid>         hash  incident, policy, step, route, done   (escalations)
  P:{sN}:esc:due / claims  zset / hash, like the group timers
  P:{inh}:<rule>:<eqhash>  hash  fingerprint -> endsAt ms         (inhibition sources)
  P:{sil}:silences         hash  silence id -> silence json
  P:{sil}:version          string, bumped on every silence change

No code path uses KEYS or a multi-key command across hash tags.
"""
from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from typing import Any
from pathlib import Path

from redis.asyncio import Redis

LUA_DIR = Path(__file__).parent / "lua"
CONSUMER_GROUP = "delivery"


def _crc(s: str) -> int:
    return zlib.crc32(s.encode())


@dataclass(frozen=True)
class Keys:
    prefix: str = "tocsin"
    shards: int = 16

    def shard_of(self, ident: str) -> int:
        return _crc(ident) % self.shards

    def tag(self, shard: int) -> str:
        return f"{self.prefix}:{{s{shard}}}"

    # alert store
    def alerts(self, shard: int) -> str:
        return f"{self.tag(shard)}:alerts"

    def alert_ends(self, shard: int) -> str:
        return f"{self.tag(shard)}:alerts:ends"

    def alerts_grouped(self, shard: int) -> str:
        return f"{self.tag(shard)}:alerts:grouped"

    # groups
    def due(self, shard: int) -> str:
        return f"{self.tag(shard)}:due"

    def claims(self, shard: int) -> str:
        return f"{self.tag(shard)}:claims"

    def group_meta(self, gid: str) -> str:
        return f"{self.tag(self.shard_of(gid))}:g:{gid}"

    def group_members(self, gid: str) -> str:
        return f"{self.tag(self.shard_of(gid))}:gm:{gid}"

    def nflog(self, gid: str) -> str:
        return f"{self.tag(self.shard_of(gid))}:nf:{gid}"

    def seq(self, gid: str) -> str:
        return f"{self.tag(self.shard_of(gid))}:seq:{gid}"

    def delivery_state(self, gid: str) -> str:
        return f"{self.tag(self.shard_of(gid))}:ds:{gid}"

    def outbox(self, shard: int) -> str:
        return f"{self.tag(shard)}:outbox"

    # escalations (sharded by escalation id, like groups, so a step and its outbox entries commit together)
    def esc(self, eid: str) -> str:
        return f"{self.tag(self.shard_of(eid))}:esc:{eid}"

    def esc_due(self, shard: int) -> str:
        return f"{self.tag(shard)}:esc:due"

    def esc_claims(self, shard: int) -> str:
        return f"{self.tag(shard)}:esc:claims"

    # inhibition
    def inhibit_sources(self, rule_id: str, equal_key: str) -> str:
        h = hashlib.sha1(equal_key.encode()).hexdigest()[:16]
        return f"{self.prefix}:{{inh}}:{rule_id}:{h}"

    # silences
    def silences(self) -> str:
        return f"{self.prefix}:{{sil}}:silences"

    def silences_version(self) -> str:
        return f"{self.prefix}:{{sil}}:version"

    # misc
    def dedup(self, namespace: str, ident: str) -> str:
        return f"{self.prefix}:{{dedup}}:{namespace}:{ident}"


def group_id(route_id: str, group_key: str) -> str:
    """A stable id for an aggregation group (route + group key)."""
    return hashlib.sha1(f"{route_id}\x00{group_key}".encode()).hexdigest()[:20]


class Scripts:
    """The Lua scripts, registered once per client and run by EVALSHA (redis-py reloads them on NOSCRIPT)."""

    NAMES = (
        "upsert_alert_merge",
        "group_upsert",
        "claim_due_groups",
        "commit_flush",
        "mark_delivered",
        "sweep_resolved_alerts",
        "start_escalation",
        "commit_escalation",
        "enqueue_notifications",
    )

    def __init__(self, redis: Redis):
        for name in self.NAMES:
            setattr(self, name, redis.register_script((LUA_DIR / f"{name}.lua").read_text()))


def ms(t: float) -> int:
    return int(round(t * 1000))


def queue_script(pipe: Any, script: Any, keys: list[str], args: list[Any]) -> None:
    """Queue an EVALSHA of a registered script on a pipeline (the pipeline loads it on NOSCRIPT)."""
    pipe.scripts.add(script)
    pipe.evalsha(script.sha, len(keys), *keys, *args)
