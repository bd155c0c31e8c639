"""The scenarios. Timers are compressed: group_wait 1s, group_interval 2s (so a group whose first alert
arrives at t flushes at t+1, t+3, t+5, ...), repeat_interval 1h unless a scenario is about it, and
resolve_timeout 3s. Every step keeps >= 0.5 s from any timer boundary, so Alertmanager's own result is
deterministic; alerts resolved by an update carry an endsAt slightly before the update's post time
(an endsAt still in the future would not count as resolved when merged). Each scenario finishes within
~13 s of start, well before Alertmanager's 30 s empty-group garbage collection tick (dispatch.go: an
emptied group lives on until that tick, so an alert re-joining it waits for the group's next
group_interval tick rather than group_wait; refire_after_resolved is timed so both readings agree).

`expect` holds what Alertmanager 0.25 sends (compare.summarise): `@second path {groupLabels} status: alerts`.
"""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from .lang import Scenario, alert, at, expire, post, silence, snapshot

TIMERS = "group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h"


def config(route: str, receivers: dict[str, bool], extra: str = "", resolve_timeout: str = "3s") -> str:
    """An Alertmanager config: `route` is the body of the root route (indented two spaces);
    `receivers` maps each webhook receiver's name to its send_resolved."""
    recv = "\n".join(
        f"- name: '{name}'\n  webhook_configs:\n  - url: 'CAPTURE/{name}'\n    send_resolved: {str(sr).lower()}"
        for name, sr in receivers.items())
    return (f"global:\n  resolve_timeout: {resolve_timeout}\nroute:\n  {route.strip()}\n"
            f"receivers:\n{recv}\n{extra}")


S: list[Scenario] = []


def scenario(name: str, config: str, steps: list, settle: float, expect: list[str], doc: str,
             expect_api: tuple[int, ...] = ()) -> None:
    S.append(Scenario(name, config, tuple(steps), settle, tuple(expect), doc, expect_api))


ONE = {"web": True}

scenario(
    "group_wait_batching",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A", i="1"))),
     at(0.2, post(alert(0.2, 60, alertname="B", i="1"))),
     at(0.5, post(alert(0.5, 60, alertname="A", i="2")))],
    4.0,
    ["@1 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}",
     "@1 web {alertname=B} firing: +{alertname=B,i=1}"],
    "Alerts of one group arriving within group_wait go out in one notification; groups flush separately.",
)

scenario(
    "group_interval_new_alert",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A", i="1"))),
     at(2.0, post(alert(2.0, 60, alertname="A", i="2")))],
    6.0,
    ["@1 web {alertname=A} firing: +{alertname=A,i=1}",
     "@3 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}"],
    "A new alert in a flushed group is sent at the next group_interval tick, not at once; no repeat after.",
)

scenario(
    "repeat_interval",
    config("receiver: web\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n"
           "  repeat_interval: 5s", ONE),
    [at(0.0, post(alert(0, 60, alertname="A")))],
    10.0,
    ["@1 web {alertname=A} firing: +{alertname=A}",
     "@7 web {alertname=A} firing: +{alertname=A}"],
    "An unchanged group is re-sent at the first group_interval tick after repeat_interval has elapsed.",
)

scenario(
    "send_resolved_true",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A", i="1"), alert(0, 60, alertname="A", i="2"))),
     at(2.0, post(alert(0, 1.9, alertname="A", i="1"))),
     at(4.0, post(alert(0, 3.9, alertname="A", i="2")))],
    6.5,
    ["@1 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}",
     "@3 web {alertname=A} firing: -{alertname=A,i=1} +{alertname=A,i=2}",
     "@5 web {alertname=A} resolved: -{alertname=A,i=2}"],
    "With send_resolved, one alert resolving re-notifies; resolved alerts are dropped from the group once sent.",
)

scenario(
    "send_resolved_false",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", {"web": False}),
    [at(0.0, post(alert(0, 60, alertname="A", i="1"), alert(0, 60, alertname="A", i="2"))),
     at(2.0, post(alert(0, 1.9, alertname="A", i="1"))),
     at(4.0, post(alert(0, 3.9, alertname="A", i="2")))],
    6.5,
    ["@1 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}"],
    "Without send_resolved, neither a partial resolve nor the final all-resolved state is sent.",
)

