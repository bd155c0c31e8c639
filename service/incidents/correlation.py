"""Which incident an alert joins: the pure decision, its configuration and its evidence.

Nothing here touches Redis or the clock. `IncidentStore` (incidents.py) loads the candidate incidents,
calls `decide(features, candidates, now, cfg, cooc=...)` and writes the result atomically.

The rule, in one paragraph: an alert joins the open incident it is most related to when its onset is
within `window` of a member's onset (time agrees) AND the structural signals (shared labels, call-graph
topology, learned co-occurrence, text) together reach `join_threshold`. Without time agreement it joins
only an incident that is still firing, and only if one structural signal alone is very strong
(`strong_threshold`): e.g. the same service and instance, or a direct caller of a failing dependency,
during a long outage. Otherwise it opens a new incident. Every join carries its reasons.
"""
from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from service.core.errors import ConfigError
from service.core.models import Alert

# --------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")


def parse_duration(value: Any) -> float:
    """Seconds from a number or a Prometheus duration string ("90s", "5m", "1h30m")."""
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("duration must not be negative")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value.strip())
        if m and any(m.groups()):
            d, h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
            return d * 86400 + h * 3600 + mi * 60 + s + ms / 1000
    raise ValueError(f"invalid duration {value!r} (use seconds or e.g. '5m', '1h30m')")


class SignalWeights(BaseModel):
    """How much each structural signal can contribute (0..1); a weight of 0 turns the signal off.

    Defaults: shared labels and topology are declared facts, so they may decide alone; learned
    co-occurrence is evidence earned over past incidents, slightly below; text similarity is the
    weakest (names like "HighLatency" recur across unrelated services), so it can never join alone
    at the default threshold and only adds to other evidence.
    """

    model_config = ConfigDict(extra="forbid")
    labels: float = Field(1.0, ge=0, le=1)
    topology: float = Field(0.9, ge=0, le=1)
    cooccurrence: float = Field(0.8, ge=0, le=1)
    text: float = Field(0.4, ge=0, le=1)


# Per-label weights: how specific a shared value is. Sharing a host/pod/instance or a service is
# strong evidence of a shared cause; a namespace is a team or an app; a zone, cluster or region is
# shared by thousands of unrelated alerts and only nudges the score.
DEFAULT_LABELS: dict[str, float] = {
    "service": 0.8,
    "app": 0.7,
    "instance": 0.8,
    "pod": 0.8,
    "host": 0.8,
    "node": 0.6,
    "rack": 0.5,
    "namespace": 0.3,
    "zone": 0.1,
    "cluster": 0.1,
    "region": 0.05,
}


# Labels that name an entity, the most specific first: a container or pod runs on a node, an instance on a host.
ENTITY_LABELS = ("pod", "container", "instance", "host", "entity", "device", "node")
# Labels that name the machine an entity runs on (kube-state-metrics' `node` on pod series, `host` elsewhere): an
# alert whose entity is that machine is about the same hardware, a containment edge as firm as a declared call.
HOST_LABELS = ("node", "host")


class FlappingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # An alert that changes state `max_changes` times within `window` is flapping (Nagios uses ~20%
    # state changes over the last 21 checks; 4 changes in 10 minutes is that rate at a 1m re-send).
    window: float = 600.0
    max_changes: int = Field(4, ge=2)

    _dur = field_validator("window", mode="before")(lambda cls, v: parse_duration(v))


