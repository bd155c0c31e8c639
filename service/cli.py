"""The `tocsin` command: serve, check-config, replay."""
from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from .errors import ConfigErrors


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from . import logs
    from .app import create_app
    from .appkeys import RELOAD
    from .config import load_config

    logs.configure(args.log_level)
    try:
        cfg = load_config(args.config)
    except ConfigErrors as e:
        print(f"tocsin: invalid configuration {args.config}:\n{e}", file=sys.stderr)
        return 1
    if args.listen:
        cfg.tocsin.listen = args.listen
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
                handle_signals=True, shutdown_timeout=5)
    return 0


def _check(args: argparse.Namespace) -> int:
    from .config import load_config
    from .clock import SystemClock
    from .engine import build_receivers, default_receiver_factory

    try:
        cfg = load_config(args.config)
        build_receivers(cfg, default_receiver_factory, SystemClock())
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
    from . import logs
    from .config import load_config
    from .replay import ReplayInputError, replay, write_jsonl

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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tocsin", description="The alarm bell that rings once per incident.")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the service")
    s.add_argument("--config", required=True)
    s.add_argument("--listen", help="HOST:PORT (default from config, else 127.0.0.1:9093)")
    s.add_argument("--log-level", default="info")
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
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
