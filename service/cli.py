"""The `tocsin` command: serve, check-config, replay.

Imports are lazy: `tocsin --help` loads argparse only, and each command loads what it needs (asyncio, aiohttp,
redis, pydantic) inside its function, so `--help` and `check-config` do not pay for the service's imports.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any


def _serve(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from aiohttp import web

    from service.core import logs
    from service.http.app import create_app
    from service.http.appkeys import RELOAD
    from service.config.sections import load_config
    from service.core.errors import ConfigError, ConfigErrors

    logs.configure(args.log_level)
    try:
        cfg = load_config(args.config)
        from routing.receivers.registry import check_receivers

        from service.core.clock import SystemClock

        check_receivers(cfg.receivers, cfg.global_, cfg.tocsin.delivery.timeout, SystemClock())
    except ConfigErrors as e:
        print(f"tocsin: invalid configuration {args.config}:\n{e}", file=sys.stderr)
        return 1
    except ConfigError as e:  # a receiver's own validation
        print(f"tocsin: invalid configuration {args.config}:\n  {e}", file=sys.stderr)
        return 1
    if args.listen:
        cfg.tocsin.listen = args.listen
    if args.workers > 1:
        return _serve_workers(args, cfg)
    host, _, port = cfg.tocsin.listen.rpartition(":")
    app = create_app(args.config, cfg=cfg)

    async def on_startup(app: web.Application) -> None:
        loop = asyncio.get_running_loop()

        reloads: set[asyncio.Future[Any]] = set()  # keep a reference until the reload is done

        def hup() -> None:
            fut = asyncio.ensure_future(app[RELOAD]())
            reloads.add(fut)
            fut.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, hup)

    app.on_startup.append(on_startup)
    web.run_app(app, host=host or "127.0.0.1", port=int(port), print=None, access_log=None,
                handle_signals=True, shutdown_timeout=5, reuse_port=args.reuse_port or None)
    return 0


def _serve_workers(args: argparse.Namespace, cfg: Any) -> int:
    """Several `serve` processes on one port (SO_REUSEPORT) and one Redis: replicas on one machine, so that
    ingest uses more than one core. The parent owns the embedded Redis, forwards SIGHUP (reload) and SIGTERM,
    and stops everything when a worker exits."""
    import os
    import signal
    import socket
    import subprocess
    import time
    from pathlib import Path

    from service.store.embedded import EmbeddedRedis

    embedded = None
    url = cfg.tocsin.redis.url
    if not url:
        embedded = EmbeddedRedis(Path(cfg.tocsin.data_dir) / "redis", persist=True, fsync=cfg.tocsin.redis.fsync)
        url = embedded.start()
    base = os.environ.get("TOCSIN_INSTANCE") or f"{socket.gethostname()}:{cfg.tocsin.listen}"
    procs = []
    for i in range(args.workers):
        env = dict(os.environ, REDIS_URL=url, TOCSIN_INSTANCE=f"{base}/w{i}", TOCSIN_SUPERVISOR_PID=str(os.getpid()))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--config", args.config, "--listen", cfg.tocsin.listen,
             "--log-level", args.log_level, "--reuse-port"], env=env))

    def forward(signum: int, _frame: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    stopping = {"flag": False}

    def stop(signum: int, frame: Any) -> None:
        stopping["flag"] = True
        forward(signal.SIGTERM, frame)

    signal.signal(signal.SIGHUP, forward)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.2)  # supervising child processes (not logic time)
        code = next((p.returncode for p in procs if p.poll() is not None and p.returncode), 0)
    finally:
        forward(signal.SIGTERM, None)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        if embedded is not None:
            embedded.stop()
    return 0 if stopping["flag"] else code


def _check(args: argparse.Namespace) -> int:
    # Only what checking needs is imported: the receiver modules of the kinds the file uses, not the service.
    from routing.receivers.registry import check_receivers

    from service.core.clock import SystemClock
    from service.core.errors import ConfigErrors
    from service.config.sections import load_config

    try:
        cfg = load_config(args.config)
        check_receivers(cfg.receivers, cfg.global_, cfg.tocsin.delivery.timeout, SystemClock())
    except ConfigErrors as e:
        print(f"{args.config}: invalid", file=sys.stderr)
        for err in e.errors:
            print(f"  {err}", file=sys.stderr)
        return 1
    except Exception as e:  # a receiver's own validation
        print(f"{args.config}: invalid\n  {e}", file=sys.stderr)
        return 1
    for w in cfg.warnings:
        print(f"warning: {w}", file=sys.stderr)
    routes = sum(1 for _ in cfg.route.walk())
    print(f"{args.config}: ok ({routes} routes, {len(cfg.receivers)} receivers, {len(cfg.inhibit_rules)} inhibit rules,"
          f" {len(cfg.time_intervals)} time intervals)")
    return 0


def _replay(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from service.core import logs
    from service.core.errors import ConfigErrors
    from service.config.sections import load_config
    from service.pipeline.replay import ReplayInputError, replay, write_jsonl

    logs.configure("error")
    try:
        cfg = load_config(args.config)
    except ConfigErrors as e:
        print(f"tocsin: invalid configuration {args.config}:\n{e}", file=sys.stderr)
        return 1
    src = sys.stdin if args.events == "-" else open(args.events)
    out = sys.stdout if args.output in (None, "-") else open(args.output, "w")
    try:
        stats: dict[str, Any] = asyncio.run(replay(cfg, src, write_jsonl(out), redis_url=args.redis_url,
                                                   horizon=args.horizon))
    except ReplayInputError as e:
        print(f"tocsin replay: {args.events}: {e}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(json.dumps({"replay": stats}), file=sys.stderr)
    return 0


def _detect(args: argparse.Namespace) -> int:
    from service.detect.cli import main as detect_main  # numpy/scikit-learn only when detecting

    return detect_main(args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tocsin", description="The alarm bell that rings once per incident.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the service")
    s.add_argument("--config", required=True)
    s.add_argument("--listen", help="HOST:PORT (default from config, else 127.0.0.1:9093)")
    s.add_argument("--log-level", default="info")
    s.add_argument("--workers", type=int, default=1,
                   help="run N replica processes on the same port and Redis (uses N cores)")
    s.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    s.set_defaults(fn=_serve)
    c = sub.add_parser("check-config", help="validate a configuration file")
    c.add_argument("config")
    c.set_defaults(fn=_check)
    r = sub.add_parser("replay", help="replay recorded alerts/events in event time and print the notifications")
    r.add_argument("--config", required=True)
    r.add_argument("events", help="JSONL file of alerts/events in time order, or - for stdin")
    r.add_argument("--output", "-o", help="write notifications here (default stdout)")
    r.add_argument("--redis-url", help="use this Redis (default: a private embedded one)")
    r.add_argument("--horizon", type=float, help="seconds to keep running timers after the last event")
    r.set_defaults(fn=_replay)
    d = sub.add_parser("detect", help="Tocsin's own anomaly detectors: over a CSV file, or online from Prometheus")
    d.add_argument("--csv", help="a timestamp,value file to score offline")
    d.add_argument("--results", help="with --csv: write timestamp,value,anomaly_score,alert here (default stdout)")
    d.add_argument("--config", help="a Tocsin configuration file with a tocsin.detect section (online mode)")
    d.add_argument("--method", help="with --csv: zscore, ema, seasonal, shift, iforest or ensemble (default)")
    d.add_argument("--explain", action="store_true", help="with --csv: add expected, lower, upper, deviation, method")
    d.add_argument("--once", action="store_true", help="with --config: evaluate one step and exit")
    d.add_argument("--log-level", default="info")
    d.set_defaults(fn=_detect)
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