class CorrelationConfig(BaseModel):
    """The `tocsin: correlation:` section."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    # The rolling window: an alert joins an incident of its own entity only if its onset is within this of the
    # incident's latest onset, and at least `window_samples` steps of the source's own cadence (the step
    # between its samples, learned from the episodes it sends): 300 s is one sample of 5-minute data.
    window: float = 300.0
    window_samples: float = Field(5.0, ge=1)
    # Another entity joins only close to the incident's latest onset (a fault spreads to callers within a
    # few scrapes) AND with a second kind of evidence (topology, learned co-occurrence, a storm).
    cross_window: float = 120.0
    cross_window_samples: float = Field(2.0, ge=0)
    # Another entity joins only while the incident is young: within this of its opening, and at least
    # `cross_life_samples` steps of the cadence (ServiceNow groups for 30 minutes of life). A fault spreads to its
    # callers within minutes; an entity that has been noisy for hours does not absorb every later fault nearby.
    cross_life: float = 1800.0
    cross_life_samples: float = Field(30.0, ge=0)
    # An incident takes no new alerts this long after it opened (Moogsoft caps a situation at 24 h):
    # an entity that keeps misbehaving for days gets a page a day, not one unbounded incident.
    max_life: float = 86400.0
    # The cadence assumed until a source's own is learned.
    default_cadence: float = Field(60.0, gt=0)
    # Labels naming the entity (the thing that breaks), the most specific first; the correlating routes'
    # `group_by` labels are put in front (see Engine). A Kubernetes pod outranks its node.
    entity_labels: list[str] = Field(default_factory=lambda: list(ENTITY_LABELS))
    # Learned co-occurrence of entities: two entities are related when they became active within the cross
    # window of each other at least `lift_support` times and `lift_min` times more often than chance.
    lift_min: float = Field(3.0, ge=1)
    lift_support: int = Field(3, ge=1)
    # Combined structural evidence needed to join while time agrees. 0.5 means: one specific shared
    # label (service/instance, 0.8), a caller/callee edge (0.9 * 0.9), or two weaker signals together.
    join_threshold: float = Field(0.5, gt=0, le=1)
    # One signal alone (after weighting) at or above this joins even without time agreement, to a
    # still-firing incident or to a recently resolved one (reopen). 0.75: a shared service or instance
    # label, or a direct call edge, qualifies; a namespace, text or a learned weight under 0.94 does not.
    strong_threshold: float = Field(0.75, gt=0, le=1)
    weights: SignalWeights = Field(default_factory=SignalWeights)
    # Labels to compare: a list (default weights, 0.5 for unknown names) or {label: weight}.
    labels: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_LABELS))
    # Labels that partition correlation domains (e.g. tenant): alerts never correlate across them.
    domain_labels: list[str] = Field(default_factory=list)
    # Service dependency graph: {service: [services it calls]}.
    topology: dict[str, list[str]] = Field(default_factory=dict)
    # Labels naming the machine an entity runs on: a pod and its node relate as a caller and its dependency do.
    host_labels: list[str] = Field(default_factory=lambda: list(HOST_LABELS))
    topology_max_hops: int = Field(3, ge=1, le=10)
    text_similarity: bool = True
    # A resolved incident reopens if a member or a strongly related alert fires within this time.
    reopen_cooldown: float = 900.0
    # An incident resolves once every member has resolved and nothing changed for this long.
    quiet_period: float = 300.0
    # Resolved incidents are kept this long in Redis, then expire.
    retention: float = 7 * 86400.0
    # Declared criticality, used by severity: {service or metric: critical|high|normal|low}.
    service_criticality: dict[str, Literal["critical", "high", "normal", "low"]] = Field(default_factory=dict)
    metric_criticality: dict[str, Literal["critical", "high", "normal", "low"]] = Field(default_factory=dict)
    flapping: FlappingConfig = Field(default_factory=FlappingConfig)
    # An incident is not paged while its confidence is below this (a single-point blip is not an outage):
    # it is held and re-evaluated every group_wait until it persists, agrees across detectors, or resolves
    # unseen. 0.4 sits between a lone new alert (about 0.3) and one that persisted or has company.
    # Routes may override it with `tocsin: {min_confidence: ...}`.
    min_confidence: float = Field(0.2, ge=0, le=1)
    # At most this many member alerts of an incident are compared against (the most informative
    # distinct ones); bounds the cost of a decision during an alert storm.
    max_compare_members: int = Field(48, ge=4, le=1000)
    # Storm evidence: the same alert (name and metric) starting on `burst_min` distinct entities within
    # `burst_window` seconds has one cause (a switch, a zone, a deploy), whatever the service graph says.
    # A cascade spreads over minutes and across different symptoms; 10 identical onsets in one minute
    # on different entities is not a coincidence. Recorded as the "text" signal with a burst detail.
    burst_min: int = Field(10, ge=3)
    burst_window: float = 60.0
    burst_weight: float = Field(0.6, ge=0, le=1)
    # Co-onset: this many distinct entities sharing a value of a compared label (a namespace, a cluster) becoming
    # anomalous within `burst_window` of each other is one cause, whatever they measure: under independence that
    # many simultaneous onsets are vanishingly rare. Recorded as a labels reason with the co-onset detail.
    # The more common a label (its weight in `labels`: a namespace 0.3, a cluster 0.1), the more entities it takes:
    # ceil(co_onset_min / sqrt(weight)), e.g. 6 pods of one namespace, 10 instances of one cluster, 4 of a service.
    co_onset_min: int = Field(3, ge=2)
    # Learned co-occurrence forgets with this half-life (event time).
    cooccurrence_half_life: float = 14 * 86400.0

    @field_validator("window", "reopen_cooldown", "quiet_period", "retention", "cooccurrence_half_life",
                     "burst_window", "cross_window", "cross_life", "max_life", "default_cadence", mode="before")
    @classmethod
    def _durations(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        if isinstance(v, list):
            return {str(name): DEFAULT_LABELS.get(str(name), 0.5) for name in v}
        return v

    @field_validator("labels")
    @classmethod
    def _label_weights(cls, v: dict[str, float]) -> dict[str, float]:
        for name, w in v.items():
            if not 0 <= w <= 1:
                raise ValueError(f"weight of label {name!r} must be within 0..1, got {w}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "CorrelationConfig":
        if self.strong_threshold < self.join_threshold:
            raise ValueError("strong_threshold must be >= join_threshold")
        return self

    @classmethod
    def parse(cls, data: Any, path: str = "tocsin.correlation") -> "CorrelationConfig":
        """Validate a config mapping; the error names the path of the first bad field."""
        try:
            return cls.model_validate(data or {})
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{path}.{loc}" if loc else path, err["msg"]) from None


# --------------------------------------------------------------------------------------------------
# Features of one alert
# --------------------------------------------------------------------------------------------------

SERVICE_LABELS = ("service", "app", "application", "job")
METRIC_LABELS = ("metric", "__name__", "metric_name")
_TOKEN = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d*[a-z]+")
STOPWORDS = frozenset(
    "the a an is are of on in for to and or at by with from than over under above below has have "
    "be been was were this that it its high low too alert alerts firing value current".split()
)
MAX_TOKENS = 48  # alert text is untrusted: bound the work it can cause


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of an alert name or summary, camelCase split, stopwords dropped."""
    out: list[str] = []
    for tok in _TOKEN.findall(text[:2000]):
        t = tok.lower()
        if len(t) > 1 and t not in STOPWORDS:
            out.append(t)
            if len(out) >= MAX_TOKENS:
                break
    return out


