"""`tocsin detect --csv` end to end (the real command in a subprocess): NAB's results format plus `alert`, in the
input's row order, with the why of each row on request; bad input exits 1 with the reason."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def tocsin(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env)


def write_series(p: Path, n: int = 3000, spike: int | None = 2000) -> np.ndarray:
    x = np.random.default_rng(5).normal(50, 2, n)
    if spike is not None:
        x[spike] += 30
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        for i, v in enumerate(x):
            d, rem = divmod(i * 5, 1440)
            w.writerow([f"2024-01-{1 + d:02d} {rem // 60:02d}:{rem % 60:02d}:00", "" if i == 100 else f"{v:.4f}"])
    return x


def test_csv_mode_writes_nab_results_with_alert(tmp_path: Path) -> None:
    src, out = tmp_path / "data.csv", tmp_path / "out.csv"
    write_series(src)
    r = tocsin("detect", "--csv", str(src), "--results", str(out))
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out)))
    data = list(csv.DictReader(open(src)))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score", "alert"]
    assert [row["timestamp"] for row in rows] == [row["timestamp"] for row in data]
    alerts = [i for i, row in enumerate(rows) if row["alert"] == "1"]
    assert alerts and alerts[0] == 2000 and all(2000 <= i < 2300 for i in alerts)
    scores = [float(row["anomaly_score"]) for row in rows]
    assert all(0 <= s <= 1 for s in scores) and max(scores) == scores[2000]
    assert rows[100]["value"] == "" and float(rows[100]["anomaly_score"]) == 0  # a missing point
    assert '"alerts": 1' in r.stderr


def test_csv_mode_explains_and_takes_a_method(tmp_path: Path) -> None:
    src = tmp_path / "data.csv"
    x = write_series(src)
    r = tocsin("detect", "--csv", str(src), "--method", "zscore", "--explain")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(r.stdout.splitlines()))
    row = rows[2000]
    assert row["alert"] == "1" and row["method"] == "zscore"
    assert float(row["lower"]) < float(row["expected"]) < float(row["upper"]) < x[2000]
    assert abs(float(row["deviation"]) - (x[2000] - float(row["expected"]))) < 1e-3


def test_bad_input_exits_1_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("time,val\n1,2\n")
    r = tocsin("detect", "--csv", str(bad))
    assert r.returncode == 1 and "timestamp and value" in r.stderr
    bad.write_text("timestamp,value\nyesterday,2\n")
    r = tocsin("detect", "--csv", str(bad))
    assert r.returncode == 1 and "line 2" in r.stderr and "yesterday" in r.stderr
    r = tocsin("detect", "--csv", str(tmp_path / "missing.csv"))
    assert r.returncode == 1
    r = tocsin("detect", "--csv", str(bad), "--method", "magic")
    assert r.returncode == 2 and "--method" in r.stderr
    r = tocsin("detect")
    assert r.returncode == 2


def test_online_mode_needs_a_detect_section(tmp_path: Path) -> None:
    cfg = tmp_path / "t.yml"
    cfg.write_text("route: {receiver: r}\nreceivers: [{name: r}]\n")
    r = tocsin("detect", "--config", str(cfg))
    assert r.returncode == 1 and "tocsin.detect" in r.stderr
    cfg.write_text("route: {receiver: r}\nreceivers: [{name: r}]\ntocsin: {detect: {prometheus: x, queries: []}}\n")
    r = tocsin("detect", "--config", str(cfg))
    assert r.returncode == 1 and "tocsin.detect.queries" in r.stderr
