"""The one test harness: Tocsin's real pipeline on a real Redis, in event time with a ManualClock.

Two ways in, one `Harness`:

    h = await harness(redis, CONFIG, key_prefix)            # the Engine alone, receivers recording to h.sent
    await h.post(alert(...))                                 # postable alerts straight into the engine
    await h.advance_to(30)                                   # every timer due on the way fires at its time

    async with serving(tmp_path, with_redis(BASE, redis_url, key_prefix)) as h:   # the whole app (create_app)
        await h.post("/api/v2/alerts", [alert("A")])         # an HTTP request through aiohttp's test client
        await h.step(30)                                     # advance, flush what is due, deliver

Neither starts the background loops, so a flush never races the test. `h.sent` (also `h.sink`) records what the
receivers were asked to deliver, unless a real receiver factory is given.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator

import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from service.ingest.alerts import parse_postable
from service.http.app import create_app
from service.http.appkeys import ENGINE
from service.core.clock import ManualClock, to_rfc3339
from service.config.sections import Config, parse_config
from service.pipeline.engine import Engine, ReceiverFactory, recording_factory
from service.core.models import Notification

T0 = 1_800_000_000.0

# A minimal Alertmanager config: one webhook receiver, Alertmanager's default timers.
BASE = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: team
    webhook_configs:
      - url: http://127.0.0.1:9/hook
"""


def make_config(yaml_text: str, prefix: str, redis_url: str | None = None) -> Config:
    """A parsed config whose keys live under the test's own prefix (and in the test's Redis, if given)."""
    cfg = parse_config(yaml_text)
    cfg.tocsin.redis.key_prefix = prefix
    if redis_url is not None:
        cfg.tocsin.redis.url = redis_url
    return cfg


def with_redis(text: str, redis_url: str, key_prefix: str, **tocsin: Any) -> str:
    """The YAML config `text` with Tocsin's redis section pointed at the test Redis and prefix (and `tocsin`
    settings added), for harnesses that read the config from a file."""
    raw = yaml.safe_load(text)
    t = raw.setdefault("tocsin", {})
    t.setdefault("redis", {}).update({"url": redis_url, "key_prefix": key_prefix})
    t.update(tocsin)
    return yaml.safe_dump(raw, sort_keys=False)


def alert(name: str = "HighLatency", starts: float | None = T0 - 60, ends: float | None = None, **labels: str) -> dict:
    """A postable alert (API v2) named `name`, with a summary and a generator URL; times are absolute."""
    d: dict[str, Any] = {"labels": {"alertname": name, **labels}, "annotations": {"summary": f"{name} is bad"},
                         "generatorURL": "http://prom:9090/graph"}
    if starts is not None:
        d["startsAt"] = to_rfc3339(starts)
    if ends is not None:
        d["endsAt"] = to_rfc3339(ends)
    return d


@dataclass
class Harness:
    clock: ManualClock
    sent: list[Notification] = field(default_factory=list)
    direct: Engine | None = None  # the engine of an engine-only harness
    client: TestClient | None = None  # the app's test client, when the whole app runs
    app: web.Application | None = None
    path: Path | None = None  # the config file the app reads (reloads read it again)

    @property
    def engine(self) -> Engine:
        """The running engine (the app's, which is built at its startup, or the engine-only harness's)."""
        if self.app is not None:
            return self.app[ENGINE]
        assert self.direct is not None
        return self.direct

    @property
    def sink(self) -> list[Notification]:
        return self.sent

    # -- input ------------------------------------------------------------------------------------------------

    async def ingest(self, *alerts: dict[str, Any]) -> None:
        """Postable alerts straight into the engine at the clock's now (all of them must be valid)."""
        parsed, errors = parse_postable(list(alerts), self.clock.now(), self.engine.cfg.resolve_timeout)
        assert not errors, errors
        await self.engine.ingest(parsed)

    async def post(self, target: str | dict[str, Any], *more: Any, token: str | None = None, **kw: Any) -> Any:
        """`post("/api/v2/alerts", body)`: an HTTP POST to the app (a str or bytes body is sent as JSON text);
        `post(alert, alert, ...)`: the alerts straight into the engine (`ingest`)."""
        if not isinstance(target, str):
            return await self.ingest(target, *more)
        assert self.client is not None, "HTTP needs the app: use serving()"
        (body,) = more
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if isinstance(body, (bytes, str)):
            return await self.client.post(target, data=body, headers={"Content-Type": "application/json", **headers},
                                          **kw)
        return await self.client.post(target, json=body, headers=headers, **kw)

    async def alerts(self, token: str | None = None) -> list[dict[str, Any]]:
        """GET /api/v2/alerts (200 expected)."""
        assert self.client is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await self.client.get("/api/v2/alerts", headers=headers)
        assert r.status == 200, await r.text()
        return await r.json()

    def write_config(self, text: str) -> None:
        assert self.path is not None
        self.path.write_text(text)

    # -- time -------------------------------------------------------------------------------------------------

    async def step(self, advance: float = 0.0) -> int:
        """Advance the clock by `advance`, then flush what is due and deliver it."""
        self.clock.advance(advance)
        return await self.engine.step()

    async def advance_to(self, t: float) -> None:
        """Move time to T0 + t, firing every timer that falls due on the way at its due time."""
        target = T0 + t
        while True:
            nxt = await self.engine.next_due()
            if nxt is None or nxt > target:
                break
            self.clock.set(nxt)
            await self.engine.step()
        self.clock.set(target)
        await self.engine.step()

    # -- output -----------------------------------------------------------------------------------------------

    def summary(self) -> list[tuple[float, str, str, list[tuple[str, str]]]]:
        """(time offset, group key, status, [(alertname-ish id, alert status)]) per notification."""
        out = []
        for n in self.sent:
            alerts = sorted((a.labels.get("id", a.labels.get("alertname", "")),
                             "resolved" if a.resolved_at(n.timestamp) else "firing") for a in n.alerts)
            out.append((round(n.timestamp - T0, 3), n.group_key, n.status, alerts))
        return out


async def harness(redis: Redis, yaml_text: str, prefix: str, consumer: str = "test",
                  sent: list[Notification] | None = None, clock: ManualClock | None = None,
                  receiver_factory: ReceiverFactory | None = None) -> Harness:
    """The Engine alone on `redis`, started; receivers record into `sent` unless `receiver_factory` is given."""
    cfg = make_config(yaml_text, prefix)
    clock = clock or ManualClock(T0)
    sink = sent if sent is not None else []
    engine = Engine(cfg, redis, clock, consumer=consumer, receiver_factory=receiver_factory or recording_factory(sink))
    await engine.start()
    return Harness(clock, sink, direct=engine)


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, text: str | None = None, clock: ManualClock | None = None, *,
                  cfg: Config | None = None, **app_kw: Any) -> AsyncIterator[Harness]:
    """The whole app (create_app) on aiohttp's test server, from the config `text` (written to a file the app
    reloads from) or a parsed `cfg`; receivers record unless `receiver_factory` is given in `app_kw`."""
    path = tmp_path / "tocsin.yml"
    if text is not None:
        path.write_text(text)
    sink: list[Notification] = []
    clock = clock or ManualClock(T0)
    app_kw.setdefault("receiver_factory", recording_factory(sink))
    app = create_app(path, cfg=cfg, clock=clock, background=False, **app_kw)
    async with TestClient(TestServer(app)) as client:
        yield Harness(clock, sink, client=client, app=app, path=path)
