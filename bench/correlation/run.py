"""Run the correlation benchmark: generate scenarios, replay them through Tocsin (correlation on) and through
Alertmanager-style grouping (group_by [service], default timers, correlation off), score both, print ratios.

    python -m bench.correlation.run [--seed 1] [--scenarios storm,cascade_db] [--out DIR]
                                    [--no-topology] [--replay-cmd "tocsin replay"]

Without --replay-cmd the offline driver (offline.py) stands in for `tocsin replay`. With it, the command
is run as `<cmd> --config <config.yml> <scenario.jsonl>` once per mode, and its stdout (one JSON
notification per line) is scored the same way.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml

from bench.correlation import generator, offline, scorer
from service.incidents.correlation import CorrelationConfig

KEYS = ["alerts_in", "real_incidents", "new_notifications", "incident_recall", "notifications_per_incident",
        "noise_notifications", "compression", "purity", "ari", "rootcause_hit1", "rootcause_hit3",
        "time_to_notify_median_s", "time_to_notify_max_s"]


def configs(topology: dict[str, list[str]]) -> tuple[dict[str, Any], dict[str, Any]]:
    route = {"receiver": "oncall", "group_by": ["service"]}
    receivers = [{"name": "oncall", "webhook_configs": [{"url": "http://127.0.0.1:9/hook"}]}]
    tocsin = {"route": route, "receivers": receivers,
              "tocsin": {"correlation": {"enabled": True, "topology": topology}}}
    am = {"route": route, "receivers": receivers, "tocsin": {"correlation": {"enabled": False}}}
    return tocsin, am


def replay_external(cmd: str, cfg: dict[str, Any], events: Path) -> tuple[list[dict[str, Any]], float]:
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        yaml.safe_dump(cfg, fh)
    t = time.perf_counter()
    res = subprocess.run(shlex.split(cmd) + ["--config", fh.name, str(events)], capture_output=True, text=True,
                         check=True)
    return [json.loads(x) for x in res.stdout.splitlines() if x.strip()], time.perf_counter() - t


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}"
    return str(v)


def table(name: str, t: dict[str, Any], a: dict[str, Any]) -> str:
    rows = [f"== {name}", f"{'metric':<28}{'tocsin':>12}{'alertmanager':>14}{'ratio am/tocsin':>17}"]
    for k in KEYS:
        ratio = ""
        if k in ("new_notifications", "noise_notifications") and t[k]:
            ratio = f"{a[k] / t[k]:.1f}x"
        rows.append(f"{k:<28}{fmt(t[k]):>12}{fmt(a[k]):>14}{ratio:>17}")
    if t.get("missed"):
        rows.append(f"missed by tocsin: {t['missed']}")
    return "\n".join(rows)


async def main_async(args: argparse.Namespace) -> None:
    out = Path(args.out or tempfile.mkdtemp(prefix="tocsin-corr-bench-"))
    names = generator.generate(out, args.seed, [s for s in args.scenarios.split(",") if s] or None)
    er = None
    url = os.environ.get("REDIS_URL")
    if not url and not args.replay_cmd:
        from service.store.embedded import EmbeddedRedis
        er = EmbeddedRedis(tempfile.mkdtemp(prefix="tocsin-bench-redis-"), persist=False)
        url = er.start()
    results_t: dict[str, Any] = {}
    results_a: dict[str, Any] = {}
    try:
        r = aioredis.from_url(url) if url else None
        for name in names:
            truth = json.loads((out / f"{name}.truth.json").read_text())
            topo = {} if args.no_topology else truth["topology"]
            events = out / f"{name}.jsonl"
            lines = offline.read_lines(str(events))
            if args.replay_cmd:
                ct, ca = configs(topo)
                nt, secs = replay_external(args.replay_cmd, ct, events)
                na, _ = replay_external(args.replay_cmd, ca, events)
                stats = {"lines": len(lines), "wall_s": secs, "store_s": secs}
            else:
                cfg = CorrelationConfig(enabled=True, topology=topo)
                nt, stats = await offline.run_tocsin(r, f"bench{int(time.time() * 1000) % 10**9}:{name}", lines, cfg)
                na = offline.run_alertmanager(lines)
            (out / f"{name}.tocsin.out.jsonl").write_text("".join(json.dumps(n) + "\n" for n in nt))
            (out / f"{name}.alertmanager.out.jsonl").write_text("".join(json.dumps(n) + "\n" for n in na))
            results_t[name] = st = scorer.score(nt, truth)
            results_a[name] = sa = scorer.score(na, truth)
            print(table(name, st, sa))
            print(f"throughput: {stats['lines']} lines in {stats['wall_s']:.2f}s = "
                  f"{stats['lines'] / max(stats['wall_s'], 1e-9):.0f} lines/s "
                  f"(store {stats['store_s']:.2f}s)\n")
        print(table("overall", scorer.pool(results_t), scorer.pool(results_a)))
        print(f"\nfiles in {out}")
        if r is not None:
            await r.aclose()
    finally:
        if er:
            er.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scenarios", default="")
    ap.add_argument("--out", default="")
    ap.add_argument("--no-topology", action="store_true", help="correlate without the service graph")
    ap.add_argument("--replay-cmd", default="", help='e.g. "tocsin replay"; default: the offline driver')
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
