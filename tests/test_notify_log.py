"""The notification-log decision, table-driven like Alertmanager's own TestDedupStageNeedsUpdate."""
import pytest

from service.pipeline.notify_log import ALL_RESOLVED, FIRST, NEW_ALERTS, REPEAT, RESOLVED, Entry, needs_update

F = frozenset
NOW = 1000.0
REP = 300.0


@pytest.mark.parametrize(
    "entry, firing, resolved, send_resolved, want",
    [
        (None, F({"a"}), F(), True, FIRST),
        (None, F(), F({"a"}), True, None),  # resolved within group_wait: never notified
        (Entry(F({"a"}), F(), NOW - 10), F({"a", "b"}), F(), True, NEW_ALERTS),
        (Entry(F({"a", "b"}), F(), NOW - 10), F({"a"}), F({"b"}), True, RESOLVED),
        (Entry(F({"a", "b"}), F(), NOW - 10), F({"a"}), F({"b"}), False, None),
        (Entry(F({"a"}), F(), NOW - 10), F(), F({"a"}), False, ALL_RESOLVED),
        (Entry(F(), F({"a"}), NOW - 10), F(), F({"a"}), True, None),
        (Entry(F({"a"}), F(), NOW - REP - 1), F({"a"}), F(), True, REPEAT),
        (Entry(F({"a"}), F(), NOW - REP + 1), F({"a"}), F(), True, None),
        (Entry(F({"a", "b"}), F({"c"}), NOW - 10), F({"a"}), F({"c"}), True, None),
    ],
)
def test_needs_update(entry, firing, resolved, send_resolved, want):
    """Each combination of log entry and current alert sets gives Alertmanager's decision and reason."""
    assert needs_update(entry, firing, resolved, send_resolved, REP, NOW) == want


def test_entry_round_trips():
    """A log entry survives its JSON form unchanged."""
    e = Entry(F({"x", "y"}), F({"z"}), 12.5)
    assert Entry.from_json(e.to_json()) == e


def test_fingerprint_matches_alertmanager_and_the_reference_implementation():
    """The fingerprint is Alertmanager's (FNV-1a 64 over sorted name/value pairs), with or without the C hash."""
    from service.core.models import _fnv1a_64, _fnv1a_64_py, fingerprint

    assert fingerprint({"alertname": "X", "severity": "page"}) == "1efb09bd1b43c88a"
    assert fingerprint({}) == "cbf29ce484222325"
    for data in (b"", b"a\xffb\xff", "ü\xff😀".encode() * 50):
        assert _fnv1a_64(data) == _fnv1a_64_py(data)