scenario(
    "all_resolved",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A", i="1"), alert(0, 60, alertname="A", i="2"))),
     at(2.0, post(alert(0, 1.8, alertname="A", i="1"), alert(0, 1.9, alertname="A", i="2")))],
    6.0,
    ["@1 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}",
     "@3 web {alertname=A} resolved: -{alertname=A,i=1} -{alertname=A,i=2}"],
    "When every alert of a group resolves, one resolved notification carries them all, and nothing follows.",
)

scenario(
    "resolved_inside_group_wait",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A"), alert(0, 60, alertname="B"))),
     at(0.5, post(alert(0, 0.4, alertname="A")))],
    4.0,
    ["@1 web {alertname=B} firing: +{alertname=B}"],
    "An alert that fires and resolves inside group_wait is never notified.",
)

scenario(
    "continue_two_receivers",
    config(f"receiver: default\n  group_by: [alertname]\n  {TIMERS}\n  routes:\n"
           "  - receiver: team.x\n    match: {team: a}\n    continue: true\n"
           "  - receiver: web-b\n    match: {team: a}\n"
           "  - receiver: web-c\n    match: {team: a}\n",
           {"default": True, "team.x": True, "web-b": True, "web-c": True}),
    [at(0.0, post(alert(0, 60, alertname="A", team="a"), alert(0, 60, alertname="B", team="b")))],
    3.0,
    ["@1 default {alertname=B} firing: +{alertname=B,team=b}",
     "@1 team.x {alertname=A} firing: +{alertname=A,team=a}",
     "@1 web-b {alertname=A} firing: +{alertname=A,team=a}"],
    "`continue: true` sends to the next matching sibling too; the first match without it stops the walk.",
)

scenario(
    "nested_routes_timers",
    config(f"receiver: default\n  group_by: [alertname]\n  {TIMERS}\n  routes:\n"
           "  - receiver: ra\n    match: {team: a}\n    routes:\n"
           "    - receiver: rpage\n      match: {severity: page}\n      group_by: [alertname, severity]\n"
           "  - receiver: rb\n    match: {team: b}\n    group_wait: 3s\n    group_interval: 4s\n",
           {"default": True, "ra": True, "rpage": True, "rb": True}),
    [at(0.0, post(alert(0, 60, alertname="A", team="a"), alert(0, 60, alertname="B", team="b", i="1"),
                  alert(0, 60, alertname="P", team="a", severity="page"))),
     at(2.0, post(alert(2, 60, alertname="A", team="a", i="2"), alert(2, 60, alertname="B", team="b", i="2"))),
     at(4.0, post(alert(4, 60, alertname="B", team="b", i="3"))),
     at(4.5, snapshot("receivers", "", "?receiver=rb", "?receiver=r.*",
                      "?filter=team%3D~%22a%7Cb%22&filter=alertname!%3D%22P%22"))],
    8.0,
    ["@1 ra {alertname=A} firing: +{alertname=A,team=a}",
     "@1 rpage {alertname=P,severity=page} firing: +{alertname=P,severity=page,team=a}",
     "@3 ra {alertname=A} firing: +{alertname=A,team=a} +{alertname=A,i=2,team=a}",
     "@3 rb {alertname=B} firing: +{alertname=B,i=1,team=b} +{alertname=B,i=2,team=b}",
     "@7 rb {alertname=B} firing: +{alertname=B,i=1,team=b} +{alertname=B,i=2,team=b} +{alertname=B,i=3,team=b}"],
    "Child routes inherit timers and group_by unless they override them; a grandchild overrides group_by.",
)

