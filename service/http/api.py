"""The HTTP API (aiohttp): Alertmanager's API v2 for alerts and silences, Tocsin's ingest doors, health,
readiness, metrics and reload. Every write answers 2xx only after Redis has it; Redis down means 503."""
from __future__ import annotations

import asyncio
import hmac
import json
import os
import signal
import uuid
import time as _wall  # latency metrics only (measurement, not logic)
from typing import Any, Awaitable, Callable

import structlog
from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from routing.inhibition import inhibited_by
from routing.matchers import compile_go, parse_matchers
from routing.silences import SilenceError

from service.ingest.alerts import BodyError, Invalid, ItemError, load_body, parse_postable
from service.core.clock import to_rfc3339
from service.config.sections import redacted_source
from service.core.errors import ConfigError
from service.ingest.events import DetectorEvent
from service.http.appkeys import ENGINE, RELOAD, SETTINGS, TOKENS
from service.store.keys import ping

log = structlog.get_logger("tocsin.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Admission:
    """Bounded ingest under a storm. The work of an ingest request grows with its body, so admission is by bytes:
    requests whose bodies (Content-Length) fit in `budget` together are parsed and stored at once (many small
    ones, or a few of Prometheus's 64-alert batches); others wait for room at most `wait` seconds, in a queue of
    at most `queue`; beyond that they get 503 with Retry-After at once. So a sender hears "retry" within `wait`
    plus one request's work (well before Prometheus's 10 s timeout) instead of a request that is accepted and
    stalls; and the memory of bodies in flight is bounded."""

    def __init__(self, budget: int = 96 * 1024, queue: int = 256, wait: float = 3.0, retry_after: int = 2):
        self.budget, self.queue, self.wait, self.retry_after = budget, queue, wait, retry_after
        self.used = 0
        self.waiting = 0
        self._room = asyncio.Condition()

    def weight(self, content_length: int | None) -> int:
        return max(1024, min(content_length or 1024, self.budget))

    async def acquire(self, weight: int) -> bool:
        """True once `weight` bytes of the budget are held (release them); False when the request must be
        refused."""
        if not self.waiting and self.used + weight <= self.budget:
            self.used += weight
            return True
        if self.waiting >= self.queue:
            return False
        self.waiting += 1
        try:
            async with asyncio.timeout(self.wait):  # not wait_for: it can swallow a cancellation on 3.11
                async with self._room:
                    await self._room.wait_for(lambda: self.used + weight <= self.budget)
                    self.used += weight
            return True
        except TimeoutError:
            return False
        finally:
            self.waiting -= 1

    async def release(self, weight: int) -> None:
        self.used -= weight
        async with self._room:
            self._room.notify_all()


def admitted(handler: Handler) -> Handler:
    """Run an ingest handler under the app's Admission (503 + Retry-After when it is full)."""

    async def inner(request: web.Request) -> web.StreamResponse:
        adm: Admission | None = request.app[SETTINGS].get("admission")
        if adm is None:
            return await handler(request)
        weight = adm.weight(request.content_length)
        if not await adm.acquire(weight):
            request.app[ENGINE].metrics.ingest_refused.labels(request.path).inc()
            log.warning("ingest_overloaded", path=request.path, waiting=adm.waiting)
            resp = json_error(503, "overloaded: retry later")
            resp.headers["Retry-After"] = str(adm.retry_after)
            return resp
        try:
            return await handler(request)
        finally:
            await adm.release(weight)

    return inner


def json_error(status: int, message: str, errors: list[dict[str, str]] | None = None) -> web.Response:
    body: dict[str, Any] = {"code": status, "message": message}
    if errors:
        body["errors"] = errors
    return web.json_response(body, status=status)


@web.middleware
async def redis_unavailable(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Redis down or slow: answer 503 so that senders retry; never claim something was stored."""
    try:
        return await handler(request)
    except (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError) as e:
        log.warning("redis_unavailable", path=request.path, error=type(e).__name__)
        return json_error(503, "state store unavailable; retry later")
    except RedisError as e:
        log.error("redis_error", path=request.path, error=str(e)[:200])
        return json_error(503, "state store error; retry later")


def require_token(source: str) -> Callable[[Handler], Handler]:
    """Bearer-token check for a door. Without configured tokens the door is open (Alertmanager's default)."""

    def wrap(handler: Handler) -> Handler:
        async def inner(request: web.Request) -> web.StreamResponse:
            tokens: list[tuple[bytes, set[str]]] = request.app[TOKENS]
            if tokens:
                auth = request.headers.get("Authorization", "")
                given = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else b""
                ok = False
                read_only = source == "api" and request.method in ("GET", "HEAD")
                for secret, sources in tokens:
                    # Compare against every token (constant time each) so timing reveals nothing. An empty
                    # token never matches (config validation refuses one; this is the second lock).
                    match = hmac.compare_digest(given, secret) and bool(secret)
                    ok |= match and ("all" in sources or source in sources or (read_only and "read" in sources))
                if not ok:
                    return json_error(401, "missing or invalid bearer token")
            return await handler(request)

        return inner

    return wrap


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return load_body(raw)
    except BodyError as e:
        raise web.HTTPBadRequest(text=json.dumps({"code": 400, "message": str(e)}),
                                 content_type="application/json") from None


def _item_errors(errs: list[ItemError]) -> list[dict[str, str]]:
    return [{"path": e.path, "message": e.message} for e in errs]


async def _store(request: web.Request, source: str, alerts: list[Any], errors: list[ItemError]) -> web.Response:
    engine = request.app[ENGINE]
    m = engine.metrics
    t0 = _wall.perf_counter()
    if alerts:
        await engine.ingest(alerts)
    m.pipeline_latency.labels(source).observe(_wall.perf_counter() - t0)
    now = engine.clock.now()
    for a in alerts:
        m.alerts_received.labels(source, "resolved" if a.resolved_at(now) else "firing").inc()
    if errors:
        m.alerts_invalid.labels(source).inc(len(errors))
        return json_error(400, "; ".join(str(e) for e in errors), _item_errors(errors))
    return web.Response(status=200)


@require_token("alerts")
@admitted
async def post_alerts(request: web.Request) -> web.Response:
    """Alertmanager API v2: what Prometheus sends. Valid alerts are stored even when others are rejected."""
    engine = request.app[ENGINE]
    body = await _json_body(request)
    alerts, errors = parse_postable(body, engine.clock.now(), engine.cfg.resolve_timeout, "prometheus")
    return await _store(request, "prometheus", alerts, errors)


@require_token("alertmanager")
@admitted
async def post_alertmanager_webhook(request: web.Request) -> web.Response:
    """An Alertmanager webhook (version 4) from an existing Alertmanager: its alerts enter Tocsin's pipeline."""
    engine = request.app[ENGINE]
    body = await _json_body(request)
    if not isinstance(body, dict):
        return json_error(400, "body: must be an Alertmanager webhook payload object")
    if str(body.get("version", "4")) != "4":
        return json_error(400, f"version: unsupported webhook version {body.get('version')!r} (want \"4\")")
    items = body.get("alerts")
    if not isinstance(items, list):
        return json_error(400, "alerts: must be a list")
    now = engine.clock.now()
    postable = []
    for a in items:
        if isinstance(a, dict):
            a = dict(a)
            if a.get("status") == "firing" or str(a.get("endsAt", "")).startswith("0001-"):
                a.pop("endsAt", None)
        postable.append(a)
    # Firing alerts arrive only as often as the upstream's repeat_interval: resolve_timeout would end them early.
    alerts, errors = parse_postable(postable, now, engine.cfg.alertmanager_resolve_after, "alertmanager",
                                    base="alerts")
    return await _store(request, "alertmanager", alerts, errors)


@require_token("events")
@admitted
async def post_events(request: web.Request) -> web.Response:
    """Detector outputs: one event or a list. Anomalous events open alerts; normal ones resolve them."""
    engine = request.app[ENGINE]
    body = await _json_body(request)
    items = body if isinstance(body, list) else [body]
    now = engine.clock.now()
    resolve_after = engine.cfg.events_resolve_after
    alerts, errors = [], []
    for i, item in enumerate(items):
        base = f"[{i}]" if isinstance(body, list) else ""
        if isinstance(item, Invalid):
            errors.append(ItemError((base + item.path).lstrip(".") or "body", item.message))
            continue
        try:
            alerts.append(DetectorEvent.model_validate(item).to_alert(now, resolve_after))
        except ValidationError as e:
            for err in e.errors():
                parts = err["loc"] or ((err.get("ctx") or {}).get("loc") or "",)
                loc = base + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts if p != "")
                errors.append(ItemError(loc.lstrip(".") or "body", err["msg"]))
    return await _store(request, "detector", alerts, errors)


def _filter(request: web.Request) -> list[Any]:
    """The `filter` query parameters (Alertmanager matchers such as alertname="X" or env=~"prod|dev")."""
    ms: list[Any] = []
    for i, text in enumerate(request.query.getall("filter", [])):
        try:
            ms.extend(parse_matchers(text, f"filter[{i}]"))
        except ConfigError as e:
            raise web.HTTPBadRequest(text=json.dumps({"code": 400, "message": str(e)}),
                                     content_type="application/json") from None
    return ms


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "true").lower() != "false"


@require_token("api")
async def get_alerts(request: web.Request) -> web.Response:
    """Alertmanager API v2 GET /alerts with its filter, receiver, active, silenced and inhibited parameters."""
    engine = request.app[ENGINE]
    cfg = engine.cfg
    now = engine.clock.now()
    filters = _filter(request)
    receiver_re = None
    if request.query.get("receiver"):
        try:
            receiver_re = compile_go(f"^(?:{request.query['receiver']})$")
        except ValueError as e:
            return json_error(400, f"receiver: {e}")
    want_active, want_silenced, want_inhibited = _flag(request, "active"), _flag(request, "silenced"), \
        _flag(request, "inhibited")
    silences = [s for s in await engine.silences.all() if s.state(now) == "active"]
    firing = [a for a in await engine.dispatcher.store.all() if not a.resolved_at(now)]
    # Inhibition as the flush sees it: an index of the firing source alerts of each rule.
    sources: dict[tuple[int, str], list[tuple[str, dict[str, str]]]] = {}
    for a in firing:
        for i, rule in enumerate(cfg.inhibit_rules):
            if rule.is_source(a.labels):
                sources.setdefault((i, rule.equal_key(a.labels)), []).append((a.fingerprint, a.labels))
    out = []
    for a in sorted(firing, key=lambda a: a.fingerprint):
        if not all(m.matches(a.labels) for m in filters):
            continue
        receivers = [r.opts.receiver for r in cfg.route.match(a.labels)]
        if receiver_re is not None and not any(receiver_re.search(r) for r in receivers):
            continue
        silenced_by = [s.id for s in silences if s.matches(a.labels)]
        by = inhibited_by(cfg.inhibit_rules, a.labels, a.fingerprint, lambda i, eq: sources.get((i, eq), []))
        inhibited = [by] if by else []
        if (silenced_by and not want_silenced) or (inhibited and not want_inhibited):
            continue
        if not silenced_by and not inhibited and not want_active:
            continue
        out.append({
            "labels": a.labels, "annotations": a.annotations, "startsAt": to_rfc3339(a.starts_at),
            "endsAt": to_rfc3339(a.ends_at), "updatedAt": to_rfc3339(a.updated_at), "generatorURL": a.generator_url,
            "fingerprint": a.fingerprint, "receivers": [{"name": r} for r in receivers],
            "status": {"state": "suppressed" if silenced_by or inhibited else "active", "silencedBy": silenced_by,
                       "inhibitedBy": inhibited},
        })
    return web.json_response(out)


def _silence_order(s: Any, now: float) -> tuple[int, float]:
    """Alertmanager's order: active by end, then pending by start, then expired by end, latest first."""
    st = s.state(now)
    if st == "active":
        return (0, s.ends_at)
    if st == "pending":
        return (1, s.starts_at)
    return (2, -s.ends_at)


@require_token("api")
async def get_silences(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    now = engine.clock.now()
    filters = _filter(request)
    out = []
    for s in sorted(await engine.silences.all(), key=lambda s: _silence_order(s, now)):
        # Alertmanager's filter on silences: each filter matcher must match the value a silence matcher
        # of the same label name holds.
        values = {m.name: m.value for m in s.matchers}
        if all(f.name in values and f.matches_value(values[f.name]) for f in filters):
            out.append(s.to_api(now))
    return web.json_response(out)


@require_token("api")
async def post_silences(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    body = await _json_body(request)
    try:
        sid = await engine.silences.upsert(body, engine.clock.now())
    except SilenceError as e:
        return json_error(e.status, str(e), [{"path": e.path, "message": str(e)}])
    return web.json_response({"silenceID": sid})


def _uuid_or_422(sid: str) -> web.Response | None:
    """Alertmanager's API declares silence ids as UUIDs and answers 422 for anything else."""
    try:
        uuid.UUID(sid)
    except ValueError:
        return json_error(422, f"silenceID in path must be of type uuid: {sid[:100]!r}")
    return None


@require_token("api")
async def get_silence(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if (bad := _uuid_or_422(request.match_info["id"])) is not None:
        return bad
    s = await engine.silences.get(request.match_info["id"])
    if s is None:
        return json_error(404, "silence not found")
    return web.json_response(s.to_api(engine.clock.now()))


@require_token("api")
async def delete_silence(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if (bad := _uuid_or_422(request.match_info["id"])) is not None:
        return bad
    try:
        await engine.silences.expire(request.match_info["id"], engine.clock.now())
    except SilenceError as e:
        return json_error(e.status, str(e))
    return web.Response(status=200)


@require_token("api")
async def get_status(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return web.json_response({
        "cluster": {"status": "ready", "peers": []},
        "config": {"original": redacted_source(engine.cfg)},  # never the raw text: it holds tokens and URLs
        "versionInfo": {"version": "tocsin-0.1.0"},
        "uptime": to_rfc3339(request.app[SETTINGS].get("started", engine.clock.now())),
    })


@require_token("api")
async def get_receivers(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return web.json_response([{"name": n} for n in engine.cfg.receivers])


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="OK")


async def ready(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    try:
        await ping(engine.redis)
    except Exception:
        return web.Response(status=503, text="state store unreachable")
    return web.Response(text="OK")


async def metrics(request: web.Request) -> web.Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    engine = request.app[ENGINE]
    try:
        engine.metrics.active_alerts.set(await engine.dispatcher.store.count_firing(engine.clock.now()))
        engine.metrics.outbox_depth.set(await engine.outbox.depth())
    except Exception:
        pass
    return web.Response(body=generate_latest(engine.metrics.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


@require_token("api")
async def reload(request: web.Request) -> web.Response:
    ok, message = await request.app[RELOAD]()
    supervisor = os.environ.get("TOCSIN_SUPERVISOR_PID")
    if ok and supervisor and supervisor.isdigit():
        # `serve --workers N`: the sibling workers reload too (the supervisor forwards SIGHUP to each).
        os.kill(int(supervisor), signal.SIGHUP)
    return web.Response(status=200 if ok else 400, text=message)


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v2/alerts", post_alerts)
    r.add_get("/api/v2/alerts", get_alerts)
    r.add_get("/api/v2/silences", get_silences)
    r.add_post("/api/v2/silences", post_silences)
    r.add_get("/api/v2/silence/{id}", get_silence)
    r.add_delete("/api/v2/silence/{id}", delete_silence)
    r.add_get("/api/v2/status", get_status)
    r.add_get("/api/v2/receivers", get_receivers)
    r.add_post("/api/v1/alertmanager", post_alertmanager_webhook)
    r.add_post("/api/v1/events", post_events)
    r.add_get("/-/healthy", healthy)
    r.add_get("/-/ready", ready)
    r.add_get("/metrics", metrics)
    r.add_post("/-/reload", reload)
