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
  P:{dN}:detect:state / cursor, P:{det}:detect:shadow   the detectors' state (DetectKeys, service/store/detect.py)
  P:{co:<domain>}:n / lead / p:<key>   learned co-occurrence (Keys.cooccurrence, service/store/cooccurrence.py)
  P:{inc:<domain>}:...     the incident store's keys (IncidentKeys, service/incidents/store.py)
  P:{dig:<integration>}:buf / due / last   a digest's buffer, next run, last run (service/store/digests.py)
  P:ui:session:<hash>      string  a web UI session (service/store/sessions.py)
  P:ui:login-failures:<h>  string  wrong login tokens from one address in the current window
  P:{slackreplay}:<sig>    string  a signed Slack request already handled (service/store/once.py)
  P:{pdwebhook}:<event>    string  a PagerDuty webhook event already handled
  P:{summaries}:cache:<d>  string  an LLM summary by evidence digest; P:{summaries}:budget:<hour> its call budget
  P:{feedback}:votes:<id>  hash    who -> 1|0 on an incident's summary; P:{feedback}:totals  hash helpful, total

No code path uses KEYS or a multi-key command across hash tags (tests/test_cluster_slots.py runs the pipeline on a
real 3-master cluster to prove it).

Connections (`open_redis`): `redis://`, `rediss://` and `unix://` URLs get one server through a blocking pool
whose connections pack commands with hiredis; `redis+cluster://host:port` (`rediss+cluster://` with TLS) gets a
Redis Cluster through redis-py's RedisCluster, discovered from that seed node.
"""
from __future__ import annotations

import hashlib
import inspect
import zlib
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.client import EMPTY_RESPONSE, NEVER_DECODE
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import ExecAbortError, NoScriptError, ResponseError, WatchError

from service.core.clock import ms  # noqa: F401  (scores are integer milliseconds; imported from here too)
from service.store.read_cache import MISS, ReadCache

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

    # the web UI (single-key commands: no hash tag needed)
    def ui_session(self, sid_hash: str) -> str:
        return f"{self.prefix}:ui:session:{sid_hash}"

    def ui_login_failures(self, addr_hash: str) -> str:
        return f"{self.prefix}:ui:login-failures:{addr_hash}"

    # the signed doors' replay memory (single keys)
    def slack_replay(self, signature_key: str) -> str:
        return f"{self.prefix}:{{slackreplay}}:{signature_key}"

    def pagerduty_webhook(self, event_id: str) -> str:
        return f"{self.prefix}:{{pdwebhook}}:{event_id}"

    # summaries (service/store/summaries.py)
    def summary_cache(self, digest: str) -> str:
        return f"{self.prefix}:{{summaries}}:cache:{digest}"

    def summary_budget(self, hour: int) -> str:
        return f"{self.prefix}:{{summaries}}:budget:{hour}"

    def summary_votes(self, incident_id: str) -> str:
        return f"{self.prefix}:{{feedback}}:votes:{incident_id}"

    def summary_vote_totals(self) -> str:
        return f"{self.prefix}:{{feedback}}:totals"

    # digests (service/store/digests.py): one hash tag per digest integration
    def digest(self, integration: str, what: str) -> str:
        return f"{self.prefix}:{{dig:{integration}}}:{what}"

    # learned co-occurrence (service/store/cooccurrence.py): one hash tag per correlation domain
    def cooccurrence(self, domain: str) -> CooccurrenceKeys:
        return CooccurrenceKeys(f"{self.prefix}:{{co:{domain}}}")

    # misc
    def dedup(self, namespace: str, ident: str) -> str:
        return f"{self.prefix}:{{dedup}}:{namespace}:{ident}"


@dataclass(frozen=True)
class DetectKeys:
    """The detectors' keys (service/store/detect.py): their own hash tags {dN}, N = crc32(series id) % shards."""

    prefix: str = "tocsin"
    shards: int = 16

    def shard_of(self, ident: str) -> int:
        return zlib.crc32(ident.encode()) % self.shards

    def state(self, shard: int) -> str:
        return f"{self.prefix}:{{d{shard}}}:detect:state"

    def cursor(self, shard: int) -> str:
        return f"{self.prefix}:{{d{shard}}}:detect:cursor"

    def shadow(self) -> str:
        return f"{self.prefix}:{{det}}:detect:shadow"


