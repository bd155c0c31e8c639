"""Silences with Alertmanager's API v2 semantics, on an injected storage (service/store/silences.py keeps them in
Redis).

A silence mutes every alert whose labels match all of its matchers while it is active
(startsAt <= now < endsAt). Updating a silence in a way that changes what it matches, or a silence that is no
longer active, creates a new silence and expires the old one, as Alertmanager does. Deleting expires.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from routing.matchers import GoRegex, compile_go
from service.core.clock import parse_rfc3339, to_rfc3339

RETENTION = 120 * 3600.0  # expired silences are kept this long (Alertmanager's --data.retention default)


class SilenceError(ValueError):
    def __init__(self, path: str, message: str, status: int = 400):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.status = status


@dataclass(frozen=True)
class SilenceMatcher:
    name: str
    value: str
    is_regex: bool
    is_equal: bool

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.name, "")
        if self.is_regex:
            ok = _regex(self.value).search(v) is not None
        else:
            ok = v == self.value
        return ok if self.is_equal else not ok


_RE_CACHE: dict[str, GoRegex] = {}


def _regex(p: str) -> GoRegex:
    """The silence regex as Alertmanager compiles it: a Go regexp anchored as ^(?:p)$ (GoRegexError if bad)."""
    r = _RE_CACHE.get(p)
    if r is None:
        r = _RE_CACHE[p] = compile_go(f"^(?:{p})$")
    return r


@dataclass
class Silence:
    id: str
    matchers: list[SilenceMatcher]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        if now >= self.ends_at:
            return "expired"
        return "active"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def to_api(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": {"state": self.state(now)},
            "updatedAt": to_rfc3339(self.updated_at),
            "matchers": [{"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal}
                         for m in self.matchers],
            "startsAt": to_rfc3339(self.starts_at),
            "endsAt": to_rfc3339(self.ends_at),
            "createdBy": self.created_by,
            "comment": self.comment,
        }

    def to_json(self) -> str:
        return json.dumps({"id": self.id, "m": [[m.name, m.value, m.is_regex, m.is_equal] for m in self.matchers],
                           "s": self.starts_at, "e": self.ends_at, "by": self.created_by, "c": self.comment,
                           "u": self.updated_at})

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Silence":
        d = json.loads(raw)
        return cls(d["id"], [SilenceMatcher(*m) for m in d["m"]], d["s"], d["e"], d["by"], d["c"], d["u"])


def _parse_matcher(m: Any, p: str) -> SilenceMatcher:
    """One matcher of a PostableSilence (`p` its path)."""
    if not isinstance(m, dict):
        raise SilenceError(p, "must be an object")
    name, value = m.get("name"), m.get("value")
    if not isinstance(name, str) or not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", name):
        raise SilenceError(f"{p}.name", "invalid label name")
    if not isinstance(value, str):
        raise SilenceError(f"{p}.value", "must be a string")
    is_regex = m.get("isRegex", False)
    is_equal = m.get("isEqual", True)
    if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
        raise SilenceError(p, "isRegex and isEqual must be booleans")
    if is_regex:
        try:
            _regex(value)
        except (re.error, ValueError) as e:
            raise SilenceError(f"{p}.value", f"invalid regular expression: {e}") from None
    return SilenceMatcher(name, value, is_regex, is_equal)


def _parse_times(body: dict[str, Any], now: float) -> tuple[float, float]:
    """(startsAt, endsAt) of a PostableSilence: both RFC 3339, not the zero time, start before end, end not past."""
    for key in ("startsAt", "endsAt"):
        if not isinstance(body.get(key), str):
            raise SilenceError(key, "required RFC 3339 timestamp")
    times: dict[str, float] = {}
    for key in ("startsAt", "endsAt"):
        try:
            t = parse_rfc3339(body[key])
        except ValueError as e:
            raise SilenceError(key, f"not an RFC 3339 timestamp: {e}") from None
        if t is None:
            raise SilenceError(key, "must not be the zero time")
        times[key] = t
    starts, ends = times["startsAt"], times["endsAt"]
    if ends <= starts:
        raise SilenceError("endsAt", "start time must be before end time")
    if ends < now:
        raise SilenceError("endsAt", "end time can't be in the past")
    return starts, ends


def parse_postable_silence(body: Any, now: float) -> tuple[str | None, Silence]:
    """Validate a PostableSilence (API v2) and return (id to update or None, silence)."""
    if not isinstance(body, dict):
        raise SilenceError("body", "must be a JSON object")
    ms = body.get("matchers")
    if not isinstance(ms, list) or not ms:
        # A schema violation: Alertmanager's API (go-swagger) answers 422 for these, 400 for semantic errors.
        raise SilenceError("matchers", "at least one matcher is required", status=422)
    matchers = [_parse_matcher(m, f"matchers[{i}]") for i, m in enumerate(ms)]
    if all(m.matches({}) for m in matchers):
        raise SilenceError("matchers", "at least one matcher must not match the empty string")
    starts, ends = _parse_times(body, now)
    created_by, comment = body.get("createdBy", ""), body.get("comment", "")
    if not isinstance(created_by, str) or not created_by:
        raise SilenceError("createdBy", "creator information required")
    if not isinstance(comment, str) or not comment:
        raise SilenceError("comment", "comment required")
    sid = body.get("id") or None
    # The start is moved up to now only when a new silence is created (Silences.upsert), not before the
    # update-in-place check, which compares it with the old start as given.
    return sid, Silence("", matchers, starts, ends, created_by, comment, now)


class SilenceStorage(Protocol):
    """Where silences are kept, encoded (Silence.to_json); `version()` changes with every write."""

    async def version(self) -> Any: ...
    async def all(self) -> list[bytes]: ...
    async def get(self, sid: str) -> bytes | None: ...
    async def put(self, sid: str, encoded: str) -> None: ...
    async def delete(self, sids: list[str]) -> None: ...


def can_update(old: Silence, new: Silence, now: float) -> bool:
    """Alertmanager's canUpdate: the same matchers, and the change keeps the silence's past intact. Pure."""
    st = old.state(now)
    return old.matchers == new.matchers and (
        (st == "pending" and new.starts_at >= now) or
        (st == "active" and new.starts_at == old.starts_at and new.ends_at >= now))


class Silences:
    """The silences: Alertmanager's create/update/expire semantics over a storage. Reads are cached per replica
    and revalidated against the storage's version.

    The engine gives it the Redis storage of service/store/silences.py."""

    def __init__(self, storage: SilenceStorage):
        self.storage = storage
        self._cache: list[Silence] = []
        self._version: Any = b"?"

    async def all(self) -> list[Silence]:
        v = await self.storage.version()
        if v != self._version:
            self._cache = [Silence.from_json(r) for r in await self.storage.all()]
            self._version = v
        return self._cache

    async def get(self, sid: str) -> Silence | None:
        raw = await self.storage.get(sid)
        return Silence.from_json(raw) if raw else None

    async def _put(self, s: Silence) -> None:
        await self.storage.put(s.id, s.to_json())

    async def upsert(self, body: Any, now: float) -> str:
        sid, new = parse_postable_silence(body, now)
        if sid:
            old = await self.get(sid)
            if old is None:
                raise SilenceError("id", f"silence {sid} not found", status=404)
            st = old.state(now)
            if can_update(old, new, now):
                new.id = old.id
                new.starts_at = old.starts_at if st == "active" else new.starts_at
                await self._put(new)
                return new.id
            if st != "expired":
                await self.expire(sid, now)
        new.id = str(uuid.uuid4())
        new.starts_at = max(new.starts_at, now)
        await self._put(new)
        return new.id

    async def expire(self, sid: str, now: float) -> None:
        s = await self.get(sid)
        if s is None:
            raise SilenceError("id", f"silence {sid} not found", status=404)
        st = s.state(now)
        if st == "expired":
            raise SilenceError("id", f"silence {sid} already expired", status=500)
        if st == "pending":
            s.starts_at = now
        s.ends_at = now
        s.updated_at = now
        await self._put(s)

    async def gc(self, now: float) -> int:
        gone = [s.id for s in await self.all() if s.ends_at < now - RETENTION]
        await self.storage.delete(gone)
        return len(gone)

    async def silenced_by(self, labels: Mapping[str, str], now: float) -> list[str]:
        return [s.id for s in await self.all() if s.state(now) == "active" and s.matches(labels)]
