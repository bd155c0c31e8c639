"""Escaping of untrusted alert text, and hostile text through every renderer."""
from __future__ import annotations

import json

import pytest

from routing.receivers import escaping
from routing.receivers.pagerduty import PagerDutyReceiver
from routing.receivers.render import Renderer, describe_changes, view
from service.core.clock import ManualClock
from tests.fakes.pagerduty import FakePagerDuty
from tests.fakes.samples import (HOSTILE, HUGE, hostile_alert, hostile_incident, incident, notification, texts,
                                 unsafe_mrkdwn, unsafe_plain)
from tests.fakes.slack import block_kit_problems


@pytest.mark.parametrize("raw", ["<!channel>", "<!here|here>", "<!everyone>", "<@U123>", "<#C123|x>",
                                 "<!subteam^S1|@team>", "<https://evil|x>"])
def test_mrkdwn_neutralises_special_syntax(raw):
    """Slack's mention, channel, subteam and link syntax is escaped so it renders as text."""
    out = escaping.mrkdwn(raw)
    assert "<" not in out and ">" not in out
    assert out.startswith("&lt;")


@pytest.mark.parametrize("raw", ["@here", "@channel", "@everyone", "hey @HERE now", "(@channel)"])
def test_bare_broadcasts_cannot_ping(raw):
    """A bare @here/@channel/@everyone gets a word joiner so Slack never broadcasts."""
    for fn in (escaping.mrkdwn, escaping.plain, escaping.one_line):
        out = fn(raw)
        assert unsafe_plain(out) == []
        assert out.replace("\u2060", "").lower() == raw.lower()


def test_email_addresses_are_left_alone():
    """An address like ops@here.com is not a broadcast and is not altered."""
    assert escaping.plain("ops@here.com") == "ops@here.com"


def test_control_characters_are_stripped_but_emoji_kept():
    """C0/C1 controls, ANSI escapes' ESC and bidi overrides go; newlines, tabs and emoji sequences stay."""
    out = escaping.plain("a\x00b\x07c\x1b[31md\u202ee\tf\ng 👩\u200d💻 🇺🇸 🔥\r\n")
    assert out == "abc[31mde\tf\ng 👩\u200d💻 🇺🇸 🔥\n"


def test_truncation_keeps_limit_and_says_how_much_was_cut():
    """Text over the limit is cut to exactly fit, ending with a note giving the omitted count."""
    out = escaping.mrkdwn(HUGE, 3000)
    assert len(out) <= 3000
    assert out.endswith(" chars omitted)")
    omitted = int(out.rsplit("truncated, ", 1)[1].split(" ")[0])
    kept_source = len(HUGE) - omitted
    assert out.startswith(escaping.mrkdwn(HUGE[:kept_source]))


def test_truncation_never_splits_an_escape():
    """Cutting escaped text never leaves half of &amp; / &lt; behind."""
    for limit in range(40, 60):
        out = escaping.mrkdwn("&" * 100, limit)
        body = out.split("…")[0]
        assert body.replace("&amp;", "") == ""
        assert len(out) <= limit
        assert escaping.truncate(escaping.mrkdwn("<" * 100), limit).split("…")[0].replace("&lt;", "") == ""


def test_short_text_is_not_truncated():
    """Text within the limit comes back unchanged apart from escaping."""
    assert escaping.mrkdwn("a & b", 10) == "a &amp; b"


def test_slack_link_rejects_non_http_urls_and_escapes_the_label():
    """Only http(s) URLs become links; `|` and `>` in the URL cannot end the link early."""
    assert escaping.slack_link("javascript:alert(1)", "<!channel>") == "&lt;!channel&gt;"
    link = escaping.slack_link("https://x.example/a|<!channel>>", "ok")
    assert link.startswith("<https://x.example/a%7C%3C!channel%3E%3E|ok>")


def test_bound_json_fits_the_budget():
    """bound_json cuts strings and lists until the JSON is within the byte budget."""
    big = {"members": [{"labels": {"a": HUGE}, "note": HUGE} for _ in range(500)], "x": HUGE}
    out = escaping.bound_json(big, 100_000)
    assert len(json.dumps(out, ensure_ascii=False).encode()) <= 100_000
    assert "more omitted" in json.dumps(out)


def _check_slack(blocks, text):
    assert block_kit_problems(blocks) == []
    json.loads(json.dumps(blocks))
    for kind, t in texts(blocks):
        assert (unsafe_mrkdwn(t) if kind == "mrkdwn" else unsafe_plain(t)) == [], t[:200]
    assert unsafe_mrkdwn(text) == []
    assert len(text) <= 3000


