"""Rendering cost of Alertmanager's Go templates (routing.gotemplate) as a ratio to Tocsin's Jinja2 message.

Both render the same notifications in the same run: the baseline is Tocsin's own Slack Block Kit message
(routing.receivers.render.Renderer.slack_message, Jinja2), the measured side is Alertmanager's default Slack
payload (title, title_link, text, fallback, ... through routing.gotemplate.fields.SlackFields) and a custom text
with range/if/printf over the alerts. Prints per-message times and the ratios.

    PYTHONPATH=. python3 bench/templates/render.py [--alerts 10] [--seconds 2]
"""
from __future__ import annotations

import argparse
import time

from routing.gotemplate.fields import SlackFields
from routing.receivers.render import Renderer
from service.core.models import Alert, Notification

CUSTOM = {
    "title": '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }}',
    "text": ('{{ range .Alerts }}*Alert:* {{ .Annotations.summary }} - `{{ .Labels.severity }}`\n'
             '{{ range .Labels.SortedPairs }} • *{{ .Name }}:* `{{ .Value }}`\n{{ end }}{{ end }}'
             '{{ printf "%d firing, %.1f%%" (len .Alerts.Firing) 12.5 }}'),
}


def notification(n_alerts: int) -> Notification:
    alerts = [Alert(labels={"alertname": "DiskFull", "instance": f"db{i}:9100", "job": "node", "severity": "critical"},
                    annotations={"summary": f"disk {90 + i % 10}% full", "description": "x" * 80},
                    starts_at=1_700_000_000.0 + i) for i in range(n_alerts)]
    return Notification(id="b", receiver="ops", integration="slack/0", group_key="{}", status="firing",
                        group_labels={"alertname": "DiskFull"}, alerts=alerts, timestamp=1_700_000_100.0,
                        reason="first flush", external_url="http://am:9093")


def per_call(fn, seconds: float) -> float:
    fn()  # warm caches (parsed templates, Jinja2 environment)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    n = notification(args.alerts)
    renderer = Renderer()
    default_am = SlackFields.from_config({}, "s", None)
    custom_am = SlackFields.from_config(CUSTOM, "s", None)
    base = per_call(lambda: renderer.slack_message(n, interactive=False), args.seconds)
    am_default = per_call(lambda: default_am.payload(n), args.seconds)
    am_custom = per_call(lambda: custom_am.payload(n), args.seconds)
    print(f"alerts per notification: {args.alerts}")
    print(f"baseline Jinja2 Block Kit message: {base * 1e6:8.1f} µs")
    print(f"Alertmanager default Slack payload: {am_default * 1e6:8.1f} µs  ratio {am_default / base:.2f}")
    print(f"custom range/printf Slack payload:  {am_custom * 1e6:8.1f} µs  ratio {am_custom / base:.2f}")


if __name__ == "__main__":
    main()
