"""Alertmanager's notification log decision, as a pure function (notify.DedupStage.needsUpdate).

`needs_update` answers whether a group's current firing/resolved sets warrant a notification to one receiver
integration, given the last logged notification, and names the reason. The reasons are the names used in
templates, logs and metrics.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    firing: frozenset[str]
    resolved: frozenset[str]
    timestamp: float
    mark: str = ""  # for incident groups: what the receiver was last shown (state, severity, summary)

    def to_json(self) -> str:
        import json

        d = {"f": sorted(self.firing), "r": sorted(self.resolved), "t": self.timestamp}
        if self.mark:
            d["m"] = self.mark
        return json.dumps(d)

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Entry":
        import json

        d = json.loads(raw)
        return cls(frozenset(d["f"]), frozenset(d["r"]), float(d["t"]), d.get("m", ""))


FIRST = "first notification"
NEW_ALERTS = "new alerts"
ALL_RESOLVED = "all resolved"
RESOLVED = "resolved alerts"
REPEAT = "repeat interval elapsed"
INCIDENT_UPDATED = "incident updated"


def needs_incident_update(entry: Entry | None, firing: frozenset[str], mark: str, acknowledged: bool,
                          reason: str | None) -> str | None:
    """Incident groups also notify when what people see changed (state, severity, summary), as an update of
    the message already posted; an acknowledged incident does not repeat (PagerDuty's semantics); and a member
    that resolves while others fire is not a delivery of its own (the incident resolves once, as a whole)."""
    if reason == REPEAT and acknowledged:
        return None
    if reason == RESOLVED:
        return None  # one member resolving is not news while the incident burns: shown with the next update
    if reason is None and entry is not None and firing and entry.mark != mark:
        return INCIDENT_UPDATED
    return reason


def needs_update(
    entry: Entry | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    send_resolved: bool,
    repeat_interval: float,
    now: float,
) -> str | None:
    """The reason to notify, or None. Mirrors Alertmanager 0.25's DedupStage.needsUpdate."""
    if entry is None:
        # Never notified this group: notify unless everything has already resolved.
        return FIRST if firing else None
    if not firing <= entry.firing:
        return NEW_ALERTS
    if not firing:
        # Every alert resolved. Notify (even without send_resolved, to clear the log) only if the receiver was
        # told about firing alerts; alerts that fired and resolved between two flushes are never news.
        return ALL_RESOLVED if entry.firing else None
    if send_resolved and not resolved <= entry.resolved:
        return RESOLVED
    if entry.timestamp < now - repeat_interval:
        return REPEAT
    return None