scenario(
    "matcher_syntaxes",
    config(f"receiver: default\n  group_by: [alertname]\n  {TIMERS}\n  routes:\n"
           "  - receiver: r-match\n    match: {team: a}\n"
           "  - receiver: r-match-re\n    match_re: {service: 'api|web'}\n"
           "  - receiver: r-matchers\n    matchers: ['env!=\"dev\"', 'severity=~\"crit.*\"']\n"
           "  - receiver: r-neg-re\n    matchers: ['zone!~\"eu-.*\"', 'alertname=\"Z\"']\n",
           {"default": True, "r-match": True, "r-match-re": True, "r-matchers": True, "r-neg-re": True}),
    [at(0.0, post(alert(0, 60, alertname="A", team="a"),
                  alert(0, 60, alertname="B", service="api"),
                  alert(0, 60, alertname="C", service="api-2"),
                  alert(0, 60, alertname="D", env="prod", severity="critical"),
                  alert(0, 60, alertname="E", env="dev", severity="critical"),
                  alert(0, 60, alertname="F", severity="crit"),
                  alert(0, 60, alertname="Z", zone="us-1"),
                  alert(0, 60, alertname="Z", zone="eu-1")))],
    3.0,
    ["@1 default {alertname=C} firing: +{alertname=C,service=api-2}",
     "@1 default {alertname=E} firing: +{alertname=E,env=dev,severity=critical}",
     "@1 default {alertname=Z} firing: +{alertname=Z,zone=eu-1}",
     "@1 r-match {alertname=A} firing: +{alertname=A,team=a}",
     "@1 r-match-re {alertname=B} firing: +{alertname=B,service=api}",
     "@1 r-matchers {alertname=D} firing: +{alertname=D,env=prod,severity=critical}",
     "@1 r-matchers {alertname=F} firing: +{alertname=F,severity=crit}",
     "@1 r-neg-re {alertname=Z} firing: +{alertname=Z,zone=us-1}"],
    "match, match_re (anchored) and matchers (=, !=, =~, !~; a missing label is \"\") route alike.",
)

scenario(
    "group_by_all",
    config(f"receiver: web\n  group_by: ['...']\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A", i="1"), alert(0, 60, alertname="A", i="2"),
                  alert(0, 60, alertname="B")))],
    3.0,
    ["@1 web {alertname=A,i=1} firing: +{alertname=A,i=1}",
     "@1 web {alertname=A,i=2} firing: +{alertname=A,i=2}",
     "@1 web {alertname=B} firing: +{alertname=B}"],
    "group_by ['...'] puts every distinct label set in its own group.",
)

scenario(
    "group_by_missing_label",
    config(f"receiver: web\n  group_by: [alertname, cluster]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A", cluster="x", i="1"), alert(0, 60, alertname="A", cluster="x", i="2"),
                  alert(0, 60, alertname="A", i="3"), alert(0, 60, alertname="A", i="4")))],
    3.0,
    ["@1 web {alertname=A,cluster=x} firing: +{alertname=A,cluster=x,i=1} +{alertname=A,cluster=x,i=2}",
     "@1 web {alertname=A} firing: +{alertname=A,i=3} +{alertname=A,i=4}"],
    "Alerts lacking a group_by label share a group whose groupLabels omit it.",
)

scenario(
    "inhibition_equal_and_unmute",
    config(f"receiver: web\n  group_by: [alertname, cluster]\n  {TIMERS}", ONE,
           extra="inhibit_rules:\n- source_matchers: ['severity=\"critical\"']\n"
                 "  target_matchers: ['severity=\"warning\"']\n  equal: [cluster]\n"),
    [at(0.0, post(alert(0, 60, alertname="Down", severity="critical", cluster="x"))),
     at(0.2, post(alert(0.2, 60, alertname="Slow", severity="warning", cluster="x"),
                  alert(0.2, 60, alertname="Slow", severity="warning", cluster="y"))),
     at(2.0, snapshot("inhibited", "", "?inhibited=false", "?active=false", "?filter=severity%3D%22warning%22")),
     at(4.0, post(alert(0, 3.9, alertname="Down", severity="critical", cluster="x"))),
     at(4.4, snapshot("source_resolved"))],
    6.5,
    ["@1 web {alertname=Down,cluster=x} firing: +{alertname=Down,cluster=x,severity=critical}",
     "@1 web {alertname=Slow,cluster=y} firing: +{alertname=Slow,cluster=y,severity=warning}",
     "@5 web {alertname=Down,cluster=x} resolved: -{alertname=Down,cluster=x,severity=critical}",
     "@5 web {alertname=Slow,cluster=x} firing: +{alertname=Slow,cluster=x,severity=warning}"],
    "A firing source mutes targets with equal `equal` labels only; once it resolves the target is sent.",
)

