"""Run every detector method over every file of the NAB development set, score the alert episodes with the set's
own scorer (score_events.py) and NAB's standard profile (nab_score.py, our implementation of the published
rules), print the table and write bench/detect/RESULTS.md.

    python3 bench/detect/run.py [--nab /work/shared/nab] [--methods ensemble,zscore,...] [--out DIR] [--no-write]

One default setting (DetectorParams()) for every series of every method; nothing is fitted per file.
"naive-z" is the tutorials' robust rolling z (median/MAD of the previous 288 points, alert while |z| >= 4), the
README's reference (F1 0.033).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

from nab_score import FileData, nab_score  # noqa: E402

from service.detect.core import Batch, detect_series  # noqa: E402
from service.detect.csvmode import read_series, write_results  # noqa: E402
from service.detect.params import METHODS, DetectorParams  # noqa: E402


BAND = np.round(np.arange(0.40, 0.605, 0.01), 2)  # thresholds the band average of the NAB score runs over


def naive_z(times: np.ndarray, values: np.ndarray) -> Batch:
    from numpy.lib.stride_tricks import sliding_window_view

    n, w = len(values), 288
    z = np.zeros(n)
    if n > w:
        win = sliding_window_view(values[:-1], w)
        med = np.median(win, axis=1)
        mad = 1.4826 * np.median(np.abs(win - med[:, None]), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z[w:] = np.where(mad > 0, np.abs(values[w:] - med) / mad, 0.0)  # z undefined where MAD is 0
    alert = z >= 4
    nan = np.full(n, np.nan)
    score = np.minimum(z / 8, 1.0)
    return Batch(score, alert, alert & ~np.concatenate([[False], alert[:-1]]), nan, nan, nan, nan, [""] * n,
                 novel=score)


def run_method(method: str, files: list[Path], nab: Path, out: Path,
               overrides: dict | None = None) -> tuple[float, float, list[FileData], list[FileData]]:
    """Runs one method over every file; returns the detection wall and CPU time and, per file, NAB inputs for the
    anomaly_score column and for the alert onsets (1 where an alert opens: what Tocsin would send)."""
    windows = json.loads((nab / "windows.json").read_text())
    spent = cpu = 0.0
    fds, onsets = [], []
    for f in files:
        rel = f.relative_to(nab / "data").as_posix()
        with open(f) as fh:
            raw, times, values = read_series(fh)
        t0, c0 = time.perf_counter(), time.process_time()
        b = naive_z(times, values) if method == "naive-z" else detect_series(times, values,
                                                                            DetectorParams(method=method, **(overrides or {})))
        spent += time.perf_counter() - t0
        cpu += time.process_time() - c0
        dst = out / method / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        with open(dst, "w") as fh:
            write_results(fh, raw, values, b)
        wins = []
        for s, e in windows.get(rel, []):
            s, e = s[:19], e[:19]
            lo = next(i for i, ts in enumerate(raw) if ts[:19] >= s)
            hi = max(i for i, ts in enumerate(raw) if ts[:19] <= e)
            wins.append((lo, hi))
        fds.append(FileData(b.novel, wins))
        onsets.append(FileData(b.opened.astype(float), wins))
    return spent, cpu, fds, onsets


def score_events(nab: Path, results: Path) -> dict:
    p = subprocess.run([sys.executable, str(nab / "score_events.py"), str(results), "--per-file"],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nab", default="/work/shared/nab")
    ap.add_argument("--methods", default=",".join(("ensemble",) + tuple(m for m in METHODS if m != "ensemble"))
                    + ",naive-z")
    ap.add_argument("--out", help="write the result files here (default: a temporary directory)")
    ap.add_argument("--no-write", action="store_true", help="do not rewrite RESULTS.md")
    ap.add_argument("--per-file", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a DetectorParams default (exploration only: RESULTS.md is for the defaults)")
    a = ap.parse_args()
    overrides = {k: json.loads(v) for k, v in (x.split("=", 1) for x in a.set)}
    if overrides:
        a.no_write = True
    nab = Path(a.nab)
    files = sorted((nab / "data").rglob("*.csv"))
    out = Path(a.out) if a.out else Path(tempfile.mkdtemp(prefix="tocsin-nab-"))
    rows = []
    for m in a.methods.split(","):
        t0 = time.perf_counter()
        spent, cpu, fds, onsets = run_method(m, files, nab, out, overrides)
        wall = time.perf_counter() - t0
        ev = score_events(nab, out / m)
        noanom = sum(v["episodes"] for k, v in ev["per_file"].items() if k.startswith("artificialNoAnomaly/"))
        nab_s, thr = nab_score(fds)
        nab_on, _ = nab_score(onsets, np.array([0.5]))  # the alerts as sent: one fixed threshold
        band = float(np.mean([nab_score(fds, np.array([t]))[0] for t in BAND]))  # not one lucky threshold
        row = dict(method=m, f1=ev["f1"], precision=ev["precision"], recall=ev["recall"], tp=ev["tp"], fp=ev["fp"],
                   fn=ev["fn"], latency=ev["latency_median"], no_anomaly_alerts=noanom, nab=round(nab_s, 1), nab_onsets=round(nab_on, 1), nab_band=round(band, 1),
                   nab_threshold=round(thr, 3), detect_s=round(spent, 2), detect_cpu_s=round(cpu, 2), wall_s=round(wall, 2))
        rows.append(row)
        print(json.dumps(row), flush=True)
        if a.per_file:
            for k, v in sorted(ev["per_file"].items()):
                print(f"   {k:60s} tp={v['tp']} fp={v['fp']} fn={v['fn']}")
    points = sum(sum(1 for _ in open(f)) - 1 for f in files)
    table = _table(rows, len(files), points)
    print(table)
    if not a.no_write:
        (HERE / "RESULTS.md").write_text(_results_md(table, a))
    return 0


def _table(rows: list[dict], nfiles: int, points: int) -> str:
    head = ("| method | F1 | precision | recall | TP | FP (false alerts) | FN | median latency | alerts on "
            "artificialNoAnomaly | NAB standard (anomaly_score) | NAB mean over thresholds 0.40-0.60 | NAB standard (alert "
            "onsets) | detect CPU (s) | detect wall (s) | wall incl. I/O (s) |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['method']} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['tp']} | {r['fp']} | "
        f"{r['fn']} | {r['latency'] if r['latency'] is not None else '-'} | {r['no_anomaly_alerts']} | "
        f"{r['nab']} (thr {r['nab_threshold']}) | {r['nab_band']} | {r['nab_onsets']} | {r['detect_cpu_s']} | {r['detect_s']} | {r['wall_s']} |\n"
        for r in rows)
    return f"{nfiles} files, {points} points.\n\n" + head + body


ONLINE = """Online (`python3 bench/detect/online.py --series 100 --backfill-days 4`: 100 series with their whole history
filled, one new point each per step plus every state saved to Redis; the series re-index their novelty at
different steps, as the runner now does, so the 5 timed steps include about 2 re-indexings each): 9630 series per
process per 60 s step by wall time, 9660 by CPU time; the tree before the longer shape and the range in the same
run (`--set knn_long_points=0 --set range_tolerance=0`): 10917 / 11286. Two earlier runs of each (phases not yet
spread, the machine busier): 10586 / 10970 and 10268 / 10557 after, 7915 / 10506 and 11161 / 11524 before. Most of
a step is saving the state (about 5 ms per series). A re-indexing costs about 5.5 ms per tree and series every 288
points, two trees now: with every series at the same phase, 10k series would spend about 110 s at that one step
(57 s with one tree); spread over the 288 steps it is about 0.4 s per step."""


def _results_md(table: str, a: argparse.Namespace) -> str:
    cmd = "python3 bench/detect/run.py" + (f" --methods {a.methods}" if a.methods else "")
    return f"""# Detector results on the NAB development set

