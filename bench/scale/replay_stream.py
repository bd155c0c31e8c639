"""Build a `tocsin replay` input from the real alert streams (../shared/realdata) and time the replay.

Each episode becomes two lines, as Prometheus would send them: the alert without endsAt at its startsAt, and
again with endsAt at its endsAt (the top-level event_id dropped; the annotation keeps it). All entities of a
dataset are merged in time order. SMD: 13,734 episodes, 27,468 lines.

    python bench/scale/replay_stream.py --dataset smd --out /tmp/smd.jsonl            # build only
    python bench/scale/replay_stream.py --dataset smd --out /tmp/smd.jsonl --run     # build and time the replay

--run prints lines/s, notifications and the replay process's peak RSS (getrusage of the child).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REALDATA = Path(os.environ.get("TOCSIN_REALDATA", "/work/shared/realdata"))

CONFIG = """
global: {resolve_timeout: 5m}
route:
  receiver: hook
  group_by: [entity]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs: [{url: "http://127.0.0.1:9/unused", send_resolved: true}]
"""


def lines_of(dataset: str) -> list[tuple[str, int, str]]:
    out: list[tuple[str, int, str]] = []
    n = 0
    for f in sorted((REALDATA / "events" / dataset).glob("*.jsonl.gz")):
        with gzip.open(f, "rt") as fh:
            for raw in fh:
                d = json.loads(raw)
                d.pop("event_id", None)
                ends = d.pop("endsAt", None)
                firing = dict(d, at=d["startsAt"])
                out.append((d["startsAt"], n, json.dumps(firing, sort_keys=True)))
                n += 1
                if ends:
                    out.append((ends, n, json.dumps(dict(d, endsAt=ends, at=ends), sort_keys=True)))
                    n += 1
    out.sort()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="smd")
    p.add_argument("--out", required=True)
    p.add_argument("--config", help="a config file (default: Alertmanager-like group_by [entity], 30s/5m/4h)")
    p.add_argument("--run", action="store_true")
    p.add_argument("--cmd", default=f"{sys.executable} -m service.cli replay")
    a = p.parse_args()
    rows = lines_of(a.dataset)
    with open(a.out, "w") as f:
        for _, _, line in rows:
            f.write(line + "\n")
    print(json.dumps({"dataset": a.dataset, "lines": len(rows), "file": a.out}))
    if not a.run:
        return
    cfg = a.config
    if cfg is None:
        cfg = os.path.join(tempfile.mkdtemp(), "replay.yml")
        Path(cfg).write_text(CONFIG)
    notifs = a.out + ".notifications.jsonl"
    t0 = time.perf_counter()
    r = subprocess.run([*a.cmd.split(), "--config", cfg, a.out, "-o", notifs], capture_output=True, text=True)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if r.returncode:
        print(r.stderr[-2000:], file=sys.stderr)
        sys.exit(r.returncode)
    n = sum(1 for _ in open(notifs))
    print(json.dumps({"dataset": a.dataset, "lines": len(rows), "seconds": round(dt, 2),
                      "lines_per_s": round(len(rows) / dt), "notifications": n,
                      "peak_rss_mib_max_child": round(rss, 1), "stats": r.stderr.strip().splitlines()[-1:]}))


if __name__ == "__main__":
    main()
