"""Configs for the acceptance check: Alertmanager 0.25 and Tocsin must agree on starting or refusing each.

Each case is (config, does Alertmanager 0.25 start with it). The webhook URL is a dead local port: these
targets never notify.
"""
from __future__ import annotations

RECV = "receivers:\n- name: web\n  webhook_configs:\n  - url: 'http://127.0.0.1:9/x'\n"
ROUTE = "route:\n  receiver: web\n  group_by: [alertname]\n"


CONFIG_CASES: dict[str, tuple[str, bool]] = {
    "valid_minimal": (ROUTE + RECV, True),
    "valid_full": (
        "global:\n  resolve_timeout: 1m\n" + ROUTE +
        "  group_wait: 5s\n  group_interval: 1m\n  repeat_interval: 1h\n  routes:\n"
        "  - matchers: ['team=~\"a|b\"', 'env!=\"dev\"']\n    receiver: web\n    continue: true\n"
        "    mute_time_intervals: [weekend]\n"
        "  - match: {x: y}\n    match_re: {z: 'w.*'}\n    receiver: web\n    group_by: ['...']\n"
        + RECV +
        "inhibit_rules:\n- source_matchers: ['severity=\"critical\"']\n  target_matchers: ['severity=\"warning\"']\n"
        "  equal: [cluster]\n- source_match: {a: b}\n  target_match_re: {c: 'd|e'}\n"
        "time_intervals:\n- name: weekend\n  time_intervals:\n  - weekdays: ['saturday', 'sunday']\n"
        "    times: [{start_time: '08:00', end_time: '20:30'}]\n    location: Europe/Berlin\n",
        True),
    "weekday_range_backwards": (
        ROUTE + "  mute_time_intervals: [x]\n" + RECV +
        "time_intervals:\n- name: x\n  time_intervals:\n  - weekdays: ['monday:sunday']\n", False),
    "undefined_receiver": ("route:\n  receiver: nope\n" + RECV, False),
    "duplicate_receiver": (ROUTE + RECV + "- name: web\n", False),
    "undefined_time_interval": (ROUTE + "  routes:\n  - receiver: web\n    mute_time_intervals: [nope]\n" + RECV,
                                False),
    "bad_matcher_syntax": (ROUTE + "  routes:\n  - receiver: web\n    matchers: ['team ~ a']\n" + RECV, False),
    "bad_regex": (ROUTE + "  routes:\n  - receiver: web\n    match_re: {team: '(unclosed'}\n" + RECV, False),
    "root_route_with_matchers": (ROUTE + "  matchers: ['a=\"b\"']\n" + RECV, False),
    "root_route_continue": (ROUTE + "  continue: true\n" + RECV, False),
    "wildcard_group_by_mixed": ("route:\n  receiver: web\n  group_by: ['...', alertname]\n" + RECV, False),
    "duplicate_group_by": ("route:\n  receiver: web\n  group_by: [alertname, alertname]\n" + RECV, False),
    "unknown_top_level_field": (ROUTE + RECV + "frobnicate: true\n", False),
    "zero_group_interval": (ROUTE + "  group_interval: 0s\n" + RECV, False),
    "zero_repeat_interval": (ROUTE + "  repeat_interval: 0s\n" + RECV, False),
    "bad_duration": (ROUTE + "  group_wait: 5 minutes\n" + RECV, False),
    "bad_time_of_day": (
        ROUTE + "  mute_time_intervals: [x]\n" + RECV +
        "time_intervals:\n- name: x\n  time_intervals:\n  - times: [{start_time: '25:00', end_time: '26:00'}]\n",
        False),
    "bad_location": (
        ROUTE + "  mute_time_intervals: [x]\n" + RECV +
        "time_intervals:\n- name: x\n  time_intervals:\n  - location: Mars/Olympus\n", False),
    "webhook_without_url": (ROUTE + "receivers:\n- name: web\n  webhook_configs:\n  - send_resolved: true\n", False),
    "no_route": (RECV, False),
}