scenario(
    "silence_then_expire",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, silence("s1", ("alertname", "=", "A"))),
     at(0.2, post(alert(0.2, 60, alertname="A"), alert(0.2, 60, alertname="B"))),
     at(2.2, snapshot("silenced", "", "?silenced=false", "?filter=alertname%3D%22A%22", "?receiver=web")),
     at(4.2, expire("s1")),
     at(4.6, snapshot("expired"))],
    6.5,
    ["@1 web {alertname=B} firing: +{alertname=B}",
     "@5 web {alertname=A} firing: +{alertname=A}"],
    "A silenced alert is not sent; after DELETE expires the silence it goes out at the next tick.",
)

scenario(
    "resolve_timeout",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE, resolve_timeout="4s"),
    [at(0.0, post(alert(alertname="A", i="1"), alert(alertname="A", i="2"))),
     at(2.0, post(alert(alertname="A", i="2"))),
     at(2.4, snapshot("after_repost"))],
    8.0,
    ["@1 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}",
     "@5 web {alertname=A} firing: -{alertname=A,i=1} +{alertname=A,i=2}",
     "@7 web {alertname=A} resolved: -{alertname=A,i=2}"],
    "An alert without endsAt resolves resolve_timeout after its last update; re-posting pushes that back.",
)

scenario(
    "resent_alerts",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 4.0, {"n": "0"}, alertname="A")))]
    + [at(k + 0.5, post(alert(0, k + 4.0, {"n": str(k)}, alertname="A"))) for k in range(1, 7)],
    12.0,
    ["@1 web {alertname=A} firing: +{alertname=A}",
     "@11 web {alertname=A} resolved: -{alertname=A}"],
    "Re-posting a firing alert every second sends nothing new; the newest annotations and endsAt win.",
)

scenario(
    "old_starts_at",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(-60, 60, alertname="A", i="1"), alert(0, 60, alertname="B"))),
     at(0.5, post(alert(0.5, 60, alertname="A", i="2")))],
    3.5,
    ["@0 web {alertname=A} firing: +{alertname=A,i=1}",
     "@1 web {alertname=B} firing: +{alertname=B}",
     "@2 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}"],
    "An alert whose startsAt is older than group_wait flushes its new group at once.",
)

scenario(
    "empty_label_values",
    config(f"receiver: web\n  group_by: [alertname, foo]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A", foo="", bar="x"))),
     at(1.5, snapshot("stored"))],
    3.0,
    ["@1 web {alertname=A} firing: +{alertname=A,bar=x}"],
    "Labels with empty values are dropped before fingerprinting and grouping.",
)

scenario(
    "batch_with_invalid_alert",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A"), alert(5, 1, alertname="Bad"), alert(0, 60),
                  alert(0, 60, **{"bad-name": "x"}), alert(0, 60, alertname="C"))),
     at(1.5, snapshot("stored"))],
    3.0,
    ["@1 web {alertname=A} firing: +{alertname=A}",
     "@1 web {alertname=C} firing: +{alertname=C}"],
    "A batch with invalid alerts (endsAt before startsAt, no labels, a bad label name) answers 400 but stores "
    "the valid ones.",
    expect_api=(400,),
)

_OTHER_MONTH = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
                "november", "december"][(datetime.now(ZoneInfo("Asia/Tokyo")).month + 5) % 12]
TIME_INTERVALS = (
    "time_intervals:\n- name: always\n  time_intervals:\n  - years: ['1999:2999']\n"
    "  - times: [{start_time: '00:00', end_time: '24:00'}]\n    weekdays: ['sunday:saturday']\n"
    "    location: Asia/Tokyo\n"
    "- name: never-tokyo\n  time_intervals:\n  - weekdays: ['sunday:saturday']\n"
    f"    months: ['{_OTHER_MONTH}']\n    location: Asia/Tokyo\n"
    "mute_time_intervals:\n- name: never\n  time_intervals:\n  - years: ['2001']\n")