@dataclass
class IncidentKeys:
    """The incident store's keys (service/incidents/store.py): one hash tag per correlation domain."""

    base: str

    @staticmethod
    def of(prefix: str, domain: str) -> IncidentKeys:
        return IncidentKeys(f"{prefix}:{{inc:{domain}}}")

    @staticmethod
    def domain_index(prefix: str) -> str:
        """hash incident id -> domain (only for non-default domains)."""
        return f"{prefix}:{{incidx}}:dom"

    @staticmethod
    def domains(prefix: str) -> str:
        """set: every correlation domain that has had an incident."""
        return f"{prefix}:{{incidx}}:domains"

    @property
    def ver(self) -> str:
        return f"{self.base}:ver"

    @property
    def open(self) -> str:
        return f"{self.base}:open"

    @property
    def fp(self) -> str:
        return f"{self.base}:fp"

    @property
    def all(self) -> str:
        return f"{self.base}:all"

    @property
    def fb(self) -> str:
        return f"{self.base}:fb"

    @property
    def cmodel(self) -> str:
        """hash feature|"bias" -> this installation's learned offset to the shipped confidence model's weight,
        and "verdicts" -> how many verdicts it learned from."""
        return f"{self.base}:cmodel"

    @property
    def fs(self) -> str:
        """hash fingerprint -> "<incident id>|<firing|resolved>": the re-send fast path in one read (a cache of
        base:fp and the member's status, written with them; the slow path re-checks everything)."""
        return f"{self.base}:fs"

    @property
    def due(self) -> str:
        """zset id -> when time next changes the incident (lifecycle.due_at)."""
        return f"{self.base}:due"

    @property
    def act(self) -> str:
        """zset "entity|onset" -> onset: entities that became active recently (for learning co-activation)."""
        return f"{self.base}:act"

    @property
    def ent(self) -> str:
        """hash entity -> activations (an entity's first alert in an incident)."""
        return f"{self.base}:ent"

    @property
    def pair(self) -> str:
        """hash "a\x1fb" (sorted) -> co-activations within the cross window."""
        return f"{self.base}:pair"

    @property
    def hist(self) -> str:
        """hash fingerprint -> episodes seen (a series' own firing history)."""
        return f"{self.base}:hist"

    @property
    def cad(self) -> str:
        """hash entity -> the shortest episode seen (the cadence of the entity's source)."""
        return f"{self.base}:cad"

    @property
    def t0(self) -> str:
        """string: when this domain saw its first alert (the span base rates are measured over)."""
        return f"{self.base}:t0"

    def meta(self, iid: str) -> str:
        return f"{self.base}:i:{iid}"

    def members(self, iid: str) -> str:
        return f"{self.base}:m:{iid}"

    def timeline(self, iid: str) -> str:
        return f"{self.base}:tl:{iid}"


@dataclass(frozen=True)
class CooccurrenceKeys:
    """Learned co-occurrence's keys (service/store/cooccurrence.py): one hash tag per correlation domain."""

    base: str

    @property
    def n(self) -> str:
        """hash key -> "count|t": incidents containing key."""
        return f"{self.base}:n"

    @property
    def lead(self) -> str:
        """hash key -> "count|t": incidents where key fired first."""
        return f"{self.base}:lead"

    def pair(self, key: str) -> str:
        """hash other -> "count|t": incidents containing both."""
        return f"{self.base}:p:{key}"


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


async def execute_behind(pipe: Any) -> None:
    """`pipe.execute()` for writes whose replies are not read: a write-behind client sends them with its next call
    (TocsinRedis.write_behind); any other pipeline executes now."""
    behind = getattr(pipe, "execute_behind", None)
    if behind is not None:
        await behind()
    else:
        await pipe.execute()


