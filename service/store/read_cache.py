"""Read-your-own-writes for a single writer (replay): the replies of plain reads (GET, HGET, HMGET, HGETALL, HVALS,
HKEYS, HLEN, LRANGE) are kept per key and answered again until a command that may change the key goes out; a
pipeline whose every read is known then needs no round trip at all.

Exact only where this process is the one client of its keys (replay's private prefix on its own server) and every
write goes through the client that keeps the cache: TocsinRedis (service/store/keys.py) shows every command to it,
including scripts (EVALSHA/EVAL, whose keys are explicit, as Redis Cluster requires) and transactions. A command it
does not know clears everything. Keys given a time to live shorter than a day (SET EX, EXPIRE...) are never kept,
so that a key Redis expires in wall time is not answered from here; scripts set only long ones (days: the group,
notification and incident state). Replies are copied in and out (callers may change what they get).
"""
from __future__ import annotations

from typing import Any

CACHED = frozenset({"GET", "HGET", "HMGET", "HGETALL", "HVALS", "HKEYS", "HLEN", "LRANGE"})
# Reads that change nothing (not kept: answered by Redis).
PURE = frozenset({"ZRANGE", "ZRANGEBYSCORE", "ZREVRANGEBYSCORE", "ZREVRANGE", "ZSCORE", "ZMSCORE", "ZCARD", "ZCOUNT",
                  "EXISTS", "SMEMBERS", "SCARD", "SISMEMBER", "TTL", "PTTL", "XLEN", "XRANGE", "XREVRANGE", "XPENDING",
                  "XINFO", "PING", "TYPE", "STRLEN", "LLEN", "LINDEX", "SCAN", "HSCAN", "ZSCAN", "SSCAN", "MGET", "ECHO",
                  "DBSIZE", "TIME", "WATCH", "UNWATCH", "MULTI", "EXEC", "DISCARD", "HEXISTS", "SCRIPT EXISTS"})
# Writes whose one key is the first argument.
WRITE1 = frozenset({"SET", "SETNX", "SETEX", "PSETEX", "GETSET", "GETDEL", "INCR", "INCRBY", "INCRBYFLOAT", "DECR",
                    "DECRBY", "APPEND", "HSET", "HSETNX", "HMSET", "HDEL", "HINCRBY", "HINCRBYFLOAT", "EXPIRE",
                    "PEXPIRE", "EXPIREAT", "PEXPIREAT", "PERSIST", "RPUSH", "LPUSH", "RPOP", "LPOP", "LTRIM", "LSET",
                    "LREM", "LINSERT", "ZADD", "ZREM", "ZINCRBY", "ZREMRANGEBYSCORE", "ZREMRANGEBYRANK", "ZPOPMIN",
                    "ZPOPMAX", "SADD", "SREM", "SPOP", "XADD", "XACK", "XDEL", "XTRIM", "XCLAIM", "XAUTOCLAIM"})
TTL = frozenset({"EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT", "SETEX", "PSETEX", "SET"})
KIND = {**dict.fromkeys(CACHED, "c"), **dict.fromkeys(PURE, "p"), **dict.fromkeys(WRITE1, "w"),
        **dict.fromkeys(("DEL", "UNLINK", "EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO", "XREADGROUP", "XGROUP"), "k")}
DAY = 86400
MAX_KEYS = 50_000


def _name(x: Any) -> str:
    return (x.decode() if isinstance(x, bytes) else str(x)).upper()


def _key(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _enc(v: Any) -> bytes:
    """What Redis stores for an argument (redis-py's Encoder: bytes as they are, str as UTF-8, int/float by repr)."""
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v).encode()
    raise TypeError(type(v).__name__)


def _copy(v: Any) -> Any:
    if isinstance(v, dict):
        return dict(v)
    if isinstance(v, list):
        return list(v)
    return v


MISS = object()


