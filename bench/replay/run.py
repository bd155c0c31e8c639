"""Time `tocsin replay` on the real-data streams with the real-data config (correlation on), and fingerprint its
output, so that a speed change can be shown to leave every notification byte-identical.

    python -m bench.replay.run [--datasets smd,asd,nezha] [--tree DIR] [--out DIR]

For each dataset: builds the input as bench/realdata does (each episode posted firing at startsAt and resolved at
endsAt), runs `python -m service.cli replay --config bench/realdata/config.yml` from `--tree` (default: this
checkout; pass an exported older tree, e.g. `git archive <rev> | tar -x -C /tmp/old`, to compare), and prints
one JSON line: lines, wall seconds, lines/s, user+sys CPU seconds of the replay and its embedded Redis, peak RSS
of the largest process (/usr/bin/time: the replay process; its embedded Redis is smaller), the notification
count and the sha256 of the output. Runs with PYTHONHASHSEED=0: root-cause scores sum a set of weights in hash
order, which moves a fourth decimal now and then between interpreters otherwise.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--datasets", default="smd,asd,nezha")
    p.add_argument("--tree", default=str(ROOT), help="the checkout whose `tocsin replay` runs")
    p.add_argument("--out", default="/tmp/tocsin-bench-replay")
    a = p.parse_args()
    sys.path.insert(0, str(ROOT))
    for cand in (ROOT.parent / "shared" / "realdata", ROOT.parent.parent / "shared" / "realdata"):  # main, worktree
        if cand.exists():
            os.environ.setdefault("TOCSIN_REALDATA", str(cand))
            break
    from bench.realdata.run import replay_lines

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tree = Path(a.tree).resolve()
    for ds in a.datasets.split(","):
        inp = out / f"{ds}.replay.jsonl"
        lines = replay_lines(ds)
        inp.write_text("\n".join(lines) + "\n")
        res = out / f"{ds}.{tree.name}.out.jsonl"
        usage = out / f"{ds}.{tree.name}.time"
        t0 = time.perf_counter()
        with res.open("w") as f:  # /usr/bin/time: per-run peak RSS (getrusage's children maximum never resets)
            subprocess.run(["/usr/bin/time", "-o", str(usage), "-f", "%M %U %S", sys.executable, "-m", "service.cli",
                            "replay", "--config", str(tree / "bench/realdata/config.yml"), str(inp)], stdout=f,
                           check=True, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"})
        secs = time.perf_counter() - t0
        rss_kb, user, system = usage.read_text().split()[-3:]
        body = res.read_bytes()
        print(json.dumps({"dataset": ds, "tree": str(tree), "lines": len(lines), "wall_s": round(secs, 1),
                          "lines_per_s": round(len(lines) / secs), "cpu_s": round(float(user) + float(system), 1),
                          "peak_rss_mib": round(int(rss_kb) / 1024),
                          "notifications": body.count(b"\n"), "sha256": hashlib.sha256(body).hexdigest()[:16]}),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