scenario(
    "time_intervals",
    config(f"receiver: default\n  group_by: [alertname]\n  {TIMERS}\n  routes:\n"
           "  - receiver: muted-always\n    match: {team: a}\n    mute_time_intervals: [always]\n"
           "  - receiver: muted-never\n    match: {team: b}\n    mute_time_intervals: [never]\n"
           "  - receiver: active-always\n    match: {team: c}\n    active_time_intervals: [always]\n"
           "  - receiver: active-never\n    match: {team: d}\n    active_time_intervals: [never]\n"
           "  - receiver: active-never\n    match: {team: e}\n    active_time_intervals: [never-tokyo, never]\n"
           "  - receiver: muted-never\n    match: {team: f}\n    mute_time_intervals: [never-tokyo]\n",
           {"default": True, "muted-always": True, "muted-never": True, "active-always": True,
            "active-never": True}, extra=TIME_INTERVALS),
    [at(0.0, post(*(alert(0, 60, alertname="T", team=t) for t in "abcdef")))],
    3.0,
    ["@1 active-always {alertname=T} firing: +{alertname=T,team=c}",
     "@1 muted-never {alertname=T} firing: +{alertname=T,team=b}",
     "@1 muted-never {alertname=T} firing: +{alertname=T,team=f}"],
    "mute_time_intervals mute while active; active_time_intervals send only while active.",
)

scenario(
    "many_groups_one_batch",
    config(f"receiver: web\n  group_by: [alertname, region]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A", region="eu", i="1"), alert(0, 60, alertname="A", region="us", i="1"),
                  alert(0, 60, alertname="A", region="eu", i="2"), alert(0, 60, alertname="B", region="eu"),
                  alert(0, 60, {"summary": "b us"}, alertname="B", region="us")))],
    3.0,
    ["@1 web {alertname=A,region=eu} firing: +{alertname=A,i=1,region=eu} +{alertname=A,i=2,region=eu}",
     "@1 web {alertname=A,region=us} firing: +{alertname=A,i=1,region=us}",
     "@1 web {alertname=B,region=eu} firing: +{alertname=B,region=eu}",
     "@1 web {alertname=B,region=us} firing: +{alertname=B,region=us}"],
    "One batch spanning several groups yields one notification per group.",
)

scenario(
    "merge_keeps_explicit_later_ends",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A"))),
     at(2.0, post(alert(1.0, 4.0, {"v": "2"}, alertname="A")))],
    7.0,
    ["@1 web {alertname=A} firing: +{alertname=A}"],
    "An update whose endsAt is still future but earlier than the stored explicit endsAt keeps the later one.",
)

scenario(
    "jobs_and_instances_order",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A", instance="b"), alert(0, 60, alertname="A", job="z"),
                  alert(0, 60, alertname="A", job="a", instance="x"), alert(0, 60, alertname="A", zz="1"),
                  alert(0, 60, alertname="A", job="a", instance="c"))),
     at(1.5, snapshot("stored"))],
    3.0,
    ["@1 web {alertname=A} firing: +{alertname=A,instance=c,job=a} +{alertname=A,instance=x,job=a} "
     "+{alertname=A,job=z} +{alertname=A,instance=b} +{alertname=A,zz=1}"],
    "Alerts in a notification are ordered by job, then instance, then the whole label set.",
)

scenario(
    "inhibit_two_sided",
    config(f"receiver: web\n  group_by: [alertname, cluster]\n  {TIMERS}", ONE,
           extra="inhibit_rules:\n- source_matchers: ['severity=~\"critical|warning\"']\n"
                 "  target_matchers: ['severity=\"warning\"']\n  equal: [cluster]\n"),
    [at(0.0, post(alert(0, 60, alertname="Crit", severity="critical", cluster="x"),
                  alert(0, 60, alertname="Warn", severity="warning", cluster="x"),
                  alert(0, 60, alertname="Warn", severity="warning", cluster="y"))),
     at(1.5, snapshot("inhibited"))],
    3.0,
    ['@1 web {alertname=Crit,cluster=x} firing: +{alertname=Crit,cluster=x,severity=critical}',
     '@1 web {alertname=Warn,cluster=y} firing: +{alertname=Warn,cluster=y,severity=warning}'],
    "An alert matching both sides of a rule is muted only by a source that does not match the target side.",
)