def _float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


@dataclass
class AlertFeatures:
    """What the correlation signals need to know about one alert (JSON-able via to_dict/from_dict)."""

    fingerprint: str
    alertname: str
    service: str
    entity: str
    metric: str
    onset: float
    labels: dict[str, str]
    score: float | None = None
    tokens: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The co-occurrence key: what fired where, independent of the instance."""
        return f"{self.service}/{self.metric}" if self.service else self.metric

    @classmethod
    def from_alert(cls, alert: Alert, compare_labels: dict[str, float] | None = None,
                   entity_labels: list[str] | tuple[str, ...] | None = None) -> "AlertFeatures":
        lab = alert.labels
        det = alert.detector or {}
        ann = alert.annotations
        service = next((lab[k] for k in SERVICE_LABELS if lab.get(k)), "")
        ent_labels = tuple(entity_labels or ENTITY_LABELS)
        alertname = lab.get("alertname", "")
        # The entity: the most specific entity label, else the service, else the alert itself.
        entity = next((lab[k] for k in ent_labels if lab.get(k)), "") or service or alertname
        metric = str(det.get("metric") or "") or next((lab[k] for k in METRIC_LABELS if lab.get(k)), "")
        metric = metric or alertname or "unknown"
        score = _float(det.get("score"))
        if score is None:
            score = _float(lab.get("anomaly_score", ann.get("anomaly_score", ann.get("score"))))
        text = " ".join([alertname, metric if metric != alertname else "", ann.get("summary", "")])
        keep = set(compare_labels or DEFAULT_LABELS) | set(SERVICE_LABELS) | set(ent_labels)
        return cls(
            fingerprint=alert.fingerprint,
            alertname=alertname,
            service=service,
            entity=entity,
            metric=metric,
            onset=float(alert.starts_at),
            labels={k: v for k, v in lab.items() if k in keep and v},
            score=score,
            tokens=sorted(set(tokens(text))),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"fp": self.fingerprint, "an": self.alertname, "sv": self.service, "en": self.entity,
                "mt": self.metric, "on": self.onset, "lb": self.labels, "sc": self.score, "tk": self.tokens}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AlertFeatures":
        return cls(fingerprint=d["fp"], alertname=d["an"], service=d["sv"], entity=d["en"], metric=d["mt"],
                   onset=d["on"], labels=d["lb"], score=d.get("sc"), tokens=d.get("tk", []))


@dataclass
class IncidentView:
    """What a decision needs to know about one candidate incident."""

    id: str
    state: str  # triggered | acknowledged | snoozed | resolved
    opened_at: float
    members: list[AlertFeatures]  # a bounded, representative sample (see representatives)
    firing: bool = True  # some member still fires
    resolved_at: float | None = None
    member_fps: frozenset[str] = frozenset()  # every member fingerprint, not just the sample
    seed_entity: str = ""  # the entity of the alert that opened it
    # entity -> hops from the seed (0: the seed's own entity, 1: related to it directly, 2: to a direct neighbour)
    entities: dict[str, int] = field(default_factory=dict)
    last_onset: float | None = None  # the latest onset of any member
    # entity -> the latest onset of its members here: an entity's rolling window runs from its own latest onset, so
    # an incident kept alive by one entity's alerts does not keep taking every entity that once joined it
    entity_onsets: dict[str, float] = field(default_factory=dict)
    # entities with a member still firing here: while one fires, a new onset of the same entity is part of it (as
    # an Alertmanager group lives while any of its alerts fires), however long ago the entity's latest onset was
    firing_entities: frozenset[str] = frozenset()
    quiet_since: float | None = None  # when its last firing member resolved (None while one fires)

    def latest_onset(self) -> float:
        if self.last_onset is not None:
            return self.last_onset
        return max((m.onset for m in self.members), default=self.opened_at)


@dataclass
class Reason:
    signal: str
    score: float
    matched: str | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "score": round(self.score, 4), "matched": self.matched, "detail": self.detail}


@dataclass
class Decision:
    incident_id: str | None  # None: open a new incident
    reasons: list[Reason]
    score: float = 0.0
    reopen: bool = False
    detail: str = ""
    absorb: list[str] = field(default_factory=list)  # incidents to merge into this one (storm drops)
    hop: int = 0  # hops of the alert's entity from the incident's seed entity
    moved_from: str | None = None  # a member that fired again left this (quiet) incident for the decided one

    @property
    def join(self) -> bool:
        return self.incident_id is not None


CoocLookup = Callable[[str, str], float]


# --------------------------------------------------------------------------------------------------
# Signals: each returns (score 0..1, matched member fp, detail) for one candidate incident
# --------------------------------------------------------------------------------------------------


def time_signal(f: AlertFeatures, members: list[AlertFeatures], window: float) -> Reason:
    """Onsets within `window`: 1.0 when simultaneous, falling linearly to 0.5 at the window's edge."""
    best: AlertFeatures | None = None
    dist = math.inf
    for m in members:
        d = abs(f.onset - m.onset)
        if d < dist:
            dist, best = d, m
    if best is None or dist > window:
        return Reason("time", 0.0, best.fingerprint if best else None,
                      f"nearest member onset {dist:.0f}s away, outside the {window:.0f}s window"
                      if best else "no members")
    score = 1.0 - 0.5 * dist / window if window > 0 else 1.0
    return Reason("time", score, best.fingerprint, f"onset {dist:.0f}s from {best.alertname or best.metric}"
                  f"{' on ' + best.service if best.service else ''} (window {window:.0f}s)")


