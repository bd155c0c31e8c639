"""Alertmanager's template functions, its template data and html/template escaping, with Go's expected outputs."""
from __future__ import annotations

import pytest

from routing.gotemplate import TemplateError, Templates, build_data, render_data, render_field
from routing.gotemplate.data import quote_meta
from routing.gotemplate.funcs import re_replace_all, title, trim_space
from routing.gotemplate.gotime import GoDuration, GoTime, duration_string
from service.core.models import Alert, Notification

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def note(**over) -> Notification:
    alerts = over.pop("alerts", None) or [
        Alert(labels={"alertname": "Up", "job": "api", "instance": "a"}, annotations={"v": "1536"}, starts_at=T0 - 90.5),
        Alert(labels={"alertname": "Up", "job": "api", "instance": "b"}, annotations={"v": "0.25"}, starts_at=T0 - 30,
              ends_at=T0 - 1),
    ]
    kw = dict(id="n", receiver=quote_meta("team (a)"), integration="slack/0", group_key="{}", group_labels={"alertname": "Up"},
              status="firing", alerts=alerts, timestamp=T0, reason="first flush", external_url="http://am:9093")
    kw.update(over)
    return Notification(**kw)


def r(text: str, n: Notification | None = None, now: float = T0, html: bool = False) -> str:
    return render_field(text, n or note(), now=lambda: now, html=html)


@pytest.mark.parametrize("text,want", [
    ("{{ .Receiver }}", "team \\(a\\)"),  # QuoteMeta'd (by the dispatcher), as Alertmanager's Template.Data is
    ("{{ .Status }} {{ len .Alerts.Firing }} {{ len .Alerts.Resolved }}", "firing 1 1"),
    ("{{ range .Alerts }}{{ .Status }} {{ end }}", "firing resolved "),
    ("{{ (index .Alerts 0).EndsAt }}", "0001-01-01 00:00:00 +0000 UTC"),  # cleared for firing alerts
    ("{{ (index .Alerts 1).EndsAt }}", "2023-11-14 22:13:19 +0000 UTC"),
    ("{{ (index .Alerts 0).StartsAt }}", "2023-11-14 22:11:49.5 +0000 UTC"),
    ("{{ .CommonLabels.SortedPairs }}", "[{alertname Up} {job api}]"),
    ("{{ .CommonLabels.Names }} {{ .CommonLabels.Values }}", "[alertname job] [Up api]"),
    ('{{ (.CommonLabels.Remove (stringSlice "job")).Names }}', "[alertname]"),
    ("{{ .CommonAnnotations }}", "map[]"),
    ("{{ (index .Alerts 0).Fingerprint }}", Alert(labels={"alertname": "Up", "job": "api", "instance": "a"}).fingerprint),
    ("{{ .GroupLabels.alertname }}|{{ .GroupLabels.missing }}|", "Up||"),
])
def test_template_data(text: str, want: str) -> None:
    """template.Data is built as Alertmanager builds it."""
    assert r(text) == want


def test_quote_meta_is_gos() -> None:
    assert quote_meta(r"a.b+(c)|[d]{e}^$*?\ f-g") == r"a\.b\+\(c\)\|\[d\]\{e\}\^\$\*\?\\ f-g"


def test_sorted_pairs_put_alertname_first() -> None:
    n = note(alerts=[Alert(labels={"zeta": "1", "alertname": "X", "beta": "2"})])
    assert r("{{ range (index .Alerts 0).Labels.SortedPairs }}{{ .Name }} {{ end }}", n) == "alertname beta zeta "