scenario(
    "silence_partial_group",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A", i="1"), alert(0, 60, alertname="A", i="2"))),
     at(1.5, silence("s", ("i", "=~", "1|9"), ("env", "!=", "prod"))),
     at(3.5, post(alert(0, 3.4, alertname="A", i="2"))),
     at(2.0, snapshot("silenced")),
     at(6.0, expire("s"))],
    8.5,
    ['@1 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}',
     '@5 web {alertname=A} resolved: -{alertname=A,i=2}',
     '@7 web {alertname=A} firing: +{alertname=A,i=1}'],
    "Silenced alerts are left out of the group: its resolved partner is sent alone; after expiry it fires again.",
)

scenario(
    "group_key_quoting",
    config(f"receiver: web\n  group_by: [alertname, path]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, {"summary": 'line1\nline2 "q"'}, alertname="Q", path='C:\\dir "x" ü')))],
    3.0,
    ['@1 web {alertname=Q,path=C:\\dir "x" ü} firing: +{alertname=Q,path=C:\\dir "x" ü}'],
    "Label values with quotes, backslashes and non-ASCII are quoted in the groupKey the way Go's %q does.",
)

scenario(
    "webhook_max_alerts",
    "global:\n  resolve_timeout: 3s\nroute:\n  receiver: web\n  group_by: [alertname]\n  " + TIMERS + "\n"
    "receivers:\n- name: web\n  webhook_configs:\n  - url: 'CAPTURE/web'\n    send_resolved: true\n"
    "    max_alerts: 2\n",
    [at(0.0, post(alert(0, 60, {"summary": "s", "x": "1"}, alertname="A", i="1"),
                  alert(0, 60, {"summary": "s"}, alertname="A", i="2"),
                  alert(0, 60, {"summary": "other"}, alertname="A", i="3")))],
    3.0,
    ['@1 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}'],
    "max_alerts truncates the alerts (truncatedAlerts counts the rest); common labels/annotations use the kept ones.",
)

scenario(
    "starts_from_ends",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(None, 60, alertname="A", i="1"), alert(None, None, alertname="A", i="2"))),
     at(1.5, snapshot("stored"))],
    3.0,
    ['@1 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}'],
    "A missing startsAt becomes endsAt when endsAt is given, else the receipt time.",
)

scenario(
    "refire_after_resolved",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A"))),
     at(2.0, post(alert(0, 1.9, alertname="A"))),
     at(4.0, post(alert(4.0, 60, alertname="A")))],
    6.5,
    ['@1 web {alertname=A} firing: +{alertname=A}',
     '@3 web {alertname=A} resolved: -{alertname=A}',
     '@5 web {alertname=A} firing: +{alertname=A}'],
    "An alert that fires again after its resolved notification is sent again with its new startsAt.",
)

scenario(
    "pending_silence_hides_resolve",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A"))),
     at(0.5, silence("later", ("alertname", "=", "A"), starts=2.5)),
     at(1.5, snapshot("pending")),
     at(3.5, post(alert(0, 3.4, alertname="A"))),
     at(4.0, snapshot("active")),
     at(6.0, expire("later"))],
    8.0,
    ["@1 web {alertname=A} firing: +{alertname=A}"],
    "A silence starting later is pending until then; an alert resolving while silenced is never sent resolved.",
)

scenario(
    "duplicate_in_batch",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, {"v": "1"}, alertname="A"), alert(0, 60, {"v": "2"}, alertname="A"))),
     at(1.5, snapshot("stored"))],
    3.0,
    ["@1 web {alertname=A} firing: +{alertname=A}"],
    "The same alert twice in one batch is stored once, with the later copy's annotations.",
)

