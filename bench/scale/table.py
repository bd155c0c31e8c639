"""Print the markdown tables of bench/scale/RESULTS.md from bench/scale/results/*.jsonl (run_scale.py output)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent / "results"


def load(name: str) -> list[dict]:
    p = HERE / f"{name}.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def rows(rs: list[dict], target: str, phase: str) -> list[dict]:
    return [r for r in rs if r.get("target") == target and r.get("phase") == phase]


def side_by_side(names: list[str]) -> None:
    print("| active alerts (groups) | target | first alerts/s | first p99 ms | resend alerts/s | resend p99 ms |"
          " notifications (alerts carried) | peak RSS MiB | Redis bytes/alert | first ratio | resend ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        rs = load(name)
        if not rs:
            continue
        summ = next(r for r in rs if r.get("summary"))
        ratio = {r["phase"]: r["ratio_other_over_alertmanager_median"] for r in rs if "ratio_other_over_alertmanager_median" in r}
        for target in ("alertmanager", "other"):
            f, s, n = rows(rs, target, "first"), rows(rs, target, "resend"), rows(rs, target, "notify")
            if not f:
                continue
            rng = lambda xs, k: "–".join(sorted({f"{x[k]:,}" for x in xs}, key=lambda v: float(v.replace(",", ""))))  # noqa: E731
            rss = max(x["peak_rss_mib"] for x in n)
            if target == "other":
                rss = f"{rss} + Redis {summ['redis_rss_mib']}"
            print(f"| {summ['alerts']:,} ({summ['services']:,}) | {'Alertmanager 0.25' if target == 'alertmanager' else 'Tocsin'}"
                  f" | {rng(f, 'alerts_per_s')} | {rng(f, 'batch_p99_ms')} | {rng(s, 'alerts_per_s')} | {rng(s, 'batch_p99_ms')}"
                  f" | {', '.join(str(x['notifications']) for x in n)} ({', '.join(str(x['alerts_in_notifications']) for x in n)})"
                  f" | {rss} | {summ['redis_bytes_per_alert'] if target == 'other' else '–'}"
                  f" | {ratio.get('first', '') if target == 'other' else ''} | {ratio.get('resend', '') if target == 'other' else ''} |")


def replicas() -> None:
    print("| Redis | workers | first alerts/s | resend alerts/s | notifications | peak RSS MiB (workers) | exit |")
    print("|---|---|---|---|---|---|---|")
    for redis in ("single", "cluster"):
        for w in (1, 2, 3):
            rs = load(f"20k-{redis}-w{w}-only")
            if not rs:
                continue
            summ = next(r for r in rs if r.get("summary"))
            f, s, n = rows(rs, "other", "first"), rows(rs, "other", "resend"), rows(rs, "other", "notify")
            fv = f[0]["alerts_per_s"] if f else "failed"
            sv = s[0]["alerts_per_s"] if s else "failed"
            nv = n[0]["notifications"] if n else "–"
            rv = n[0]["peak_rss_mib"] if n else "–"
            print(f"| {summ['redis']} | {w} | {fv} | {sv} | {nv} | {rv} | {summ['exit']} |")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    if what in ("all", "side"):
        side_by_side(["20k-single-w1-r3", "20k-single-w1", "100k-single-w1", "500k-single-w1"])
        print()
    if what in ("all", "replicas"):
        replicas()
