"""The real `amtool` (Alertmanager 0.25, Debian's prometheus-alertmanager) against a real `tocsin serve`.

alert add / query, silence add / query / expire / import, check-config, and config routes (which reads the
running configuration from /api/v2/status, as it does from an Alertmanager).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.serve_kit import REPO, free_port
from tests.proc_kit import die_with_parent

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"

CONFIG = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 1h
  routes:
    - matchers: ['severity="page"']
      receiver: pager
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:9/team"}]
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:9/pager"}]
"""


@pytest.fixture(scope="module")
def tocsin(redis_url, tmp_path_factory):
    d = tmp_path_factory.mktemp("amtool")
    cfg = d / "tocsin.yml"
    cfg.write_text(CONFIG)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), REDIS_URL=redis_url,
               TOCSIN_KEY_PREFIX=f"amtool{port}", TOCSIN_INSTANCE=f"amtool{port}")
    log = open(d / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", str(cfg), "--listen",
                             f"127.0.0.1:{port}", "--log-level", "warning"], cwd=REPO, env=env, stdout=log,
                            stderr=log, preexec_fn=die_with_parent)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, (d / "serve.log").read_text()
        try:
            if urllib.request.urlopen(url + "/-/ready", timeout=2).status == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "tocsin never became ready"
        time.sleep(0.1)
    yield url, cfg, d
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def amtool(url: str, *args: str) -> str:
    p = subprocess.run([AMTOOL, f"--alertmanager.url={url}", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"amtool {' '.join(args)}: {p.stdout}{p.stderr}"
    return p.stdout


def test_alert_add_and_query(tocsin):
    """`amtool alert add` posts an alert that `amtool alert query` then lists, with its labels and annotations."""
    url, _, _ = tocsin
    amtool(url, "alert", "add", "alertname=AmtoolAlert", "severity=warning", "--annotation=summary=from amtool")
    alerts = json.loads(amtool(url, "alert", "query", "-o", "json", "alertname=AmtoolAlert"))
    (a,) = alerts
    assert a["labels"] == {"alertname": "AmtoolAlert", "severity": "warning"}
    assert a["annotations"] == {"summary": "from amtool"} and a["status"]["state"] == "active"
    assert [r["name"] for r in a["receivers"]] == ["team"]


def test_silence_add_query_expire_import(tocsin, tmp_path):
    """A silence made with amtool silences the alert, is listed, expires, and can be imported back."""
    url, _, _ = tocsin
    amtool(url, "alert", "add", "alertname=AmtoolSilenced", "severity=warning")
    sid = amtool(url, "silence", "add", "alertname=AmtoolSilenced", "--comment=maintenance", "--author=tester",
                 "--duration=1h").strip()
    assert sid
    listed = json.loads(amtool(url, "silence", "query", "-o", "json"))
    mine = [s for s in listed if s["id"] == sid]
    assert mine and mine[0]["createdBy"] == "tester" and mine[0]["status"]["state"] == "active"
    assert mine[0]["matchers"] == [{"name": "alertname", "value": "AmtoolSilenced", "isRegex": False,
                                    "isEqual": True}]
    (a,) = json.loads(amtool(url, "alert", "query", "-o", "json", "--silenced", "alertname=AmtoolSilenced"))
    assert a["status"]["state"] == "suppressed" and a["status"]["silencedBy"] == [sid]

    amtool(url, "silence", "expire", sid)
    assert sid not in amtool(url, "silence", "query", "-q")
    expired = json.loads(amtool(url, "silence", "query", "--expired", "-o", "json"))
    assert any(s["id"] == sid and s["status"]["state"] == "expired" for s in expired)

    export = tmp_path / "silences.json"
    export.write_text(json.dumps([dict(mine[0], endsAt="2099-01-01T00:00:00Z")]))
    amtool(url, "silence", "import", str(export))
    again = json.loads(amtool(url, "silence", "query", "-o", "json", "alertname=AmtoolSilenced"))
    assert len(again) == 1 and again[0]["id"] != sid and again[0]["comment"] == "maintenance"


def test_check_config_and_routes_test(tocsin):
    """amtool checks the file Tocsin serves, and `config routes test` routes by the configuration it reads from
    the running Tocsin."""
    url, cfg, _ = tocsin
    p = subprocess.run([AMTOOL, "check-config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert amtool(url, "config", "routes", "test", "severity=page").strip() == "pager"
    assert amtool(url, "config", "routes", "test", "severity=info").strip() == "team"
    tree = amtool(url, "config", "routes")
    assert "pager" in tree and "team" in tree