scenario(
    "no_group_by_and_blackhole",
    config(f"receiver: web\n  {TIMERS}\n  routes:\n  - receiver: blackhole\n    match: {{team: void}}\n", ONE,
           extra="- name: blackhole\n"),
    [at(0.0, post(alert(0, 60, alertname="A"), alert(0, 60, alertname="B", team="x"),
                  alert(0, 60, alertname="C", team="void")))],
    3.0,
    ["@1 web {} firing: +{alertname=A} +{alertname=B,team=x}"],
    "Without group_by every alert of a route shares one group; a receiver with no integrations sends nothing.",
)

scenario(
    "merge_keeps_earliest_starts",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, post(alert(0, 60, alertname="A"))),
     at(2.0, post(alert(1.0, 59, {"v": "2"}, alertname="A"))),
     at(4.0, post(alert(1.0, 3.9, {"v": "3"}, alertname="A")))],
    6.5,
    ["@1 web {alertname=A} firing: +{alertname=A}", "@5 web {alertname=A} resolved: -{alertname=A}"],
    "Overlapping updates keep the earliest startsAt; an explicit resolve sets endsAt; newest annotations win.",
)

scenario(
    "zero_group_wait_default_send_resolved",
    "global:\n  resolve_timeout: 3s\nroute:\n  receiver: web\n  group_by: [alertname]\n  group_wait: 0s\n"
    "  group_interval: 2s\n  repeat_interval: 1h\nreceivers:\n- name: web\n  webhook_configs:\n"
    "  - url: 'CAPTURE/web'\n",
    [at(0.0, post(alert(0, 60, alertname="A", i="1"))),
     at(1.0, post(alert(1.0, 60, alertname="A", i="2"))),
     at(3.0, post(alert(0, 2.9, alertname="A", i="1")))],
    5.0,
    ["@0 web {alertname=A} firing: +{alertname=A,i=1}",
     "@2 web {alertname=A} firing: +{alertname=A,i=1} +{alertname=A,i=2}",
     "@4 web {alertname=A} firing: -{alertname=A,i=1} +{alertname=A,i=2}"],
    "group_wait 0s flushes a new group at once; a webhook's send_resolved defaults to true.",
)

scenario(
    "inhibit_equal_label_missing",
    config(f"receiver: web\n  group_by: [alertname, cluster]\n  {TIMERS}", ONE,
           extra="inhibit_rules:\n- source_match: {severity: critical}\n  target_match_re: {severity: 'warn.*'}\n"
                 "  equal: [cluster, zone]\n"),
    [at(0.0, post(alert(0, 60, alertname="Down", severity="critical"),
                  alert(0, 60, alertname="Slow", severity="warning"),
                  alert(0, 60, alertname="Slow", severity="warning", cluster="x"),
                  alert(0, 60, alertname="Slow", severity="warn", zone="")))],
    3.0,
    ["@1 web {alertname=Down} firing: +{alertname=Down,severity=critical}",
     "@1 web {alertname=Slow,cluster=x} firing: +{alertname=Slow,cluster=x,severity=warning}"],
    "`equal` labels missing on both source and target count as equal (both empty); legacy match syntax works.",
)

scenario(
    "api_errors",
    config(f"receiver: web\n  group_by: [alertname]\n  {TIMERS}", ONE),
    [at(0.0, silence("past", ("alertname", "=", "A"), starts=-10, ends=-5)),
     at(0.1, silence("no-matchers")),
     at(0.2, silence("backwards", ("alertname", "=", "A"), starts=20, ends=10)),
     at(0.3, silence("empty-regex-all", ("alertname", "=~", ".*"))),
     # (DELETE of an unknown, well-formed id is left out: 0.25 answers 500, later versions 404.)
     at(0.45, expire("raw:not-a-uuid")),
     at(0.5, post()),
     at(0.6, snapshot("after"))],
    1.5,
    [],
    "The silences and alerts APIs refuse bad input with the same status codes (422: schema, 400: semantics).",
    expect_api=(400, 422, 400, 400, 422, 200),
)

SCENARIOS = {s.name: s for s in S}
assert len(SCENARIOS) == len(S), "scenario names must be unique"
# Run against two Alertmanagers in the suite: the harness's self-test (determinism of the scenarios).
SELF_TEST = ("group_interval_new_alert", "send_resolved_true", "silence_then_expire", "resolve_timeout")