def label_rarity(value_incidents: int) -> float:
    """A value shared by several open incidents says little: 1.0 when only one has it, 0.5 for 3, 0.3 for 10."""
    return 1.0 / (1.0 + math.log(max(1, value_incidents)))


def labels_signal(f: AlertFeatures, members: list[AlertFeatures], cfg: CorrelationConfig,
                  value_incidents: dict[tuple[str, str], int]) -> Reason:
    """Shared values of the configured labels, each weighted by label specificity and value rarity."""
    best = Reason("labels", 0.0, None, "no shared labels")
    for m in members:
        miss = 1.0
        shared: list[str] = []
        for name, w in cfg.labels.items():
            v = f.labels.get(name)
            if v and m.labels.get(name) == v:
                r = label_rarity(value_incidents.get((name, v), 1))
                miss *= 1.0 - w * r
                shared.append(f"{name}={v}" + (f" (shared by {value_incidents[(name, v)]} incidents)"
                                               if value_incidents.get((name, v), 1) > 1 else ""))
        s = 1.0 - miss
        if s > best.score:
            best = Reason("labels", s, m.fingerprint, "shared " + ", ".join(shared))
    return best


class Topology:
    """The declared call graph with hop distances, computed once per config."""

    def __init__(self, graph: dict[str, list[str]], max_hops: int):
        self.graph = {k: list(v) for k, v in graph.items()}
        self.max_hops = max_hops
        self.nodes = set(self.graph) | {c for cs in self.graph.values() for c in cs}
        self._down: dict[str, dict[str, int]] = {n: self._bfs(n) for n in self.nodes}

    def _bfs(self, start: str) -> dict[str, int]:
        dist = {start: 0}
        q = deque([start])
        while q:
            n = q.popleft()
            if dist[n] >= self.max_hops:
                continue
            for c in self.graph.get(n, ()):
                if c not in dist:
                    dist[c] = dist[n] + 1
                    q.append(c)
        return dist

    def calls(self, a: str, b: str) -> int | None:
        """Hops from caller `a` down to dependency `b` (None if b is not reachable within max_hops)."""
        d = self._down.get(a, {}).get(b)
        return d if d else None

    def shared_dependency(self, a: str, b: str) -> tuple[str, int] | None:
        """The nearest dependency both `a` and `b` call (total hops), if any within max_hops + 1."""
        da, db = self._down.get(a, {}), self._down.get(b, {})
        best: tuple[str, int] | None = None
        for n in set(da) & set(db):
            if n in (a, b):
                continue
            h = da[n] + db[n]
            if h <= self.max_hops + 1 and (best is None or h < best[1]):
                best = (n, h)
        return best

    def upstream_order(self, services: set[str]) -> dict[str, int]:
        """For each service, how many of the other given services call it (directly or not)."""
        return {s: sum(1 for o in services if o != s and self.calls(o, s)) for s in services}


_TOPOLOGY_CACHE: dict[int, Topology] = {}


def topology_of(cfg: CorrelationConfig) -> Topology:
    key = id(cfg)
    t = _TOPOLOGY_CACHE.get(key)
    if t is None or t.graph != cfg.topology:
        if len(_TOPOLOGY_CACHE) > 32:
            _TOPOLOGY_CACHE.clear()
        t = _TOPOLOGY_CACHE[key] = Topology(cfg.topology, cfg.topology_max_hops)
    return t


def _node(f: AlertFeatures, topo: Topology) -> str | None:
    if f.service in topo.nodes:
        return f.service
    if f.entity in topo.nodes:
        return f.entity
    return None


# A call edge of 1 hop scores 0.9 and each further hop loses 0.2 (0.9, 0.7, 0.5): a fault spreads to
# direct callers first and fades with distance.
HOP_SCORE = {1: 0.9, 2: 0.7, 3: 0.5}
# Siblings that call a common dependency are related only through it; alone (0.45 * weight) that is
# below the join threshold, so it needs another signal.
SIBLING_SCORE = 0.45
# Detection jitter between a cause's alert and its effects' (scrape interval + evaluation interval).
CAUSE_SLACK = 60.0