def queue_script(pipe: Any, script: Any, keys: list[str], args: list[Any]) -> None:
    """Queue an EVALSHA of a registered script on a pipeline. A plain redis-py pipeline checks its scripts with
    SCRIPT EXISTS, an extra round trip, on every execute; pipelines of `open_redis` clients skip that for scripts
    they know are loaded (see _Pipeline). A Redis Cluster pipeline cannot load scripts: there the script goes by
    EVAL (each node caches it)."""
    scripts = getattr(pipe, "scripts", None)
    if scripts is None:
        queued = getattr(pipe, "queued_scripts", None)
        if queued is None:  # some other cluster pipeline: EVAL always works (each node caches the script)
            pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
            return
        queued[len(pipe)] = script
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
        return
    scripts.add(script)
    # execute_command directly: redis-py's evalsha() wrapper layers cost more than the packing
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


# -- connections ------------------------------------------------------------------------------------------------

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


class _HiredisPacking:
    """Pack commands with hiredis (C) instead of redis-py's Python packer: the same bytes (checked for str,
    bytes, int and float arguments), a fifth of ingest's CPU before. Anything hiredis does not take (a
    memoryview, a command name with a space) goes the usual way."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0]
        if (isinstance(first, str) and " " not in first) or (isinstance(first, bytes) and b" " not in first):
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass
        return super().pack_command(*args)  # type: ignore[misc]


_FAST: dict[type, type] = {}


def fast_connection_class(base: type) -> type:
    cls = _FAST.get(base)
    if cls is None:
        cls = _FAST[base] = type(f"Fast{base.__name__}", (_HiredisPacking, base), {})
    return cls


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


class _Pipeline(Pipeline):
    """A pipeline that remembers (per client) which scripts the server has, so that it needs no SCRIPT EXISTS
    round trip before each execute. When the server lost its scripts meanwhile (a restart, SCRIPT FLUSH), the
    EVALSHAs answered NOSCRIPT are loaded and run again right after the rest of the pipeline: every pipeline of
    Tocsin's is a batch of independent commands whose order matters only across a crash, which this does not
    widen (the retried command runs before execute returns)."""

    loaded_scripts: set[str]
    lean_client: "TocsinRedis | None" = None

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.lean_client is not None and not (self.is_transaction or self.explicit_transaction or self.watching) \
                and not self.scripts:
            commands, self.command_stack = self.command_stack, []
            if not commands:
                return []
            res = await self.lean_client.lean_run(commands)
            if raise_on_error:
                for i, r in enumerate(res):
                    if isinstance(r, ResponseError):
                        self.annotate_exception(r, i + 1, commands[i][0])
                        raise r
            return res
        lean = self.lean_client
        cache = lean.read_cache if lean is not None else None
        run = self._execute_scripts
        if lean is not None and (self.is_transaction or self.explicit_transaction) and not self.watching \
                and not any(EMPTY_RESPONSE in o for _a, o in self.command_stack):
            if not self.command_stack:
                return []
            if self.scripts:
                await self.load_scripts()
                if self.connection is not None:  # (SCRIPT EXISTS ran on a pool connection)
                    stack, self.command_stack = self.command_stack, []
                    await self.reset()
                    self.command_stack = stack
            stack, self.command_stack, self.scripts = self.command_stack, [], set()
            self.explicit_transaction = False

            async def run(raise_on_error: bool) -> list[Any]:
                return await lean.lean_transaction(stack, raise_on_error)
            commands = stack
        else:
            commands = list(self.command_stack)
        if cache is None:
            return await run(raise_on_error)
        _known, token = cache.before(commands, serve=False)
        try:
            res = await run(raise_on_error)
        except BaseException:
            cache.after(commands, None, token)
            raise
        cache.after(commands, [], token)
        return res

    async def execute_behind(self) -> None:
        """execute(), for writes whose replies the caller does not read: with a write-behind client (replay) they
        go out in front of its next call (an error then fails that call); otherwise now."""
        lean = self.lean_client
        stack = self.command_stack
        if lean is None or not lean.write_behind or self.watching or not stack \
                or any(s.sha not in self.loaded_scripts for s in self.scripts) \
                or not all(ReadCache.is_write(args) for args, _ in stack):
            await self.execute()
            return
        transaction = self.is_transaction or self.explicit_transaction
        self.command_stack, self.scripts, self.explicit_transaction = [], set(), False
        lean.defer(stack, transaction)

    async def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        if self.lean_client is not None:
            await self.lean_client.flush_behind()
        return await super().immediate_execute_command(*args, **options)

    async def load_scripts(self) -> None:
        if all(s.sha in self.loaded_scripts for s in self.scripts):
            return
        await super().load_scripts()
        self.loaded_scripts.update(s.sha for s in self.scripts)

    async def _execute_scripts(self, raise_on_error: bool = True) -> list[Any]:
        if self.is_transaction or self.explicit_transaction or not self.scripts:
            if self.lean_client is not None:
                await self.lean_client.flush_behind()  # (the usual path: another connection)
            return await super().execute(raise_on_error)
        stack = [args for args, _options in self.command_stack]  # execute() resets the pipeline
        scripts = {s.sha: s for s in self.scripts}
        pool = self.connection_pool
        lean = self.lean_client
        if lean is not None and not self.watching:
            await self.load_scripts()
            commands, self.command_stack, self.scripts = self.command_stack, [], set()
            if self.connection is not None:  # load_scripts ran SCRIPT EXISTS on a pool connection: give it back
                await self.reset()
            res = await lean.lean_run(commands)
        else:
            if lean is not None:
                await lean.flush_behind()
            res = await super().execute(raise_on_error=False)
        missing = [i for i, r in enumerate(res) if isinstance(r, NoScriptError)]
        if missing:
            self.loaded_scripts.clear()
            client = Redis(connection_pool=pool)
            for i in missing:
                sha = stack[i][1]
                await client.script_load(scripts[sha].script)
                try:
                    res[i] = await client.execute_command(*stack[i])
                except ResponseError as e:
                    res[i] = e
        if raise_on_error:
            for r in res:
                if isinstance(r, ResponseError):
                    raise r
        return res


class BlockingConnection:
    """A lean connection whose round trips block: redis-py's synchronous connection (its handshake, its hiredis
    parser, its exceptions) made from the async pool's settings, behind the few async methods the lean path calls.
    On a small machine, a round trip through the event loop (send, await the reader, epoll, the transport's
    callback, the future) costs three times the round trip itself (~70 against ~20 µs to a local server); a caller
    whose loop has nothing else to do while it waits (replay) loses nothing by blocking. The async methods never
    suspend. Only for a server over TCP or a unix socket without TLS; `open` returns None for anything else (the
    caller then uses the pool). Commands are packed by the pool's own connection class (hiredis), so the bytes
    are the pool's."""

    # The pool's connection settings that mean the same to redis-py's synchronous connection (its retry and
    # event-dispatcher objects are asyncio ones and stay behind: a lean call fails on a connection error).
    SETTINGS = ("host", "port", "path", "username", "password", "db", "client_name", "protocol", "encoding",
                "encoding_errors", "decode_responses", "socket_timeout", "socket_connect_timeout",
                "socket_keepalive", "socket_keepalive_options", "lib_name", "lib_version")

    def __init__(self, conn: Any, packer: Any):
        self.conn = conn
        self.packer = packer  # an unconnected pool connection: the same packing as the pool's

    @classmethod
    def open(cls, pool: Any) -> "BlockingConnection | None":
        from redis import connection as sync

        kw = pool.connection_kwargs
        if kw.get("ssl") or kw.get("credential_provider") or pool.connection_class.__name__.endswith("SSLConnection"):
            return None
        settings = {k: kw[k] for k in cls.SETTINGS if k in kw}
        conn = (sync.UnixDomainSocketConnection if "path" in settings else sync.Connection)(**settings)
        conn.connect()  # the handshake: protocol, credentials, name, database
        return cls(conn, pool.make_connection())

    def pack_commands(self, commands: Any) -> list[bytes]:
        return self.packer.pack_commands(commands)

    async def send_packed_command(self, command: list[bytes], check_health: bool = False) -> None:
        self.conn.send_packed_command([b"".join(command)], check_health=False)

    async def read_response(self, disable_decoding: bool = False) -> Any:
        return self.conn.read_response(disable_decoding=disable_decoding)

    async def disconnect(self) -> None:
        self.conn.disconnect()