Command (from the repository root, on the shared 2-core machine):

    {cmd}

Every method runs with the one default setting (`DetectorParams()`, the `tocsin.detect.params` defaults) on every
file; nothing is fitted per file. Event scores are `score_events.py` of the data set (alert episodes: TP = a window
in which an episode starts, FP = an episode that starts outside every window). NAB standard is our own
implementation of the published standard profile (`bench/detect/nab_score.py`), with the threshold on
`anomaly_score` optimised over the set (every distinct score is tried), as NAB does; `anomaly_score` is the
detector's score where it is news (above 1.1 times every score of the last `refractory` points, else 0), so a
deviation counts at its first point and not again while it lasts. "NAB standard (alert onsets)" scores the alerts
as sent (1 where an alert opens) at that one threshold. Latency is the median fraction of the window elapsed at the
first detection. "detect CPU" is the detector's own CPU time (the machine is shared: its wall time depends on
the other jobs running), "detect wall" the same in wall-clock time, "wall incl. I/O" adds reading and writing the
CSV files.

{table}
NAB above HTM (issue 12): `anomaly_score` is still the score where it is news, but the news now also hears two
signals that rank evidence without opening alerts of their own (the alert columns above are unchanged by them):

- the nearest-neighbour novelty of a *longer shape* (`knn_long_points` 4 blocks of `knn_long_block` 12 points,
  four hours at 5 minutes; each block is represented by its point farthest from the block's mean, so a spike
  survives the coarser scale, as in ARTime's max/min down-sampling), against the same two weeks and at the same line
  as the 3-point shape; in a seasonal series it counts only as far as the seasonal baseline or a local method sees
  a deviation too (a few hours are a slice of the daily rhythm). It catches what no 3-point slice shows: a denser
  spike train, a burst, a rhythm that pauses;
- a value beyond every value the series had by 5% of its range (`range_tolerance`; HTM's NAB detector calls it a
  spatial anomaly and uses the same 5%), in orders of magnitude of the excess (1 + ln of it), so that a far larger
  one is news again. It opens no alert: a young noisy series sets new extremes now and then.

Each alone and both (same command with `--set`): the 3-point shape only 68.2; + the range 69.3
(`--set knn_long_points=0`); + the longer shape 70.7 (`--set range_tolerance=0`); both 73.3. The NAB score at the
optimised threshold moves by a point or two with any choice here (the longer shape as 8 blocks of 6 points scores
70.2 instead of 70.7; 12 blocks of 4, scored offline from the same per-point scores, 72.7, but its 12-dimensional
tree is about 18 times slower), because a few windows sit right at the optimum; the
mean over the thresholds 0.40 to 0.60 (the new column) is the steadier figure: 59.5 before, 64.4 with the longer
shape, 67.1 with both. The target (above HTM's 71.0) is met at the thresholds 0.47 to 0.49 (72.0, 72.5, 71.9),
the score stays within 68.8 to 72.5 from 0.44 to 0.53 and falls to 60 at 0.60; ARTime's 77.4 is not reached.
The CPU times of this run are about twice those of the table below for the methods that did not change (a busier
machine); against the robust z of the same run the ensemble costs 2.55 times its time, 2.28 before: about 12% more
for the two new signals, and the whole set still takes under 30 s with I/O.

Before (the tree before these two signals, same command; CPU and wall times from a quieter machine):

| method | F1 | precision | recall | TP | FP (false alerts) | FN | median latency | alerts on artificialNoAnomaly | NAB standard (anomaly_score) | NAB standard (alert onsets) | detect CPU (s) | detect wall (s) | wall incl. I/O (s) |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
| ensemble | 0.471 | 0.345 | 0.742 | 49 | 93 | 17 | 0.4987 | 0 | 68.2 (thr 0.44) | 65.1 | 10.25 | 11.64 | 15.04 |
| zscore | 0.470 | 0.551 | 0.409 | 27 | 22 | 39 | 0.5 | 0 | 49.7 (thr 0.352) | 36.9 | 4.49 | 7.08 | 12.65 |
| ema | 0.460 | 0.553 | 0.394 | 26 | 21 | 40 | 0.5 | 0 | 45.0 (thr 0.409) | 35.3 | 4.36 | 6.74 | 11.53 |
| seasonal | 0.500 | 0.451 | 0.561 | 37 | 45 | 29 | 0.5 | 1 | 57.8 (thr 0.434) | 51.1 | 4.31 | 4.74 | 8.19 |
| shift | 0.454 | 0.427 | 0.485 | 32 | 43 | 34 | 0.5 | 0 | 50.2 (thr 0.317) | 43.1 | 4.44 | 5.88 | 10.11 |
| knn | 0.562 | 0.618 | 0.515 | 34 | 21 | 32 | 0.5 | 0 | 52.3 (thr 0.381) | 46.7 | 10.62 | 20.76 | 28.33 |
| iforest | 0.214 | 0.128 | 0.651 | 43 | 293 | 23 | 0.4571 | 59 | 36.0 (thr 0.454) | 38.2 | 26.12 | 47.19 | 53.24 |
| naive-z | 0.033 | 0.017 | 0.788 | 52 | 3016 | 14 | 0.3064 | 26 | 0.0 (thr inf) | -160.7 | 1.58 | 2.22 | 6.54 |

Scorer fix (issue 12, earlier): until then `nab_score` was given one entry per *window* instead of one per file, so
the files without windows (artificialNoAnomaly, ec2_cpu_utilization_c6585a) never counted their false positives and
a file with several windows counted once per window; a window's first row was worth sigma(-1) = 0.987 instead of
A_TP = 1, the distance after a window was divided by its width instead of width - 1, and the threshold was
searched on a grid. With the fix the previous ensemble (score on every point) scores 51.7 (52.2 reported before);
scoring only the news raises it to 60.4 (alert episodes, F1 and latency unchanged by both). Adding the
nearest-neighbour novelty (`knn`: the shape of the last 3 points against the 4032 before them, two weeks at 5
minutes) to the ensemble raised it to 68.2, the alert onsets from 53.4 to 65.1, recall from 0.606 to 0.742 and F1
from 0.442 to 0.471; the median latency dropped below half the window (0.4987).
Check of the scorer: uniform random scores (25 seeds) score 6.7 to 19.5 here (median 11.5); NAB's published
random detector scores 19.8 on these files, at the top of that range (one draw of the same lottery).

{ONLINE}
"""


if __name__ == "__main__":
    sys.exit(main())
