"""Prometheus metrics (prometheus-client), one registry per running app so tests can run several apps."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.alerts_received = Counter("tocsin_alerts_received_total", "Alerts received, by source and status",
                                       ["source", "status"], registry=r)
        self.alerts_invalid = Counter("tocsin_alerts_invalid_total", "Alerts rejected as invalid, by source",
                                      ["source"], registry=r)
        self.active_alerts = Gauge("tocsin_alerts_active", "Firing alerts in the store", registry=r)
        self.notifications = Counter("tocsin_notifications_total", "Notification delivery attempts by outcome",
                                     ["receiver", "integration", "outcome"], registry=r)
        self.notifications_failed = Counter("tocsin_notifications_failed_total",
                                            "Failed notification attempts, by receiver and reason",
                                            ["receiver", "integration", "reason"], registry=r)
        self.pipeline_latency = Histogram("tocsin_ingest_latency_seconds",
                                          "Time from receiving a request to the alerts being durably stored",
                                          ["source"], registry=r,
                                          buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
        self.ingest_refused = Counter("tocsin_ingest_refused_total",
                                      "Ingest requests answered 503 + Retry-After because ingest was at capacity",
                                      ["path"], registry=r)
        self.outbox_depth = Gauge("tocsin_outbox_depth", "Notifications in the outbox not yet delivered", registry=r)
        self.flushes = Counter("tocsin_group_flushes_total", "Aggregation group flushes", registry=r)
        self.background_errors = Counter("tocsin_background_errors_total",
                                         "Errors in background work (retention sweeps, regrouping after a reload)",
                                         ["task"], registry=r)
        self.config_reloads = Counter("tocsin_config_reloads_total", "Configuration reloads by result", ["result"],
                                      registry=r)

    def notification(self, what: str, receiver: str, integration: str, reason: str) -> None:
        kind = integration.split("/")[1] if "/" in integration else integration
        self.notifications.labels(receiver, kind, what).inc()
        if what == "failed":
            self.notifications_failed.labels(receiver, kind, reason or "unknown").inc()