@pytest.mark.parametrize("text,want", [
    ('{{ "abc" | toUpper }} {{ "ÀÉ" | toLower }} {{ "ß" | toUpper }}', "ABC àé ß"),
    ('{{ title "hello wORLD" }}', "Hello World"),
    ('{{ join "," (stringSlice "a" "b") }}', "a,b"),
    ('{{ match "^a.c$" "abc" }} {{ match "b" "abc" }} {{ match "^b" "abc" }}', "true true false"),
    ('{{ reReplaceAll "(\\\\w+)@(\\\\w+)" "$2/$1" "x@y a@b" }}', "y/x b/a"),
    ('{{ reReplaceAll "(?P<n>\\\\d)" "<${n}>" "a1b2" }}', "a<1>b<2>"),
    ('{{ reReplaceAll "x" "$$" "axb" }}', "a$b"),
    ('{{ reReplaceAll "x*" "-" "abc" }}', "-a-b-c-"),
    ('{{ reReplaceAll "a|" "-" "baaa" }}', "-b---"),
    ('{{ trimSpace "  x y \\n" }}', "x y"),
    ('{{ "<b>" | safeHtml }}', "<b>"),
    ('{{ date "2006-01-02 15:04" (index .Alerts 0).StartsAt }}', "2023-11-14 22:11"),
    ('{{ (index .Alerts 0).StartsAt | tz "Europe/Berlin" | date "15:04 MST -07:00" }}', "23:11 CET +01:00"),
    ('{{ since (index .Alerts 0).StartsAt }}', "1m30.5s"),
    ('{{ (since (index .Alerts 0).StartsAt).Seconds }}', "90.5"),
    ("{{ humanize 1234567 }} {{ humanize 0.00012 }} {{ humanize 0 }} {{ humanize \"1500\" }}", "1.235M 120u 0 1.5k"),
    ("{{ humanize1024 1536 }} {{ humanize1024 1 }} {{ humanize1024 1073741824 }}", "1.5ki 1 1Gi"),
    ("{{ humanizeDuration 90061 }} {{ humanizeDuration 3661 }} {{ humanizeDuration 61 }} {{ humanizeDuration 1.5 }}",
     "1d 1h 1m 1s 1h 1m 1s 1m 1s 1.5s"),
    ("{{ humanizeDuration 0.0015 }} {{ humanizeDuration 0 }} {{ humanizeDuration -61 }}", "1.5ms 0s -1m 1s"),
    ("{{ humanizePercentage 0.1234 }} {{ humanizePercentage \"0.5\" }}", "12.34% 50%"),
    ("{{ humanizeTimestamp 1700000000.5 }}", "2023-11-14 22:13:20.5 +0000 UTC"),
    ("{{ (index .Alerts 0).Annotations.v | humanize1024 }}", "1.5ki"),
])
def test_functions(text: str, want: str) -> None:
    """Alertmanager's (and Prometheus's) template functions give Go's results; `since` reads the injected clock."""
    assert r(text) == want


@pytest.mark.parametrize("text", [
    '{{ reReplaceAll "(" "x" "y" }}',  # Go's MustCompile panics: the template fails
    '{{ match "a(?=b)" "ab" }}',  # look-ahead is not RE2
    '{{ tz "Nowhere/City" (index .Alerts 0).StartsAt }}',
    '{{ humanize "abc" }}', '{{ humanize "1_000" }}', "{{ humanize .Alerts }}",
    '{{ toUpper 3 }}', '{{ join "," .Alerts }}', '{{ date "2006" "x" }}',
    '{{ safeHtml "x" | toUpper }}',  # template.HTML is not a string parameter in Go
])
def test_function_errors_fail_the_template(text: str) -> None:
    with pytest.raises(TemplateError):
        r(text)


def test_title_follows_x_text_cases() -> None:
    """cases.Title lowercases the rest of each word; _ ' . keep a word going, digits start it (checked against
    Alertmanager 0.25 in the differential test)."""
    assert title("hELLO wORLD foo-bar it's a_b x.y 1st naïve") == "Hello World Foo-Bar It's A_b X.y 1St Naïve"


def test_trim_space_is_go_unicode_space() -> None:
    assert trim_space("\u00a0\u2003 x \u3000") == "x"
    assert trim_space("\x1cx") == "\x1cx"  # not a space for Go


def test_re_replace_all_expand_rules() -> None:
    """regexp.Expand: $name takes the longest name, an unknown group is empty, a lone $ stays."""
    assert re_replace_all("(a)", "$1x", "a") == ""  # $1x is the group named "1x"
    assert re_replace_all("(a)", "${1}x", "a") == "ax"
    assert re_replace_all("(a)", "$", "a") == "$"


