"""NAB's standard-profile score, written from the published rules (Lavin & Ahmad 2015, "Evaluating Real-time
Anomaly Detection Algorithms: the Numenta Anomaly Benchmark"), not from NAB's code.

Rules as published:
- A row is a detection when its anomaly_score >= the threshold. Rows in the probationary period (the first 15% of
  a file, at most 15% of 5000 = 750 rows) are not scored.
- The scaled sigmoid is sigma(y) = 2 / (1 + exp(5 y)) - 1 (and -1 for y > 3).
- Inside a labelled window only the first detection counts: A_TP * sigma(y) / sigma(-1), y = -(end - i + 1) /
  width its relative position (-1 at the window's first row, about 0 at its last; dividing by sigma(-1) makes a
  detection at the first row worth exactly A_TP). A window without a detection counts A_FN.
- Every detection outside the windows costs A_FP * -sigma(y), y = (i - end of the previous window) / (width of
  that window - 1): a false positive just after a window costs little, one far after it costs |A_FP|; before any
  window it costs |A_FP| in full.
- Standard profile: A_TP = 1, A_FP = -0.11, A_FN = -1. The threshold is the one that maximises the corpus' total
  (every distinct anomaly_score is tried, and "no detection at all").
- Normalised score = 100 * (raw - null) / (perfect - null): null detects nothing (A_FN per window: 0), perfect
  detects every window at its first row and nothing else (A_TP per window: 100).

Every file counts, also those without windows (each of their detections is a false positive before any window).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

A_TP, A_FP, A_FN = 1.0, -0.11, -1.0


def sigma(y: np.ndarray | float) -> np.ndarray:
    y = np.asarray(y, float)
    return np.where(y > 3.0, -1.0, 2.0 / (1.0 + np.exp(np.minimum(5.0 * y, 700.0))) - 1.0)


MAX_TP = float(sigma(-1.0))


@dataclass
class FileData:
    scores: np.ndarray  # anomaly_score per row
    windows: list[tuple[int, int]]  # inclusive row ranges

    def __post_init__(self) -> None:
        n = len(self.scores)
        self.scores = np.asarray(self.scores, float)
        self.probation = min(int(math.floor(0.15 * n)), int(0.15 * 5000))
        self.order = sorted(self.windows)
        self.win = np.full(n, -1)  # window index per row, -1 outside
        self.weight = np.full(n, A_FP)  # what a detection at this row is worth (outside: a cost)
        prev = None
        wi = 0
        for i in range(n):
            while wi < len(self.order) and i > self.order[wi][1]:
                prev = self.order[wi]
                wi += 1
            if wi < len(self.order) and self.order[wi][0] <= i <= self.order[wi][1]:
                s, e = self.order[wi]
                self.win[i] = wi
                self.weight[i] = A_TP * float(sigma(-(e - i + 1) / (e - s + 1))) / MAX_TP
            elif prev is not None:
                width = prev[1] - prev[0] + 1
                self.weight[i] = -A_FP * float(sigma((i - prev[1]) / max(1, width - 1)))

    def raw(self, thr: float) -> float:
        det = self.scores >= thr
        det[:self.probation] = False
        total = float(self.weight[det & (self.win < 0)].sum())
        for wi in range(len(self.order)):
            hits = np.flatnonzero(det & (self.win == wi))
            total += float(self.weight[hits[0]]) if len(hits) else A_FN
        return total

    def null(self) -> float:
        return A_FN * len(self.order)

    def perfect(self) -> float:
        return A_TP * len(self.order)

    def events(self) -> tuple[np.ndarray, np.ndarray]:
        """(threshold, change of the raw score when the threshold falls to it): the raw score at threshold t is
        null + the sum of the changes at thresholds >= t. A false positive adds its cost at its own score; a
        window's first detection at t is its first row scoring >= t, so the window changes at its running
        maxima (each new record, from the window's start, is where the first detection moves earlier)."""
        live = np.arange(len(self.scores)) >= self.probation
        out = (self.win < 0) & live
        th = [self.scores[out]]
        dv = [self.weight[out]]
        for wi, (s, e) in enumerate(self.order):
            lo = max(s, self.probation)
            if lo > e:
                continue
            sc = self.scores[lo:e + 1]
            rec = np.flatnonzero(sc > np.maximum.accumulate(np.concatenate([[-np.inf], sc[:-1]])))
            vals, w = sc[rec], self.weight[lo + rec]
            # lowering t to the last (largest) record detects the window at that row; each earlier record
            # moves the first detection to its row
            d = np.empty(len(rec))
            d[-1] = w[-1] - A_FN
            d[:-1] = w[:-1] - w[1:]
            th.append(vals)
            dv.append(d)
        return np.concatenate(th), np.concatenate(dv)


def nab_score(files: list[FileData], thresholds: np.ndarray | None = None) -> tuple[float, float]:
    """(normalised score, best threshold) over the corpus; every distinct score is tried unless `thresholds`."""
    null = sum(f.null() for f in files)
    perfect = sum(f.perfect() for f in files)
    if thresholds is not None:
        best, best_t = -math.inf, math.inf
        for t in thresholds:
            r = sum(f.raw(float(t)) for f in files)
            if r > best:
                best, best_t = r, float(t)
        return 100.0 * (best - null) / (perfect - null), best_t
    ev = [f.events() for f in files]
    th = np.concatenate([e[0] for e in ev])
    dv = np.concatenate([e[1] for e in ev])
    order = np.argsort(-th, kind="stable")
    th, dv = th[order], dv[order]
    cum = np.cumsum(dv)
    last = np.flatnonzero(np.concatenate([th[1:] != th[:-1], [True]]))  # all rows >= t are in
    totals = np.concatenate([[0.0], cum[last]])
    ts = np.concatenate([[math.inf], th[last]])
    k = int(np.argmax(totals))
    return 100.0 * totals[k] / (perfect - null), float(ts[k])