def topology_signal(f: AlertFeatures, members: list[AlertFeatures], topo: Topology) -> tuple[Reason, bool]:
    """Caller/callee within N hops (direction given). Second value: True if the graph knows both
    sides and they are NOT related (negative evidence that damps other signals)."""
    a = _node(f, topo)
    best = Reason("topology", 0.0, None, "no call-graph relation")
    if a is None:
        return best, False
    known_other = False
    explains = False  # some relation runs with time: the new alert could be a cause or an effect of a member
    for m in members:
        b = _node(m, topo)
        if b is None:
            continue
        known_other = True
        if a == b:
            continue  # the same service is the labels signal's business
        s, detail = 0.0, ""
        h = topo.calls(a, b)
        if h:
            s, detail = HOP_SCORE.get(h, 0.4), f"{a} calls {b} ({h} hop{'s' if h > 1 else ''}): {b} is upstream"
            explains = True
        h2 = topo.calls(b, a)
        if h2:
            # The new alert is on a dependency of the member: it explains the member only if it started
            # no later than the member (+ CAUSE_SLACK for scrape/evaluation jitter). Started later, it is
            # more likely a separate fault, so it counts half.
            hs = HOP_SCORE.get(h2, 0.4)
            before = f.onset <= m.onset + CAUSE_SLACK
            explains |= before
            hs = hs if before else hs * 0.5
            if hs > s:
                s, detail = hs, (f"{b} calls {a} ({h2} hop{'s' if h2 > 1 else ''}): {a} is upstream"
                                 + ("" if before else f", but fired {f.onset - m.onset:.0f}s after {b}"))
        if s == 0.0:
            sd = topo.shared_dependency(a, b)
            if sd:
                s, detail = SIBLING_SCORE - 0.1 * (sd[1] - 2), f"{a} and {b} both depend on {sd[0]}"
                explains = True
        if s > best.score:
            best = Reason("topology", s, m.fingerprint, detail)
    if best.score > 0:
        # Only dependencies of members that broke after them: the graph explains the alert neither as a cause
        # (it came too late) nor as an effect (it calls none of them). Like unrelated services, that damps
        # the other evidence; the weak topology score itself still counts.
        return best, not explains
    same = any(_node(m, topo) == a for m in members)
    return best, known_other and not same


# Labels only a workload's series carry: an alert without them, with a host label, is about the machine itself.
WORKLOAD_LABELS = ("pod", "container")


def _runs_on(a: AlertFeatures, b: AlertFeatures, name: str) -> bool:
    """`a` runs on the machine `b` is about: a's host label names b's entity, or (a node exporter's alert is named by
    its `instance`) b carries the same host label, no workload label, while a does carry one."""
    h = a.labels.get(name)
    if not h or b.entity == a.entity:
        return False
    if b.entity == h:
        return True
    return b.labels.get(name) == h and any(a.labels.get(k) for k in WORKLOAD_LABELS) \
        and not any(b.labels.get(k) for k in WORKLOAD_LABELS)


def host_signal(f: AlertFeatures, members: list[AlertFeatures], host_labels: list[str]) -> Reason:
    """One entity runs on the other: its host label (`node`, `host`) names the other's machine. A pod's fault shows
    on its node (CPU, memory, network) and a node's on every pod it runs. Two pods on one node are not related by
    it (siblings of a machine, like callers of one dependency, need other evidence)."""
    for m in members:
        for name in host_labels:
            if _runs_on(f, m, name):
                return Reason("topology", HOP_SCORE[1], m.fingerprint, f"{f.entity} runs on {m.entity} ({name})")
            if _runs_on(m, f, name):
                return Reason("topology", HOP_SCORE[1], m.fingerprint, f"{m.entity} runs on {f.entity} ({name})")
    return Reason("topology", 0.0, None, "no host relation")


def cooccurrence_signal(f: AlertFeatures, members: list[AlertFeatures], cooc: CoocLookup | None) -> Reason:
    """Alert keys (service/metric) learned to fire together, as a relation between two entities: only keys of two
    different services count. Keys without a service, or of one service, are metric names that co-fire inside one
    entity (a machine's CPU and load); that says nothing about whether two machines share a cause."""
    best = Reason("cooccurrence", 0.0, None, "no learned co-occurrence")
    if cooc is None or not f.service:
        return best
    seen: set[str] = set()
    for m in members:
        if m.key in seen or m.key == f.key or not m.service or m.service == f.service:
            continue
        seen.add(m.key)
        w = cooc(f.key, m.key)
        if w > best.score:
            best = Reason("cooccurrence", w, m.fingerprint, f"{f.key} and {m.key} fired together before "
                          f"(learned weight {w:.2f})")
    return best


def burst_mate(f: AlertFeatures, m: AlertFeatures, cfg: CorrelationConfig) -> bool:
    return m.alertname == f.alertname and m.metric == f.metric and abs(m.onset - f.onset) <= cfg.burst_window


def burst_signal(f: AlertFeatures, members: list[AlertFeatures], cfg: CorrelationConfig, storm_size: int) -> Reason:
    """The same alert starting on many distinct entities within `burst_window` (an alert storm).
    `storm_size` counts such onsets across every open incident, so a storm is seen even while its
    first drops are still spread over several small incidents."""
    same = [m for m in members if burst_mate(f, m, cfg) and (m.entity or m.fingerprint) != (f.entity or f.fingerprint)]
    if not same or storm_size < cfg.burst_min:
        return Reason("text", 0.0, None, "no burst")
    m = min(same, key=lambda m: abs(m.onset - f.onset))
    return Reason("text", 1.0, m.fingerprint, f"burst: {f.alertname or f.metric} started on {storm_size} entities "
                  f"within {cfg.burst_window:.0f}s (storm, one cause)")


def co_onsets(f: AlertFeatures, candidates: list[IncidentView], cfg: CorrelationConfig) -> dict[tuple[str, str], set[str]]:
    """For each compared label value the alert has: the distinct entities with that value whose onsets are within
    `burst_window` of the alert's, in open incidents (and the alert's own entity)."""
    out: dict[tuple[str, str], set[str]] = {}
    mine = {(n, v) for n, v in f.labels.items() if n in cfg.labels and v}
    if not mine:
        return out
    for c in candidates:
        if c.state == "resolved":
            continue
        for m in c.members:
            if m.entity != f.entity and abs(m.onset - f.onset) <= cfg.burst_window:
                for nv in mine:
                    if m.labels.get(nv[0]) == nv[1]:
                        out.setdefault(nv, {f.entity}).add(m.entity)
    return out


