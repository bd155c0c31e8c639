"""The Redis-backed incident store: atomic assignment of alerts to incidents, lifecycle, feedback.

Every incident of one correlation domain (default: one per Tocsin; per tenant with
`correlation.domain_labels`) lives under ONE hash tag, so a decision and its writes form one
optimistic transaction: WATCH the domain's version key, read the candidate incidents, decide (pure,
correlation.decide), then MULTI/EXEC the writes and bump the version. If another replica changed the
domain in between, EXEC fails and the loser re-reads and decides again: it then sees the winner's
incident and joins it. Losing the race is a normal outcome, not an error. Two replicas receiving
related alerts at the same moment therefore create one incident.

Keys (service.store.keys.IncidentKeys; base = f"{prefix}:{{inc:<domain>}}"):
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
from service.core import fastjson as json
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from redis.asyncio import Redis
from redis.exceptions import WatchError

from service.core.clock import Clock
from service.store.keys import execute_behind
from service.incidents.correlation import AlertFeatures, Context, CorrelationConfig, Decision, IncidentView, Reason, decide, representatives, windows
from service.incidents.lifecycle import advance, due_at
from service.core.models import Alert
from service.incidents.rootcause import rank
from service.incidents.scoring import ConfidenceModel, confidence, member_entity, member_metric, member_service, severity
from service.store.keys import IncidentKeys as _Keys

if TYPE_CHECKING:  # numpy, for the learned co-occurrence, only once an incident store runs (not to check a config)
    from service.store.cooccurrence import CooccurrenceStore

TIMELINE_MAX = 500
STATE_CHANGES_MAX = 20
MAX_RETRIES = 100
OPEN_STATES = ("triggered", "acknowledged", "snoozed")
LIST_BATCH = 100  # incidents read per pipeline when list() filters by state or severity


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
        "entity": f.entity,
    }


FEEDBACK_HALF_LIFE = 30 * 86400.0  # people's verdicts fade over a month: a fixed alert stops counting against itself
LEARNING_RATE = 0.05  # one verdict moves the installation's model by at most 5 % of the feature's log-odds
OFFSET_PULL = 0.01  # each step pulls the learned offsets 1 % back towards the shipped model


def _decayed(raw: bytes | str | None, now: float) -> float:
    """A count stored as "count|last update" (decayed with FEEDBACK_HALF_LIFE), or a plain count."""
    v = _s(raw)
    if not v:
        return 0.0
    if "|" not in v:
        return float(v)
    c, t = v.split("|", 1)
    return float(c) * 0.5 ** (max(0.0, now - float(t)) / FEEDBACK_HALF_LIFE)


def _verdict_fields(members: list[dict[str, Any]]) -> list[str]:
    """The verdict counters that concern these members: their alert types ("t:") and their series ("s:")."""
    return [f"t:{key}" for key in sorted({m["key"] for m in members})[:100]] + \
        [f"s:{fp}" for fp in sorted({m["fingerprint"] for m in members})[:100]]


INTERNAL_MEMBER_KEYS = ("metric", "key", "features", "detector_info", "state_changes", "history")
ACTIVITY_HORIZON = 3600.0  # activations older than this no longer pair with new ones
SEP = "\x1f"


def pair_key(a: str, b: str) -> str:
    return f"{a}{SEP}{b}" if a <= b else f"{b}{SEP}{a}"


def lift_value(n_a: float, n_b: float, n_ab: float, span: float, window: float) -> float:
    """How many times more often two entities became active within `window` of each other than independent
    entities with their activation counts would over `span` seconds (with one pseudo-count of chance)."""
    expected = n_a * n_b * 2.0 * window / max(span, 2.0 * window)
    return n_ab / (expected + 1.0)


def _num(v: Any, default: float = 0.0) -> float:
    try:
        return float(v) if v is not None else default
    except (TypeError, ValueError):
        return default


def _touch_onset(meta: dict[str, Any], entity: str, onset: float) -> None:
    """Record an onset: the incident's latest, and its entity's own (each entity's rolling window runs from it)."""
    meta["last_onset"] = max(_num(meta.get("last_onset"), onset), onset)
    eo = meta.setdefault("entity_onsets", {})
    eo[entity] = max(_num(eo.get(entity), onset), onset)


def _fire_entity(meta: dict[str, Any], entity: str, delta: int) -> None:
    """Count an entity's firing members: while one fires, a new onset of that entity belongs to this incident."""
    ef = meta.setdefault("entity_firing", {})
    n = max(0, int(ef.get(entity, 0)) + delta)
    if n:
        ef[entity] = n
    else:
        ef.pop(entity, None)


def _entity_firing(members: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in members:
        if m["status"] == "firing":
            out[m.get("entity", "")] = out.get(m.get("entity", ""), 0) + 1
    return out


def _entity_onsets(members: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for m in members:
        e = m.get("entity", "")
        out[e] = max(out.get(e, m["starts_at"]), m["starts_at"])
    return out


def _add_rep(reps: list[dict[str, Any]], f: AlertFeatures, limit: int) -> list[dict[str, Any]]:
    shapes = {(r["sv"], r["mt"], r["en"]) for r in reps}
    if (f.service, f.metric, f.entity) in shapes:
        return reps
    reps = reps + [f.to_dict()]
    if len(reps) > limit:
        head = limit // 2
        reps = reps[:head] + reps[-(limit - head):]
    return reps


_Row = tuple[str, dict[str, Any], list[dict[str, Any]], list[Any]]  # id, metadata, members, raw timeline


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
        # True only where this process is the domain's one writer (replay's private key prefix): assignments then
        # need no WATCH (nothing else can change the domain between their reads and their transaction).
        self.single_writer = False
        self._known_domains: list[str] | None = None  # a single writer's domains (known_domains)
        self._views_parsed: dict[str, tuple[bytes, dict[str, Any]]] = {}
        self.on_schedule: Callable[[float], None] | None = None  # told every lifecycle time this store sets
        self._fb_written = False  # this process counted feedback (base:fb)
        self._fs_local: dict[tuple[str, str], str] = {}  # a single writer's base:fs, (base, fp) -> value
        self._domain_cache: dict[str, str] = {}
        # A single writer's copy of its timers (service/store/due_mirror.py, replay): told every base:due write.
        self.due_log: Any = None

    # ----------------------------------------------------------------------------------- helpers

    def domain(self, labels: dict[str, str], cfg: CorrelationConfig | None = None) -> str:
        cfg = cfg or self.cfg
        if not cfg.domain_labels:
            return "default"
        raw = "\xff".join(labels.get(n, "") for n in cfg.domain_labels)
        return hashlib.sha1(raw.encode()).hexdigest()[:12]

    def keys(self, domain: str) -> _Keys:
        return _Keys.of(self.prefix, domain)

    def cooc(self, domain: str, cfg: CorrelationConfig | None = None) -> CooccurrenceStore:
        c = self._cooc.get(domain)
        if c is None:
            from service.store.cooccurrence import CooccurrenceStore

            c = self._cooc[domain] = CooccurrenceStore(self.redis, self.prefix,
                                                       (cfg or self.cfg).cooccurrence_half_life, domain)
        return c

    @property
    def _domain_index(self) -> str:
        return _Keys.domain_index(self.prefix)

    @property
    def _domains(self) -> str:
        return _Keys.domains(self.prefix)

    async def domains(self) -> list[str]:
        """Every correlation domain that has had an incident ("default" always)."""
        extra = await self.redis.smembers(self._domains)
        return ["default"] + sorted({_s(d) for d in extra} - {"default"})

    async def known_domains(self) -> list[str]:
        """domains(), read once and then kept up to date from this process's own writes: only for a single
        writer (every domain it has is one it created)."""
        if not self.single_writer:
            return await self.domains()
        if self._known_domains is None:
            self._known_domains = await self.domains()
        return self._known_domains

    async def _fs_get(self, k: _Keys, fp: str) -> str | None:
        """An alert's base:fs entry ("<incident id>|<status>"); a single writer knows its own."""
        if self.single_writer:
            return self._fs_local.get((k.base, fp))
        return _s(await self.redis.hget(k.fs, fp))

    def _fs_put(self, pipe: Any, k: _Keys, fp: str, value: str) -> None:
        """Queue a base:fs write (a single writer also keeps it: its transactions have no WATCH to fail, and a
        failing one ends the replay)."""
        pipe.hset(k.fs, fp, value)
        if self.single_writer:
            self._fs_local[(k.base, fp)] = value

    def _known(self, domain: str) -> None:
        if self._known_domains is not None and domain not in self._known_domains:
            self._known_domains = ["default"] + sorted(set(self._known_domains) - {"default"} | {domain})

    async def _domain_of(self, iid: str) -> str:
        """An incident's correlation domain (never changes, so it is remembered)."""
        d = self._domain_cache.get(iid)
        if d is None:
            d = _s(await self.redis.hget(self._domain_index, iid)) or "default"
            if len(self._domain_cache) > 50_000:
                self._domain_cache.clear()
            self._domain_cache[iid] = d
        return d

    def _new_id(self, domain: str, fp: str, onset: float, ver: int) -> str:
        day = datetime.fromtimestamp(onset, tz=timezone.utc).strftime("%Y%m%d")
        h = hashlib.sha1(f"{domain}|{fp}|{onset}|{ver}".encode()).hexdigest()[:6]
        return f"inc-{day}-{h}"

    def _parse_view(self, iid: str, raw: bytes) -> dict[str, Any]:
        """A base:open view, parsed (memoized per incident while its bytes stay the same: every assignment reads
        every open view, and most have not changed since the last one; the parsed views are only read)."""
        got = self._views_parsed.get(iid)
        if got is not None and got[0] == raw:
            return got[1]
        if len(self._views_parsed) >= 4096:
            self._views_parsed.clear()
        v = json.loads(raw)
        self._views_parsed[iid] = (raw, v)
        return v

    @staticmethod
    def _view(meta: dict[str, Any], reps: list[dict[str, Any]]) -> str:
        return _j({"id": meta["id"], "state": meta["state"], "opened_at": meta["opened_at"],
                   "firing": meta["firing"] > 0, "resolved_at": meta.get("resolved_at"), "reps": reps,
                   "se": meta.get("seed_entity", ""), "en": meta.get("entities") or {},
                   "lo": meta.get("last_onset"), "eo": meta.get("entity_onsets") or {},
                   "ef": sorted(meta.get("entity_firing") or {}), "qs": meta.get("quiet_since")})

    def _schedule(self, pipe: Any, k: _Keys, meta: dict[str, Any], cfg: CorrelationConfig) -> None:
        """Queue the incident's next lifecycle time (or forget it) in the same transaction."""
        t = due_at(meta, cfg)
        self._set_due(pipe, k, meta["id"], t)
        if t is not None:
            if self.on_schedule is not None:  # the engine's lower bound of its next timer (replay jumps to it)
                self.on_schedule(t)

    def _set_due(self, pipe: Any, k: _Keys, iid: str, t: float | None) -> None:
        """Queue ZADD (t) or ZREM (None) of an incident's lifecycle time."""
        if t is None:
            pipe.zrem(k.due, iid)
        else:
            pipe.zadd(k.due, {iid: t})
        if self.due_log is not None:
            self.due_log.incident(k.base, iid, t)

    @staticmethod
    def _tl(ts: float, event: str, detail: str) -> str:
        return _j({"ts": ts, "event": event, "detail": detail[:1000]})

    async def _read_meta(self, pipe: Any, k: _Keys, iid: str) -> dict[str, Any] | None:
        raw = await pipe.get(k.meta(iid))
        return json.loads(raw) if raw else None

    # ----------------------------------------------------------------------------------- assign

    async def assign(self, alert: Alert, cfg: CorrelationConfig | None = None,
                     known: str | None = None) -> tuple[str, Decision, bool]:
        """Put `alert` into an incident (join or create) atomically. Returns (id, decision, created).

        A re-sent alert that is already a member with the same status changes nothing (fast path). A member
        that fires again joins its old incident only within that incident's rolling window; otherwise it
        starts (or joins) another one, and `decision.moved_from` names the incident it left. `known`: the
        alert's base:fs entry when the caller has just read it."""
        cfg = cfg or self.cfg
        now = self.clock.now()
        f = AlertFeatures.from_alert(alert, cfg.labels, cfg.entity_labels)
        domain = self.domain(alert.labels, cfg)
        k = self.keys(domain)
        firing = not alert.resolved_at(now)

        # Fast path: Prometheus re-sends every firing alert each minute. (A single writer reads base:fs with the
        # rest, in _assign_tx's one read: it needs no WATCH before it.)
        if known is None:
            known = await self._fs_get(k, alert.fingerprint)
        if known:
            iid, _, status = known.rpartition("|")
            if (status == "firing") == firing:
                return iid, Decision(iid, [], 1.0, detail="known member, unchanged"), False
        # A firing member resolves: only its incident changes (no candidates to read), unless the read finds
        # it is no longer that open incident's member; then the full path decides.
        resolving = known.rpartition("|")[0] if known and not firing else None

        cooc = None
        for _ in range(MAX_RETRIES):
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    if not self.single_writer:
                        await pipe.watch(k.ver)
                    result = None
                    if resolving:
                        result = await self._update_member(pipe, k, resolving, alert, f, firing, cfg, now,
                                                           check_member=True)
                    if result is None or result == "not a member":
                        result = await self._assign_tx(pipe, k, domain, alert, f, firing, cfg, cooc, now)
                    if result is None:
                        continue
                    iid, decision, created, learn = result
                    await execute_behind(pipe)
                except WatchError:
                    continue
            if created:  # what _domain_of would read (it never changes)
                if len(self._domain_cache) > 50_000:
                    self._domain_cache.clear()
                self._domain_cache[iid] = domain
            if created and domain != "default":
                await self.redis.hset(self._domain_index, iid, domain)
                await self.redis.sadd(self._domains, domain)
                self._known(domain)
            for other in decision.absorb:
                try:
                    await self.merge(iid, other, "tocsin (alert storm)", feedback=False)
                except (IncidentNotFound, IncidentConflict):
                    pass  # another replica absorbed it first
            return iid, decision, created
        raise RuntimeError(f"incident assignment of {alert.fingerprint} did not settle after {MAX_RETRIES} tries")

    async def _read(self, *calls: tuple[str, tuple[Any, ...]]) -> list[Any]:
        """Several reads in one round trip. Safe inside an optimistic transaction: the WATCH on the domain's
        version (held by the transaction's own connection) fails the EXEC if anything changed after it."""
        p = self.redis.pipeline(transaction=False)
        for name, args in calls:
            getattr(p, name)(*args)
        return await p.execute()

    async def _context(self, k: _Keys, f: AlertFeatures, views: dict[str, dict[str, Any]], cfg: CorrelationConfig,
                       cad_raw: Any, t0_raw: Any) -> tuple[Context, float]:
        """(decision context: cadence and learned entity relations, span of the domain's history)."""
        cadence = _num(cad_raw, cfg.default_cadence) or cfg.default_cadence
        span = max(0.0, f.onset - _num(t0_raw, f.onset))
        _win, cross = windows(cfg, cadence)
        others = sorted({e for v in views.values() if v.get("state") != "resolved"
                         and abs(f.onset - _num(v.get("lo"), v["opened_at"])) <= cross
                         for e in (v.get("en") or {v.get("se", ""): 0}) if e and e != f.entity})
        lifts: dict[str, tuple[float, float]] = {}
        if others and cfg.weights.cooccurrence > 0:
            counts, pairs = await self._read(("hmget", (k.ent, [f.entity] + others)),
                                             ("hmget", (k.pair, [pair_key(f.entity, o) for o in others])))
            n_f = _num(counts[0])
            for o, n_o, n_ab in zip(others, counts[1:], pairs):
                n_ab = _num(n_ab)
                lifts[o] = (lift_value(n_f, _num(n_o), n_ab, span, cross), n_ab)

        def lift(a: str, b: str) -> tuple[float, float]:
            return lifts.get(b if a == f.entity else a, (0.0, 0.0))

        return Context(cadence, lift, crossing=bool(others)), span

    @staticmethod
    def _candidates(views: dict[str, dict[str, Any]], fp: str, fps_of: dict[str, str]) -> list[IncidentView]:
        return [
            IncidentView(id=v["id"], state=v["state"], opened_at=v["opened_at"],
                         members=[AlertFeatures.from_dict(r) for r in v["reps"]], firing=v["firing"],
                         resolved_at=v.get("resolved_at"), seed_entity=v.get("se", ""),
                         entities=dict(v.get("en") or {}), last_onset=v.get("lo"),
                         entity_onsets=dict(v.get("eo") or {}), firing_entities=frozenset(v.get("ef") or ()),
                         quiet_since=v.get("qs"),
                         member_fps=frozenset([fp]) if fps_of.get(fp) == v["id"] else frozenset())
            for v in sorted(views.values(), key=lambda v: (v["opened_at"], v["id"]))  # Redis's hash order is not stable
        ]

    @staticmethod
    def _queue_activity(pipe: Any, k: _Keys, f: AlertFeatures, partners: list[str]) -> None:
        for o in partners:
            pipe.hincrby(k.pair, pair_key(f.entity, o), 1)
        pipe.hincrby(k.ent, f.entity, 1)
        pipe.zadd(k.act, {f"{f.entity}|{f.onset:.3f}": f.onset})
        pipe.zremrangebyscore(k.act, "-inf", f.onset - ACTIVITY_HORIZON)

    async def _assign_tx(self, pipe: Any, k: _Keys, domain: str, alert: Alert, f: AlertFeatures, firing: bool,
                         cfg: CorrelationConfig, cooc: Any, now: float) -> tuple[str, Decision, bool, bool] | None:
        ver, existing, known, views_raw, cad_raw, t0_raw, episodes, recent = await self._read(
            ("get", (k.ver,)), ("hget", (k.fp, alert.fingerprint)), ("hget", (k.fs, alert.fingerprint)),
            ("hgetall", (k.open,)), ("hget", (k.cad, f.entity)), ("get", (k.t0,)),
            ("hget", (k.hist, alert.fingerprint)), ("zrangebyscore", (k.act, f.onset - ACTIVITY_HORIZON, f.onset)))
        ver, existing, episodes = int(ver or 0), _s(existing), _num(episodes)
        if self.single_writer and known:  # assign's fast path, from this read
            iid, _, status = _s(known).rpartition("|")
            if (status == "firing") == firing:
                pipe.multi()
                return iid, Decision(iid, [], 1.0, detail="known member, unchanged"), False, False
        # In id order: a hash's field order is Redis's (random per server start), and ties between candidates go
        # to the first one, so the order must not depend on it (replay gives the same notifications every run).
        views = {_s(i): self._parse_view(_s(i), v) for i, v in sorted(views_raw.items())}

        if existing and existing in views:
            refire = firing and _s(known) == f"{existing}|resolved"
            if not refire:
                return await self._update_member(pipe, k, existing, alert, f, firing, cfg, now)
        elif not firing:
            pipe.multi()  # a resolution of an alert that is in no open incident: nothing to record
            return "", Decision(None, [], 0.0, detail="resolved, in no open incident"), False, False

        ctx, span = await self._context(k, f, views, cfg, cad_raw, t0_raw)
        if ctx.crossing and cfg.weights.cooccurrence > 0:  # learned key weights matter only across entities
            cooc = await self.cooc(domain, cfg).lookup(f.key, now)
        win, cross = windows(cfg, ctx.cadence)
        candidates = self._candidates(views, alert.fingerprint, {alert.fingerprint: existing} if existing else {})
        decision = decide(f, candidates, now, cfg, cooc, ctx) if cfg.enabled else \
            Decision(None, [Reason("seed", 1.0, None, "correlation disabled")])
        if existing and existing in views and decision.incident_id == existing:
            return await self._update_member(pipe, k, existing, alert, f, firing, cfg, now)
        moved_from = existing if existing and existing in views else None
        decision.moved_from = moved_from
        joined_by = [r.as_dict() for r in decision.reasons]
        member = member_record(alert, now, joined_by, f)
        member["history"] = {"episodes": episodes, "span": span, "cadence": ctx.cadence}
        meta_raw, old_raw = await self._read(("get", (k.meta(decision.incident_id or ""),)),
                                             ("get", (k.meta(moved_from or ""),)))
        meta = json.loads(meta_raw) if decision.incident_id is not None and meta_raw else None
        if decision.incident_id is not None and meta is None:
            return None
        old_meta = json.loads(old_raw) if moved_from and old_raw else None
        new_entity = meta is None or f.entity not in (meta.get("entities") or {})
        partners = sorted({_s(r).rsplit("|", 1)[0] for r in recent
                           if float(_s(r).rsplit("|", 1)[1]) >= f.onset - cross} - {f.entity}) if new_entity else []
        pipe.multi()
        if meta is None:
            iid = self._new_id(domain, alert.fingerprint, alert.starts_at, ver)
            meta = {"id": iid, "domain": domain, "state": "triggered", "opened_at": alert.starts_at,
                    "updated_at": now, "resolved_at": None, "acked_by": None, "acked_at": None,
                    "snoozed_until": None, "noise": False, "firing": 1 if firing else 0,
                    "quiet_since": None if firing else now, "summary": None, "merged_into": None,
                    "seed_entity": f.entity, "entities": {f.entity: 0}, "last_onset": f.onset,
                    "entity_onsets": {f.entity: f.onset}, "window": win,
                    "entity_firing": {f.entity: 1} if firing else {}}
            pipe.set(k.meta(iid), _j(meta))
            pipe.zadd(k.all, {iid: alert.starts_at})
            pipe.hset(k.open, iid, self._view(meta, [f.to_dict()]))
            pipe.rpush(k.timeline(iid), self._tl(now, "opened", f"opened by {f.alertname or f.metric}"
                                                 f" on {f.entity}{' (' + f.service + ')' if f.service else ''}"
                                                 f" ({alert.fingerprint})"))
            created = True
        else:
            iid = decision.incident_id
            created = False
            meta["firing"] += 1 if firing else 0
            if firing:
                _fire_entity(meta, f.entity, 1)
            meta["updated_at"] = now
            meta["opened_at"] = min(meta["opened_at"], alert.starts_at)
            ents = dict(meta.get("entities") or {meta.get("seed_entity", f.entity): 0})
            ents[f.entity] = min(ents.get(f.entity, decision.hop), decision.hop)
            meta["entities"] = ents
            _touch_onset(meta, f.entity, f.onset)
            meta["window"] = max(_num(meta.get("window")), win)
            if firing:
                meta["quiet_since"] = None
            why = "; ".join(f"{r['signal']} {r['score']:.2f}: {r['detail']}" for r in joined_by[:4])
            pipe.set(k.meta(iid), _j(meta))
            pipe.zadd(k.all, {iid: meta["opened_at"]})
            reps = _add_rep(views[iid]["reps"], f, cfg.max_compare_members)
            pipe.hset(k.open, iid, self._view(meta, reps))
            pipe.rpush(k.timeline(iid), self._tl(now, "member_joined", f"{f.alertname or f.metric} on {f.entity}"
                                                 f" joined ({why})"))
        self._schedule(pipe, k, meta, cfg)
        if old_meta is not None:
            # The member fired again after its incident went quiet: it belongs to the new incident now.
            pipe.hdel(k.members(moved_from), alert.fingerprint)
            pipe.rpush(k.timeline(moved_from), self._tl(now, "member_left", f"{f.alertname or f.metric} on "
                                                        f"{f.entity} fired again outside the rolling window: {iid}"))
        if new_entity:
            self._queue_activity(pipe, k, f, partners)
        pipe.hincrby(k.hist, alert.fingerprint, 1)
        pipe.setnx(k.t0, repr(f.onset))
        pipe.hset(k.members(iid), alert.fingerprint, _j(member))
        pipe.hset(k.fp, alert.fingerprint, iid)
        self._fs_put(pipe, k, alert.fingerprint, f"{iid}|{member['status']}")
        pipe.ltrim(k.timeline(iid), -TIMELINE_MAX, -1)
        pipe.incr(k.ver)
        return iid, decision, created, False

    async def _update_member(self, pipe: Any, k: _Keys, iid: str, alert: Alert, f: AlertFeatures, firing: bool,
                             cfg: CorrelationConfig, now: float, check_member: bool = False) -> Any:
        """Record a known member's new status (nothing to decide). With `check_member` (`iid` came from base:fs,
        unread under this transaction): "not a member" unless base:fp still maps the alert to `iid` and `iid` is
        open, as `_assign_tx` requires before it takes this path; nothing is queued then."""
        meta_raw, raw, cad_raw, view_raw, fp_iid = await self._read(
            ("get", (k.meta(iid),)), ("hget", (k.members(iid), alert.fingerprint)), ("hget", (k.cad, f.entity)),
            ("hget", (k.open, iid)), ("hget", (k.fp, alert.fingerprint)))
        if check_member and (_s(fp_iid) != iid or view_raw is None):
            return "not a member"
        if meta_raw is None or raw is None:
            return None
        meta = json.loads(meta_raw)
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
        name = f"{f.alertname or f.metric} on {f.entity}"
        cadence = None
        if was_firing != firing:
            m["state_changes"] = (m.get("state_changes", []) + [now])[-STATE_CHANGES_MAX:]
            if firing:
                m.update(status="firing", ends_at=None, starts_at=alert.starts_at)
                meta["firing"] += 1
                _fire_entity(meta, f.entity, 1)
                meta["quiet_since"] = None
                _touch_onset(meta, f.entity, f.onset)
                events.append(("member_refired", f"{name} fires again"))
            else:
                m.update(status="resolved", ends_at=alert.ends_at)
                meta["firing"] = max(0, meta["firing"] - 1)
                _fire_entity(meta, f.entity, -1)
                events.append(("member_resolved", f"{name} resolved"))
                dur = float(alert.ends_at or now) - float(m["starts_at"])
                if dur >= 1.0:
                    cadence = dur if dur < _num(cad_raw, float("inf")) else None
                if meta["firing"] == 0:
                    meta["quiet_since"] = now
                    events.append(("all_members_resolved", f"every member resolved; resolving after "
                                   f"{max(cfg.quiet_period, _num(meta.get('window'))):.0f}s of quiet"))
        meta["updated_at"] = now
        view = json.loads(view_raw or b"{}")
        pipe.multi()
        pipe.hset(k.members(iid), alert.fingerprint, _j(m))
        self._fs_put(pipe, k, alert.fingerprint, f"{iid}|{m['status']}")
        pipe.set(k.meta(iid), _j(meta))
        pipe.hset(k.open, iid, self._view(meta, view.get("reps", [])))
        self._schedule(pipe, k, meta, cfg)
        if firing and not was_firing:
            pipe.hincrby(k.hist, alert.fingerprint, 1)
        if cadence is not None:
            pipe.hset(k.cad, f.entity, repr(cadence))
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
        known = await self._fs_get(k, alert.fingerprint)
        if not known:
            return None
        if known.endswith("|resolved"):
            return known.rpartition("|")[0]
        iid, _, _ = await self.assign(alert, known=known)
        return iid

    async def firing_members(self, iid: str, fps: list[str]) -> list[str]:
        """Which of `fps` the incident still records as firing (one read)."""
        if not fps:
            return []
        k = self.keys(await self._domain_of(iid))
        got = [self._fs_local.get((k.base, fp)) for fp in fps] if self.single_writer else await self.redis.hmget(k.fs, fps)
        return [fp for fp, v in zip(fps, got) if v is not None and _s(v) == f"{iid}|firing"]

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
        def writes(pipe: Any, k: _Keys, meta: dict[str, Any], now: float, view: Any) -> None:
            meta.update({key: (now if v == "$now" else v) for key, v in changes.items()})
            meta["updated_at"] = now
            pipe.multi()
            pipe.set(k.meta(iid), _j(meta))
            if view is not None:
                pipe.hset(k.open, iid, self._view(meta, view["reps"]))
                self._schedule(pipe, k, meta, self.cfg)
            pipe.rpush(k.timeline(iid), self._tl(now, event, detail))
            pipe.ltrim(k.timeline(iid), -TIMELINE_MAX, -1)

        if self.single_writer:  # no WATCH (nothing else writes): one read, one transaction
            k = self.keys(await self._domain_of(iid))
            raw_meta, raw_view = await self._read(("get", (k.meta(iid),)), ("hget", (k.open, iid)))
            if not raw_meta:
                raise IncidentNotFound(iid)
            async with self.redis.pipeline(transaction=True) as pipe:
                writes(pipe, k, json.loads(raw_meta), self.clock.now(), json.loads(raw_view or b"null"))
                pipe.incr(k.ver)
                await execute_behind(pipe)
            return

        async def fn(pipe: Any, k: _Keys, meta: dict[str, Any], now: float) -> None:
            writes(pipe, k, meta, now, json.loads(await pipe.hget(k.open, iid) or b"null"))

        await self._mutate(iid, fn)

    async def _feedback(self, iid: str, kind: str) -> None:
        """A person's verdict on the incident (kind: acted | noise). First the installation's confidence model
        learns from it (one step of online logistic regression on the incident's features, pulled back towards
        the shipped model), then it is counted, decayed, for every member series and alert type: the
        `feedback_history` feature of later incidents."""
        domain = await self._domain_of(iid)
        k = self.keys(domain)
        self._fb_written = True
        now = self.clock.now()
        row = (await self._read_rows(domain, [iid]))[0]
        if row is None:
            raise IncidentNotFound(iid)
        snap = (await self._build(domain, [row]))[0]  # what the person saw, before their verdict counts
        await self._learn_from_verdict(k, snap, kind == "acted")
        args: list[Any] = [now, FEEDBACK_HALF_LIFE]
        for f in _verdict_fields(row[2]):
            args += [1, f"{f}|{kind}", 1.0]
        await self.cooc(domain).decay_add(keys=[k.fb], args=args)  # atomic per field across replicas

    async def _learn_from_verdict(self, k: _Keys, snap: dict[str, Any], real: bool) -> None:
        """Online logistic regression: offset += rate * ((y - p) * x - pull * offset), per feature and for the
        base rate; HINCRBYFLOAT keeps concurrent verdicts from overwriting each other."""
        p = float(snap.get("confidence") or 0.5)
        xs = {f["factor"]: float(f.get("x", 0.0)) for f in snap.get("confidence_factors") or [] if "x" in f}
        xs["bias"] = 1.0
        xs.pop("base_rate", None)
        current = {_s(a): float(b) for a, b in (await self.redis.hgetall(k.cmodel)).items()}
        err = (1.0 if real else 0.0) - p
        pipe = self.redis.pipeline(transaction=False)
        for name, x in sorted(xs.items()):
            delta = LEARNING_RATE * (err * x - OFFSET_PULL * current.get(name, 0.0))
            if delta:
                pipe.hincrbyfloat(k.cmodel, name, delta)
        pipe.hincrbyfloat(k.cmodel, "verdicts", 1.0)
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

    async def set_hold(self, iid: str, hold: dict[str, Any] | None) -> None:
        """Record that the incident is held below the confidence floor instead of paged (`hold`), or was paged
        after a hold (None); shown in every snapshot as `held`."""
        if hold is None:
            await self._simple(iid, "released", "paged: its confidence reached the floor", held=None)
            return
        to = f"; sent to {hold['receiver']}" if hold.get("receiver") else ""
        await self._simple(iid, "held", f"held, not paged: confidence {hold['confidence']:.2f} below "
                           f"{hold['floor']:.2f}{to}", held=hold)

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
                        quiet_since=None if firing else now, entity_firing=_entity_firing({**mine, **theirs}.values()))
            if firing and meta["state"] == "resolved":
                meta.update(state="triggered", resolved_at=None)
            other.update(state="resolved", resolved_at=now, merged_into=iid, firing=0, updated_at=now)
            ents = {e: h + 1 for e, h in (other.get("entities") or {}).items()}
            ents.update(meta.get("entities") or {})
            meta["entities"] = ents
            meta["last_onset"] = max(_num(meta.get("last_onset")), _num(other.get("last_onset")))
            for e, t in (other.get("entity_onsets") or {}).items():
                _touch_onset(meta, e, float(t))
            reps = [m["features"] for m in sorted({**mine, **theirs}.values(),
                                                  key=lambda m: (m["starts_at"], m["fingerprint"]))]
            reps = [r.to_dict() for r in representatives([AlertFeatures.from_dict(r) for r in reps],
                                                         self.cfg.max_compare_members)]
            pipe.multi()
            for fp, m in theirs.items():
                pipe.hset(k.members(iid), fp, _j(m))
                pipe.hset(k.fp, fp, iid)
                self._fs_put(pipe, k, fp, f"{iid}|{m['status']}")
            pipe.delete(k.members(other_id))
            pipe.set(k.meta(iid), _j(meta))
            pipe.set(k.meta(other_id), _j(other))
            pipe.hset(k.open, iid, self._view(meta, reps))
            pipe.hdel(k.open, other_id)
            self._set_due(pipe, k, other_id, None)
            self._schedule(pipe, k, meta, self.cfg)
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
            seed = min(moved.values(), key=lambda m: (m["starts_at"], m["fingerprint"]))
            new_id = self._new_id(meta["domain"], seed["fingerprint"], seed["starts_at"], ver)
            for m in moved.values():
                m["joined_by"] = [{"signal": "manual", "score": 1.0, "matched": None,
                                   "detail": f"split from {iid} by {who}"}]
            def fire(ms: dict[str, Any]) -> int:
                return sum(1 for m in ms.values() if m["status"] == "firing")
            meta.update(firing=fire(members), updated_at=now,
                        opened_at=min(m["starts_at"] for m in members.values()),
                        entity_onsets=_entity_onsets(members.values()),
                        entity_firing=_entity_firing(members.values()))
            meta["quiet_since"] = None if meta["firing"] else now
            new = {**meta, "id": new_id, "state": "triggered", "opened_at": seed["starts_at"], "resolved_at": None,
                   "acked_by": None, "acked_at": None, "snoozed_until": None, "noise": False, "summary": None,
                   "firing": fire(moved), "quiet_since": None if fire(moved) else now, "merged_into": None,
                   "seed_entity": seed.get("entity", ""),
                   "entities": {m.get("entity", ""): 0 for m in moved.values()},
                   "last_onset": max(m["starts_at"] for m in moved.values()),
                   "entity_onsets": _entity_onsets(moved.values()),
                   "entity_firing": _entity_firing(moved.values())}

            def reps(ms: dict[str, Any]) -> list[dict[str, Any]]:
                fs = [AlertFeatures.from_dict(m["features"]) for m in ms.values()]
                return [r.to_dict() for r in representatives(fs, self.cfg.max_compare_members)]
            pipe.multi()
            for fp, m in moved.items():
                pipe.hdel(k.members(iid), fp)
                pipe.hset(k.members(new_id), fp, _j(m))
                pipe.hset(k.fp, fp, new_id)
                self._fs_put(pipe, k, fp, f"{new_id}|{m['status']}")
            pipe.set(k.meta(iid), _j(meta))
            pipe.set(k.meta(new_id), _j(new))
            pipe.hset(k.open, iid, self._view(meta, reps(members)))
            pipe.hset(k.open, new_id, self._view(new, reps(moved)))
            self._schedule(pipe, k, meta, self.cfg)
            self._schedule(pipe, k, new, self.cfg)
            pipe.zadd(k.all, {iid: meta["opened_at"], new_id: new["opened_at"]})
            pipe.rpush(k.timeline(iid), self._tl(now, "split", f"{len(moved)} alerts split into {new_id} by {who}"))
            pipe.rpush(k.timeline(new_id), self._tl(now, "opened", f"split from {iid} by {who}"))
            return new_id

        new_id = await self._mutate(iid, fn)
        domain = await self._domain_of(iid)
        if domain != "default":
            await self.redis.hset(self._domain_index, new_id, domain)
            await self.redis.sadd(self._domains, domain)
            self._known(domain)
        await self.cooc(domain).feedback(keys_moved, keys_left, False, self.clock.now())
        return new_id

    # ----------------------------------------------------------------------------------- time

    async def next_due(self, domain: str = "default") -> float | None:
        """When time next changes an incident of `domain` (None: nothing is waiting on time)."""
        first = await self.redis.zrange(self.keys(domain).due, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    async def tick(self, now: float | None = None, domain: str = "default") -> list[str]:
        """Advance the lifecycles that are due at `now` (lifecycle.advance): end snoozes, resolve quiet incidents,
        retire resolved ones after the cool-down (their keys then expire after `retention`). Only incidents whose
        due time has come are read. Returns the ids whose state changed."""
        now = self.clock.now() if now is None else now
        cfg = self.cfg
        k = self.keys(domain)
        changed: list[str] = []
        learn: list[tuple[list[str], str | None]] = []
        if not self.single_writer:  # (a single writer needs no WATCH: its one read below is the check)
            first = await self.redis.zrange(k.due, 0, 0, withscores=True)
            if not first or float(first[0][1]) > now:
                return []  # nothing is due: one read, no transaction
        for _ in range(MAX_RETRIES):
            changed, learn = [], []
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    due = await self._due_ids(pipe, k, now)
                    if self.due_log is not None:
                        await self._repair_due_log(k, due, now)
                    if not due:
                        return []
                    writes, retire, learn = await self._due_work(pipe, k, due, now)
                    pipe.multi()
                    for iid, meta, events, view in writes:
                        if events:
                            pipe.set(k.meta(iid), _j(meta))
                            if view is not None:
                                pipe.hset(k.open, iid, self._view(meta, view["reps"]))
                            for ev, detail in events:
                                pipe.rpush(k.timeline(iid), self._tl(now, ev, detail))
                            changed.append(iid)
                        t = due_at(meta, cfg)
                        if t is None or t <= now and not events:
                            self._set_due(pipe, k, iid, None)
                        else:
                            self._set_due(pipe, k, iid, max(t, now))
                    for iid, fps in retire:
                        pipe.hdel(k.open, iid)
                        self._set_due(pipe, k, iid, None)
                        for key in (k.meta(iid), k.members(iid), k.timeline(iid)):
                            pipe.expire(key, int(cfg.retention))
                    pipe.incr(k.ver)
                    await execute_behind(pipe)
                    break
                except WatchError:
                    continue
        for keys, first in learn:
            await self.cooc(domain).record_incident(keys, first, now)
        await self._forget_members(k, [(iid, fps) for iid, fps in retire if fps])
        return changed

    async def _repair_due_log(self, k: _Keys, due: list[str], now: float) -> None:
        """The timer copy expected an incident due that Redis does not have due (never, while every write tells
        it): take Redis's times for those."""
        stale = sorted(set(self.due_log.incidents_due(k.base, now)) - set(due))
        if stale:
            for iid, t in zip(stale, await self.redis.zmscore(k.due, stale)):
                self.due_log.incident(k.base, iid, None if t is None else float(t))

    async def _due_ids(self, pipe: Any, k: _Keys, now: float) -> list[str]:
        """The incidents due at `now`, read under the domain's WATCH (unwatched again when there are none); a
        single writer reads them without one."""
        if self.single_writer:
            return [_s(i) for i in await self.redis.zrangebyscore(k.due, "-inf", now)]
        await pipe.watch(k.ver)
        due = [_s(i) for i in await pipe.zrangebyscore(k.due, "-inf", now)]
        if not due:
            await pipe.unwatch()
        return due

    async def _due_work(self, pipe: Any, k: _Keys, due: list[str], now: float) -> tuple[list[Any], list[Any], list[Any]]:
        """Read the due incidents and decide (lifecycle.advance): (writes, retirements, closed incidents to learn).
        Two round trips for all of them (metas and views; then the members of those that retire or resolve),
        through _read: safe under the caller's WATCH."""
        writes: list[tuple[str, dict[str, Any], list[tuple[str, str]], dict[str, Any]]] = []
        retire: list[tuple[str, list[str]]] = []
        learn: list[tuple[list[str], str | None]] = []
        got = await self._read(*[("get", (k.meta(iid),)) for iid in due], *[("hget", (k.open, iid)) for iid in due])
        decided: list[tuple[str, Any, Any, Any]] = []  # (iid, meta, advance(...) or None, view raw)
        more: list[tuple[str, tuple[Any, ...]]] = []
        for iid, raw, view_raw in zip(due, got[:len(due)], got[len(due):]):
            meta = json.loads(raw) if raw else None
            adv = advance(meta, now, self.cfg) if meta is not None else None
            decided.append((iid, meta, adv, view_raw))
            if adv is not None and adv[2]:
                more.append(("hkeys", (k.members(iid),)))
            elif adv is not None and adv[0]["state"] == "resolved" and meta["state"] != "resolved":
                more.append(("hvals", (k.members(iid),)))
        extra = iter(await self._read(*more) if more else [])
        for iid, meta, adv, view_raw in decided:
            if meta is None:
                retire.append((iid, []))
                continue
            new, events, gone = adv
            if gone:
                retire.append((iid, [_s(x) for x in next(extra)]))
                continue
            view = json.loads(view_raw or b"null")
            writes.append((iid, new, events, view))
            if new["state"] == "resolved" and meta["state"] != "resolved":
                ms = sorted((json.loads(x) for x in next(extra)),
                            key=lambda m: (m["starts_at"], m["fingerprint"]))  # not in Redis's hash order
                first = min(ms, key=lambda m: m["starts_at"])["key"] if ms else None
                learn.append(([m["key"] for m in ms], first))
        return writes, retire, learn

    async def _forget_members(self, k: _Keys, retired: list[tuple[str, list[str]]]) -> None:
        """Drop the fingerprint -> incident mapping of retired incidents' members (compare-and-delete: a member
        that moved on to a newer incident keeps its new mapping)."""
        if not retired:
            return
        currents = await self._read(*[("hmget", (k.fp, fps)) for _iid, fps in retired])
        pipe = self.redis.pipeline(transaction=False)
        for (iid, fps), current in zip(retired, currents):
            stale = [fp for fp, cur in zip(fps, current) if _s(cur) == iid]
            if stale:
                pipe.hdel(k.fp, *stale)
                pipe.hdel(k.fs, *stale)
                for fp in stale:
                    self._fs_local.pop((k.base, fp), None)
        await execute_behind(pipe)

    # ----------------------------------------------------------------------------------- reading

    async def get(self, iid: str) -> dict[str, Any]:
        """The incident snapshot (see the shared incident schema)."""
        snap = (await self._snapshots(await self._domain_of(iid), [iid]))[0]
        if snap is None:
            raise IncidentNotFound(iid)
        return snap

    async def _snapshots(self, domain: str, ids: list[str]) -> list[dict[str, Any] | None]:
        """The snapshots of incidents `ids` of one domain (None for one that is gone), in two round trips
        whatever their number: one pipeline of their records, one of the learned feedback and lead history
        their members' keys need."""
        rows = await self._read_rows(domain, ids)
        built = iter(await self._build(domain, [r for r in rows if r is not None]))
        return [None if r is None else next(built) for r in rows]

    async def _read_rows(self, domain: str, ids: list[str]) -> list[_Row | None]:
        """(id, metadata, members by onset, raw timeline) of each incident, None for one that is gone: one
        pipeline."""
        k = self.keys(domain)
        async with self.redis.pipeline(transaction=False) as p:
            for iid in ids:
                p.get(k.meta(iid))
                p.hgetall(k.members(iid))  # (not HVALS: a single writer's read cache keeps a whole hash current)
                p.lrange(k.timeline(iid), 0, -1)
            raw = await p.execute()
        rows: list[_Row | None] = []
        for i, iid in enumerate(ids):
            raw_meta, raw_members, raw_tl = raw[3 * i:3 * i + 3]
            raw_members = raw_members.values()
            if not raw_meta:
                rows.append(None)
                continue
            members = sorted((json.loads(m) for m in raw_members), key=lambda m: (m["starts_at"], m["fingerprint"]))
            rows.append((iid, json.loads(raw_meta), members, raw_tl))
        return rows

    async def _build(self, domain: str, rows: list[_Row]) -> list[dict[str, Any]]:
        """The snapshots of these rows, with the installation's confidence model, people's verdicts on their
        members' series and alert types, and the lead history of their keys read in one pipeline."""
        k = self.keys(domain)
        keys_of = {r[0]: sorted({m["key"] for m in r[2]}) for r in rows}
        fields_of = {r[0]: _verdict_fields(r[2]) for r in rows}
        wanted = sorted({f for fs in fields_of.values() for f in fs})
        cooc = self.cooc(domain)
        async with self.redis.pipeline(transaction=False) as p:
            p.hgetall(k.cmodel)
            if wanted:
                p.hmget(k.fb, [f"{f}|{kind}" for f in wanted for kind in ("acted", "noise")])
            lead_keys = cooc.queue_lead_reads(p, {key for ks in keys_of.values() for key in ks})
            learned = await p.execute()
        now = self.clock.now()
        offsets, learned = learned[0], learned[1:]
        model = ConfidenceModel.load().adjusted({_s(a): float(b) for a, b in offsets.items() if _s(a) != "verdicts"})
        fb_all: dict[str, dict[str, float]] = {}
        if wanted:
            for i, f in enumerate(wanted):
                acted, noise = _decayed(learned[0][2 * i], now), _decayed(learned[0][2 * i + 1], now)
                if acted or noise:
                    fb_all[f] = {"acted": acted, "noise": noise}
            learned = learned[1:]
        lead = cooc.lead_lookup(lead_keys, learned, now)
        out: list[dict[str, Any]] = []
        for r in rows:
            fb = {f: fb_all[f] for f in fields_of[r[0]] if f in fb_all}
            out.append(self._snapshot(*r, fb, model, lead if keys_of[r[0]] else None, now))
        return out

    def _snapshot(self, iid: str, meta: dict[str, Any], members: list[dict[str, Any]], raw_tl: list[Any],
                  fb: dict[str, dict[str, float]], model: ConfidenceModel, lead: Any, now: float) -> dict[str, Any]:
        cfg = self.cfg
        sev, sev_f = severity(members, cfg, now) if members else ("info", [])
        conf, conf_f, flapping = confidence(members, cfg, now, fb, model) if members else (0.0, [], False)
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
            "held": meta.get("held"),
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
                   until: float | None = None, domain: str = "default", limit: int = 100,
                   service: str | None = None) -> list[dict[str, Any]]:
        """Snapshots of incidents opened within [since, until], newest first, filtered by state/severity (and by
        `service`: only incidents with an alert of that service).

        A constant number of round trips for a page: the ids of just as many as are still wanted, then their
        records (one pipeline) and the learned data their snapshots need (one more); with a filter, LIST_BATCH at
        a time until the page is full. The state and service filters are applied to the records, before any
        snapshot is computed."""
        k = self.keys(domain)
        hi, lo = "+inf" if until is None else until, "-inf" if since is None else since
        out: list[dict[str, Any]] = []
        gone: list[str] = []
        pos = 0
        while len(out) < limit:
            want = limit - len(out)
            n = max(want, LIST_BATCH) if state or severity or service else want
            batch = [_s(raw) for raw in await self.redis.zrevrangebyscore(k.all, hi, lo, start=pos, num=n)]
            pos += n
            rows = await self._read_rows(domain, batch)
            gone += [iid for iid, r in zip(batch, rows) if r is None]  # expired after retention
            kept = [r for r in rows if r is not None and (not state or r[1]["state"] == state)
                    and (not service or any(member_service(m) == service for m in r[2]))]
            out += [snap for snap in await self._build(domain, kept) if not severity or snap["severity"] == severity]
            if len(batch) < n:
                break
        if gone:
            await self.redis.zrem(k.all, *gone)
        return out[:limit]

    async def count_without_incident(self, by_domain: dict[str, list[str]]) -> int:
        """How many of these alert fingerprints (by correlation domain) belong to no incident: one pipeline."""
        by_domain = {d: fps for d, fps in by_domain.items() if fps}
        if not by_domain:
            return 0
        async with self.redis.pipeline(transaction=False) as p:
            for domain, fps in by_domain.items():
                p.hmget(self.keys(domain).fp, fps)
            return sum(1 for res in await p.execute() for x in res if x is None)

    async def incident_of(self, alert: Alert) -> str | None:
        """The incident an alert currently belongs to (None if none)."""
        k = self.keys(self.domain(alert.labels))
        return _s(await self.redis.hget(k.fp, alert.fingerprint))
