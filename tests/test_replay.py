"""`tocsin replay` runs the same pipeline as `serve`, in event time, and prints the same notifications."""
from __future__ import annotations

import json
import subprocess
import sys

from aiohttp import web
from aiohttp.test_utils import TestServer

from service.http.app import create_app
from service.http.appkeys import ENGINE
from service.core.clock import ManualClock, parse_rfc3339, to_rfc3339
from service.config.sections import parse_config
from service.pipeline.replay import replay
from routing.receivers.console import notification_record

T0 = 1_800_000_000.0

CONFIG = """
global: {resolve_timeout: 2m}
route:
  receiver: hook
  group_by: [service]
  group_wait: 10s
  group_interval: 30s
  repeat_interval: 10m
  routes:
    - matchers: ['severity="critical"']
      receiver: hook
      group_by: ['...']
      group_wait: 2s
receivers:
  - name: hook
    webhook_configs: [{url: "http://127.0.0.1:%d/hook", send_resolved: true}]
"""


def events() -> list[dict]:
    """Prometheus-style traffic: three services, re-sends every 60 s, a resolve, a critical alert, a detector."""
    out = []
    for minute in range(0, 6):
        at = T0 + minute * 60
        for svc in ("api", "db", "web"):
            if svc == "web" and minute >= 3:
                continue
            out.append({"labels": {"alertname": "HighLatency", "service": svc, "severity": "warning"},
                        "annotations": {"summary": f"{svc} slow"}, "startsAt": to_rfc3339(T0),
                        "at": to_rfc3339(at + 1)})
        if minute == 3:
            out.append({"labels": {"alertname": "HighLatency", "service": "web", "severity": "warning"},
                        "startsAt": to_rfc3339(T0), "endsAt": to_rfc3339(at + 2), "at": to_rfc3339(at + 2)})
        if minute == 2:
            out.append({"labels": {"alertname": "DiskFull", "service": "db", "severity": "critical"},
                        "startsAt": to_rfc3339(at + 5), "at": to_rfc3339(at + 5)})
    out.append({"kind": "event", "metric": "db_conn", "labels": {"service": "db"}, "value": 950, "z_score": 6.0,
                "is_anomaly": True, "timestamp": to_rfc3339(T0 + 370)})
    return out


def per_group(records: list[dict]) -> dict[str, list[tuple]]:
    """Each group's notifications in order (groups flushing at the same instant may interleave)."""
    out: dict[str, list[tuple]] = {}
    for r in records:
        out.setdefault(r["group_key"], []).append((r["receiver"], r["status"], tuple(sorted(
            (a["fingerprint"], a["status"], a["startsAt"], a["endsAt"]) for a in r["alerts"]))))
    return out


async def test_replay_matches_serve(redis_url, key_prefix):
    """The notifications replay prints equal those serve delivers over HTTP for the same timed input."""
    got: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(await request.json())
        return web.Response()

    capture = web.Application()
    capture.router.add_post("/hook", hook)
    cap_server = TestServer(capture, host="127.0.0.1")
    await cap_server.start_server()
    text = CONFIG % cap_server.port
    lines = events()

    # serve: HTTP in, webhook out, timers driven by a manual clock at the same event times
    cfg = parse_config(text)
    cfg.tocsin.redis.url = redis_url
    cfg.tocsin.redis.key_prefix = key_prefix
    clock = ManualClock(T0)
    app = create_app("unused.yml", cfg=cfg, clock=clock, background=False)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    import aiohttp

    engine = app[ENGINE]

    async def advance(t: float) -> None:
        while (nxt := await engine.scheduler.next_due()) is not None and nxt <= t:
            clock.set(nxt)
            await engine.step()
        clock.set(t)

    async with aiohttp.ClientSession() as s:
        for line in lines:
            at = parse_rfc3339(line.get("at") or line.get("timestamp"))
            await advance(at)
            body = {k: v for k, v in line.items() if k != "at"}
            if body.get("kind") == "event":
                r = await s.post(server.make_url("/api/v1/events"), json=body)
            else:
                r = await s.post(server.make_url("/api/v2/alerts"), json=[body])
            assert r.status == 200, await r.text()
            await engine.step()
        await advance(T0 + 370 + 120 + 2 * 40)
    await server.close()
    await cap_server.close()

    # replay: the same lines, the same config, in event time
    printed: list[dict] = []
    cfg2 = parse_config(text)
    await replay(cfg2, [json.dumps(x) for x in lines], lambda n: printed.append(notification_record(n)),
                 redis_url=redis_url, horizon=120 + 2 * 40)

    serve_records = [{"receiver": p["receiver"], "group_key": p["groupKey"], "status": p["status"],
                      "alerts": p["alerts"]} for p in got]
    assert len(got) >= 6  # the scenario produces first, new-alert, resolve and repeat notifications
    assert len(got) == len(printed)
    assert per_group(serve_records) == per_group(printed)


