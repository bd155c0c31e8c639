"""The Redis-backed incident store: atomic assignment of alerts to incidents, lifecycle, feedback.

Every incident of one correlation domain (default: one per Tocsin; per tenant with
`correlation.domain_labels`) lives under ONE hash tag, so a decision and its writes form one
optimistic transaction: WATCH the domain's version key, read the candidate incidents, decide (pure,
correlation.decide), then MULTI/EXEC the writes and bump the version. If another replica changed the
domain in between, EXEC fails and the loser re-reads and decides again: it then sees the winner's
incident and joins it. Losing the race is a normal outcome, not an error. Two replicas receiving
related alerts at the same moment therefore create one incident.

Keys (base = f"{prefix}:{{inc:<domain>}}"):
  base:ver         string  bumped by every change of the domain (the WATCH target)
  base:open        hash    id -> compact view (state, firing, representative member features) of every
                           incident that may still take alerts: open ones and resolved ones within the
                           reopen cool-down
  base:fp          hash    member fingerprint -> incident id (incidents in base:open)
  base:i:<id>      string  incident metadata JSON
  base:m:<id>      hash    fingerprint -> member JSON
  base:tl:<id>     list    timeline entries (JSON), capped
  base:all         zset    id -> opened_at, for listing
  base:fb          hash    co-occurrence key -> feedback counts JSON (acted / noise)
  {prefix}:{incidx}:dom    hash id -> domain (only for non-default domains)
Incident keys expire `retention` after the incident leaves base:open.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from ..clock import Clock
from .cooccurrence import CooccurrenceStore
from .correlation import (AlertFeatures, CorrelationConfig, Decision, IncidentView, Reason, decide,
                          representatives)
from ..models import Alert
from .rootcause import rank
from .scoring import confidence, member_entity, member_metric, member_service, severity

TIMELINE_MAX = 500
STATE_CHANGES_MAX = 20
MAX_RETRIES = 100
OPEN_STATES = ("triggered", "acknowledged", "snoozed")


class IncidentNotFound(KeyError):
    def __init__(self, incident_id: str):
        super().__init__(incident_id)
        self.incident_id = incident_id

    def __str__(self) -> str:
        return f"incident {self.incident_id!r} not found"


class IncidentConflict(ValueError):
    """The operation does not apply (e.g. splitting fingerprints that are not members)."""


def _j(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def _s(v: bytes | str | None) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


@dataclass
class _Keys:
    base: str

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

    def meta(self, iid: str) -> str:
        return f"{self.base}:i:{iid}"

    def members(self, iid: str) -> str:
        return f"{self.base}:m:{iid}"

    def timeline(self, iid: str) -> str:
        return f"{self.base}:tl:{iid}"


def member_record(alert: Alert, now: float, joined_by: list[dict[str, Any]], f: AlertFeatures) -> dict[str, Any]:
    det = alert.detector or {}
    firing = not alert.resolved_at(now)
    info = {k: det[k] for k in ("confidence", "agreeing_detectors", "individual_scores", "lower", "upper", "metric")
            if det.get(k) is not None}
    return {
        "fingerprint": alert.fingerprint,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "status": "firing" if firing else "resolved",
        "starts_at": alert.starts_at,
        "ends_at": None if firing else alert.ends_at,
        "score": f.score,
        "value": det.get("value"),
        "expected": det.get("expected"),
        "detector": det.get("detector"),
        "generator_url": alert.generator_url,
        "joined_by": joined_by,
        # internal (stripped from snapshots): for scoring
        "metric": f.metric,
        "key": f.key,
        "features": f.to_dict(),
        "detector_info": info,
        "state_changes": [],
    }


INTERNAL_MEMBER_KEYS = ("metric", "key", "features", "detector_info", "state_changes")


def _add_rep(reps: list[dict[str, Any]], f: AlertFeatures, limit: int) -> list[dict[str, Any]]:
    shapes = {(r["sv"], r["mt"], r["en"]) for r in reps}
    if (f.service, f.metric, f.entity) in shapes:
        return reps
    reps = reps + [f.to_dict()]
    if len(reps) > limit:
        head = limit // 2
        reps = reps[:head] + reps[-(limit - head):]
    return reps


class IncidentStore:
    """Incidents in Redis. All methods are async; time comes from the injected clock."""

    def __init__(self, redis: Redis, prefix: str, clock: Clock, cfg: CorrelationConfig | None = None,
                 external_url: str = ""):
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self.cfg = cfg or CorrelationConfig(enabled=True)
        self.external_url = external_url.rstrip("/")
        self._cooc: dict[str, CooccurrenceStore] = {}

    # ----------------------------------------------------------------------------------- helpers

    def domain(self, labels: dict[str, str], cfg: CorrelationConfig | None = None) -> str:
        cfg = cfg or self.cfg
        if not cfg.domain_labels:
            return "default"
        raw = "\xff".join(labels.get(n, "") for n in cfg.domain_labels)
        return hashlib.sha1(raw.encode()).hexdigest()[:12]

    def keys(self, domain: str) -> _Keys:
        return _Keys(f"{self.prefix}:{{inc:{domain}}}")

    def cooc(self, domain: str, cfg: CorrelationConfig | None = None) -> CooccurrenceStore:
        c = self._cooc.get(domain)
        if c is None:
            c = self._cooc[domain] = CooccurrenceStore(self.redis, self.prefix,
                                                       (cfg or self.cfg).cooccurrence_half_life, domain)
        return c

    @property
    def _domain_index(self) -> str:
        return f"{self.prefix}:{{incidx}}:dom"

    @property
    def _domains(self) -> str:
        return f"{self.prefix}:{{incidx}}:domains"

    async def domains(self) -> list[str]:
        """Every correlation domain that has had an incident ("default" always)."""
        extra = await self.redis.smembers(self._domains)
        return ["default"] + sorted({_s(d) for d in extra} - {"default"})

    async def _domain_of(self, iid: str) -> str:
        d = _s(await self.redis.hget(self._domain_index, iid))
        return d or "default"

    def _new_id(self, domain: str, fp: str, onset: float, ver: int) -> str:
        day = datetime.fromtimestamp(onset, tz=timezone.utc).strftime("%Y%m%d")
        h = hashlib.sha1(f"{domain}|{fp}|{onset}|{ver}".encode()).hexdigest()[:6]
        return f"inc-{day}-{h}"

    @staticmethod
    def _view(meta: dict[str, Any], reps: list[dict[str, Any]]) -> str:
        return _j({"id": meta["id"], "state": meta["state"], "opened_at": meta["opened_at"],
                   "firing": meta["firing"] > 0, "resolved_at": meta.get("resolved_at"), "reps": reps})

    @staticmethod
    def _tl(ts: float, event: str, detail: str) -> str:
        return _j({"ts": ts, "event": event, "detail": detail[:1000]})

    async def _read_meta(self, pipe: Any, k: _Keys, iid: str) -> dict[str, Any] | None:
        raw = await pipe.get(k.meta(iid))
        return json.loads(raw) if raw else None

    # ----------------------------------------------------------------------------------- assign

    async def assign(self, alert: Alert, cfg: CorrelationConfig | None = None) -> tuple[str, Decision, bool]:
        """Put `alert` into an incident (join, reopen or create) atomically. Returns (id, decision, created).

        A re-sent alert that is already a member with the same status changes nothing (fast path)."""
        cfg = cfg or self.cfg
        now = self.clock.now()
        f = AlertFeatures.from_alert(alert, cfg.labels)
        domain = self.domain(alert.labels, cfg)
        k = self.keys(domain)
        firing = not alert.resolved_at(now)

        # Fast path: Prometheus re-sends every firing alert each minute.
        iid = _s(await self.redis.hget(k.fp, alert.fingerprint))
        if iid:
            raw = await self.redis.hget(k.members(iid), alert.fingerprint)
            if raw and (json.loads(raw)["status"] == "firing") == firing:
                return iid, Decision(iid, [], 1.0, detail="known member, unchanged"), False

        cooc = await self.cooc(domain, cfg).lookup(f.key, now) if cfg.weights.cooccurrence > 0 else None
        for _ in range(MAX_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(k.ver)
                    result = await self._assign_tx(pipe, k, domain, alert, f, firing, cfg, cooc, now)
                    if result is None:
                        continue
                    iid, decision, created, learn = result
                    await pipe.execute()
                except WatchError:
                    continue
            if created and domain != "default":
                await self.redis.hset(self._domain_index, iid, domain)
                await self.redis.sadd(self._domains, domain)
            for other in decision.absorb:
                try:
                    await self.merge(iid, other, "tocsin (alert storm)", feedback=False)
                except (IncidentNotFound, IncidentConflict):
                    pass  # another replica absorbed it first
            return iid, decision, created
        raise RuntimeError(f"incident assignment of {alert.fingerprint} did not settle after {MAX_RETRIES} tries")

    async def _assign_tx(self, pipe: Any, k: _Keys, domain: str, alert: Alert, f: AlertFeatures, firing: bool,
                         cfg: CorrelationConfig, cooc: Any, now: float) -> tuple[str, Decision, bool, bool] | None:
        ver = int(await pipe.get(k.ver) or 0)
        existing = _s(await pipe.hget(k.fp, alert.fingerprint))
        views_raw = await pipe.hgetall(k.open)
        views = {_s(i): json.loads(v) for i, v in views_raw.items()}

        if existing and existing in views:
            return await self._update_member(pipe, k, existing, alert, f, firing, cfg, now)

        candidates = [
            IncidentView(id=v["id"], state=v["state"], opened_at=v["opened_at"],
                         members=[AlertFeatures.from_dict(r) for r in v["reps"]], firing=v["firing"],
                         resolved_at=v.get("resolved_at"))
            for v in views.values()
        ]
        decision = decide(f, candidates, now, cfg, cooc) if cfg.enabled else \
            Decision(None, [Reason("seed", 1.0, None, "correlation disabled")])
        joined_by = [r.as_dict() for r in decision.reasons]
        member = member_record(alert, now, joined_by, f)
        meta = None
        if decision.incident_id is not None:
            meta = await self._read_meta(pipe, k, decision.incident_id)
            if meta is None:
                return None
        pipe.multi()
        if meta is None:
            iid = self._new_id(domain, alert.fingerprint, alert.starts_at, ver)
            meta = {"id": iid, "domain": domain, "state": "triggered", "opened_at": alert.starts_at,
                    "updated_at": now, "resolved_at": None, "acked_by": None, "acked_at": None,
                    "snoozed_until": None, "noise": False, "firing": 1 if firing else 0,
                    "quiet_since": None if firing else now, "summary": None, "merged_into": None}
            pipe.set(k.meta(iid), _j(meta))
            pipe.zadd(k.all, {iid: alert.starts_at})
            pipe.hset(k.open, iid, self._view(meta, [f.to_dict()]))
            pipe.rpush(k.timeline(iid), self._tl(now, "opened", f"opened by {f.alertname or f.metric}"
                                                 f"{' on ' + f.service if f.service else ''} ({alert.fingerprint})"))
            created = True
        else:
            iid = decision.incident_id
            created = False
            meta["firing"] += 1 if firing else 0
            meta["updated_at"] = now
            meta["opened_at"] = min(meta["opened_at"], alert.starts_at)
            if firing:
                meta["quiet_since"] = None
            events = []
            if decision.reopen or meta["state"] == "resolved":
                meta.update(state="triggered", resolved_at=None, acked_by=None, acked_at=None)
                events.append(("reopened", f"reopened by related alert {f.alertname or f.metric}"))
            why = "; ".join(f"{r['signal']} {r['score']:.2f}: {r['detail']}" for r in joined_by[:4])
            events.append(("member_joined", f"{f.alertname or f.metric}"
                           f"{' on ' + f.service if f.service else ''} joined ({why})"))
            pipe.set(k.meta(iid), _j(meta))
            pipe.zadd(k.all, {iid: meta["opened_at"]})
            reps = _add_rep(views[iid]["reps"], f, cfg.max_compare_members)
            pipe.hset(k.open, iid, self._view(meta, reps))
            for ev, detail in events:
                pipe.rpush(k.timeline(iid), self._tl(now, ev, detail))
        pipe.hset(k.members(iid), alert.fingerprint, _j(member))
        pipe.hset(k.fp, alert.fingerprint, iid)
        pipe.ltrim(k.timeline(iid), -TIMELINE_MAX, -1)
        pipe.incr(k.ver)
        return iid, decision, created, False

    async def _update_member(self, pipe: Any, k: _Keys, iid: str, alert: Alert, f: AlertFeatures, firing: bool,
                             cfg: CorrelationConfig, now: float) -> tuple[str, Decision, bool, bool] | None:
        meta = await self._read_meta(pipe, k, iid)
        raw = await pipe.hget(k.members(iid), alert.fingerprint)
        if meta is None or raw is None:
            return None
        m = json.loads(raw)
        was_firing = m["status"] == "firing"
        decision = Decision(iid, [], 1.0, detail="known member")
        events: list[tuple[str, str]] = []
        m["annotations"] = dict(alert.annotations)
        m["starts_at"] = min(m["starts_at"], alert.starts_at)
        if f.score is not None:
            m["score"] = f.score
        if alert.detector:
            m["value"] = alert.detector.get("value", m.get("value"))
            m["expected"] = alert.detector.get("expected", m.get("expected"))
        name = f"{f.alertname or f.metric}{' on ' + f.service if f.service else ''}"
        if was_firing != firing:
            m["state_changes"] = (m.get("state_changes", []) + [now])[-STATE_CHANGES_MAX:]
            if firing:
                m.update(status="firing", ends_at=None)
                meta["firing"] += 1
                meta["quiet_since"] = None
                events.append(("member_refired", f"{name} fires again"))
                if meta["state"] == "resolved":
                    meta.update(state="triggered", resolved_at=None, acked_by=None, acked_at=None)
                    events.append(("reopened", f"reopened: member {name} fired within the cool-down"))
                    decision = Decision(iid, [Reason("seed", 1.0, alert.fingerprint, "member fired again")], 1.0,
                                        reopen=True, detail="reopened by member")
            else:
                m.update(status="resolved", ends_at=alert.ends_at)
                meta["firing"] = max(0, meta["firing"] - 1)
                events.append(("member_resolved", f"{name} resolved"))
                if meta["firing"] == 0:
                    meta["quiet_since"] = now
                    events.append(("all_members_resolved",
                                   f"every member resolved; resolving after {cfg.quiet_period:.0f}s of quiet"))
        meta["updated_at"] = now
        view = json.loads(await pipe.hget(k.open, iid) or b"{}")
        pipe.multi()
        pipe.hset(k.members(iid), alert.fingerprint, _j(m))
        pipe.set(k.meta(iid), _j(meta))
        pipe.hset(k.open, iid, self._view(meta, view.get("reps", [])))
        for ev, detail in events:
            pipe.rpush(k.timeline(iid), self._tl(now, ev, detail))
        pipe.ltrim(k.timeline(iid), -TIMELINE_MAX, -1)
        pipe.incr(k.ver)
        return iid, decision, False, False

    async def on_alert_resolved(self, alert: Alert) -> str | None:
        """Record that a member alert resolved. Returns its incident id (None if not a member)."""
        now = self.clock.now()
        if not alert.resolved_at(now):
            alert = Alert(**{**alert.__dict__, "ends_at": now})
        k = self.keys(self.domain(alert.labels))
        if not await self.redis.hexists(k.fp, alert.fingerprint):
            return None
        iid, _, _ = await self.assign(alert)
        return iid

    # ----------------------------------------------------------------------------------- generic mutation

    async def _mutate(self, iid: str, fn: Any) -> Any:
        """Run `fn(pipe, k, meta, now)` (reads, then pipe.multi() and writes) under the domain's WATCH."""
        domain = await self._domain_of(iid)
        k = self.keys(domain)
        for _ in range(MAX_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(k.ver)
                    meta = await self._read_meta(pipe, k, iid)
                    if meta is None:
                        raise IncidentNotFound(iid)
                    now = self.clock.now()
                    out = await fn(pipe, k, meta, now)
                    pipe.incr(k.ver)
                    await pipe.execute()
                    return out
                except WatchError:
                    continue
        raise RuntimeError(f"update of incident {iid} did not settle")

    async def _simple(self, iid: str, event: str, detail: str, **changes: Any) -> None:
        async def fn(pipe: Any, k: _Keys, meta: dict[str, Any], now: float) -> None:
            meta.update({key: (now if v == "$now" else v) for key, v in changes.items()})
            meta["updated_at"] = now
            view = json.loads(await pipe.hget(k.open, iid) or b"null")
            pipe.multi()
            pipe.set(k.meta(iid), _j(meta))
            if view is not None:
                pipe.hset(k.open, iid, self._view(meta, view["reps"]))
            pipe.rpush(k.timeline(iid), self._tl(now, event, detail))
            pipe.ltrim(k.timeline(iid), -TIMELINE_MAX, -1)

        await self._mutate(iid, fn)

    async def _feedback(self, iid: str, kind: str) -> None:
        """Count `kind` (acted | noise) for every member key of the incident."""
        domain = await self._domain_of(iid)
        k = self.keys(domain)
        keys = {json.loads(v).get("key") for v in (await self.redis.hvals(k.members(iid)))} - {None}
        pipe = self.redis.pipeline(transaction=False)
        for key in sorted(keys)[:100]:
            pipe.hincrbyfloat(k.fb, f"{key}|{kind}", 1.0)  # atomic: replicas never overwrite each other's counts
        await pipe.execute()

    # ----------------------------------------------------------------------------------- human actions

    async def ack(self, iid: str, who: str) -> None:
        now = self.clock.now()
        k = self.keys(await self._domain_of(iid))
        before = json.loads(await self.redis.get(k.meta(iid)) or b"{}").get("state")
        await self._simple(iid, "acknowledged", f"acknowledged by {who}", state="acknowledged",
                           acked_by=who, acked_at=now)
        if before != "acknowledged":  # a repeated ack is not more evidence that the incident was real
            await self._feedback(iid, "acted")

    async def unack(self, iid: str, who: str) -> None:
        """Back to triggered (e.g. un-acknowledged in PagerDuty): repeats and escalation apply again."""
        await self._simple(iid, "unacknowledged", f"unacknowledged by {who}", state="triggered", acked_by=None,
                           acked_at=None)

    async def resolve(self, iid: str, who: str) -> None:
        await self._simple(iid, "resolved", f"resolved by {who}", state="resolved", resolved_at="$now")

    async def snooze(self, iid: str, until: float, who: str) -> None:
        await self._simple(iid, "snoozed", f"snoozed by {who} until {until:.0f}", state="snoozed",
                           snoozed_until=until)

    async def mark_noise(self, iid: str, who: str) -> None:
        await self._simple(iid, "marked_noise", f"marked as noise by {who}", noise=True)
        await self._feedback(iid, "noise")

    async def set_summary(self, iid: str, summary: dict[str, Any]) -> None:
        """Store the (LLM or evidence) summary in the incident; shown in every snapshot."""
        await self._simple(iid, "summarised", f"summary from {summary.get('source', '?')}", summary=summary)

    async def merge(self, iid: str, other_id: str, who: str, feedback: bool = True) -> None:
        """Move every member of `other_id` into `iid`; `other_id` is resolved as merged. Positive feedback
        for the learned co-occurrence (unless `feedback` is False: automatic merges teach nothing)."""
        if iid == other_id:
            raise IncidentConflict("cannot merge an incident into itself")
        if await self._domain_of(iid) != await self._domain_of(other_id):
            raise IncidentConflict("incidents of different correlation domains cannot be merged")
        keys_a: set[str] = set()
        keys_b: set[str] = set()

        async def fn(pipe: Any, k: _Keys, meta: dict[str, Any], now: float) -> None:
            other = await self._read_meta(pipe, k, other_id)
            if other is None:
                raise IncidentNotFound(other_id)
            if other.get("merged_into"):
                raise IncidentConflict(f"incident {other_id} was already merged into {other['merged_into']}")
            mine = {_s(fp): json.loads(v) for fp, v in (await pipe.hgetall(k.members(iid))).items()}
            theirs = {_s(fp): json.loads(v) for fp, v in (await pipe.hgetall(k.members(other_id))).items()}
            keys_a.update(m["key"] for m in mine.values())
            keys_b.update(m["key"] for m in theirs.values())
            for m in theirs.values():
                m["joined_by"] = m["joined_by"] + [{"signal": "manual", "score": 1.0, "matched": None,
                                                    "detail": f"merged from {other_id} by {who}"}]
            firing = sum(1 for m in {**mine, **theirs}.values() if m["status"] == "firing")
            meta.update(firing=firing, opened_at=min(meta["opened_at"], other["opened_at"]), updated_at=now,
                        quiet_since=None if firing else now)
            if firing and meta["state"] == "resolved":
                meta.update(state="triggered", resolved_at=None)
            other.update(state="resolved", resolved_at=now, merged_into=iid, firing=0, updated_at=now)
            reps = [m["features"] for m in sorted({**mine, **theirs}.values(), key=lambda m: m["starts_at"])]
            reps = [r.to_dict() for r in representatives([AlertFeatures.from_dict(r) for r in reps],
                                                         self.cfg.max_compare_members)]
            pipe.multi()
            for fp, m in theirs.items():
                pipe.hset(k.members(iid), fp, _j(m))
                pipe.hset(k.fp, fp, iid)
            pipe.delete(k.members(other_id))
            pipe.set(k.meta(iid), _j(meta))
            pipe.set(k.meta(other_id), _j(other))
            pipe.hset(k.open, iid, self._view(meta, reps))
            pipe.hdel(k.open, other_id)
            pipe.expire(k.meta(other_id), int(self.cfg.retention))
            pipe.expire(k.timeline(other_id), int(self.cfg.retention))
            pipe.zadd(k.all, {iid: meta["opened_at"]})
            pipe.rpush(k.timeline(iid), self._tl(now, "merged", f"{len(theirs)} alerts of {other_id} merged in by {who}"))
            pipe.rpush(k.timeline(other_id), self._tl(now, "merged_into", f"merged into {iid} by {who}"))

        await self._mutate(iid, fn)
        if feedback:
            await self.cooc(await self._domain_of(iid)).feedback(keys_a, keys_b, True, self.clock.now())

    async def split(self, iid: str, fingerprints: list[str], who: str) -> str:
        """Move `fingerprints` out of `iid` into a new incident; returns its id. Negative feedback."""
        fps = sorted(set(fingerprints))
        if not fps:
            raise IncidentConflict("split needs at least one fingerprint")
        keys_moved: set[str] = set()
        keys_left: set[str] = set()

        async def fn(pipe: Any, k: _Keys, meta: dict[str, Any], now: float) -> str:
            ver = int(await pipe.get(k.ver) or 0)
            members = {_s(fp): json.loads(v) for fp, v in (await pipe.hgetall(k.members(iid))).items()}
            missing = [fp for fp in fps if fp not in members]
            if missing:
                raise IncidentConflict(f"not members of {iid}: {', '.join(missing[:5])}")
            if len(fps) == len(members):
                raise IncidentConflict("split must leave at least one member behind")
            moved = {fp: members.pop(fp) for fp in fps}
            keys_moved.update(m["key"] for m in moved.values())
            keys_left.update(m["key"] for m in members.values())
            seed = min(moved.values(), key=lambda m: m["starts_at"])
            new_id = self._new_id(meta["domain"], seed["fingerprint"], seed["starts_at"], ver)
            for m in moved.values():
                m["joined_by"] = [{"signal": "manual", "score": 1.0, "matched": None,
                                   "detail": f"split from {iid} by {who}"}]
            def fire(ms: dict[str, Any]) -> int:
                return sum(1 for m in ms.values() if m["status"] == "firing")
            meta.update(firing=fire(members), updated_at=now,
                        opened_at=min(m["starts_at"] for m in members.values()))
            meta["quiet_since"] = None if meta["firing"] else now
            new = {**meta, "id": new_id, "state": "triggered", "opened_at": seed["starts_at"], "resolved_at": None,
                   "acked_by": None, "acked_at": None, "snoozed_until": None, "noise": False, "summary": None,
                   "firing": fire(moved), "quiet_since": None if fire(moved) else now, "merged_into": None}

            def reps(ms: dict[str, Any]) -> list[dict[str, Any]]:
                fs = [AlertFeatures.from_dict(m["features"]) for m in ms.values()]
                return [r.to_dict() for r in representatives(fs, self.cfg.max_compare_members)]
            pipe.multi()
            for fp, m in moved.items():
                pipe.hdel(k.members(iid), fp)
                pipe.hset(k.members(new_id), fp, _j(m))
                pipe.hset(k.fp, fp, new_id)
            pipe.set(k.meta(iid), _j(meta))
            pipe.set(k.meta(new_id), _j(new))
            pipe.hset(k.open, iid, self._view(meta, reps(members)))
            pipe.hset(k.open, new_id, self._view(new, reps(moved)))
            pipe.zadd(k.all, {iid: meta["opened_at"], new_id: new["opened_at"]})
            pipe.rpush(k.timeline(iid), self._tl(now, "split", f"{len(moved)} alerts split into {new_id} by {who}"))
            pipe.rpush(k.timeline(new_id), self._tl(now, "opened", f"split from {iid} by {who}"))
            return new_id

        new_id = await self._mutate(iid, fn)
        domain = await self._domain_of(iid)
        if domain != "default":
            await self.redis.hset(self._domain_index, new_id, domain)
            await self.redis.sadd(self._domains, domain)
        await self.cooc(domain).feedback(keys_moved, keys_left, False, self.clock.now())
        return new_id

    # ----------------------------------------------------------------------------------- time

    async def tick(self, now: float | None = None, domain: str = "default") -> list[str]:
        """Advance lifecycles at `now`: end snoozes, resolve quiet incidents, retire resolved ones after the
        cool-down (their keys then expire after `retention`). Returns the ids whose state changed."""
        now = self.clock.now() if now is None else now
        cfg = self.cfg
        k = self.keys(domain)
        changed: list[str] = []
        learn: list[tuple[list[str], str | None]] = []
        for _ in range(MAX_RETRIES):
            changed, learn = [], []
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(k.ver)
                    views = {_s(i): json.loads(v) for i, v in (await pipe.hgetall(k.open)).items()}
                    writes: list[tuple[str, dict[str, Any], str | None, str]] = []
                    retire: list[tuple[str, list[str]]] = []
                    for iid, v in sorted(views.items()):
                        meta = await self._read_meta(pipe, k, iid)
                        if meta is None:
                            retire.append((iid, []))
                            continue
                        if meta["state"] == "snoozed" and meta.get("snoozed_until") and meta["snoozed_until"] <= now:
                            meta.update(state="acknowledged" if meta.get("acked_by") else "triggered", snoozed_until=None)
                            writes.append((iid, meta, "snooze_ended", "snooze ended"))
                        if (meta["state"] != "resolved" and meta["firing"] == 0 and meta.get("quiet_since") is not None
                                and now - meta["quiet_since"] >= cfg.quiet_period):
                            meta.update(state="resolved", resolved_at=now, updated_at=now)
                            writes.append((iid, meta, "resolved",
                                           f"all members resolved and {cfg.quiet_period:.0f}s quiet period passed"))
                            ms = [json.loads(x) for x in await pipe.hvals(k.members(iid))]
                            first = min(ms, key=lambda m: m["starts_at"])["key"] if ms else None
                            learn.append(([m["key"] for m in ms], first))
                        elif meta["state"] == "resolved" and meta.get("resolved_at") is not None \
                                and now - meta["resolved_at"] > cfg.reopen_cooldown:
                            fps = [_s(x) for x in await pipe.hkeys(k.members(iid))]
                            retire.append((iid, fps))
                    if not writes and not retire:
                        await pipe.unwatch()
                        return []
                    pipe.multi()
                    for iid, meta, ev, detail in writes:
                        pipe.set(k.meta(iid), _j(meta))
                        pipe.hset(k.open, iid, self._view(meta, views[iid]["reps"]))
                        pipe.rpush(k.timeline(iid), self._tl(now, ev, detail))
                        changed.append(iid)
                    for iid, fps in retire:
                        pipe.hdel(k.open, iid)
                        if fps:
                            pipe.hdel(k.fp, *fps)
                        for key in (k.meta(iid), k.members(iid), k.timeline(iid)):
                            pipe.expire(key, int(cfg.retention))
                    pipe.incr(k.ver)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        for keys, first in learn:
            await self.cooc(domain).record_incident(keys, first, now)
        return changed

    # ----------------------------------------------------------------------------------- reading

    async def get(self, iid: str) -> dict[str, Any]:
        """The incident snapshot (see the shared incident schema)."""
        domain = await self._domain_of(iid)
        k = self.keys(domain)
        async with self.redis.pipeline(transaction=False) as p:
            p.get(k.meta(iid))
            p.hvals(k.members(iid))
            p.lrange(k.timeline(iid), 0, -1)
            raw_meta, raw_members, raw_tl = await p.execute()
        if not raw_meta:
            raise IncidentNotFound(iid)
        meta = json.loads(raw_meta)
        members = sorted((json.loads(m) for m in raw_members), key=lambda m: (m["starts_at"], m["fingerprint"]))
        now = self.clock.now()
        cfg = self.cfg
        keys = sorted({m["key"] for m in members})
        fb: dict[str, dict[str, float]] = {}
        if keys:
            wanted = keys[:200]
            raw = await self.redis.hmget(k.fb, [f"{key}|{kind}" for key in wanted for kind in ("acted", "noise")])
            for i, key in enumerate(wanted):
                acted, noise = raw[2 * i], raw[2 * i + 1]
                if acted or noise:
                    fb[key] = {"acted": float(acted or 0), "noise": float(noise or 0)}
        sev, sev_f = severity(members, cfg, now) if members else ("info", [])
        conf, conf_f, flapping = confidence(members, cfg, now, fb) if members else (0.0, [], False)
        lead = await self.cooc(domain).lead_history(keys, now) if keys else None
        roots = rank(members, cfg, lead)
        title = self._title(roots, members)
        out_members = [{k2: v for k2, v in m.items() if k2 not in INTERNAL_MEMBER_KEYS} for m in members]
        return {
            "id": iid,
            "title": title,
            "state": meta["state"],
            "opened_at": meta["opened_at"],
            "updated_at": meta["updated_at"],
            "resolved_at": meta.get("resolved_at"),
            "severity": sev,
            "severity_factors": sev_f,
            "confidence": conf,
            "confidence_factors": conf_f,
            "services": sorted({member_service(m) for m in members} - {""}),
            "metrics": sorted({member_metric(m) for m in members}),
            "entities": sorted({member_entity(m) for m in members} - {""}),
            "members": out_members,
            "root_causes": roots,
            "summary": meta.get("summary"),
            "flapping": flapping,
            "acked_by": meta.get("acked_by"),
            "acked_at": meta.get("acked_at"),
            "snoozed_until": meta.get("snoozed_until"),
            "noise": meta.get("noise", False),
            "merged_into": meta.get("merged_into"),
            "timeline": [json.loads(t) for t in raw_tl],
            "url": f"{self.external_url}/api/v1/incidents/{iid}",
        }

    @staticmethod
    def _title(roots: list[dict[str, Any]], members: list[dict[str, Any]]) -> str:
        if not members:
            return "empty incident"
        if roots:
            r = roots[0]
            where = r["service"] or r["entity"]
            head = f"{where} {r['metric']}" if where else r["metric"]
        else:
            head = member_metric(members[0])
        rest = len(members) - 1
        return (head + (f" + {rest} related alert{'s' if rest > 1 else ''}" if rest else ""))[:200]

    async def list(self, state: str | None = None, severity: str | None = None, since: float | None = None,
                   until: float | None = None, domain: str = "default", limit: int = 100) -> list[dict[str, Any]]:
        """Snapshots of incidents opened within [since, until], newest first, filtered by state/severity."""
        k = self.keys(domain)
        ids = await self.redis.zrevrangebyscore(k.all, "+inf" if until is None else until,
                                                "-inf" if since is None else since)
        out: list[dict[str, Any]] = []
        for raw in ids:
            iid = _s(raw)
            try:
                snap = await self.get(iid)
            except IncidentNotFound:
                await self.redis.zrem(k.all, iid)  # expired after retention
                continue
            if state and snap["state"] != state:
                continue
            if severity and snap["severity"] != severity:
                continue
            out.append(snap)
            if len(out) >= limit:
                break
        return out

    async def incident_of(self, alert: Alert) -> str | None:
        """The incident an alert currently belongs to (None if none)."""
        k = self.keys(self.domain(alert.labels))
        return _s(await self.redis.hget(k.fp, alert.fingerprint))
