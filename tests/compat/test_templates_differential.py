"""Differential template test: Alertmanager 0.25 and routing.gotemplate render the same Go templates alike.

One real Alertmanager (/usr/bin/prometheus-alertmanager) and one `tocsin serve` run a config whose Slack receivers (one
slack_config per template of tests/compat/template_corpus.py, as its `text`) post to a capture server on
127.0.0.1, with the corpus's `templates:` files loaded. Two alert groups (three alerts with one resolved, and
one alert with markup and Unicode in its annotations) are posted once; every Slack payload Alertmanager sends is
compared field by field (text, title, title_link, fallback, pretext, footer, username) with what
routing.gotemplate renders for the same receiver and alerts, and the whole body Tocsin posted is compared with
Alertmanager's. Templates on which Alertmanager fails must fail here too (neither sends anything for them).
"""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from routing.gotemplate import TemplateError, Templates, render_field
from routing.gotemplate.data import quote_meta
from service.pipeline.dispatch import alert_sort_key
from service.core.models import Alert, Notification

from .harness import ALERTMANAGER, Target, iso
from .template_corpus import CASES, FILES

EXTERNAL_URL = "http://am.example:9093/am"
GENERATOR = "http://prometheus.example:9090/graph?g0.expr=up&g0.tab=1"
RECEIVERS = {"a": "team-x.y+", "b": "ops"}  # path id -> receiver name ('.' and '+' test Receiver's QuoteMeta)
FIELDS = {
    "title": '{{ template "slack.default.title" . }}',
    "title_link": '{{ template "slack.default.titlelink" . }}',
    "fallback": '{{ template "slack.default.fallback" . }}',
    "pretext": '{{ template "slack.default.pretext" . }}',
    "footer": '{{ template "slack.default.footer" . }}',
}
ERROR_CASES = {name for name, _ in CASES if name.startswith("error-")}
SETTLE = 3.0  # seconds to wait after the last expected payload for any unexpected one


def _alerts(now: float) -> dict[str, list[dict[str, Any]]]:
    # Recent starts: an alert older than group_wait makes Alertmanager flush its new group at once, which would
    # race with the rest of the batch.
    start = round(now - 3, 3)
    return {
        "a": [
            {"labels": {"alertname": "DiskFull", "instance": "db2:9100", "job": "node", "severity": "warning",
                        "tenant": "acme"},
             "annotations": {"summary": "Disk 91% full", "description": "db2 /var is 91% full", "identifier": "db2"},
             "startsAt": iso(start + 1), "generatorURL": GENERATOR},
            {"labels": {"alertname": "DiskFull", "instance": "db1:9100", "job": "node", "severity": "critical",
                        "tenant": "acme", "urgency": "high"},
             "annotations": {"summary": "Disk 99% full", "description": "db1 /var is <99%> full & \"rising\"",
                             "identifier": "db1"},
             "startsAt": iso(start), "generatorURL": GENERATOR},
            {"labels": {"alertname": "DiskFull", "instance": "db0:9100", "job": "node", "severity": "critical",
                        "tenant": "acme"},
             "annotations": {"summary": "Disk 99% full", "description": "db0 recovered", "identifier": "db0"},
             "startsAt": iso(start + 0.5), "endsAt": iso(now - 1), "generatorURL": GENERATOR},
        ],
        "b": [
            {"labels": {"alertname": "HighLatency", "app": "checkout", "job": "api", "instance": "api-1",
                        "service": "api", "severity": "page"},
             "annotations": {"summary": "p99 > 2s for <checkout> & 'cart'",
                             "description": "naïve “quotes” ünïcode\ttab $1 \\ back",
                             "runbook": "https://wiki.example/runbooks/latency?x=1&y=2", "identifier": "api-1"},
             "startsAt": iso(start + 1.25), "generatorURL": ""},
        ],
    }


def _config(port: int, label: str) -> dict[str, Any]:
    def slack(rid: str) -> list[dict[str, Any]]:
        return [{"api_url": f"http://127.0.0.1:{port}/{label}/{rid}/{name}", "text": text, "send_resolved": True}
                for name, text in CASES]

    return {
        "route": {"receiver": "ops", "group_by": ["alertname"], "group_wait": "5s", "group_interval": "5m",
                  "repeat_interval": "4h",
                  "routes": [{"matchers": ['alertname="DiskFull"'], "receiver": RECEIVERS["a"]}]},
        "receivers": [{"name": RECEIVERS[rid], "slack_configs": slack(rid)} for rid in RECEIVERS],
        "templates": ["templates/*.tmpl"],
    }


class _AlertmanagerWithURL(Target):
    def _command(self, cfg: Path) -> tuple[list[str], dict[str, str]]:
        cmd, env = super()._command(cfg)
        return cmd + [f"--web.external-url={EXTERNAL_URL}", "--web.route-prefix=/"], env


