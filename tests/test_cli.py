"""The `tocsin` command run as a user runs it: `check-config` exit codes and messages, `serve` refusing a bad
config, SIGHUP reloading a running `serve`, and `replay` printing notifications."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from service.core.clock import to_rfc3339
from tests.pipeline_kit import BASE, T0, with_redis
from tests.proc_kit import die_with_parent

ROOT = Path(__file__).resolve().parent.parent


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if k not in ("REDIS_URL", "TOCSIN_KEY_PREFIX", "TOCSIN_DATA_DIR", "HTTP_PROXY", "HTTPS_PROXY",
                      "http_proxy", "https_proxy")}
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra)
    return e


def tocsin(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env(), timeout=60, **kw)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """`tocsin ARGS` in this process (fast), with its exit code, stdout and stderr."""
    from service.cli import main

    try:
        code = main(list(args))
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def write(tmp_path: Path, text: str, name: str = "tocsin.yml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# -- check-config ---------------------------------------------------------------------------------------------

def test_check_config_ok(tmp_path: Path) -> None:
    """`python -m service.cli check-config` on a valid file exits 0 and prints a one-line summary."""
    r = tocsin("check-config", write(tmp_path, BASE))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("ok (1 routes, 1 receivers, 0 inhibit rules, 0 time intervals)")
    assert r.stderr == ""


def test_check_config_example_is_ok(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped example configuration passes check-config."""
    r = run_main(capsys, "check-config", "config/tocsin.yml")
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout


def test_check_config_errors_exit_1_with_every_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An invalid file exits 1 and prints every problem with the path of the bad key, on stderr."""
    bad = BASE.replace("group_wait: 30s", "group_wait: 30") + "bogus: 1\ntocsin: {listn: x}\n"
    r = run_main(capsys, "check-config", write(tmp_path, bad))
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert lines[0].endswith(": invalid")
    assert any(l.strip().startswith("bogus: unknown key") for l in lines)
    assert any(l.strip().startswith("tocsin.listn: unknown key") for l in lines)
    assert any(l.strip().startswith("route.group_wait: not a valid duration") for l in lines)


def test_check_config_reports_receiver_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A receiver whose own settings are bad (a webhook without an http URL) fails check-config naming the path."""
    r = run_main(capsys, "check-config", write(tmp_path, BASE.replace("http://127.0.0.1:9/hook", "ftp://x")))
    assert r.returncode == 1
    assert "receivers[0].webhook_configs[0].url" in r.stderr


def test_check_config_warnings_exit_0_and_name_the_integration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Unsupported Alertmanager integrations are warnings naming them; the file is still ok."""
    text = BASE + "  - name: chat\n    rocketchat_configs: [{channel: '#ops'}]\n"
    r = run_main(capsys, "check-config", write(tmp_path, text))
    assert r.returncode == 0
    assert "warning: receivers[1].rocketchat_configs: integration not supported" in r.stderr
    assert "ok (1 routes, 2 receivers" in r.stdout


def test_check_config_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file that does not exist exits 1 saying it cannot be read."""
    r = run_main(capsys, "check-config", str(tmp_path / "nope.yml"))
    assert r.returncode == 1
    assert "cannot read" in r.stderr


def test_check_config_never_prints_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Errors in a file with tokens and webhook URLs never print the secret values."""
    text = BASE.replace("http://127.0.0.1:9/hook", "http://hooks.example/SECRETPATH") + \
        "tocsin: {auth: {tokens: [{name: a, token: SECRETTOKEN, scope: x}]}, listn: 1}\n"
    r = run_main(capsys, "check-config", write(tmp_path, text))
    assert r.returncode == 1
    assert "SECRET" not in r.stdout + r.stderr


def test_serve_refuses_an_invalid_config(tmp_path: Path) -> None:
    """`tocsin serve` with an invalid config exits 1 with the errors instead of starting."""
    r = tocsin("serve", "--config", write(tmp_path, "route: {}\n"))
    assert r.returncode == 1
    assert "route.receiver" in r.stderr


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Running `tocsin` without a command prints usage and exits 2."""
    r = run_main(capsys)
    assert r.returncode == 2
    assert "usage: tocsin" in r.stderr


# -- serve + SIGHUP ---------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll for an effect of I/O in another process (no timer is waited for: group_wait is 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def http(method: str, url: str, body: Any = None) -> int:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def lines(p: Path) -> list[dict[str, Any]]:
    return [json.loads(l) for l in p.read_text().splitlines()] if p.exists() else []


def console_config(tmp_path: Path, redis_url: str, key_prefix: str, pager: bool) -> str:
    raw: dict[str, Any] = {
        "route": {"receiver": "a", "group_by": ["alertname"], "group_wait": "0s", "group_interval": "1m"},
        "receivers": [{"name": "a", "console_configs": [{"path": str(tmp_path / "a.jsonl")}]},
                      {"name": "b", "console_configs": [{"path": str(tmp_path / "b.jsonl")}]}],
    }
    if pager:
        raw["route"]["routes"] = [{"matchers": ['severity="page"'], "receiver": "b"}]
    return with_redis(yaml.safe_dump(raw), redis_url, key_prefix)