class ReadCache:
    def __init__(self) -> None:
        self._entries: dict[str, dict[tuple[Any, ...], Any]] = {}  # key -> (command shape) -> reply
        self._version: dict[str, int] = {}  # key -> writes sent so far (a read's reply is kept only if none came)
        self._inflight: dict[str, int] = {}  # key -> writes sent and not yet answered
        self._volatile: set[str] = set()  # keys with a short time to live: never kept
        self.hits = 0
        self.misses = 0

    # -- classification -------------------------------------------------------------------------------------

    @staticmethod
    def is_write(args: tuple[Any, ...]) -> bool:
        """A command that writes and whose reply only says it happened (what may go out behind)."""
        name = args[0] if args[0].__class__ is str else _name(args[0])
        return KIND.get(name) in ("w", "k") and name not in ("XREADGROUP", "GETSET", "GETDEL", "RPOP", "LPOP",
                                                                "SPOP", "ZPOPMIN", "ZPOPMAX", "XCLAIM", "XAUTOCLAIM")

    @staticmethod
    def written_keys(args: tuple[Any, ...]) -> list[str] | None:
        """The keys a command may change ([] for none); None: unknown (forget everything)."""
        name = _name(args[0])
        if name in CACHED or name in PURE:
            return []
        if name in WRITE1:
            return [_key(args[1])]
        if name in ("DEL", "UNLINK"):
            return [_key(a) for a in args[1:]]
        if name in ("EVALSHA", "EVAL", "EVALSHA_RO", "EVAL_RO"):
            n = int(args[2])
            return [_key(a) for a in args[3:3 + n]]
        if name == "XREADGROUP":
            rest = [_name(a) for a in args]
            i = rest.index("STREAMS") + 1
            n = (len(args) - i) // 2
            return [_key(a) for a in args[i:i + n]]
        if name == "XGROUP":
            return [_key(args[2])]
        return None

    def _note_ttl(self, name: str, key: str, args: tuple[Any, ...]) -> None:
        short = False
        if name in ("EXPIRE", "PEXPIRE"):
            ttl = float(args[2]) / (1000 if name == "PEXPIRE" else 1)
            short = ttl < DAY
        elif name in ("EXPIREAT", "PEXPIREAT", "SETEX", "PSETEX"):
            short = name in ("EXPIREAT", "PEXPIREAT") or float(args[2]) / (1000 if name == "PSETEX" else 1) < DAY
        elif name == "SET" and len(args) > 3:
            opts = [_name(a) for a in args[3:]]
            for unit, div in (("EX", 1), ("PX", 1000)):
                if unit in opts:
                    short = short or float(args[3 + opts.index(unit) + 1]) / div < DAY
            short = short or "EXAT" in opts or "PXAT" in opts or "KEEPTTL" in opts
        if short:
            self._volatile.add(key)

    # -- the cache --------------------------------------------------------------------------------------------

    def clear(self) -> None:
        self._entries.clear()
        for k in self._version:
            self._version[k] += 1

    def _invalidate(self, key: str) -> None:
        self._entries.pop(key, None)
        self._version[key] = self._version.get(key, 0) + 1

    def _write_through(self, name: str, key: str, args: tuple[Any, ...]) -> None:
        """A write on a key with kept replies: bring them up to date where the write says exactly what the key
        becomes (SET, HSET/HDEL on a whole kept hash, RPUSH/LTRIM on a whole kept list); else forget them."""
        e = self._entries.get(key)
        if e is None:
            return
        try:
            if name == "SET" and len(args) == 3:
                self._entries[key] = {("GET",): _enc(args[2])}
                return
            full = e.get(("HGETALL",))
            if name == "HSET" and full is not None and len(args) % 2 == 0:
                for i in range(2, len(args), 2):
                    full[_enc(args[i])] = _enc(args[i + 1])
                self._entries[key] = {("HGETALL",): full}
                return
            if name == "HDEL" and full is not None:
                for f in args[2:]:
                    full.pop(_enc(f), None)
                self._entries[key] = {("HGETALL",): full}
                return
            whole = e.get(("LRANGE", 0, -1))
            if name == "RPUSH" and whole is not None:
                whole.extend(_enc(v) for v in args[2:])
                self._entries[key] = {("LRANGE", 0, -1): whole}
                return
            if name == "LTRIM" and whole is not None and int(args[3]) == -1:
                self._entries[key] = {("LRANGE", 0, -1): whole[int(args[2]):]}
                return
        except (TypeError, ValueError):
            pass
        self._entries.pop(key, None)

    def lookup(self, name: str, key: str, args: tuple[Any, ...]) -> Any:
        """The kept reply of a read (a copy), or MISS."""
        if self._inflight.get(key):
            return MISS
        e = self._entries.get(key)
        if e is None:
            return MISS
        shape = (name, *args[2:])
        if shape in e:
            self.hits += 1
            return _copy(e[shape])
        full = e.get(("HGETALL",))
        if full is not None:
            got = self._from_hash(name, args, full)
            if got is not MISS:
                self.hits += 1
                return got
        return MISS

    @staticmethod
    def _from_hash(name: str, args: tuple[Any, ...], full: dict[Any, Any]) -> Any:
        def field(f: Any) -> Any:
            if f in full:
                return full[f]
            b = f.encode() if isinstance(f, str) else f
            return full.get(b)

        if name == "HGET":
            return field(args[2])
        if name == "HMGET":
            return [field(f) for f in args[2:]]
        if name == "HVALS":
            return list(full.values())
        if name == "HKEYS":
            return list(full.keys())
        if name == "HLEN":
            return len(full)
        return MISS

    def before(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]],
               serve: bool = True) -> tuple[list[Any], Any]:
        """Called as `commands` go out: the replies known now (MISS for the others) and a token for `after`.
        `serve=False` (a transaction: its reads are Redis's): only note the writes."""
        known: list[Any] = []
        written: list[str] = []  # every key each write goes to (one entry per write)
        writes: list[tuple[int, str]] = []  # written through: (position, key)
        reads: list[tuple[int, str, int]] = []
        cleared = False
        inflight, version = self._inflight, self._version
        for i, (args, _opts) in enumerate(commands):
            name = args[0]
            kind = KIND.get(name) if name.__class__ is str else None
            if kind is None:
                name = _name(name)
                kind = KIND.get(name)
            if kind == "w":  # one key, the first argument
                key = args[1] if args[1].__class__ is str else _key(args[1])
                self._write_through(name, key, args)
                version[key] = version.get(key, 0) + 1
                writes.append((i, key))
                inflight[key] = inflight.get(key, 0) + 1
                written.append(key)
                if name in TTL:
                    self._note_ttl(name, key, args)
                known.append(MISS)
                continue
            if kind == "c":
                key = args[1] if args[1].__class__ is str else _key(args[1])
                if not serve or cleared or (written and key in written):
                    known.append(MISS)
                    continue
                got = self.lookup(name, key, args)
                known.append(got)
                if got is MISS:
                    self.misses += 1
                    if key not in self._volatile:
                        reads.append((i, key, version.get(key, 0)))
                continue
            if kind == "p":
                known.append(MISS)
                continue
            keys = self.written_keys(args) if kind is not None else None
            if keys is None:
                self.clear()
                cleared = True
            else:
                for k in keys:
                    self._invalidate(k)
                    inflight[k] = inflight.get(k, 0) + 1
                    written.append(k)
            known.append(MISS)
        return known, (reads, written, writes)

    def after(self, commands: list[tuple[tuple[Any, ...], dict[str, Any]]], replies: list[Any] | None,
              token: Any) -> None:
        """The replies came (None: the call failed): keep what was read, end the writes' flight."""
        reads, written, writes = token
        for k in written:
            n = self._inflight.get(k, 1) - 1
            if n <= 0:
                self._inflight.pop(k, None)
            else:
                self._inflight[k] = n
            self._version[k] = self._version.get(k, 0) + 1
        if replies is None:
            self.clear()
            return
        for i, key in writes:
            if i < len(replies) and isinstance(replies[i], Exception):
                self._entries.pop(key, None)  # it did not happen as written through
        if len(self._entries) > MAX_KEYS:
            self._entries.clear()
        for i, key, ver in reads:
            r = replies[i]
            if isinstance(r, Exception) or self._version.get(key, 0) != ver or self._inflight.get(key):
                continue
            args = commands[i][0]
            self._entries.setdefault(key, {})[(_name(args[0]), *args[2:])] = _copy(r)
