"""Alertmanager's template data (template.Data of v0.25) built from a Tocsin Notification.

Data{Receiver, Status, Alerts, GroupLabels, CommonLabels, CommonAnnotations, ExternalURL}; Alert{Status, Labels,
Annotations, StartsAt, EndsAt, GeneratorURL, Fingerprint}; KV (map[string]string) with SortedPairs, Remove,
Names, Values; Pairs with Names, Values; Alerts with Firing and Resolved (0.25 has no String methods on KV and
Pairs, which later versions added: `{{ .CommonLabels }}` prints `map[k:v]`). As in Alertmanager: the receiver
name is regexp.QuoteMeta'd (the dispatcher stores it so in Notification.receiver, as the webhook payload shows
it; `quote_meta` is here for callers that build notifications themselves), a firing alert's EndsAt is the zero
time (the dispatcher clears it at flush), common labels/annotations are those equal in every alert.
"""
from __future__ import annotations

from typing import Any

from service.core.models import Notification, common_of

from routing.gotemplate.gotime import GoTime
from routing.gotemplate.values import GoStruct


class Pair(GoStruct):
    go_type = "template.Pair"
    go_fields = ("Name", "Value")

    def __init__(self, name: str, value: str):
        self.Name, self.Value = name, value


class Pairs(list):
    go_type = "template.Pairs"

    def go_Names(self) -> list[str]:
        return [p.Name for p in self]

    def go_Values(self) -> list[str]:
        return [p.Value for p in self]


class KV(dict):
    """template.KV: map[string]string; a missing key is "" under missingkey=zero."""

    go_type = "template.KV"
    elem_zero = ""

    def go_SortedPairs(self) -> Pairs:
        keys = sorted(k for k in self if k != "alertname")
        if "alertname" in self:
            keys.insert(0, "alertname")
        return Pairs(Pair(k, self[k]) for k in keys)

    def go_Remove(self, keys: list[str]) -> "KV":
        drop = set(keys)
        return KV({k: v for k, v in self.items() if k not in drop})

    def go_Names(self) -> list[str]:
        return self.go_SortedPairs().go_Names()

    def go_Values(self) -> list[str]:
        return self.go_SortedPairs().go_Values()


METHOD_PARAMS = {"Remove": ["[]string"]}


class Alert(GoStruct):
    go_type = "template.Alert"
    go_fields = ("Status", "Labels", "Annotations", "StartsAt", "EndsAt", "GeneratorURL", "Fingerprint")

    def __init__(self, status: str, labels: KV, annotations: KV, starts_at: GoTime, ends_at: GoTime,
                 generator_url: str, fingerprint: str):
        self.Status, self.Labels, self.Annotations = status, labels, annotations
        self.StartsAt, self.EndsAt = starts_at, ends_at
        self.GeneratorURL, self.Fingerprint = generator_url, fingerprint


class AlertSlice(list):
    go_type = "[]template.Alert"


class Alerts(list):
    go_type = "template.Alerts"

    def go_Firing(self) -> AlertSlice:
        return AlertSlice(a for a in self if a.Status == "firing")

    def go_Resolved(self) -> AlertSlice:
        return AlertSlice(a for a in self if a.Status == "resolved")


class Data(GoStruct):
    go_type = "*template.Data"
    go_fields = ("Receiver", "Status", "Alerts", "GroupLabels", "CommonLabels", "CommonAnnotations", "ExternalURL")

    def __init__(self, receiver: str, status: str, alerts: Alerts, group_labels: KV, common_labels: KV,
                 common_annotations: KV, external_url: str):
        self.Receiver, self.Status, self.Alerts = receiver, status, alerts
        self.GroupLabels, self.CommonLabels, self.CommonAnnotations = group_labels, common_labels, common_annotations
        self.ExternalURL = external_url


_META = set("\\.+*?()|[]{}^$")


def quote_meta(s: str) -> str:
    """Go's regexp.QuoteMeta."""
    return "".join("\\" + c if c in _META else c for c in s)


def build_data(n: Notification) -> Data:
    """template.Data for one notification, as Alertmanager's Template.Data builds it at flush time."""
    alerts = Alerts()
    for a in n.alerts:
        resolved = a.resolved_at(n.timestamp)
        alerts.append(Alert(
            "resolved" if resolved else "firing", KV(a.labels), KV(a.annotations), GoTime.from_epoch(a.starts_at),
            GoTime.from_epoch(a.ends_at if resolved else 0), a.generator_url, a.fingerprint))
    status = "firing" if any(x.Status == "firing" for x in alerts) else "resolved"
    return Data(n.receiver, status, alerts, KV(n.group_labels), KV(common_of([a.labels for a in n.alerts])),
                KV(common_of([a.annotations for a in n.alerts])), n.external_url)


def data_from_dict(d: dict[str, Any]) -> Data:
    """template.Data from a webhook-v4-shaped dict (tests, replays); times are RFC 3339 strings."""
    from service.core.clock import parse_rfc3339  # local: only this helper needs it

    alerts = Alerts()
    for a in d.get("alerts", []):
        alerts.append(Alert(a.get("status", "firing"), KV(a.get("labels", {})), KV(a.get("annotations", {})),
                            _t(a.get("startsAt"), parse_rfc3339), _t(a.get("endsAt"), parse_rfc3339),
                            a.get("generatorURL", ""), a.get("fingerprint", "")))
    return Data(d.get("receiver", ""), d.get("status", ""), alerts, KV(d.get("groupLabels", {})),
                KV(d.get("commonLabels", {})), KV(d.get("commonAnnotations", {})), d.get("externalURL", ""))


def _t(s: Any, parse: Any) -> GoTime:
    if not s or str(s).startswith("0001-01-01"):
        return GoTime.from_epoch(0)
    return GoTime.from_epoch(parse(s))
