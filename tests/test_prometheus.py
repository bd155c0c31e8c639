"""A real Prometheus (Debian's prometheus) sends an always-firing rule's alert to `tocsin serve`; it reaches a
Tocsin webhook receiver, and resolves when the rule is removed and Prometheus reloaded."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time

from aiohttp import web

from tests.fakes import LocalServer
from tests.serve_kit import REPO, free_port
from tests.proc_kit import die_with_parent

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DEADLINE = 180.0  # a loaded 2-core machine; normally well under a minute

FIRING = """groups:
- name: tocsin
  interval: 1s
  rules:
  - alert: AlwaysFiring
    expr: vector(1)
    labels: {severity: page}
    annotations: {summary: "always firing"}
"""
EMPTY = "groups: []\n"


class Capture(LocalServer):
    """Records the webhook payloads Tocsin posts."""

    def __init__(self) -> None:
        super().__init__()
        self.payloads: list[dict] = []

    def routes(self, app: web.Application) -> None:
        async def hook(request: web.Request) -> web.Response:
            self.payloads.append(await request.json())
            return web.Response(text="ok")

        app.router.add_post("/hook", hook)


async def wait_until(pred, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def test_prometheus_alert_fires_and_resolves_through_tocsin(redis_url, tmp_path):
    """vector(1) fires in Prometheus, Tocsin notifies the webhook; with the rule gone the alert resolves."""
    async with Capture() as cap:
        tport, pport = free_port(), free_port()
        (tmp_path / "tocsin.yml").write_text(
            "route: {receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s}\n"
            f"receivers:\n- name: hook\n  webhook_configs: [{{url: 'http://127.0.0.1:{cap.port}/hook'}}]\n")
        rules = tmp_path / "rules.yml"
        rules.write_text(FIRING)
        (tmp_path / "prometheus.yml").write_text(
            "global: {evaluation_interval: 1s}\n"
            f"rule_files: ['{rules}']\n"
            f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{tport}']}}]}}]}}\n")
        env = dict(os.environ, PYTHONPATH=str(REPO), REDIS_URL=redis_url, TOCSIN_KEY_PREFIX=f"prom{tport}",
                   TOCSIN_INSTANCE=f"prom{tport}")
        tlog, plog = open(tmp_path / "tocsin.log", "wb"), open(tmp_path / "prometheus.log", "wb")
        tocsin = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config",
                                   str(tmp_path / "tocsin.yml"), "--listen", f"127.0.0.1:{tport}",
                                   "--log-level", "warning"], cwd=REPO, env=env, stdout=tlog, stderr=tlog, preexec_fn=die_with_parent)
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{pport}",
                                 "--rules.alert.resend-delay=1s"], stdout=plog, stderr=plog, preexec_fn=die_with_parent)
        try:
            await wait_until(lambda: any(p["status"] == "firing" for p in cap.payloads), "the firing notification")
            first = next(p for p in cap.payloads if p["status"] == "firing")
            (a,) = first["alerts"]
            assert a["labels"]["alertname"] == "AlwaysFiring" and a["labels"]["severity"] == "page"
            assert a["annotations"] == {"summary": "always firing"}
            assert a["generatorURL"].startswith("http") and first["receiver"] == "hook"

            rules.write_text(EMPTY)
            prom.send_signal(signal.SIGHUP)  # reload: the rule is gone, Prometheus sends it resolved
            await wait_until(lambda: any(p["status"] == "resolved" for p in cap.payloads),
                             "the resolved notification")
            last = next(p for p in cap.payloads if p["status"] == "resolved")
            assert last["alerts"][0]["labels"]["alertname"] == "AlwaysFiring"
            assert last["alerts"][0]["status"] == "resolved"
        finally:
            stop(prom)
            stop(tocsin)
            tlog.close()
            plog.close()
