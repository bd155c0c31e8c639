"""The detector core: `SeriesDetector` scores one series with any method and keeps its alert; `EntityDetector`
scores several metrics of one entity together with an Isolation Forest. Both take batches of points (a whole CSV
file, a Prometheus backfill, or one new step) through the same code path, and dump/load their state as plain
data (baselines, calibration, warm-up, alert), so a restart resumes where it stopped.

Missing points (nan) are carried forward in the baseline, never scored and never counted as evidence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.detect import methods as M
from service.detect.discipline import AlertState, Calibrator, SlidingMax, to_unit
from service.detect.params import DetectorParams

UNIVARIATE = ("zscore", "ema", "seasonal", "shift", "knn")
IF_COLUMNS = ("zscore", "ema", "seasonal", "shift")  # the Isolation Forest's features per series
SEASONAL_ALONE = 2.0  # the seasonal baseline alone alerts at twice its line
SEASONAL_STRENGTH = 0.7  # seasonal residuals this much tighter than the local spread: the series is seasonal
MIN_HISTORY = 32
IF_RUN = 3  # consecutive isolated points the Isolation Forest needs
NOVELTY = 1.1  # a score is news when it exceeds the largest of the last `refractory` points by this factor


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
    line: np.ndarray = field(default_factory=lambda: np.zeros(0))  # the top method's line (raw units)
    z: np.ndarray = field(default_factory=lambda: np.zeros(0))  # signed robust z (for the entity detector)
    # the score where it is news (NOVELTY times above the last `refractory` points' scores), else 0: what NAB's
    # results format calls anomaly_score (the first point of a deviation counts, its repeats do not)
    novel: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # what `novel` is taken from: the score, or the longer shape's novelty where that is higher (0..1)
    news: np.ndarray = field(default_factory=lambda: np.zeros(0))


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
    if sea / SEASONAL_ALONE > both:
        both, top = sea / SEASONAL_ALONE, "seasonal"
    knn = float(ind["knn"][i]) if "knn" in ind else 0.0
    if knn > both:  # a shape the series never had is new whatever the time of day
        return knn, "knn"
    return both, top


def _empty_batch(k: int, names: tuple[str, ...]) -> Batch:
    nan = np.full(k, np.nan)
    return Batch(np.zeros(k), np.zeros(k, bool), np.zeros(k, bool), nan.copy(), nan.copy(), nan.copy(),
                 nan.copy(), [""] * k, {m: np.zeros(k) for m in names}, nan.copy(), np.zeros(k), np.zeros(k),
                 np.zeros(k))


def _concat(a: Batch, b: Batch) -> Batch:
    return Batch(*(np.concatenate([getattr(a, f), getattr(b, f)]) for f in
                   ("score", "alert", "opened", "expected", "lower", "upper", "deviation")),
                 top=a.top + b.top, individual={m: np.concatenate([a.individual[m], b.individual[m]])
                                                for m in a.individual},
                 line=np.concatenate([a.line, b.line]), z=np.concatenate([a.z, b.z]),
                 novel=np.concatenate([a.novel, b.novel]), news=np.concatenate([a.news, b.news]))


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
        self.recent = SlidingMax(self.p.refractory)  # scores of the last `refractory` points
        self.if_train = np.zeros((0, 4))
        self._forest_at = -1
        self._forest: Any = None
        self._if_norm = (0.0, 1.0)
        self._if_prev: list[float] = []
        self._if_new: list[np.ndarray] = []  # training rows not yet in if_train (appending row by row is slow)
        self.last_value: float | None = None
        self.seen = 0  # points appended to the history so far (the number of the next one)
        self._knn: list | None = None  # the k-d tree of the last refit (rebuilt from `buf` after a restart)
        self._knn_long: list | None = None  # the same for the longer shapes
        self.range = [float("inf"), float("-inf")]  # the smallest and largest value the series had
        self.knn_phase = 0  # where the novelty re-indexes its history (online: spread over the series)

    @property
    def names(self) -> tuple[str, ...]:
        m = self.p.method
        return UNIVARIATE if m == "ensemble" else (m,)

    def history_len(self) -> int:
        p = self.p
        span = max(p.knn_points, p.knn_long_points * p.knn_long_block)
        knn = p.knn_history + 2 * span + p.knn_refit if "knn" in self.names else 0
        return max(p.window + p.shift_points, (p.season_days * (self.period or 0)) + 2, knn)

    def update(self, times: np.ndarray, values: np.ndarray) -> Batch:
        values = np.asarray(values, float)
        k = len(values)
        if self.period is None and len(times) >= 2:
            self.period = period_points(float(np.median(np.diff(np.asarray(times, float)))))
        if self.last_value is None and k and np.isnan(values[0]):  # before the series' first sample: nothing
            ok = np.flatnonzero(~np.isnan(values))
            lead = int(ok[0]) if len(ok) else k
            rest = self.update(times[lead:], values[lead:]) if lead < k else _empty_batch(0, self.names)
            return _concat(_empty_batch(lead, self.names), rest)
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
        if "knn" in self.names:
            f["knn"], self._knn = M.knn_novelty(full, start, self.seen, p.knn_points, p.knn_history, p.knn_refit,
                                                p.knn_least, self._knn, phase=self.knn_phase)
            if p.knn_long_points:  # the same novelty at a coarser scale: the shape of the last hours
                f["knn_long"], self._knn_long = M.knn_novelty(full, start, self.seen, p.knn_long_points,
                                                              p.knn_history, p.knn_refit, p.knn_least,
                                                              self._knn_long, p.knn_long_block, self.knn_phase)
        else:
            n = len(x)
            f["knn"] = M.Scored(np.zeros(n), np.full(n, np.nan), np.ones(n))
        if p.method == "ensemble" and p.range_tolerance:
            out, lo, hi = M.range_excess(x, self.range[0], self.range[1], p.range_tolerance)
            f["range"] = M.Scored(out, np.full(len(x), np.nan), np.ones(len(x)))
            self.range = [lo, hi]
        return f

    def _keep(self, x: np.ndarray, f: dict[str, M.Scored]) -> None:
        p = self.p
        self.buf = np.concatenate([self.buf, x])[-self.history_len():]
        self.seen += len(x)
        k1 = p.shift_points - 1
        self.past_med = np.concatenate([self.past_med, f["zscore"].expected])[-k1:]
        self.past_scale = np.concatenate([self.past_scale, f["zscore"].scale])[-k1:]
        self.past_res = np.concatenate([self.past_res, f["seasonal"].dev])[-p.window:]

    def _iforest_rows(self, f: dict[str, M.Scored]) -> np.ndarray:
        cols = [np.nan_to_num(f[m].dev / f[m].scale, nan=0.0, posinf=0.0, neginf=0.0) for m in IF_COLUMNS]
        return np.clip(np.stack(cols, axis=1), -50, 50)

    def _decide(self, x: np.ndarray, missing: np.ndarray, f: dict[str, M.Scored]) -> Batch:
        names, st = self.names, self.state
        k = len(x)
        raw = {m: np.nan_to_num(f[m].z, nan=0.0, posinf=0.0) for m in (*UNIVARIATE, "knn_long", "range")
               if m in f}
        young = MIN_HISTORY - st.tick  # the first points have too short a history to be measured against
        if young > 0:
            for m in raw:
                raw[m][:young] = 0.0
        rows = self._iforest_rows(f) if "iforest" in names else None
        if rows is not None:
            raw["iforest"] = np.zeros(k)
        # the seasonal baseline explains the series clearly better than its recent level: a seasonal series
        seasonal = (raw["seasonal"] > 0) & (f["seasonal"].scale < SEASONAL_STRENGTH * f["zscore"].scale)
        out = self._loop(missing, raw, rows, seasonal if self.p.method == "ensemble" else None)
        self._explain(out, f, x)
        out.z = np.nan_to_num(f["zscore"].dev / f["zscore"].scale, nan=0.0, posinf=0.0, neginf=0.0)
        return out

    def _loop(self, missing: np.ndarray, raw: dict[str, np.ndarray], rows: np.ndarray | None,
              seasonal: np.ndarray | None) -> Batch:
        """Calibrate, combine and advance the alert point by point (the only sequential part)."""
        p, names, st, cal = self.p, self.names, self.state, self.cal
        k = len(missing)
        out = _empty_batch(k, names)
        raw_l = {m: raw[m].tolist() for m in names}
        long_l = raw["knn_long"].tolist() if "knn_long" in raw else None
        range_l = raw["range"].tolist() if "range" in raw else None
        upto = 0
        relearn = p.margin ** -p.relearn
        warmup = max(p.warmup, self.period or 0)  # a daily rhythm is learnt for a whole day first
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
            if seasonal is not None and seasonal[i]:
                best, top = combine(out.individual, i)
            news = best
            if long_l is not None:
                # the longer shape's novelty, at the line of the 3-point one, ranks what is news (anomaly_score);
                # it opens no alert itself (at the alert line it raises more false alerts than it finds)
                lg = long_l[i] / p.margin
                if seasonal is not None and seasonal[i]:  # in a seasonal series a few hours are a slice of the
                    # daily rhythm: new only as far as the seasonal baseline or a local method sees it too
                    lg = min(lg, max(out.individual[m][i] for m in names))
                news = max(best, lg)
            if range_l is not None and st.tick >= warmup and range_l[i] >= 1.0:
                # a value beyond every value the series had, by `range_tolerance` of its range, is news (in orders
                # of magnitude of that excess, so a far larger one is news again); it opens no alert itself (a
                # young noisy series sets new extremes now and then)
                news = max(news, 1.0 + math.log(range_l[i]))
            # the band shown is the top method's at its line; the nearest-neighbour novelty has no expected value
            # of its own, so a new shape shows the robust z band at the robust z line
            out.line[i] = cal.line("zscore" if top == "knn" else top, st.tick)
            pending = best >= min(p.open, p.sustain_level) and st.tick >= warmup and \
                st.tick - st.last_open > p.refractory
            u = to_unit(best)
            un = out.news[i] = to_unit(news)
            out.novel[i] = un if un > NOVELTY * self.recent.max(st.tick) else 0.0
            self.recent.push(st.tick, un)
            out.opened[i] = st.step(best, p, warmup)
            out.alert[i] = st.open
            out.score[i] = u
            out.top[i] = top
            # What alerts is learned shrunk: a repeat of the same deviation stays below the line, a larger one
            # does not (a daily cron spike alerts once; the next outage still alerts).
            shrink = relearn if (st.open or pending) else 1.0
            for m in names:
                cal.learn(m, st.tick, raw_l[m][i] * shrink)
            if rows is not None and not st.open and not pending:
                self._if_new.append(rows[i])
        return out

    def _flush_train(self) -> np.ndarray:
        if self._if_new:
            self.if_train = np.concatenate([self.if_train, np.stack(self._if_new)])[-self.p.calibration:]
            self._if_new = []
        return self.if_train

    def _iforest_chunk(self, rows: np.ndarray, i: int, dest: list[float]) -> int:
        """Scores rows[i:] up to the next refit; the forest is refitted every `iforest_refit` points on the
        non-alerting history. Returns the end of the scored chunk."""
        p = self.p
        epoch = self.state.tick // p.iforest_refit
        if self._forest is None or epoch != self._forest_at:
            self._flush_train()
            if len(self.if_train) < 64:
                self._forest = None
                dest[i] = 0.0
                return i + 1
            from sklearn.ensemble import IsolationForest

            self._forest = IsolationForest(n_estimators=p.iforest_trees, max_samples=min(256, len(self.if_train)),
                                           random_state=0).fit(self.if_train)
            tr = -self._forest.score_samples(self.if_train)
            med = float(np.median(tr))
            # Isolation scores are bounded: nothing is isolated much faster than the training extremes, so the
            # line is the most isolated training point itself (1.0), not a margin above it
            self._if_norm = (med, max(float(tr.max()) - med, 1e-6))
            self._forest_at = epoch
        upto = min(len(rows), i + p.iforest_refit - self.state.tick % p.iforest_refit)
        med, sd = self._if_norm
        s = np.maximum((-self._forest.score_samples(rows[i:upto]) - med) / sd, 0.0)
        # evidence: a run of IF_RUN isolated points (a single one beyond the training extremes is expected noise)
        prev = np.asarray(self._if_prev[-(IF_RUN - 1):], float)
        full = np.concatenate([prev, s])
        run = np.min(np.stack([full[j:len(full) - (IF_RUN - 1) + j] for j in range(IF_RUN)]), axis=0) \
            if len(full) >= IF_RUN else np.zeros(len(s))
        run = np.concatenate([np.zeros(len(s) - len(run)), run])
        self._if_prev = full[-(IF_RUN - 1):].tolist()
        dest[i:upto] = run.tolist()
        return upto

    def _explain(self, out: Batch, f: dict[str, M.Scored], x: np.ndarray) -> None:
        """Expected value and range of the method that scored highest at each point (its line at that point)."""
        z = f["zscore"]
        for i, m in enumerate(out.top):
            src = f[m] if m in f and np.isfinite(f[m].expected[i]) and np.isfinite(f[m].scale[i]) else z
            line = out.line[i] if np.isfinite(out.line[i]) else self.p.floor
            out.expected[i] = src.expected[i]
            out.deviation[i] = x[i] - src.expected[i]
            out.lower[i] = src.expected[i] - line * src.scale[i]
            out.upper[i] = src.expected[i] + line * src.scale[i]

    # state -------------------------------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        return {"v": 1, "period": self.period, "buf": self.buf.tolist(), "past_med": self.past_med.tolist(),
                "past_scale": self.past_scale.tolist(), "past_res": np.nan_to_num(self.past_res, nan=1e300).tolist(),
                "ema": self.ema, "cal": self.cal.dump(), "state": self.state.dump(),
                "if_train": self._flush_train().tolist(), "last": self.last_value, "recent": self.recent.dump(), "seen": self.seen,
                "range": self.range if np.isfinite(self.range).all() else None, "knn_phase": self.knn_phase}

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
        tr = d.get("if_train") or []
        s.if_train = np.asarray(tr, float).reshape(len(tr), -1) if tr else np.zeros((0, 4))
        s.last_value = d.get("last")
        s.recent = SlidingMax(params.refractory, d.get("recent"))
        s.seen = int(d.get("seen", len(s.buf)))
        s.knn_phase = int(d.get("knn_phase", 0))
        rng = d.get("range")
        if rng is None and len(s.buf):  # a state saved before the range was kept: the range of its history
            rng = [float(np.min(s.buf)), float(np.max(s.buf))]
        if rng is not None:
            s.range = [float(rng[0]), float(rng[1])]
        return s


class EntityDetector(SeriesDetector):
    """Several metrics of one entity scored together by an Isolation Forest over their robust z (a combination
    none of them shows alone: requests up while CPU is down). `top` names the metric that deviates most."""

    def __init__(self, metrics: list[str], params: DetectorParams | None = None, period: int | None = None):
        p = (params or DetectorParams()).model_copy(update={"method": "iforest"})
        super().__init__(p, period)
        self.metrics = list(metrics)
        self.per = [SeriesDetector(p.model_copy(update={"method": "zscore"}), period) for _ in self.metrics]
        self.if_train = np.zeros((0, self._rows(np.zeros((1, len(self.metrics)))).shape[1]))

    @staticmethod
    def _rows(z: np.ndarray) -> np.ndarray:
        """The forest's features: each metric's robust z and, for up to 6 metrics, their pairwise differences, so
        that a broken correlation (one up, its partner down) is isolated by axis-parallel splits."""
        m = z.shape[1]
        if m < 2 or m > 6:
            return z
        pairs = [z[:, a] - z[:, b] for a in range(m) for b in range(a + 1, m)]
        return np.column_stack([z, *pairs])

    def update(self, times: np.ndarray, values: np.ndarray) -> Batch:
        """`values`: one row per point, one column per metric (nan = missing)."""
        values = np.asarray(values, float).reshape(len(times), len(self.metrics))
        per = [d.update(times, values[:, j]) for j, d in enumerate(self.per)]
        z = np.clip(np.stack([b.z for b in per], axis=1), -50, 50)
        missing = np.isnan(values).all(axis=1)
        out = self._loop(missing, {"iforest": np.zeros(len(times))}, self._rows(z), None)
        worst = np.argmax(np.abs(z), axis=1)
        for i, j in enumerate(worst.tolist()):
            b = per[j]
            out.top[i] = self.metrics[j]
            out.expected[i], out.lower[i], out.upper[i] = b.expected[i], b.lower[i], b.upper[i]
            out.deviation[i] = b.deviation[i]
        out.z = z[np.arange(len(times)), worst] if len(times) else np.zeros(0)
        return out

    def dump(self) -> dict[str, Any]:
        d = super().dump()
        d["metrics"] = self.metrics
        d["per"] = [x.dump() for x in self.per]
        return d

    @classmethod
    def load(cls, params: DetectorParams, d: dict[str, Any]) -> "EntityDetector":
        e = cls(d["metrics"], params, d.get("period"))
        base = SeriesDetector.load(e.p, d)
        e.cal, e.state, e.if_train = base.cal, base.state, base.if_train.reshape(-1, e.if_train.shape[1])
        e.recent = base.recent
        e.per = [SeriesDetector.load(x.p, s) for x, s in zip(e.per, d["per"])]
        return e


def detect_series(times: np.ndarray, values: np.ndarray, params: DetectorParams | None = None) -> Batch:
    """Score a whole series at once (the CSV mode): the same as feeding it point by point."""
    return SeriesDetector(params).update(np.asarray(times, float), np.asarray(values, float))