@pytest.mark.parametrize("interactive", [True, False])
@pytest.mark.parametrize("with_incident", [True, False])
def test_hostile_text_in_slack_messages(interactive, with_incident):
    """Hostile alert text never pings, never breaks Block Kit JSON or limits, and keeps its emoji."""
    r = Renderer()
    n = notification(incident_snapshot=hostile_incident() if with_incident else None,
                     alerts=[hostile_alert(i) for i in range(60)])
    msg = r.slack_message(n, interactive=interactive)
    _check_slack(msg.blocks, msg.text)
    dumped = json.dumps(msg.blocks, ensure_ascii=False)
    assert "🔥" in dumped
    assert "chars omitted)" in dumped or "more" in dumped
    assert "injected" not in {b.get("text", {}).get("text") for b in msg.blocks}
    thread = r.slack_thread_line(n, {"state": "triggered", "severity": "info", "members": 1, "firing": 1})
    assert unsafe_mrkdwn(thread) == []


def test_hostile_acked_by_in_state_line():
    """The acknowledging user's name is escaped in the message and the thread line."""
    r = Renderer()
    n = notification(incident_snapshot=incident(state="acknowledged", acked_by="<!channel> @here", acked_at=1.7e9))
    msg = r.slack_message(n)
    _check_slack(msg.blocks, msg.text)
    assert any("Acknowledged by &lt;!channel&gt; @\u2060here" in t for _, t in texts(msg.blocks))


@pytest.mark.parametrize("with_incident", [True, False])
def test_hostile_text_in_plain_text_and_digest(with_incident):
    """Plain-text and digest renderings of hostile text are bounded and cannot ping."""
    r = Renderer()
    n = notification(incident_snapshot=hostile_incident() if with_incident else None,
                     alerts=[hostile_alert(i) for i in range(5)])
    text = r.plain_text(n)
    assert unsafe_plain(text) == [] and len(text) <= 4000
    d = r.digest(HOSTILE, 1.7e9, 1.7e9 + 3600, [n] * 30)
    _check_slack(d.blocks, d.text)
    assert unsafe_plain(d.plain) == [] and len(d.plain) <= 8000


async def test_hostile_text_in_pagerduty_events():
    """A hostile incident gives a PagerDuty event the real API would accept: summary <= 1024, body < 512 KB."""
    clock = ManualClock(1.7e9)
    async with FakePagerDuty() as pd:
        for inc in (hostile_incident(), None):
            rcv = PagerDutyReceiver("pagerduty/0", clock, routing_key="R" * 32, events_url=pd.events_url)
            n = notification(incident_snapshot=inc, alerts=[hostile_alert(i) for i in range(200)])
            event = rcv.build_event(n)
            assert len(event["payload"]["summary"]) <= 1024
            assert unsafe_plain(event["payload"]["summary"]) == []
            assert len(json.dumps(event).encode()) < 512 * 1024
            await rcv.send(n)
            await rcv.close()
        assert len(pd.events) == 2 and pd.rejected == []


def test_view_tolerates_a_minimal_incident():
    """An incident snapshot with only an id still renders (consumers tolerate missing optional keys)."""
    r = Renderer()
    n = notification(incident_snapshot={"id": "inc-1"})
    msg = r.slack_message(n)
    _check_slack(msg.blocks, msg.text)
    assert view(n)["severity"] == "error"


def test_describe_changes_names_what_changed():
    """The thread line reports state, severity and membership changes; otherwise it says still firing."""
    n = notification(incident_snapshot=incident(state="acknowledged", acked_by="alice", acked_at=1.7e9))
    v = view(n)
    assert describe_changes({"state": "triggered", "severity": "warning", "members": 1, "firing": 1}, v) == [
        "Acknowledged by alice at 2023-11-14 22:13:20 UTC", "Severity warning → critical", "+1 alerts (now 2)"]
    same = {"state": "acknowledged", "severity": "critical", "members": 2, "firing": 2}
    assert describe_changes(same, v) == ["Still firing (first flush)"]


def test_templates_can_be_overridden_by_file_name(tmp_path):
    """A slack.j2 in the override directory replaces the default; its values are still escaped by filters."""
    default = Renderer().env.loader.get_source(Renderer().env, "slack.j2")[0]
    (tmp_path / "slack.j2").write_text(default.replace("{{ v.title | one_line(140) }}", "CUSTOM {{ v.title | one_line(140) }}"))
    r = Renderer(str(tmp_path))
    msg = r.slack_message(notification(incident_snapshot=incident(title="<!here> db")))
    assert msg.blocks[0]["text"]["text"] == "CUSTOM \u2039!here> db"  # one_line never keeps a Slack mention
    assert Renderer().slack_message(notification(incident_snapshot=incident())).blocks[0]["text"]["text"].startswith("payments")