def co_onset_needed(cfg: CorrelationConfig, label: str) -> int:
    """Entities needed for a co-onset on `label`: more for labels that many unrelated entities share."""
    w = cfg.labels.get(label, 0.5)
    return math.ceil(cfg.co_onset_min / math.sqrt(max(w, 0.01)))


def co_onset_signal(f: AlertFeatures, anchors: list[AlertFeatures], cfg: CorrelationConfig,
                    co: dict[tuple[str, str], set[str]]) -> Reason:
    """Many entities of one namespace (or any compared label value) became anomalous at once: one cause."""
    best = Reason("labels", 0.0, None, "no co-onset")
    for (name, value), ents in co.items():
        if len(ents) < co_onset_needed(cfg, name):
            continue
        mate = next((m for m in anchors if m.entity in ents and m.labels.get(name) == value
                     and abs(m.onset - f.onset) <= cfg.burst_window), None)
        if mate is not None:
            return Reason("labels", cfg.burst_weight, mate.fingerprint,
                          f"co-onset: {len(ents)} entities with {name}={value} became anomalous within "
                          f"{cfg.burst_window:.0f}s (one cause)")
    return best


def text_signal(f: AlertFeatures, members: list[AlertFeatures], idf: dict[str, float]) -> Reason:
    """TF-IDF cosine of alert name + summary tokens; IDF over every open member, so words that every
    incident has ("error", "latency") count for less than rare ones."""
    best = Reason("text", 0.0, None, "no similar text")
    if not f.tokens:
        return best
    fv = {t: idf.get(t, 1.0) for t in f.tokens}
    fn = math.sqrt(sum(v * v for v in fv.values()))
    for m in members:
        if not m.tokens:
            continue
        common = [t for t in m.tokens if t in fv]
        if not common:
            continue
        dot = sum(fv[t] ** 2 for t in common)
        mn = math.sqrt(sum(idf.get(t, 1.0) ** 2 for t in m.tokens))
        s = dot / (fn * mn)
        if s > best.score:
            best = Reason("text", s, m.fingerprint, "similar name/summary: " + ", ".join(sorted(common)[:6]))
    return best


# --------------------------------------------------------------------------------------------------
# The decision
# --------------------------------------------------------------------------------------------------


@dataclass
class Population:
    """Statistics over all candidate incidents, computed once per decision."""

    value_incidents: dict[tuple[str, str], int]
    idf: dict[str, float]
    storm_size: int = 0  # distinct entities where the same alert started within burst_window (incl. itself)
    # (label, value) shared with the alert -> entities (incl. its own) whose onsets are within burst_window of it
    co_onset: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, candidates: list[IncidentView], cfg: CorrelationConfig,
           f: AlertFeatures | None = None) -> "Population":
        vi: dict[tuple[str, str], int] = {}
        df: dict[str, int] = {}
        n = 0
        for c in candidates:
            vals: set[tuple[str, str]] = set()
            for m in c.members:
                n += 1
                for name in cfg.labels:
                    v = m.labels.get(name)
                    if v:
                        vals.add((name, v))
                for t in m.tokens:
                    df[t] = df.get(t, 0) + 1
            for v in vals:
                vi[v] = vi.get(v, 0) + 1
        idf = {t: math.log((1 + n) / (1 + d)) + 1.0 for t, d in df.items()}
        storm = 0
        co: dict[tuple[str, str], set[str]] = {}
        if f is not None:
            ents = {m.entity or m.fingerprint for c in candidates if c.state != "resolved"
                    for m in c.members if burst_mate(f, m, cfg)}
            storm = len(ents | {f.entity or f.fingerprint})
            co = co_onsets(f, candidates, cfg)
        return cls(vi, idf, storm, co)


LiftLookup = Callable[[str, str], tuple[float, float]]


@dataclass
class Context:
    """What a decision knows beyond the candidates: the cadence of the alert's source (seconds between its
    samples, learned from its episodes) and the learned relations between entities."""

    cadence: float = 60.0
    lift: LiftLookup | None = None  # (lift over chance, co-activations) of two entities
    crossing: bool = True  # some open incident of another entity is within the cross window


def windows(cfg: CorrelationConfig, cadence: float) -> tuple[float, float]:
    """(the rolling window of an entity's own incident, the window another entity must join within)."""
    return (max(cfg.window, cfg.window_samples * cadence), max(cfg.cross_window, cfg.cross_window_samples * cadence))


def lift_signal(f: AlertFeatures, anchors: list[str], cfg: CorrelationConfig, lift: LiftLookup | None) -> Reason:
    """Entities that became active together before, far more often than their base rates predict."""
    best = Reason("cooccurrence", 0.0, None, "no learned relation between the entities")
    if lift is None:
        return best
    for a in anchors:
        if a == f.entity:
            continue
        value, support = lift(f.entity, a)
        if support >= cfg.lift_support and value >= cfg.lift_min:
            s = min(1.0, 0.5 + 0.5 * (1.0 - cfg.lift_min / value)) if value > 0 else 0.0
            if s > best.score:
                best = Reason("cooccurrence", s, None, f"{f.entity} and {a} became anomalous together "
                              f"{support:.0f} times before, {value:.1f}x more often than chance")
    return best