@pytest.mark.parametrize("ns,want", [
    (0, "0s"), (1, "1ns"), (1500, "1.5µs"), (1_500_000, "1.5ms"), (90_500_000_000, "1m30.5s"),
    (3_600_000_000_000, "1h0m0s"), (-2_000_000_000, "-2s"),
])
def test_duration_string(ns: int, want: str) -> None:
    assert duration_string(ns) == want
    assert GoDuration(ns).go_String() == want


def test_time_format_layouts() -> None:
    t = GoTime(1_700_000_000_123_456_789)
    assert t.go_Format("Mon Jan _2 15:04:05.000 2006") == "Tue Nov 14 22:13:20.123 2023"
    assert t.go_Format("02/01/06 3:04:05.999999 PM Z07:00") == "14/11/23 10:13:20.123456 PM Z"
    assert t.go_Format("January 2, 2006 .999999999 -0700") == "November 14, 2023 .123456789 +0000"


def test_since_and_humanize_duration_in_templates_use_the_clock() -> None:
    n = note()
    assert r("{{ (since (index .Alerts 0).StartsAt).Round 1000000000 }}", n, now=T0 + 3600) == "1h1m31s"


HTML = [
    ("<p>{{ . }}</p>", "<a & 'b'>", "<p>&lt;a &amp; &#39;b&#39;&gt;</p>"),
    ("{{ . }}", "a+b\x00", "a&#43;b\ufffd"),
    ('<a href="{{ . }}">', "javascript:alert(1)", '<a href="#ZgotmplZ">'),
    ('<a href="{{ . }}">', "http://x/a b?c=<d>", '<a href="http://x/a%20b?c=%3cd%3e">'),
    ('<a href="/q?x={{ . }}">', "a&b c/d", '<a href="/q?x=a%26b%20c%2fd">'),
    ("<a title={{ . }}>", "a b=c", "<a title=a&#32;b&#61;c>"),
    ("<!-- {{ . }} -->x", "secret", "x"),
    ("<script>var x = {{ . }};</script>", 'a"</script>', '<script>var x = "a\\"\\u003c/script\\u003e";</script>'),
    ("<textarea>{{ . }}</textarea>", "</textarea><b>", "<textarea>&lt;/textarea&gt;&lt;b&gt;</textarea>"),
    ('<p class="{{ . }}">', '" onmouseover="x', '<p class="&#34; onmouseover=&#34;x">'),
]


@pytest.mark.parametrize("tmpl,value,want", HTML, ids=[h[0] for h in HTML])
def test_html_contexts(tmpl: str, value: str, want: str) -> None:
    """ExecuteHTMLString escapes each action for its HTML context as html/template does."""
    assert Templates.default().execute_html(tmpl, value) == want


def test_html_text_template_does_not_escape() -> None:
    assert Templates.default().execute_text("<p>{{ . }}</p>", "<b>") == "<p><b></p>"


def test_default_templates_are_alertmanagers() -> None:
    """Alertmanager 0.25's default.tmpl and email.tmpl are loaded: every receiver's defaults are defined."""
    names = set(Templates.default().names())
    for name in ("slack.default.title", "slack.default.text", "pagerduty.default.description", "email.default.html",
                 "email.default.subject", "opsgenie.default.message", "telegram.default.message",
                 "discord.default.title", "webex.default.message", "wechat.default.message", "sns.default.message",
                 "victorops.default.state_message", "pushover.default.message", "__subject", "__alertmanagerURL"):
        assert name in names, name
    d = build_data(note())
    assert render_data('{{ template "email.default.subject" . }}', d) == "[FIRING:1] Up (api)"
    html = render_data('{{ template "email.default.html" . }}', d, html=True)
    assert "Style and HTML derived from" not in html  # the comment is stripped, as html/template does
    assert 'href="http://am:9093/#/alerts?receiver=team&#43;%5C%28a%5C%29"' in html