def test_sighup_reloads_a_running_serve(tmp_path: Path, redis_url: str, key_prefix: str, redis: Any) -> None:
    """SIGHUP makes `tocsin serve` reload: a good new config's route takes effect, a bad one is rejected and the
    running config keeps routing."""
    cfg = Path(write(tmp_path, console_config(tmp_path, redis_url, key_prefix, pager=False)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("w") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", str(cfg),
                                 "--listen", f"127.0.0.1:{port}"], cwd=ROOT, env=env(), stdout=logf, stderr=logf, preexec_fn=die_with_parent)
    try:
        wait_for(lambda: http("GET", f"{base}/-/ready") == 200, "serve to be ready")
        now = time.time()

        def page(name: str) -> dict[str, Any]:
            return {"labels": {"alertname": name, "severity": "page"}, "startsAt": to_rfc3339(now)}

        assert http("POST", f"{base}/api/v2/alerts", [page("Before")]) == 200
        wait_for(lambda: lines(tmp_path / "a.jsonl"), "the first notification at receiver a")

        cfg.write_text(console_config(tmp_path, redis_url, key_prefix, pager=True))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: '"event": "reloaded"' in log.read_text(), "the reload")
        assert http("POST", f"{base}/api/v2/alerts", [page("After")]) == 200
        # The reload re-routes the firing "Before" to b as well (Alertmanager re-forms groups on reload).
        wait_for(lambda: {n["alerts"][0]["labels"]["alertname"] for n in lines(tmp_path / "b.jsonl")}
                 == {"Before", "After"}, "the pages at receiver b")

        cfg.write_text(cfg.read_text().replace("group_wait: 0s", "group_wait: soon"))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: '"event": "reload_rejected"' in log.read_text(), "the rejected reload")
        assert "route.group_wait" in log.read_text()
        assert http("POST", f"{base}/api/v2/alerts", [page("StillRouted")]) == 200
        wait_for(lambda: len(lines(tmp_path / "b.jsonl")) == 3, "the page after the rejected reload")
        assert lines(tmp_path / "b.jsonl")[2]["alerts"][0]["labels"]["alertname"] == "StillRouted"
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-2000:]


# -- replay -------------------------------------------------------------------------------------------------------

def test_replay_prints_notifications(tmp_path: Path, redis_url: str, key_prefix: str, redis: Any) -> None:
    """`tocsin replay` reads alerts and detector events in event time and prints one JSON line per notification."""
    cfg = write(tmp_path, with_redis(BASE, redis_url, key_prefix))
    events = [
        {"labels": {"alertname": "A"}, "startsAt": to_rfc3339(T0)},
        {"kind": "event", "metric": "lat", "timestamp": to_rfc3339(T0 + 1), "is_anomaly": True, "z_score": 5},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(e) + "\n" for e in events))
    r = tocsin("replay", "--config", cfg, "--redis-url", redis_url, str(src))
    assert r.returncode == 0, r.stderr
    out = [json.loads(l) for l in r.stdout.splitlines()]
    assert sorted(n["alerts"][0]["labels"]["alertname"] for n in out if n["status"] == "firing") == [
        "A", "AnomalyDetected"]
    first = min(out, key=lambda n: n["timestamp"])
    assert first["receiver"] == "team" and first["timestamp"] == to_rfc3339(T0 + 30)


def test_serve_starts_before_redis_and_delivers_once_it_is_up(tmp_path: Path, key_prefix: str) -> None:
    """`tocsin serve` started while Redis is down answers healthy 200, ready and writes 503, then accepts alerts
    and delivers their notifications once Redis comes up."""
    from service.store.embedded import EmbeddedRedis

    er = EmbeddedRedis(tmp_path / "redis", persist=False)
    cfg = write(tmp_path, console_config(tmp_path, er.url, key_prefix, pager=False))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("w") as logf:
        proc = subprocess.Popen([sys.executable, "-m", "service.cli", "serve", "--config", cfg,
                                 "--listen", f"127.0.0.1:{port}"], cwd=ROOT, env=env(), stdout=logf, stderr=logf, preexec_fn=die_with_parent)
    try:
        wait_for(lambda: http("GET", f"{base}/-/healthy") == 200, "serve to answer")
        assert http("GET", f"{base}/-/ready") == 503
        alert = {"labels": {"alertname": "A"}, "startsAt": to_rfc3339(time.time())}
        assert http("POST", f"{base}/api/v2/alerts", [alert]) == 503
        er.start()
        wait_for(lambda: http("GET", f"{base}/-/ready") == 200, "ready once Redis is up")
        assert http("POST", f"{base}/api/v2/alerts", [alert]) == 200
        got = wait_for(lambda: lines(tmp_path / "a.jsonl"), "the notification")
        assert got[0]["alerts"][0]["labels"] == {"alertname": "A"}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        er.stop()
    assert proc.returncode == 0, log.read_text()[-2000:]
