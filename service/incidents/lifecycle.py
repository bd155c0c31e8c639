"""An incident's lifecycle as pure transitions on its metadata, and when it next needs a look.

States: triggered -> acknowledged -> (snoozed) -> resolved. People move incidents between them (ack, snooze,
resolve); time moves them too, and only these three ways:
- a snooze ends at `snoozed_until` (back to acknowledged if someone had acked, else triggered);
- an incident whose members have all resolved resolves once it has been quiet for `quiet_after` (the larger of
  the configured quiet period and the incident's own rolling window: an entity that blips every few samples is
  one incident, not one per blip);
- a resolved incident is retired (stops being a candidate, its keys start to expire) `reopen_cooldown` after it
  resolved.
`due_at` says when the next of these can happen, so `tocsin replay` and the serve loop look at an incident only
then (a discrete-event simulation, not a tick every few seconds).
"""
from __future__ import annotations

from typing import Any

from service.incidents.correlation import CorrelationConfig


def quiet_after(meta: dict[str, Any], cfg: CorrelationConfig) -> float:
    return max(cfg.quiet_period, float(meta.get("window") or 0.0))


def due_at(meta: dict[str, Any], cfg: CorrelationConfig) -> float | None:
    """When time next changes this incident (None: only an alert or a person can)."""
    state = meta.get("state")
    if state == "resolved":
        return None if meta.get("resolved_at") is None else float(meta["resolved_at"]) + cfg.reopen_cooldown
    times = []
    if state == "snoozed" and meta.get("snoozed_until"):
        times.append(float(meta["snoozed_until"]))
    if meta.get("firing", 0) == 0 and meta.get("quiet_since") is not None:
        times.append(float(meta["quiet_since"]) + quiet_after(meta, cfg))
    return min(times) if times else None


def advance(meta: dict[str, Any], now: float, cfg: CorrelationConfig) -> tuple[dict[str, Any], list[tuple[str, str]], bool]:
    """(new metadata, timeline events, retire) after time has reached `now`. Pure: `meta` is not modified."""
    m = dict(meta)
    events: list[tuple[str, str]] = []
    if m.get("state") == "snoozed" and m.get("snoozed_until") and float(m["snoozed_until"]) <= now:
        m.update(state="acknowledged" if m.get("acked_by") else "triggered", snoozed_until=None)
        events.append(("snooze_ended", "snooze ended"))
    q = quiet_after(m, cfg)
    if (m.get("state") != "resolved" and m.get("firing", 0) == 0 and m.get("quiet_since") is not None
            and now - float(m["quiet_since"]) >= q):
        m.update(state="resolved", resolved_at=now, updated_at=now)
        events.append(("resolved", f"all members resolved and {q:.0f}s quiet period passed"))
        return m, events, False
    retire = (m.get("state") == "resolved" and m.get("resolved_at") is not None
              and now - float(m["resolved_at"]) >= cfg.reopen_cooldown)
    return m, events, retire
