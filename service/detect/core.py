"""The detector core: `SeriesDetector` scores one series with any method and keeps its alert; `EntityDetector`
scores several metrics of one entity together with an Isolation Forest. Both take batches of points (a whole CSV
file, a Prometheus backfill, or one new step) through the same code path, and dump/load their state as plain
data (baselines, calibration, warm-up, alert), so a restart resumes where it stopped.

Missing points (nan) are carried forward in the baseline, never scored and never counted as evidence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import methods as M
from .discipline import AlertState, Calibrator, to_unit
from .params import DetectorParams

UNIVARIATE = ("zscore", "ema", "seasonal", "shift")
MIN_HISTORY = 32  # points before any deviation is measured (and learned)


def period_points(step_s: float) -> int:
    """One day in points, for steps from 1 minute to 1 hour; 0 (no seasonal baseline) otherwise."""
    if not 60 <= step_s <= 3600:
        return 0
    return int(round(86400 / step_s))


@dataclass
class Batch:
    """Per new point: the calibrated score (0..1), whether an alert is firing / opened here, and the why."""

    score: np.ndarray
    alert: np.ndarray
    opened: np.ndarray
    expected: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    deviation: np.ndarray
    top: list[str]
    individual: dict[str, np.ndarray] = field(default_factory=dict)


def combine(ind: dict[str, np.ndarray], i: int) -> tuple[float, str]:
    """The ensemble, once a seasonal baseline exists: a point the seasonal baseline explains is normal unless the
    local methods see it as well (a daily ramp is not an anomaly every day); the seasonal baseline alone alerts at
    twice its line (a missing daily peak, a day gone flat)."""
    local, top = -1.0, "zscore"
    for m in ("zscore", "ema", "shift"):
        if ind[m][i] > local:
            local, top = float(ind[m][i]), m
    sea = float(ind["seasonal"][i])
    both = min(local, sea)
    if sea / 2 > both:
        return sea / 2, "seasonal"
    return both, top


def _empty_batch(k: int, names: tuple[str, ...]) -> Batch:
    nan = np.full(k, np.nan)
    return Batch(np.zeros(k), np.zeros(k, bool), np.zeros(k, bool), nan.copy(), nan.copy(), nan.copy(),
                 nan.copy(), [""] * k, {m: np.zeros(k) for m in names})


class SeriesDetector:
    """One series. `update(times, values)` scores the new points and advances the alert."""

    def __init__(self, params: DetectorParams | None = None, period: int | None = None):
        self.p = params or DetectorParams()
        self.period = period  # None: derived from the first timestamps
        self.buf = np.zeros(0)
        self.past_med = np.zeros(0)
        self.past_scale = np.zeros(0)
        self.past_res = np.zeros(0)
        self.ema: list[float] | None = None
        self.cal = Calibrator(self.p)
        self.state = AlertState()
        self.if_train = np.zeros((0, 4))
        self._forest_at = -1
        self._forest: Any = None
        self._if_norm = (0.0, 1.0)
        self.last_value: float | None = None

    @property
    def names(self) -> tuple[str, ...]:
        m = self.p.method
        return UNIVARIATE if m == "ensemble" else (m,)

    def history_len(self) -> int:
        return max(self.p.window + self.p.shift_points, (self.p.season_days * (self.period or 0)) + 2)

    def update(self, times: np.ndarray, values: np.ndarray) -> Batch:
        values = np.asarray(values, float)
        k = len(values)
        if self.period is None and len(times) >= 2:
            self.period = period_points(float(np.median(np.diff(np.asarray(times, float)))))
        missing = np.isnan(values)
        x = values.copy()
        if missing.any():  # carry the last value forward in the baseline
            last = self.last_value if self.last_value is not None else np.nan
            for i in range(k):
                if missing[i]:
                    x[i] = last
                else:
                    last = x[i]
            first = np.flatnonzero(~np.isnan(x))
            if not len(first):
                return _empty_batch(k, self.names)
            x[: first[0]] = x[first[0]]
        feats = self._features(x)
        out = self._decide(x, missing, feats)
        self._keep(x, feats)
        self.last_value = float(x[-1])
        return out

    def _features(self, x: np.ndarray) -> dict[str, M.Scored]:
        p = self.p
        full = np.concatenate([self.buf, x])
        start = len(self.buf)
        z = M.robust_z(full, start, p.window)
        f: dict[str, M.Scored] = {"zscore": z}
        f["ema"], self.ema = M.ema_bands(x, self.ema, p.ema_span, z.floor)
        f["shift"] = M.level_shift(full, start, p.shift_points, z, self.past_med, self.past_scale)
        if self.period:
            f["seasonal"] = M.seasonal(full, start, self.period, p.season_days, self.past_res, p.window, z.floor)
        else:
            n = len(x)
            f["seasonal"] = M.Scored(np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.inf))
        return f

    def _keep(self, x: np.ndarray, f: dict[str, M.Scored]) -> None:
        p = self.p
        self.buf = np.concatenate([self.buf, x])[-self.history_len():]
        k1 = p.shift_points - 1
        self.past_med = np.concatenate([self.past_med, f["zscore"].expected])[-k1:]
        self.past_scale = np.concatenate([self.past_scale, f["zscore"].scale])[-k1:]
        self.past_res = np.concatenate([self.past_res, f["seasonal"].dev])[-p.window:]

    def _iforest_rows(self, f: dict[str, M.Scored]) -> np.ndarray:
        cols = [np.nan_to_num(f[m].dev / f[m].scale, nan=0.0, posinf=0.0, neginf=0.0) for m in UNIVARIATE]
        return np.clip(np.stack(cols, axis=1), -50, 50)

    def _decide(self, x: np.ndarray, missing: np.ndarray, f: dict[str, M.Scored]) -> Batch:
        p, names, st, cal = self.p, self.names, self.state, self.cal
        k = len(x)
        out = _empty_batch(k, names)
        raw = {m: np.nan_to_num(f[m].z, nan=0.0, posinf=0.0) for m in UNIVARIATE}
        young = MIN_HISTORY - st.tick  # the first points have too short a history to be measured against
        if young > 0:
            for m in UNIVARIATE:
                raw[m][:young] = 0.0
        rows = self._iforest_rows(f) if "iforest" in names else None
        if rows is not None:
            raw["iforest"] = np.zeros(k)
        raw_l = {m: raw[m].tolist() for m in names}
        upto = 0
        ensemble = p.method == "ensemble"
        relearn = p.margin ** -p.relearn
        for i in range(k):
            if missing[i]:
                out.alert[i] = st.open
                continue
            if rows is not None and (i >= upto or st.tick // p.iforest_refit != self._forest_at):
                upto = self._iforest_chunk(rows, i, raw_l["iforest"])
            best, top = -1.0, names[0]
            for m in names:
                s = raw_l[m][i] / cal.line(m, st.tick)
                out.individual[m][i] = s
                if s > best:
                    best, top = s, m
            if ensemble and raw_l["seasonal"][i] > 0:
                best, top = combine(out.individual, i)
            pending = best >= p.open and st.tick >= p.warmup and st.tick - st.last_open > p.refractory
            out.opened[i] = st.step(best, p)
            out.alert[i] = st.open
            out.score[i] = to_unit(best)
            out.top[i] = top
            # What alerts is learned shrunk: a repeat of the same deviation stays below the line, a larger one
            # does not (a daily cron spike alerts once; the next outage still alerts).
            shrink = relearn if (st.open or pending) else 1.0
            for m in names:
                cal.learn(m, st.tick, raw_l[m][i] * shrink)
            if not st.open and not pending:
                if rows is not None:
                    self.if_train = np.concatenate([self.if_train, rows[i:i + 1]])[-p.calibration:]
        self._explain(out, f, x)
        return out

    def _iforest_chunk(self, rows: np.ndarray, i: int, dest: list[float]) -> int:
        """Scores rows[i:] up to the next refit; the forest is refitted every `iforest_refit` points on the
        non-alerting history. Returns the end of the scored chunk."""
        p = self.p
        epoch = self.state.tick // p.iforest_refit
        if self._forest is None or epoch != self._forest_at:
            if len(self.if_train) < 64:
                self._forest = None
                dest[i] = 0.0
                return i + 1
            from sklearn.ensemble import IsolationForest

            self._forest = IsolationForest(n_estimators=p.iforest_trees, max_samples=min(256, len(self.if_train)),
                                           random_state=0).fit(self.if_train)
            tr = -self._forest.score_samples(self.if_train)
            med = float(np.median(tr))
            self._if_norm = (med, max(M.MAD_TO_SD * float(np.median(np.abs(tr - med))), 1e-6))
            self._forest_at = epoch
        upto = min(len(rows), i + p.iforest_refit - self.state.tick % p.iforest_refit)
        med, sd = self._if_norm
        s = (-self._forest.score_samples(rows[i:upto]) - med) / sd
        dest[i:upto] = np.maximum(s, 0.0).tolist()
        return upto

    def _explain(self, out: Batch, f: dict[str, M.Scored], x: np.ndarray) -> None:
        """Expected value and range of the method that scored highest at each point."""
        z = f["zscore"]
        for i, m in enumerate(out.top):
            src = f[m] if m in f and np.isfinite(f[m].expected[i]) and np.isfinite(f[m].scale[i]) else z
            line = self.cal.line(m if m in f else "zscore", self.state.tick)
            out.expected[i] = src.expected[i]
            out.deviation[i] = x[i] - src.expected[i]
            out.lower[i] = src.expected[i] - line * src.scale[i]
            out.upper[i] = src.expected[i] + line * src.scale[i]

    # state -------------------------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {"v": 1, "period": self.period, "buf": self.buf.tolist(), "past_med": self.past_med.tolist(),
                "past_scale": self.past_scale.tolist(), "past_res": np.nan_to_num(self.past_res, nan=1e300).tolist(),
                "ema": self.ema, "cal": self.cal.dump(), "state": self.state.dump(),
                "if_train": self.if_train.tolist(), "last": self.last_value}

    @classmethod
    def load(cls, params: DetectorParams, d: dict[str, Any]) -> "SeriesDetector":
        s = cls(params, d.get("period"))
        s.buf = np.asarray(d["buf"], float)
        s.past_med = np.asarray(d["past_med"], float)
        s.past_scale = np.asarray(d["past_scale"], float)
        res = np.asarray(d["past_res"], float)
        s.past_res = np.where(res >= 1e299, np.nan, res)
        s.ema = d.get("ema")
        s.cal = Calibrator.load(params, d.get("cal", {}))
        s.state = AlertState(**d["state"])
        s.if_train = np.asarray(d.get("if_train") or np.zeros((0, 4)), float).reshape(-1, 4)
        s.last_value = d.get("last")
        return s


def detect_series(times: np.ndarray, values: np.ndarray, params: DetectorParams | None = None) -> Batch:
    """Score a whole series at once (the CSV mode): the same as feeding it point by point."""
    return SeriesDetector(params).update(np.asarray(times, float), np.asarray(values, float))
