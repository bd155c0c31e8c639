"""End to end with the real Prometheus (Debian's /usr/bin/prometheus): a local exporter serves a gauge, Prometheus
scrapes it every second, `tocsin detect --config` backfills and evaluates it, the exporter injects an anomaly,
and a webhook receiver gets exactly one firing notification for it (and its resolution)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import redis

from service.store.keys import DetectKeys
from tests.proc_kit import die_with_parent

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """Liveness only (a broken pipeline fails instead of hanging): nothing here asserts a duration."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Exporter:
    """A /metrics endpoint whose gauge is ~1.0 with a little deterministic noise, or 9.0 while `anomaly` > 0
    (counted in scrapes), and a webhook capture on /hook; both in one aiohttp app on a thread."""

    def __init__(self) -> None:
        self.scrapes = 0
        self.anomaly = 0
        self.hooks: list[dict[str, Any]] = []
        self.port = free_port()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        import asyncio

        from aiohttp import web

        async def metrics(_: web.Request) -> web.Response:
            self.scrapes += 1
            if self.anomaly > 0:
                self.anomaly -= 1
                v = 9.0
            else:
                v = 1.0 + 0.02 * ((self.scrapes * 7) % 11 - 5)
            body = ("# TYPE demo_latency_seconds gauge\n"
                    f'demo_latency_seconds{{service="checkout",pod="a"}} {v}\n')
            return web.Response(text=body, content_type="text/plain")

        async def hook(request: web.Request) -> web.Response:
            self.hooks.append(await request.json())
            return web.Response(text="ok")

        async def main() -> None:
            app = web.Application()
            app.router.add_get("/metrics", metrics)
            app.router.add_post("/hook", hook)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self._ready.set()
            while True:
                await asyncio.sleep(3600)

        asyncio.run(main())

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)


def ready(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def series_points(prom: str) -> int:
    import urllib.parse
    import urllib.request

    q = urllib.parse.urlencode({"query": "count_over_time(demo_latency_seconds[5m])"})
    try:
        with urllib.request.urlopen(f"{prom}/api/v1/query?{q}", timeout=2) as r:
            res = json.load(r)["data"]["result"]
    except OSError:
        return 0
    return int(float(res[0]["value"][1])) if res else 0


def test_prometheus_anomaly_reaches_the_receiver_once(tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    exp = Exporter()
    exp.start()
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: demo
    static_configs: [{{targets: ["127.0.0.1:{exp.port}"]}}]
""")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    detect = None
    try:
        prom_url = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: ready(prom_url + "/-/ready"), "prometheus ready")
        wait_for(lambda: series_points(prom_url) >= 40, "40 samples of normal behaviour")
        cfg = tmp_path / "tocsin.yml"
        cfg.write_text(f"""
route:
  receiver: hook
  group_by: [alertname, metric]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:{exp.port}/hook
        send_resolved: true
tocsin:
  redis: {{url: "{redis_url}", key_prefix: {key_prefix}}}
  detect:
    prometheus: {prom_url}
    queries:
      - query: demo_latency_seconds
        name: latency
    step: 1s
    lag: 1s
    backfill: 5m
    params: {{window: 30, warmup: 30, calibration: 200, refractory: 20, max_open: 60}}
""")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        detect = subprocess.Popen([sys.executable, "-m", "service.cli", "detect", "--config", str(cfg),
                                   "--log-level", "warning"], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=die_with_parent)
        r = redis.Redis.from_url(redis_url)
        keys = DetectKeys(key_prefix, 16)
        cursor_key = keys.cursor(keys.shard_of("latency"))
        first = wait_for(lambda: r.hget(cursor_key, "latency"), "the detector's first evaluation")
        wait_for(lambda: float(r.hget(cursor_key, "latency") or 0) >= float(first) + 3, "three more steps")
        assert exp.hooks == []  # the normal series raised nothing, warm-up included
        exp.anomaly = 4
        wait_for(lambda: any(h["status"] == "resolved" for h in exp.hooks), "the resolved notification")
        firing = [h for h in exp.hooks if h["status"] == "firing"]
        assert len(firing) == 1, exp.hooks
        alert = firing[0]["alerts"][0]
        assert alert["labels"]["metric"] == "demo_latency_seconds"
        assert alert["labels"]["service"] == "checkout" and alert["labels"]["pod"] == "a"
        assert alert["labels"]["alertname"] == "AnomalyDetected"
        assert "expected" in alert["annotations"]["summary"]
        assert float(alert["annotations"]["deviation"]) > 5
    finally:
        if detect is not None:
            detect.terminate()
            try:
                out, _ = detect.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                detect.kill()
                out, _ = detect.communicate()
            print(out)
        prom.terminate()
        try:
            prom.wait(timeout=15)
        except subprocess.TimeoutExpired:
            prom.kill()