def _relation(f: AlertFeatures, anchors: list[AlertFeatures], cfg: CorrelationConfig, pop: Population,
              cooc: CoocLookup | None, lift: LiftLookup | None) -> Reason | None:
    """The strongest structural relation of `f` to the incident's anchor members (its seed entity and the
    seed's direct neighbours): declared topology, learned co-occurrence (entities or alert keys), or a storm.
    Shared labels and text are not relations across entities: every alert of a cluster shares them."""
    found: list[Reason] = []
    if cfg.weights.topology > 0 and cfg.host_labels:
        r = host_signal(f, anchors, cfg.host_labels)
        if r.score > 0:
            r.score *= cfg.weights.topology
            found.append(r)
    if cfg.weights.topology > 0 and cfg.topology:
        r, _unrelated = topology_signal(f, anchors, topology_of(cfg))
        if r.score >= min(HOP_SCORE.values()):  # a call edge within max_hops, not siblings of a dependency
            r.score *= cfg.weights.topology
            found.append(r)
    if cfg.weights.cooccurrence > 0:
        r = lift_signal(f, sorted({m.entity for m in anchors}), cfg, lift)
        if r.score > 0:
            r.score *= cfg.weights.cooccurrence
            found.append(r)
        r = cooccurrence_signal(f, anchors, cooc)
        if r.score >= 0.5:  # learned from closed incidents and people's merges: a firm weight only
            r.score *= cfg.weights.cooccurrence
            found.append(r)
    if cfg.burst_weight > 0:
        r = burst_signal(f, anchors, cfg, pop.storm_size)
        if r.score > 0:
            r.score *= cfg.burst_weight
            found.append(r)
        r = co_onset_signal(f, anchors, cfg, pop.co_onset)
        if r.score > 0:
            found.append(r)
    return max(found, key=lambda r: r.score) if found else None


def score_candidate(f: AlertFeatures, c: IncidentView, now: float, cfg: CorrelationConfig,
                    pop: Population, cooc: CoocLookup | None,
                    ctx: Context | None = None) -> tuple[float, list[Reason], bool, str, int]:
    """(score, reasons, joinable, explanation, hop) of `f` joining candidate `c`.

    - A resolved incident takes nothing: a series that fires again after its incident went quiet starts a new one.
    - An incident older than `max_life` takes nothing.
    - The alert's own entity (the seed's, or one already in the incident): while one of that entity's members
      still fires, always; otherwise its onset within the rolling window of that entity's latest onset in the
      incident (of the incident's, for views without them). Once every member resolved, only within the cross
      window of going quiet, or a series of the incident flapping back: a new series after the quiet is a new wave
      and a new incident (an Alertmanager group whose alerts all resolved is gone, and its next alert pages).
    - Another entity: within the cross window of the latest onset AND a structural relation to the seed
      entity or a direct neighbour of it that is itself active (two kinds of evidence, never a chain)."""
    ctx = ctx or Context(cfg.default_cadence)
    win, cross = windows(cfg, ctx.cadence)
    if c.state == "resolved":
        return 0.0, [], False, "resolved: a new incident", 0
    if f.onset - c.opened_at > cfg.max_life:
        return 0.0, [], False, f"opened more than {cfg.max_life:.0f}s ago: takes no new alerts", 0
    last = c.latest_onset()
    gap = f.onset - last
    nearest = min(c.members, key=lambda m: abs(m.onset - f.onset)).fingerprint if c.members else None
    # Views written before entities were tracked: the first member's entity is the seed, every member's a neighbour.
    seed = c.seed_entity or (c.members[0].entity if c.members else "")
    ents = c.entities or {m.entity: (0 if m.entity == seed else 1) for m in c.members}
    anchor = next((m for m in c.members if m.entity == seed), c.members[0] if c.members else None)
    hop = ents.get(f.entity)
    if hop is not None and f.entity in c.firing_entities:
        reasons = [Reason("time", 1.0, nearest, f"{f.entity} still has a firing member in the incident"),
                   Reason("labels", 1.0, anchor.fingerprint if anchor else None,
                          f"same entity {f.entity}" + (" as the seed" if hop == 0 else " already in the incident"))]
        return 2.0, reasons, True, "same entity, still firing", hop
    if hop is not None and not c.firing and c.quiet_since is not None and f.onset - c.quiet_since > cross \
            and f.fingerprint not in c.member_fps:
        return 0.0, [], False, f"every member resolved {f.onset - c.quiet_since:.0f}s before: a new wave, a new " \
                               f"incident (an incident takes its entities' new onsets within {cross:.0f}s of going " \
                               f"quiet)", 0
    if hop is not None:
        own = c.entity_onsets.get(f.entity)
        if own is not None:
            gap = f.onset - own
            if abs(gap) > win:
                return 0.0, [], False, f"onset {gap:.0f}s from {f.entity}'s latest onset in the incident, outside " \
                                       f"the {win:.0f}s window", 0
        elif abs(gap) > win:
            return 0.0, [], False, f"onset {gap:.0f}s from the incident's latest onset, outside the {win:.0f}s window", 0
        t = 1.0 - 0.5 * max(0.0, abs(gap)) / win
        reasons = [Reason("time", t, nearest, f"onset {gap:.0f}s after {'its entity' if own is not None else 'the incident'}'s latest onset (rolling window "
                          f"{win:.0f}s: {cfg.window_samples:g} steps of {ctx.cadence:.0f}s, at least {cfg.window:.0f}s)"),
                   Reason("labels", 1.0, anchor.fingerprint if anchor else None,
                          f"same entity {f.entity}" + (" as the seed" if hop == 0 else " already in the incident"))]
        return 1.0 + t, reasons, True, "same entity, within the rolling window", hop
    if abs(gap) > cross:
        return 0.0, [], False, f"another entity, onset {gap:.0f}s from the latest, outside the {cross:.0f}s window", 0
    life = max(cfg.cross_life, cfg.cross_life_samples * ctx.cadence)
    if f.onset - c.opened_at > life:
        return 0.0, [], False, f"another entity, {f.onset - c.opened_at:.0f}s after the incident opened (it takes " \
                               f"other entities for {life:.0f}s)", 0
    # The anchors are the seed entity and its direct neighbours that are themselves active now (their own latest
    # onset within the cross window): time and structure must point at the same entity. An incident kept alive by
    # one chronically noisy member does not take the next fault's entities because they relate to its quiet seed.
    anchors_ents = {e for e, h in ents.items() if h <= 1
                    and abs(f.onset - c.entity_onsets.get(e, last)) <= cross}
    if not anchors_ents:
        return 0.0, [], False, f"another entity, and neither the seed nor its neighbours had an onset within " \
                               f"{cross:.0f}s", 0
    anchors = [m for m in c.members if m.entity in anchors_ents] or c.members[:1]
    rel = _relation(f, anchors, cfg, pop, cooc, ctx.lift)
    if rel is None:
        return 0.0, [], False, "another entity with no structural relation to the seed", 0
    t = 1.0 - 0.5 * abs(gap) / cross if cross > 0 else 1.0
    if rel.matched is None:
        rel.matched = next((m.fingerprint for m in anchors if m.entity in rel.detail), anchors[0].fingerprint)
    reasons = [Reason("time", t, nearest, f"onset {gap:.0f}s after the incident's latest onset (cross window "
                      f"{cross:.0f}s)"), rel]
    combined = t * rel.score
    ok = combined >= cfg.join_threshold * 0.5 and rel.score >= cfg.join_threshold
    # The joiner's hops: one more than the anchor it is related to (so a neighbour's neighbour is at 2 and, not
    # being an anchor, relates nothing further: no chains).
    via = next((m.entity for m in anchors if m.fingerprint == rel.matched), seed)
    return combined, reasons, ok, "another entity: time + " + rel.signal, ents.get(via, 0) + 1


