"""`tocsin detect --csv DATA.csv --results OUT.csv`: a `timestamp,value` file in, NAB's results format plus
`alert` out (`timestamp,value,anomaly_score,alert`, the input's row order), optionally with the why of each row.

Timestamps: 'YYYY-MM-DD HH:MM:SS' (NAB), RFC 3339, or epoch seconds. Empty or non-numeric values are missing
points (scored 0, carried forward in the baseline).

`anomaly_score` is the calibrated score where it is news (`Batch.novel`: above 1.1 times every score of the last
`refractory` points, else 0): a deviation counts at its first point, its repeats while it lasts do not, as NAB
rewards the first detection in a window and counts every later one outside it as a false positive. For the
ensemble the news also hears the longer shape's novelty and a value beyond the series' whole range (`Batch.news`),
which rank evidence but open no alert.
"""
from __future__ import annotations

import csv
import math
from datetime import datetime, timezone
from typing import TextIO

import numpy as np

from service.detect.core import Batch, detect_series
from service.detect.params import DetectorParams


class CsvInputError(ValueError):
    pass


def parse_time(s: str) -> float:
    s = s.strip()
    try:
        return float(s)
    except ValueError:
        pass
    t = s.replace("T", " ").rstrip("Z")
    try:
        d = datetime.fromisoformat(t)
    except ValueError:
        raise CsvInputError(f"bad timestamp {s!r}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def read_series(fh: TextIO) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The raw timestamp strings, epoch seconds and values (nan where missing) of a `timestamp,value` file."""
    r = csv.DictReader(fh)
    if not r.fieldnames or "timestamp" not in r.fieldnames or "value" not in r.fieldnames:
        raise CsvInputError("the header must name the columns timestamp and value")
    raw, times, values = [], [], []
    for line, row in enumerate(r, start=2):
        ts = row.get("timestamp") or ""
        try:
            t = parse_time(ts)
        except CsvInputError as e:
            raise CsvInputError(f"line {line}: {e}") from None
        try:
            v = float(row.get("value") or "nan")
        except ValueError:
            v = math.nan
        raw.append(ts)
        times.append(t)
        values.append(v if math.isfinite(v) else math.nan)
    return raw, np.asarray(times, float), np.asarray(values, float)


def write_results(fh: TextIO, raw_ts: list[str], values: np.ndarray, b: Batch, explain: bool = False) -> None:
    w = csv.writer(fh, lineterminator="\n")
    head = ["timestamp", "value", "anomaly_score", "alert"]
    if explain:
        head += ["expected", "lower", "upper", "deviation", "method"]
    w.writerow(head)
    for i, ts in enumerate(raw_ts):
        v = values[i]
        row = [ts, "" if math.isnan(v) else repr(float(v)), f"{b.novel[i]:.6f}", int(b.alert[i])]
        if explain:
            row += [_g(b.expected[i]), _g(b.lower[i]), _g(b.upper[i]), _g(b.deviation[i]), b.top[i]]
        w.writerow(row)


def _g(v: float) -> str:
    return "" if not math.isfinite(v) else f"{v:.6g}"


def run_csv(src: TextIO, dst: TextIO, params: DetectorParams | None = None, explain: bool = False) -> dict[str, int]:
    raw, times, values = read_series(src)
    if len(raw) == 0:
        raise CsvInputError("no rows")
    b = detect_series(times, values, params)
    write_results(dst, raw, values, b, explain)
    return {"rows": len(raw), "alerts": int(b.opened.sum()), "missing": int(np.isnan(values).sum())}
