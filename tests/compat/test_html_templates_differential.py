"""Differential test of html/template escaping: Alertmanager 0.25's email `html` bodies vs routing.gotemplate.

The real Alertmanager sends one email per template (its `html` field) to an SMTP server on 127.0.0.1
(aiosmtpd); each HTML part is compared with `render_field(..., html=True)` over the same alerts. The corpus
covers Alertmanager's own `email.default.html` and the contexts escape.py implements: element text, quoted and
unquoted attributes, URL attributes (scheme filter, normaliser, query escaper), HTML comments, safeHtml, the
html/urlquery functions at the end of a pipeline, RCDATA, <script> and on* attributes.
"""
from __future__ import annotations

import asyncio
import email
import email.policy
import os
import time
from typing import Any

import aiohttp
import pytest
import yaml

from routing.gotemplate import Templates, render_field

from .harness import ALERTMANAGER, free_port
from .test_templates_differential import _AlertmanagerWithURL, _alerts, _notification

import aiosmtpd.controller as aiosmtpd  # noqa: E402

HTML_CASES: list[tuple[str, str]] = [
    ("email-default", '{{ template "email.default.html" . }}'),
    ("text", "<p>{{ .CommonAnnotations.summary }}</p>"),
    ("range-list", "<ul>{{ range .Alerts }}<li>{{ .Labels.instance }}: {{ .Annotations.description }}</li>{{ end }}</ul>"),
    ("url-attr", '<a href="{{ (index .Alerts 0).GeneratorURL }}">graph</a>'),
    ("url-query", '<a href="{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}&s={{ .Status }}">am</a>'),
    ("url-unsafe-scheme", '<a href="{{ "javascript:alert(1)" }}">x</a><a href="{{ "HTTPS://ok.example/a b" }}">y</a>'),
    ("url-query-escaped", '<a href="/search?q={{ .CommonAnnotations.summary }}">s</a>'),
    ("url-runbook", '<a href="{{ .CommonAnnotations.runbook }}">runbook</a>'),
    ("img-src", '<img src="{{ .ExternalURL }}/img?x={{ .Status }}&y=1" alt="{{ .Status }}">'),
    ("single-quoted-attr", "<a title='{{ .CommonAnnotations.summary }}'>t</a>"),
    ("unquoted-attr", "<td class={{ .Status }} title={{ .CommonAnnotations.summary }}>x</td>"),
    ("comment-stripped", "<!-- a comment {{ .Status }} --><b>{{ .Status }}</b><!-- tail -->"),
    ("safe-html", '{{ "<b>bold</b>" | safeHtml }} <a title="{{ "<b>x</b> & y" | safeHtml }}">z</a>'),
    ("html-func", '<p title="{{ printf "%q" .Status }}">{{ html .CommonAnnotations.summary }}</p>'),
    ("textarea", "<textarea>{{ .CommonAnnotations.summary }}</textarea><title>{{ .Status }}</title>"),
    ("script", "<script>var s = {{ .Status }}; var n = {{ len .Alerts }}; var l = {{ .CommonLabels.alertname }};</script>"),
    ("onclick", '<a onclick="f({{ .Status }}, {{ len .Alerts }})">x</a>'),
    ("style-attr", '<div style="color: {{ .Status }}">x</div>'),
    ("map-print", "<p>{{ .CommonLabels }}</p><p>{{ .GroupLabels.SortedPairs }}</p>"),
    ("plus-and-quotes", "<p>{{ \"a+b 'c' \\\"d\\\" <e> & f\" }}</p>"),
]


class _Mailbox:
    def __init__(self) -> None:
        self.messages: dict[str, email.message.EmailMessage] = {}

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages[str(msg["Subject"])] = msg
        return "250 OK"


def _html_part(msg: email.message.EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    assert part is not None, "no text/html part"
    return part.get_content().replace("\r\n", "\n")  # SMTP's line ends, not the template's


async def _run(port: int, box: _Mailbox, expected: int) -> tuple[dict[str, list[dict]], float, str]:
    cfg = {
        "route": {"receiver": "ops", "group_by": ["alertname"], "group_wait": "5s", "group_interval": "5m",
                  "repeat_interval": "4h",
                  "routes": [{"matchers": ['alertname="DiskFull"'], "receiver": "team-x.y+"}]},
        "receivers": [{"name": name, "email_configs": [
            {"to": "oncall@example.com", "from": "am@example.com", "smarthost": f"127.0.0.1:{port}",
             "require_tls": False, "send_resolved": True, "html": html, "headers": {"Subject": f"{rid}/{case}"}}
            for case, html in HTML_CASES]} for rid, name in (("a", "team-x.y+"), ("b", "ops"))],
    }
    target = _AlertmanagerWithURL("alertmanager", "html", yaml.safe_dump(cfg, sort_keys=False), None)
    try:
        async with aiohttp.ClientSession() as session:
            await target.start(session)
            now = time.time()
            alerts = _alerts(now)
            for batch in alerts.values():
                async with session.post(f"{target.base}/api/v2/alerts", json=batch) as r:
                    assert r.status == 200, await r.text()
            deadline = time.monotonic() + 60
            while len(box.messages) < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            return alerts, now, target.log_tail()
    finally:
        await target.cleanup()


@pytest.fixture(scope="module")
def html_run():
    if not os.access(ALERTMANAGER, os.X_OK):
        pytest.fail(f"no Alertmanager binary at {ALERTMANAGER} (apt-get install prometheus-alertmanager)")
    box = _Mailbox()
    port = free_port()
    ctl = aiosmtpd.Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        alerts, now, log = asyncio.run(_run(port, box, 2 * len(HTML_CASES)))
    finally:
        ctl.stop()
    return box.messages, alerts, now, log


@pytest.mark.parametrize("rid", ["a", "b"])
@pytest.mark.parametrize("name,html", HTML_CASES, ids=[c[0] for c in HTML_CASES])
def test_same_html_as_alertmanager(html_run, name: str, html: str, rid: str) -> None:
    """The email HTML body routing.gotemplate renders is byte for byte the one Alertmanager 0.25 sent."""
    messages, alerts, now, log = html_run
    msg = messages.get(f"{rid}/{name}")
    assert msg is not None, f"Alertmanager sent no email for {rid}/{name}; log:\n{log}"
    n = _notification(rid, alerts[rid], now)
    assert _html_part(msg) == render_field(html, n, Templates.default(), html=True)