def decide(features: AlertFeatures, candidates: list[IncidentView], now: float, cfg: CorrelationConfig,
           cooc: CoocLookup | None = None, ctx: Context | None = None) -> Decision:
    """Join the most related candidate incident, or open a new one. Pure."""
    if not cfg.enabled or not candidates:
        return Decision(None, [Reason("seed", 1.0, None, "first alert of a new incident")], 0.0,
                        detail="no candidate incident")
    pop = Population.of(candidates, cfg, features)
    best: tuple[float, IncidentView, list[Reason], str, int] | None = None
    runner_up = 0.0
    for c in candidates:
        s, reasons, ok, why, hop = score_candidate(features, c, now, cfg, pop, cooc, ctx)
        if not ok:
            continue
        if best is None or s > best[0] or (s == best[0] and c.opened_at < best[1].opened_at):
            if best:
                runner_up = max(runner_up, best[0])
            best = (s, c, reasons, why, hop)
        else:
            runner_up = max(runner_up, s)
    if best is None:
        return Decision(None, [Reason("seed", 1.0, None, "no open incident related closely enough")], 0.0,
                        detail="new incident")
    s, c, reasons, why, hop = best
    absorb: list[str] = []
    co = next((r for r in reasons if r.detail.startswith("co-onset:")), None)
    if co is not None:
        # The first entities of a co-onset opened incidents of their own before it was visible: incidents made only
        # of alerts within the burst window of this one, opened within it, fold into the one it joins.
        absorb = [o.id for o in candidates if o.id != c.id and o.state != "resolved" and o.members
                  and all(abs(m.onset - features.onset) <= cfg.burst_window for m in o.members)
                  and any(m.entity in set().union(*pop.co_onset.values()) for m in o.members)
                  and features.onset - o.opened_at <= cfg.burst_window]
    elif any(r.detail.startswith("burst:") for r in reasons):
        # The first drops of a storm opened incidents of their own before the storm was visible:
        # incidents made only of this alert's burst mates, opened within the burst window, fold into it.
        absorb = [o.id for o in candidates if o.id != c.id and o.state != "resolved" and o.members
                  and all(burst_mate(features, m, cfg) for m in o.members)
                  and features.onset - o.opened_at <= cfg.burst_window]
    return Decision(c.id, reasons, s, absorb=absorb, hop=hop,
                    detail=f"{why}; score {s:.2f}" + (f", next best {runner_up:.2f}" if runner_up else ""))


def representatives(members: list[AlertFeatures], limit: int) -> list[AlertFeatures]:
    """A bounded sample to compare against: one per distinct (service, metric, entity), earliest first,
    keeping the earliest and the most recent shapes when there are more than `limit`."""
    seen: dict[tuple[str, str, str], AlertFeatures] = {}
    for m in sorted(members, key=lambda m: m.onset):
        k = (m.service, m.metric, m.entity)
        if k not in seen:
            seen[k] = m
    reps = list(seen.values())
    if len(reps) <= limit:
        return reps
    head = limit // 2
    return reps[:head] + reps[-(limit - head):]