def _notification(rid: str, alerts: list[dict[str, Any]], at: float) -> Notification:
    from service.core.clock import parse_rfc3339

    objs = [Alert(labels=a["labels"], annotations=a["annotations"], starts_at=parse_rfc3339(a["startsAt"]),
                  ends_at=parse_rfc3339(a["endsAt"]) if "endsAt" in a else 0.0, generator_url=a["generatorURL"])
            for a in alerts]
    objs.sort(key=alert_sort_key)
    name = quote_meta(RECEIVERS[rid])  # as the dispatcher stores it (Alertmanager's template data does the same)
    return Notification(id="diff", receiver=name, integration="slack/0", group_key="{}", status="firing",
                        group_labels={"alertname": objs[0].labels["alertname"]}, alerts=objs, timestamp=at,
                        reason="first flush", external_url=EXTERNAL_URL)


async def _run_targets(tmp: Path, redis_url: str | None) -> tuple[dict[str, dict[tuple[str, str], dict[str, Any]]],
                                                                   dict[str, list[dict]], float]:
    """Alertmanager 0.25 and `tocsin serve` on the same config and alerts; the Slack bodies each one posted."""
    captured: dict[str, dict[tuple[str, str], dict[str, Any]]] = {"alertmanager": {}, "tocsin": {}}
    expected = len(RECEIVERS) * (len(CASES) - len(ERROR_CASES))
    done = {k: asyncio.Event() for k in captured}

    async def handle(request: web.Request) -> web.Response:
        label = request.match_info["label"]
        got = captured[label]
        got[(request.match_info["rid"], request.match_info["case"])] = await request.json()
        if len(got) >= expected:
            done[label].set()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{label}/{rid}/{case}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    targets = []
    for label in captured:
        cfg = _config(port, label)
        if label == "tocsin":
            cfg["tocsin"] = {"external_url": EXTERNAL_URL, "data_dir": str(tmp / "tocsin-data")}
        cls = _AlertmanagerWithURL if label == "alertmanager" else Target
        t = cls(label, f"templates-{label}", yaml.safe_dump(cfg, sort_keys=False), redis_url)
        tdir = t.dir / "templates"
        tdir.mkdir()
        for fname, text in FILES.items():
            (tdir / fname).write_text(text)
        targets.append(t)
    try:
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(t.start(session) for t in targets))
            now = time.time()
            alerts = _alerts(now)
            for t in targets:
                for batch in alerts.values():
                    async with session.post(f"{t.base}/api/v2/alerts", json=batch) as r:
                        assert r.status == 200, await r.text()
            try:
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done.values())), 60)
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(SETTLE)
            return captured, alerts, now
    finally:
        for t in targets:
            (tmp / f"{t.kind}.log").write_text(t.log_tail())
            await t.cleanup()
        await runner.cleanup()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, redis_url):
    if not os.access(ALERTMANAGER, os.X_OK):
        pytest.fail(f"no Alertmanager binary at {ALERTMANAGER} (apt-get install prometheus-alertmanager)")
    tmp = tmp_path_factory.mktemp("amtemplates")
    captured, alerts, now = asyncio.run(_run_targets(tmp, redis_url))
    tdir = tmp / "templates"
    tdir.mkdir()
    for fname, text in FILES.items():
        (tdir / fname).write_text(text)
    return captured, alerts, now, Templates.load(["templates/*.tmpl"], str(tmp)), tmp


@pytest.fixture(scope="module")
def alertmanager_run(runs):
    captured, alerts, now, templates, _tmp = runs
    return captured["alertmanager"], alerts, now, templates


def test_corpus_is_big_enough():
    """At least 30 templates that render, from Alertmanager's tests and public configurations."""
    assert len([c for c in CASES if c[0] not in ERROR_CASES]) >= 30


@pytest.mark.parametrize("rid", sorted(RECEIVERS))
@pytest.mark.parametrize("name,text", CASES, ids=[c[0] for c in CASES])
def test_same_text_as_alertmanager(alertmanager_run, name: str, text: str, rid: str) -> None:
    """routing.gotemplate renders the Slack fields exactly as Alertmanager 0.25 did, or fails where it failed."""
    captured, alerts, now, templates = alertmanager_run
    got = captured.get((rid, name))
    n = _notification(rid, alerts[rid], now)
    if name in ERROR_CASES:
        assert got is None, f"Alertmanager rendered {name}: {got}"
        with pytest.raises(TemplateError):
            render_field(text, n, templates)
        return
    assert got is not None, f"Alertmanager sent nothing for {name}/{rid}"
    att = got["attachments"][0]
    assert att.get("text", "") == render_field(text, n, templates)
    for field, tmpl in FIELDS.items():
        assert att.get(field, "") == render_field(tmpl, n, templates), field
    assert got.get("username", "") == render_field('{{ template "slack.default.username" . }}', n, templates)


@pytest.mark.parametrize("rid", sorted(RECEIVERS))
@pytest.mark.parametrize("name,text", CASES, ids=[c[0] for c in CASES])
def test_tocsin_serve_posts_alertmanagers_slack_body(runs, name: str, text: str, rid: str) -> None:
    """End to end: `tocsin serve` on the same config posts the very Slack body Alertmanager 0.25 posted (and
    nothing where Alertmanager's template failed)."""
    captured, _alerts, _now, _templates, tmp = runs
    am, ours = captured["alertmanager"].get((rid, name)), captured["tocsin"].get((rid, name))
    log = (tmp / "tocsin.log").read_text()[-2000:] if (tmp / "tocsin.log").exists() else ""
    assert ours == am, f"tocsin log tail:\n{log}"
