"""The web UI's scenario, shared by its browser tests (tests/test_ui_browser.py), the screenshots and the list
benchmark (bench/ui/bench_list.py): a real Tocsin app (create_app) on a loopback port and a real Redis, in event
time (ManualClock), with a six-alert cascade (payments-db -> checkout -> web, as in the topology) and an
escalation policy, and one stray alert whose annotation is markup (it must render as text)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from service.http.app import create_app
from service.http.appkeys import ENGINE
from service.core.clock import ManualClock, to_rfc3339
from service.config.sections import parse_config
from service.pipeline.engine import recording_factory
from service.core.models import Notification

T0 = 1_800_000_000.0
XSS = "<img src=x onerror=alert(1)>"

CONFIG = """
global: {resolve_timeout: 1h}
route:
  receiver: oncall
  group_by: [service]
  group_wait: 30s
  group_interval: 1m
  repeat_interval: 4h
  tocsin: {escalation: primary, min_confidence: 0}
receivers:
  - {name: oncall, webhook_configs: [{url: "http://127.0.0.1:1/oncall"}]}
  - {name: escalate, webhook_configs: [{url: "http://127.0.0.1:1/escalate"}]}
tocsin:
  correlation:
    enabled: true
    topology: {web: [checkout], checkout: [payments-db]}
    window: 300
  escalation:
    policies:
      primary:
        levels:
          - {delay: 5m, targets: [{receiver: escalate}]}
          - {delay: 10m, targets: [{receiver: escalate}]}
"""

# (seconds after T0, labels, summary): the database fails first, its callers follow.
CASCADE: list[tuple[float, dict[str, str], str]] = [
    (0, {"alertname": "DBConnectionPoolExhausted", "service": "payments-db", "instance": "payments-db-0",
         "severity": "critical"}, "connection pool at 100% (200/200)"),
    (25, {"alertname": "SlowQueries", "service": "payments-db", "instance": "payments-db-0", "severity": "warning"},
     "p99 query time 4.1s"),
    (45, {"alertname": "HighLatency", "service": "checkout", "instance": "checkout-7f9c", "severity": "warning"},
     "p99 latency 2.3s"),
    (70, {"alertname": "Http5xxRateHigh", "service": "checkout", "instance": "checkout-7f9c", "severity": "error"},
     "5xx ratio 12%"),
    (95, {"alertname": "HighLatency", "service": "web", "instance": "web-2b1d", "severity": "warning"},
     "p99 latency 3.0s"),
    (120, {"alertname": "Http5xxRateHigh", "service": "web", "instance": "web-2b1d", "severity": "critical"},
     "checkout errors seen by users: 9%"),
]
STRAY = {"alertname": "CertificateExpiry", "service": "edge-proxy", "severity": "warning"}


@dataclass
class Env:
    app: Any
    server: TestServer
    clock: ManualClock
    http: aiohttp.ClientSession
    sent: list[Notification] = field(default_factory=list)

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    @property
    def engine(self) -> Any:
        return self.app[ENGINE]

    async def post(self, labels: dict[str, str], annotations: dict[str, str], at: float | None = None) -> None:
        a = {"labels": labels, "annotations": annotations, "startsAt": to_rfc3339(self.clock.now() if at is None else at)}
        r = await self.http.post(self.base + "/api/v2/alerts", json=[a], headers=self.auth_headers)
        assert r.status == 200, await r.text()

    auth_headers: dict[str, str] = field(default_factory=dict)

    async def advance(self, t: float) -> None:
        """Move to T0 + t, firing every timer that falls due on the way at its due time."""
        engine = self.engine
        while (nxt := await engine.next_due()) is not None and nxt <= T0 + t:
            self.clock.set(nxt)
            await engine.step()
        self.clock.set(T0 + t)
        await engine.step()

    async def cascade(self, stray: bool = True) -> None:
        for dt, labels, summary in CASCADE:
            await self.advance(dt)
            await self.post(labels, {"summary": summary, "description": f"{labels['alertname']} on {labels['service']}"})
        if stray:
            await self.post(STRAY, {"summary": XSS, "description": "certificate of edge-proxy expires in 6 days"})
        await self.advance(160)

    async def close(self) -> None:
        await self.http.close()
        await self.server.close()


async def start(redis_url: str, prefix: str, config: str = CONFIG, token: str | None = None) -> Env:
    """The app on 127.0.0.1 (a free port), timers driven by hand, receivers recorded."""
    cfg = parse_config(config)
    cfg.tocsin.redis.url = redis_url
    cfg.tocsin.redis.key_prefix = prefix
    if token is not None:
        from service.config.sections import TokenConfig

        cfg.tocsin.auth.tokens = [TokenConfig(name="oncall-team", token=token, sources=["all"])]
    clock = ManualClock(T0)
    sent: list[Notification] = []
    app = create_app("unused.yml", cfg=cfg, clock=clock, background=False, receiver_factory=recording_factory(sent))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    env = Env(app, server, clock, aiohttp.ClientSession(), sent)
    if token is not None:
        env.auth_headers = {"Authorization": f"Bearer {token}"}
    return env
