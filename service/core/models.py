"""The data that flows through Tocsin: alerts in, notifications out.

Alerts are kept in Redis as JSON produced by `Alert.to_json`; notifications are written to the
outbox stream as JSON produced by `Notification.to_json`. Both round-trip exactly.
"""
from __future__ import annotations

import functools
import json
import re

import orjson
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from service.core.clock import to_rfc3339

# Prometheus's label name rule (the data model's [a-zA-Z_][a-zA-Z0-9_]*), for every door and config that takes labels.
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def check_label_names(labels: dict[str, str]) -> dict[str, str]:
    """`labels` unchanged, or ValueError naming the invalid label names (a pydantic validator's body)."""
    bad = [k for k in labels if not LABEL_NAME.match(k)]
    if bad:
        raise ValueError(f"invalid label name(s): {', '.join(map(repr, bad))}")
    return labels


def _fnv1a_64_py(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


try:  # the C implementation (fnv-c); the pure-Python one gives the same numbers, 40x slower
    from fnv_c import fnv1a_64 as _fnv1a_64
except ImportError:  # pragma: no cover
    _fnv1a_64 = _fnv1a_64_py

SEP = b"\xff"
_rfc3339 = functools.lru_cache(maxsize=1 << 16)(to_rfc3339)  # alerts of a group often share their times
_FP_CACHE: dict[tuple[tuple[str, str], ...], str] = {}
_FP_CACHE_MAX_BYTES = 32 << 20  # bounded by (estimated) bytes, not count: label sets can be 300 labels wide
_FP_CACHE_BYTES = 0
_ENTRY_OVERHEAD, _PAIR_OVERHEAD = 200, 140  # dict slot, tuples, the fingerprint string; per label pair


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's label-set fingerprint: FNV-1a 64 over sorted `name 0xFF value 0xFF`.

    Prometheus re-sends the same label sets every minute, so results are cached by the sorted label pairs, in a
    cache bounded by bytes (cleared when full: a storm of new label sets cannot grow it past the bound)."""
    global _FP_CACHE_BYTES
    key = tuple(sorted(labels.items()))
    fp = _FP_CACHE.get(key)
    if fp is None:
        data = b"".join(n.encode() + SEP + v.encode() + SEP for n, v in key)
        fp = f"{_fnv1a_64(data):016x}"
        size = _ENTRY_OVERHEAD + len(data) + _PAIR_OVERHEAD * len(key)
        if _FP_CACHE_BYTES + size > _FP_CACHE_MAX_BYTES:
            _FP_CACHE.clear()
            _FP_CACHE_BYTES = 0
        if size <= _FP_CACHE_MAX_BYTES // 64:  # a huge label set is not worth keeping
            _FP_CACHE[key] = fp
            _FP_CACHE_BYTES += size
    return fp


def fingerprint_cache_bytes() -> int:
    """The fingerprint cache's estimated size (metrics, tests)."""
    return _FP_CACHE_BYTES


@dataclass
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float = 0.0
    generator_url: str = ""
    updated_at: float = 0.0
    timeout: bool = False  # ends_at was not given: it is now + resolve_timeout
    fingerprint: str = ""
    source: str = "prometheus"  # prometheus | alertmanager | detector
    # Detector evidence (None for plain Prometheus alerts).
    detector: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.labels)

    def resolved_at(self, now: float) -> bool:
        """Alertmanager's Alert.ResolvedAt: ended at or before `now`."""
        return self.ends_at > 0 and self.ends_at <= now

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Alert":
        return cls(**json.loads(raw))

    def webhook_dict(self, now: float) -> dict[str, Any]:
        """One alert as Alertmanager's webhook v4 payload shows it at `now`."""
        resolved = self.resolved_at(now)
        return {
            "status": "resolved" if resolved else "firing",
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": _rfc3339(self.starts_at),
            "endsAt": _rfc3339(self.ends_at if resolved else None),
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


Status = Literal["firing", "resolved"]


@dataclass
class Notification:
    """One decided notification for one receiver integration: what goes into the outbox."""

    id: str  # deterministic: the same decision always yields the same id (idempotent delivery)
    receiver: str  # the receiver's name from the config
    integration: str  # e.g. "webhook/0", "slack/1"
    group_key: str  # Alertmanager's group key, or "incident:<id>" when correlation is on
    group_labels: dict[str, str]
    status: Status
    alerts: list[Alert]
    timestamp: float  # the (event-)time the decision was made
    reason: str  # "first flush", "new alerts", "resolved alerts", "all resolved", "repeat interval elapsed", ...
    external_url: str = ""
    truncated_alerts: int = 0
    incident: dict[str, Any] | None = None  # incident snapshot when correlation is on

    def to_json(self) -> str:
        if self.incident is None and all(a.detector is None for a in self.alerts):
            # The flush hot path: plain dicts and orjson instead of a recursive dataclasses.asdict (same JSON
            # document; from_json reads both).
            d = {f: getattr(self, f) for f in _NOTIFICATION_FIELDS}
            d["alerts"] = [{f: getattr(a, f) for f in _ALERT_FIELDS} for a in self.alerts]
            return orjson.dumps(d, option=orjson.OPT_SORT_KEYS).decode()
        d = asdict(self)
        return json.dumps(d, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Notification":
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError:  # NaN and the like, which only the stdlib writes and reads
            d = json.loads(raw)
        d["alerts"] = [Alert(**a) for a in d["alerts"]]
        return cls(**d)

    def common_labels(self) -> dict[str, str]:
        return common_of([a.labels for a in self.alerts])

    def common_annotations(self) -> dict[str, str]:
        return common_of([a.annotations for a in self.alerts])

    def webhook_payload(self) -> dict[str, Any]:
        """Alertmanager's webhook payload, version 4, exactly as a webhook consumer expects it."""
        return {
            "receiver": self.receiver,
            "status": self.status,
            "alerts": [a.webhook_dict(self.timestamp) for a in self.alerts],
            "groupLabels": dict(self.group_labels),
            "commonLabels": self.common_labels(),
            "commonAnnotations": self.common_annotations(),
            "externalURL": self.external_url,
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": self.truncated_alerts,
        }


_ALERT_FIELDS = tuple(f.name for f in fields(Alert))
_NOTIFICATION_FIELDS = tuple(f.name for f in fields(Notification) if f.name != "alerts")


def common_of(maps: list[dict[str, str]]) -> dict[str, str]:
    """The label pairs every map of `maps` has (Alertmanager's CommonLabels / CommonAnnotations)."""
    if not maps:
        return {}
    common = dict(maps[0])
    for m in maps[1:]:
        for k in list(common):
            if m.get(k) != common[k]:
                del common[k]
    return common