class TocsinRedis(Redis):
    """redis-py's client, whose pipelines are _Pipeline.

    `lean = True` (a batch job on a server of its own: replay) sends plain commands and pipelines straight over
    connections it keeps, one per concurrent caller: the same bytes and the same parsed replies, without the
    pool, retry, health-check and metrics layers each round trip otherwise goes through (on a small machine
    those cost more than the round trip). A connection error fails the call (no retry). Transactions without
    WATCH go the same way (MULTI..EXEC in one write); anything under WATCH takes the usual path. `read_cache` and
    `write_behind` (a single writer only) are described where they are set."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.loaded_scripts: set[str] = set()
        self.lean = False
        self._lean_idle: list[Any] = []
        self.read_cache: ReadCache | None = None  # with `lean` only: a single writer's read-your-own-writes
        # With `lean` only: writes whose replies nobody reads (execute_behind) go out with the next call, all
        # calls over one connection in order, so Redis applies them before anything sent after them.
        self.write_behind = False
        self._behind: list[tuple[list[Any], bool, list[Any], Any]] = []  # (commands, transaction, wire, token)
        self._lean_lock: Any = None
        # With `lean` only: the lean path's round trips block (redis-py's synchronous connection) instead of going
        # through the event loop (a batch job whose loop has nothing else to do while it waits: replay). See
        # BlockingConnection.
        self.blocking = False

    async def _lean_conn(self) -> Any:
        if self._lean_idle:
            return self._lean_idle.pop()
        if self.blocking:
            conn = BlockingConnection.open(self.connection_pool)
            if conn is not None:
                return conn
        return await self.connection_pool.get_connection()

    async def _lean_drop(self, conn: Any) -> None:
        """A lean connection that may be out of step (an error mid-reply): closed, never reused."""
        await conn.disconnect()
        if not isinstance(conn, BlockingConnection):
            await self.connection_pool.release(conn)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        pipe = _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
        pipe.loaded_scripts = self.loaded_scripts
        if self.lean:
            pipe.lean_client = self
        return pipe

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if not self.lean or args[0] in ("WATCH", "MULTI", "EXEC", "UNWATCH", "DISCARD"):
            if self._behind:
                await self.flush_behind()
            return await super().execute_command(*args, **options)
        (res,) = await self.lean_run([(args, options)])
        if isinstance(res, ResponseError):
            raise res
        return res

    async def lean_run(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        """Send `commands` in one write and read their replies (a ResponseError in place of a failed one),
        parsed as redis-py parses them. With a read cache (service/store/read_cache.py), the reads it knows are
        answered from it and only the rest go out (none: no round trip)."""
        cache = self.read_cache
        if cache is None:
            return await self._lean_send(commands)
        known, token = cache.before(commands)
        send = [c for c, k in zip(commands, known) if k is MISS]
        try:
            replies = await self._lean_send(send) if send else []
        except BaseException:
            cache.after(commands, None, token)
            raise
        it = iter(replies)
        out = [next(it) if k is MISS else k for k in known]
        cache.after(commands, out, token)
        return out

    def defer(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]], transaction: bool) -> None:
        """Queue writes to go out in front of the next call (see write_behind)."""
        token = self.read_cache.before(commands, serve=False)[1] if self.read_cache is not None else None
        wire = [args for args, _ in commands]
        if transaction:
            wire = [("MULTI",), *wire, ("EXEC",)]
        self._behind.append((commands, transaction, wire, token))

    async def flush_behind(self) -> None:
        if self._behind:
            await self._lean_send([])

    def _lock(self) -> Any:
        if self._lean_lock is None:
            import asyncio

            self._lean_lock = asyncio.Lock()
        return self._lean_lock

    async def _read_behind(self, conn: Any, pending: list[tuple[list[Any], bool, list[Any], Any]]) -> Any:
        """Read the replies of written-behind commands; returns the first error (after reading all)."""
        first: Any = None
        for commands, _transaction, wire, token in pending:
            err: Any = None
            for _ in range(len(wire)):
                try:
                    r = await conn.read_response()
                except ResponseError as e:
                    err = err or e
                    continue
                if isinstance(r, list):  # EXEC's replies
                    err = err or next((x for x in r if isinstance(x, ResponseError)), None)
            if self.read_cache is not None:
                self.read_cache.after(commands, None if err is not None else [], token)
            first = first or err
        return first

    async def _lean_send(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        if not self.write_behind:
            return await self._lean_send_now(commands, [])
        async with self._lock():
            pending, self._behind = self._behind, []
            return await self._lean_send_now(commands, pending)

    async def _lean_send_now(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]],
                             pending: list[tuple[list[Any], bool, list[Any], Any]]) -> list[Any]:
        conn = await self._lean_conn()
        out: list[Any] = []
        try:
            wire = [a for item in pending for a in item[2]] + [args for args, _ in commands]
            await conn.send_packed_command(conn.pack_commands(wire), check_health=False)
            behind_error = await self._read_behind(conn, pending) if pending else None
            callbacks = self.response_callbacks
            for args, options in commands:
                try:
                    r = await conn.read_response(disable_decoding=NEVER_DECODE in options)
                except ResponseError as e:
                    out.append(options[EMPTY_RESPONSE] if EMPTY_RESPONSE in options else e)
                    continue
                cb = callbacks.get(args[0])
                if cb is not None:
                    if options:
                        options = {k: v for k, v in options.items() if k not in (NEVER_DECODE, EMPTY_RESPONSE, "keys")}
                    r = cb(r, **options)
                    if inspect.isawaitable(r):
                        r = await r
                out.append(r)
        except BaseException:
            await self._lean_drop(conn)
            raise
        self._lean_idle.append(conn)
        if behind_error is not None:
            raise behind_error  # a write sent behind failed: the caller's state is not what it thinks
        return out

    async def lean_transaction(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]],
                               raise_on_error: bool = True) -> list[Any]:
        """MULTI, `commands`, EXEC in one write (no WATCH: the caller is the only writer), as redis-py's
        transaction pipeline reads and parses them."""
        if self.write_behind:
            async with self._lock():
                pending, self._behind = self._behind, []
                return await self._lean_transaction_now(commands, raise_on_error, pending)
        return await self._lean_transaction_now(commands, raise_on_error, [])

    async def _lean_transaction_now(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]], raise_on_error: bool,
                                    pending: list[tuple[list[Any], bool, list[Any], Any]]) -> list[Any]:
        conn = await self._lean_conn()
        try:
            response, errors = await self._lean_multi_exec(conn, commands, pending)
        except ResponseError:
            self._lean_idle.append(conn)  # every reply was read: the connection is in step
            raise
        except BaseException:
            await self._lean_drop(conn)
            raise
        self._lean_idle.append(conn)
        if response is None:
            raise WatchError("Watched variable changed.")
        for i, e in errors:
            response.insert(i, e)
        if len(response) != len(commands):
            raise ResponseError("Wrong number of response items from pipeline execution")
        if raise_on_error:
            for r in response:
                if isinstance(r, ResponseError):
                    raise r
        callbacks = self.response_callbacks
        out: list[Any] = []
        for r, (args, options) in zip(response, commands):
            if not isinstance(r, Exception):
                cb = callbacks.get(args[0])
                if cb is not None:
                    r = cb(r, **{k: v for k, v in options.items() if k != "keys"})
                    if inspect.isawaitable(r):
                        r = await r
            out.append(r)
        return out

    async def _lean_multi_exec(self, conn: Any, commands: list[tuple[tuple[Any, ...], dict[str, Any]]],
                               pending: list[Any]) -> tuple[Any, list[Any]]:
        """Send the pending writes, MULTI, the commands and EXEC; read every reply. Returns (EXEC's reply,
        queueing errors)."""
        errors: list[tuple[int, ResponseError]] = []
        wire = [a for item in pending for a in item[2]]
        await conn.send_packed_command(conn.pack_commands([*wire, ("MULTI",), *(a for a, _ in commands), ("EXEC",)]),
                                       check_health=False)
        behind_error = await self._read_behind(conn, pending) if pending else None
        if behind_error is not None:
            for _ in range(len(commands) + 2):  # keep the connection in step, then fail
                try:
                    await conn.read_response()
                except ResponseError:
                    pass
            raise behind_error
        try:
            await conn.read_response()
        except ResponseError as e:
            errors.append((0, e))
        for i, _cmd in enumerate(commands):
            try:
                await conn.read_response()
            except ResponseError as e:
                errors.append((i, e))
        try:
            return await conn.read_response(), errors
        except ExecAbortError as e:
            if errors:
                raise errors[0][1] from e
            raise

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await self.flush_behind()
        idle, self._lean_idle = self._lean_idle, []
        for conn in idle:
            if isinstance(conn, BlockingConnection):
                await conn.disconnect()
            else:
                await self.connection_pool.release(conn)
        await super().aclose(close_connection_pool)


class _ClusterPipeline(ClusterPipeline):
    """A cluster pipeline that runs scripts by EVALSHA: queue_script records them; before the first execute that
    needs one, SCRIPT LOAD puts it on every primary; a NOSCRIPT reply (a node restarted or failed over) is answered
    by running that command again by EVAL, right after the rest, as _Pipeline does on one server."""

    queued_scripts: dict[int, Any]

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        client = self.cluster_client
        if self._transaction:  # holds its connection across WATCH and reads: bounded by the per-node pool
            return await super().execute(raise_on_error, allow_redirections)
        queued, self.queued_scripts = self.queued_scripts, {}
        for script in {id(x): x for x in queued.values()}.values():
            if script.sha not in client.loaded_scripts:
                await client.script_load(script.script)
                client.loaded_scripts.add(script.sha)
        stack = {i: list(self._execution_strategy._command_queue[i].args) for i in queued} if queued else {}
        async with client.limiter():
            res = await super().execute(False, allow_redirections)
        for i, script in queued.items():
            if isinstance(res[i], NoScriptError):
                client.loaded_scripts.discard(script.sha)
                args = stack[i]
                try:
                    res[i] = await client.execute_command("EVAL", script.script, *args[2:])
                except ResponseError as e:
                    res[i] = e
        if raise_on_error:
            for r in res:
                if isinstance(r, Exception):
                    raise r
        return res


class TocsinCluster(RedisCluster):
    """redis-py's RedisCluster, with callers waiting for a free slot instead of failing: its per-node pools raise
    MaxConnectionsError at once when full (no blocking pool exists for the cluster client), which under a burst
    of delivery lanes and ingest requests answered 500. At most `concurrency` commands or pipelines are in
    flight; each uses at most one connection per node, so the per-node pools (`max_connections`) never run out
    for them (WATCH/MULTI transactions hold theirs meanwhile, bounded by the headroom)."""

    def __init__(self, *args: Any, concurrency: int = 64, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.concurrency = concurrency
        self._sem: Any = None
        self.loaded_scripts: set[str] = set()

    def limiter(self) -> Any:
        if self._sem is None:
            import asyncio

            self._sem = asyncio.Semaphore(self.concurrency)
        return self._sem

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.limiter():
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            raise ValueError("shard_hint is not supported on a cluster")
        pipe = _ClusterPipeline(self, transaction)
        pipe.queued_scripts = {}
        return pipe


async def delete_prefix(redis: Any, prefix: str) -> int:
    """Delete every key under `prefix` (SCAN, not KEYS; one key per DEL, so it works on a cluster too): the
    cleanup of a private prefix (replay on an external Redis, tests)."""
    n = 0
    async for k in redis.scan_iter(match=f"{prefix}:*", count=1000):
        n += await redis.delete(k)
    return n


async def ping(redis: Any) -> None:
    """Raise unless Redis answers (readiness)."""
    await redis.ping()


def open_redis(url: str, *, max_connections: int = 64, timeout: float = 5.0, **kw: Any) -> Redis | RedisCluster:
    """A client for `url`: `redis://`, `rediss://`, `unix://` (one server), or `redis+cluster://host:port`
    (`rediss+cluster://` with TLS), a Redis Cluster found from that seed node (redis-py's RedisCluster).

    Single server: a blocking pool, so that under a burst (concurrent flushes, delivery lanes, ingest) callers
    wait for a free connection instead of failing at once (redis-py's default pool raises MaxConnectionsError)."""
    opts: dict[str, Any] = dict(socket_timeout=timeout, socket_connect_timeout=2, health_check_interval=30)
    opts.update(kw)
    if is_cluster_url(url):
        scheme, rest = url.split("://", 1)
        plain = ("rediss" if scheme.lower().startswith("rediss") else "redis") + "://" + rest
        return TocsinCluster.from_url(plain, max_connections=4 * max_connections, concurrency=max_connections, **opts)
    pool = BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout, **opts)
    pool.connection_class = fast_connection_class(pool.connection_class)
    return TocsinRedis(connection_pool=pool)
