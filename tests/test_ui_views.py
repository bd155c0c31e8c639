"""The web UI's pure view functions (service/http/ui/views.py): the timeline chart's geometry, the escalation read
back from its stored state, Alertmanager's grouping for the correlation-off page, join reasons in words, and
the list filters."""
from __future__ import annotations

import pytest

from service.incidents.escalation import Policy
from service.config.sections import parse_config
from service.http.ui import views

T = 1_800_000_000.0


def member(fp, name, service, start, end=None, joined=None):
    return {"fingerprint": fp, "labels": {"alertname": name, "service": service}, "annotations": {},
            "status": "resolved" if end else "firing", "starts_at": start, "ends_at": end,
            "joined_by": joined or []}


def snap(**kw):
    base = {"id": "inc-1", "state": "triggered", "members": [
        member("a", "DBDown", "db", T), member("b", "HighLatency", "api", T + 60, T + 240)],
        "root_causes": [{"metric": "DBDown", "entity": "", "service": "db"}], "timeline": []}
    base.update(kw)
    return base


def test_chart_rows_run_from_onset_to_resolution_and_mark_the_root_cause():
    """One row per member in order; a resolved member's bar ends at its end, a firing one at now; the root
    cause's row is flagged."""
    c = views.timeline_chart(snap(), now=T + 300)
    a, b = c.rows
    assert (a["root"], b["root"]) == (True, False)
    assert a["x"] == pytest.approx(c.left) and b["x"] > a["x"]
    assert b["x"] + b["w"] < a["x"] + a["w"]  # b ended at +240, a still firing at +300
    assert b["status"] == "resolved" and "still firing" in a["title"]
    assert [m["kind"] for m in c.markers] == ["now"]


def test_chart_marks_acknowledgements_and_escalation_steps_in_time_order():
    """An ack in the incident's timeline and a paged escalation level become markers at their times."""
    esc = views.Escalation("primary", 2, 1, False, T + 900, [(1, T + 300)])
    s = snap(timeline=[{"ts": T + 400, "event": "acknowledged", "detail": "acknowledged by dana"}],
             state="acknowledged")
    c = views.timeline_chart(s, now=T + 500, escalations=[esc])
    kinds = {m["kind"]: m["x"] for m in c.markers}
    assert kinds["escalation"] < kinds["acknowledged"] < kinds["now"] < kinds["escalation-next"]
    assert all(m["ly"] in (14, 28) for m in c.markers)


@pytest.mark.parametrize("step,done,due,state,want_fired,want_next,want_stopped", [
    (0, "0", T + 300, "triggered", [], T + 300, ""),                    # waiting for level 1
    (1, "0", T + 900, "triggered", [(1, T + 300)], T + 900, ""),        # level 1 paged at +300, level 2 due
    (1, "0", T + 900, "acknowledged", [(1, T + 300)], None, "stopped: acknowledged"),
    (2, "1", None, "resolved", [], None, "stopped: resolved"),          # finished: the store keeps no times
    (2, "1", None, "triggered", [], None, "finished"),
])
def test_escalation_is_read_back_from_its_stored_step(step, done, due, state, want_fired, want_next, want_stopped):
    """A fired level's time is the next due time minus the next level's delay; acknowledged means stopped."""
    policy = Policy.model_validate({"levels": [{"delay": 300, "targets": [{"receiver": "a"}]},
                                               {"delay": 600, "targets": [{"receiver": "b"}]}]})
    e = views.escalation_from_state("primary", policy, {"step": str(step), "done": done}, due, state)
    assert (e.fired_at, e.next_due, e.stopped) == (want_fired, want_next, want_stopped)


def test_alert_groups_follow_the_route_tree():
    """Each route an alert matches, with its receiver and group_by labels, is a group (continue included)."""
    cfg = parse_config("""
route:
  receiver: default
  group_by: [service]
  routes:
    - {matchers: ['team="db"'], receiver: dba, group_by: [alertname], continue: true}
    - {matchers: ['severity="critical"'], receiver: pager}
receivers: [{name: default}, {name: dba}, {name: pager}]
""")
    alerts = [{"labels": {"alertname": "DBDown", "team": "db", "severity": "critical", "service": "db"}},
              {"labels": {"alertname": "Slow", "team": "db", "service": "db"}},
              {"labels": {"alertname": "Disk", "service": "logs"}}]
    got = [(g.receiver, g.labels, len(g.alerts)) for g in views.alert_groups(alerts, cfg.route)]
    # Slow matched the dba route (continue) and no other child, so it does not fall back to the root
    assert got == [("dba", {"alertname": "DBDown"}, 1), ("dba", {"alertname": "Slow"}, 1),
                   ("default", {"service": "logs"}, 1), ("pager", {"service": "db"}, 1)]


def test_join_reasons_read_as_sentences():
    """Every join signal is one line with its score and detail; the seed says it opened the incident."""
    m = member("b", "HighLatency", "api", T, joined=[
        {"signal": "topology", "score": 0.81, "detail": "api calls db (1 hop)", "matched": "a"},
        {"signal": "time", "score": 0.9, "detail": "onset 20s later", "matched": "a"}])
    assert views.join_reasons(m, {"a": "DBDown on db"}) == [
        "joined by topology (0.81): api calls db (1 hop) [with DBDown on db]",
        "joined by time (0.90): onset 20s later [with DBDown on db]"]
    seed = member("a", "DBDown", "db", T, joined=[{"signal": "seed", "score": 1.0, "detail": "first alert"}])
    assert views.join_reasons(seed, {}) == ["opened the incident: first alert"]


def test_list_filters_by_service_and_by_text_in_labels_and_annotations():
    s = snap(services=["api", "db"], title="db DBDown + 1 related alert")
    s["members"][1]["annotations"] = {"summary": "p99 2.3s"}
    assert views.matches_filters(s, "api", "") and not views.matches_filters(s, "web", "")
    assert views.matches_filters(s, "", "P99") and views.matches_filters(s, "", "alertname=highlatency")
    assert not views.matches_filters(s, "", "kafka")


def test_silence_matchers_from_labels_round_trip():
    """The form's default matchers parse back to matchers that select the alert."""
    from routing.matchers import parse_matchers

    labels = {"alertname": "Disk \"Full\"", "service": "db"}
    ms = parse_matchers(views.matchers_text(labels), "m")
    assert views.preview(ms, [{"labels": labels}, {"labels": {**labels, "service": "x"}}]) == [{"labels": labels}]
