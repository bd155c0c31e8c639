"""Differential compatibility: each scenario runs against Alertmanager 0.25 and Tocsin side by side.

COMPAT_OTHER=alertmanager points the "other" side at a second Alertmanager (checks the harness and the
scenarios' determinism). COMPAT_CONCURRENCY bounds how many scenarios run at once (default 6).
All selected scenarios run once, concurrently, in a module fixture; each test reads its result.
"""
from __future__ import annotations

import asyncio
import os

import pytest

from .compare import differences, expectation_mismatch, explain
from .configs import CONFIG_CASES
from .harness import Captured, RunResult, TargetRun, config_verdicts, run_many
from .lang import Scenario
from .scenarios import SCENARIOS, SELF_TEST

OTHER = os.environ.get("COMPAT_OTHER", "tocsin")
CONCURRENCY = int(os.environ.get("COMPAT_CONCURRENCY", "6"))
NAMES = sorted(SCENARIOS)


def _jobs_for(items) -> list[tuple[str, Scenario, tuple[str, str]]]:
    jobs: dict[str, tuple[str, Scenario, tuple[str, str]]] = {}
    for item in items:
        cs = getattr(item, "callspec", None)
        if cs is None or "scenario_name" not in cs.params or item.module.__name__ != __name__:
            continue
        name = cs.params["scenario_name"]
        if item.originalname == "test_alertmanager_is_deterministic":
            jobs[f"self:{name}"] = (f"self:{name}", SCENARIOS[name], ("alertmanager", "alertmanager"))
        else:
            jobs[f"diff:{name}"] = (f"diff:{name}", SCENARIOS[name], ("alertmanager", OTHER))
    return list(jobs.values())


@pytest.fixture(scope="module")
def runs(request, redis_url):
    """Every selected scenario's run, executed concurrently (bounded) once for the module."""
    return asyncio.run(run_many(_jobs_for(request.session.items), redis_url, CONCURRENCY))


def _get(runs, key: str) -> RunResult:
    r = runs[key]
    if isinstance(r, BaseException):
        raise r
    return r


@pytest.mark.parametrize("scenario_name", NAMES)
def test_differential(runs, scenario_name):
    """The other target sends exactly what Alertmanager 0.25 sends for the scenario."""
    result = _get(runs, f"diff:{scenario_name}")
    assert not differences(result), explain(result)


@pytest.mark.parametrize("scenario_name", NAMES)
def test_alertmanager_matches_expectation(runs, scenario_name):
    """Alertmanager 0.25 itself sends what the scenario documents, so the scenario tests what it claims."""
    result = _get(runs, f"diff:{scenario_name}")
    am = result.runs[0]
    expect_api = SCENARIOS[scenario_name].expect_api
    if expect_api:
        assert tuple(st for _, _, st in am.steps) == expect_api, f"Alertmanager answered {am.steps}"
    why = expectation_mismatch(am.notifications, result.t0, SCENARIOS[scenario_name].expect, am.late)
    assert why is None, f"Alertmanager, {scenario_name}: {why}"


@pytest.mark.parametrize("scenario_name", SELF_TEST)
def test_alertmanager_is_deterministic(runs, scenario_name):
    """Two Alertmanagers given the same timed scenario send the same notifications (harness self-test)."""
    result = _get(runs, f"self:{scenario_name}")
    assert not differences(result), explain(result)


@pytest.fixture(scope="module")
def config_runs(redis_url):
    """Whether each target starts with each config case (all cases at once, bounded)."""
    cases = {name: cfg for name, (cfg, _) in CONFIG_CASES.items()}
    return asyncio.run(config_verdicts(cases, ("alertmanager", OTHER), redis_url, CONCURRENCY))


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_config_acceptance(config_runs, case):
    """Alertmanager 0.25 and the other target agree on starting with, or refusing, the config."""
    (am_ok, am_log), (other_ok, other_log) = config_runs[case]
    assert am_ok == CONFIG_CASES[case][1], f"Alertmanager {'started' if am_ok else 'refused'}: {am_log[-600:]}"
    assert other_ok == am_ok, (
        f"config {case!r}: alertmanager {'started' if am_ok else 'refused'} ({am_log.strip()[-400:]!r}); "
        f"{OTHER} {'started' if other_ok else 'refused'} ({other_log.strip()[-600:]!r})\n"
        f"config:\n{CONFIG_CASES[case][0]}")


def _run(at: float, status: str, label: str) -> TargetRun:
    body = {"version": "4", "groupKey": '{}:{alertname="A"}', "status": status, "receiver": "web",
            "groupLabels": {"alertname": "A"}, "commonLabels": {"alertname": "A"}, "commonAnnotations": {},
            "truncatedAlerts": 0,
            "alerts": [{"status": status, "labels": {"alertname": "A"}, "annotations": {},
                        "startsAt": "2026-01-01T00:00:00.5Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "", "fingerprint": "0123456789abcdef"}]}
    return TargetRun(label, "alertmanager", [Captured(at, "web", body)], [(0.0, "post alerts", 200)])


def test_comparator_reports_both_sides():
    """A status mismatch is reported with the field, both values, and both sides rendered in full."""
    t0 = 1767225600.0  # 2026-01-01T00:00:00Z
    sc = Scenario("synthetic", "", (), 1.0)
    result = RunResult(sc, t0, [_run(1.0, "firing", "am"), _run(1.1, "resolved", "other")])
    diffs = differences(result)
    assert any("status am='firing' other='resolved'" in d for d in diffs), diffs
    msg = explain(result)
    assert "#1 @1.00s firing" in msg and "#1 @1.10s resolved" in msg and "starts=+0.500" in msg


def test_comparator_flags_late_arrival_and_missing_notification():
    """A notification arriving beyond the tolerance, or one side sending fewer, is a difference."""
    t0 = 1767225600.0
    sc = Scenario("synthetic", "", (), 1.0)
    late = RunResult(sc, t0, [_run(1.0, "firing", "am"), _run(2.0, "firing", "other")])
    assert any("arrived at 1.00s (am) vs 2.00s (other)" in d for d in differences(late))
    missing = RunResult(sc, t0, [_run(1.0, "firing", "am"), TargetRun("other", "tocsin", [], [(0.0, "post alerts", 200)])])
    assert any("1 notification(s) from am" in d and "0 from other" in d for d in differences(missing))


def test_expectation_allows_for_a_late_driver_only():
    """A documented `@1` matches an arrival near 1 s, or later by as much as the driver's steps were late."""
    t0 = 1767225600.0
    want = ("@1 web {alertname=A} firing: +{alertname=A}",)
    on_time, late = _run(1.1, "firing", "am").notifications, _run(2.1, "firing", "am").notifications
    assert expectation_mismatch(on_time, t0, want, late=0.0) is None
    assert "nothing matched" in expectation_mismatch(late, t0, want, late=0.0)
    assert expectation_mismatch(late, t0, want, late=0.3) is None
    assert expectation_mismatch(_run(1.8, "firing", "am").notifications, t0, want, late=0.0) is None
    resolved = _run(1.0, "resolved", "am").notifications
    assert "nothing matched" in expectation_mismatch(resolved, t0, want, late=1.0)
    assert "unexpected" in expectation_mismatch(on_time + late, t0, want, late=1.0)
    assert "nothing matched" in expectation_mismatch([], t0, want, late=0.0)