def test_replay_cli_prints_one_json_line_per_notification(tmp_path):
    """`tocsin replay` reads JSONL and prints one JSON object per notification, with event-time timestamps."""
    cfg = tmp_path / "c.yml"
    cfg.write_text(CONFIG % 9)
    ev = tmp_path / "e.jsonl"
    ev.write_text("\n".join(json.dumps(x) for x in events()) + "\n")
    p = subprocess.run([sys.executable, "-m", "service.cli", "replay", "--config", str(cfg), str(ev)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in p.stdout.splitlines()]
    assert out and all(set(r) >= {"receiver", "group_key", "status", "timestamp", "alerts"} for r in out)
    assert out[0]["timestamp"] == to_rfc3339(T0 + 1 + 10)  # first batch at T0+1, group_wait 10 s
    assert {a["fingerprint"] for r in out for a in r["alerts"]}


def test_replay_rejects_bad_lines_with_the_line_number(tmp_path):
    """A malformed input line stops replay with an error naming the line."""
    cfg = tmp_path / "c.yml"
    cfg.write_text(CONFIG % 9)
    ev = tmp_path / "e.jsonl"
    ev.write_text('{"labels": {"a": "b"}, "startsAt": "2026-01-01T00:00:00Z"}\n{"labels": {}}\n')
    p = subprocess.run([sys.executable, "-m", "service.cli", "replay", "--config", str(cfg), str(ev)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "line 2" in p.stderr


async def test_replay_jumps_from_event_to_event_and_forgets_resolved_alerts_in_event_time(redis_url):
    """Replay is a discrete-event simulation: a month between two alerts costs a few timer steps, not a tick per
    interval; and resolved alerts are swept `alert_retention` after they end, in event time, as serve's sweeper
    would (so a long replay holds only what is active)."""
    text = (CONFIG % 9) + "tocsin: {alert_retention: 1h}\n"
    month = 30 * 24 * 3600
    lines = [{"labels": {"alertname": "Blip", "service": "api", "n": str(i)}, "startsAt": to_rfc3339(T0),
              "endsAt": to_rfc3339(T0 + 60), "at": to_rfc3339(T0)} for i in range(10)]
    lines.append({"labels": {"alertname": "Later", "service": "db"}, "startsAt": to_rfc3339(T0 + month),
                  "at": to_rfc3339(T0 + month)})
    printed: list[dict] = []
    stats = await replay(parse_config(text), [json.dumps(x) for x in lines],
                         lambda n: printed.append(notification_record(n)), redis_url=redis_url)
    assert stats["swept"] == 10  # the ten blips, ended a month before the last line
    assert stats["steps"] < 20  # group_wait, the resolve, the last group's flushes: no ticking through the month
    api = [r["status"] for r in printed if r["group_key"] == '{}:{service="api"}']
    assert api == ["firing", "resolved"]  # after group_wait, then the resolve; nothing more in the month
    assert any(r["group_key"] == '{}:{service="db"}' for r in printed)


HOLD_CONFIG = """
route:
  receiver: pager
  group_by: [entity]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:9/pager", send_resolved: true}]
tocsin:
  correlation: {enabled: true, min_confidence: %s}
"""


def _episode(entity: str, metric: str, start: float, end: float, score: float) -> list[dict]:
    labels = {"alertname": "MetricAnomaly", "entity": entity, "metric": metric}
    ann = {"score": f"{score}"}
    return [{"labels": labels, "annotations": ann, "startsAt": to_rfc3339(start), "at": to_rfc3339(start)},
            {"labels": labels, "annotations": ann, "startsAt": to_rfc3339(start), "endsAt": to_rfc3339(end),
             "at": to_rfc3339(end)}]


async def test_the_confidence_hold_pages_what_is_likely_real_and_holds_a_blip(redis_url):
    """With a hold, a one-sample blip of one metric that resolves within a minute is never paged, while an
    incident that persists on several metrics with large deviations is; without the hold both page."""
    blip = _episode("host-a", "m1", T0, T0 + 60, 4.2)
    real = [e for i, m in enumerate(("m1", "m2", "m3", "m4"))
            for e in _episode("host-b", m, T0 + 3600 + 10 * i, T0 + 3600 + 7200, 40.0)]
    lines = sorted(blip + real, key=lambda d: parse_rfc3339(d["at"]))
    paged_by_threshold = {}
    for floor in ("0", "0.6"):
        out: list[dict] = []
        await replay(parse_config(HOLD_CONFIG % floor), [json.dumps(x) for x in lines],
                     lambda n: out.append(notification_record(n)), redis_url=redis_url)
        paged_by_threshold[floor] = {a["labels"]["entity"] for r in out if r["status"] == "firing" for a in r["alerts"]}
    assert paged_by_threshold["0"] == {"host-a", "host-b"}
    assert paged_by_threshold["0.6"] == {"host-b"}
