"""Inhibition rules: Alertmanager 0.25's Inhibitor.Mutes as a pure decision over an index of sources."""
from __future__ import annotations

from collections import defaultdict

import pytest
import yaml

from routing.inhibition import InhibitRule, inhibited, inhibited_by, parse_inhibit_rules
from service.core.errors import ConfigError
from service.core.models import fingerprint


def index(rules: list[InhibitRule], firing: list[dict[str, str]]):
    """The lookup the caller keeps: firing source alerts per (rule, equal key)."""
    idx: dict[tuple[int, str], list] = defaultdict(list)
    for labels in firing:
        for i, rule in enumerate(rules):
            if rule.is_source(labels):
                idx[(i, rule.equal_key(labels))].append((fingerprint(labels), labels))
    return lambda i, key: idx.get((i, key), [])


def muted(rules, firing, target) -> bool:
    return inhibited(rules, target, fingerprint(target), index(rules, firing))


RULES = parse_inhibit_rules(yaml.safe_load("""
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [alertname, cluster]
- source_match: {alertname: NodeDown}
  target_match_re: {alertname: "Disk.*|CPU.*"}
  equal: [node]
"""))

# (firing alerts, target, muted?)
CASES = [
    # source and target agree on every equal label
    ([{"alertname": "HighLatency", "cluster": "eu", "severity": "critical"}],
     {"alertname": "HighLatency", "cluster": "eu", "severity": "warning"}, True),
    # an equal label differs
    ([{"alertname": "HighLatency", "cluster": "us", "severity": "critical"}],
     {"alertname": "HighLatency", "cluster": "eu", "severity": "warning"}, False),
    # equal label missing on both sides: "" == "", so it inhibits
    ([{"alertname": "HighLatency", "severity": "critical"}],
     {"alertname": "HighLatency", "severity": "warning"}, True),
    # missing on one side only: "" != "eu"
    ([{"alertname": "HighLatency", "severity": "critical"}],
     {"alertname": "HighLatency", "cluster": "eu", "severity": "warning"}, False),
    # no source firing
    ([], {"alertname": "HighLatency", "cluster": "eu", "severity": "warning"}, False),
    # target does not match the target side
    ([{"alertname": "HighLatency", "cluster": "eu", "severity": "critical"}],
     {"alertname": "HighLatency", "cluster": "eu", "severity": "info"}, False),
    # old-style source_match / target_match_re
    ([{"alertname": "NodeDown", "node": "n1"}], {"alertname": "DiskFull", "node": "n1"}, True),
    ([{"alertname": "NodeDown", "node": "n1"}], {"alertname": "DiskFull", "node": "n2"}, False),
    ([{"alertname": "NodeDown", "node": "n1"}], {"alertname": "MemoryFull", "node": "n1"}, False),
]


@pytest.mark.parametrize("firing,target,want", CASES)
def test_inhibition_table(firing, target, want):
    """A target is muted iff some firing source of a matching rule agrees on all `equal` labels."""
    assert muted(RULES, firing, target) is want


TWO_SIDED = parse_inhibit_rules(yaml.safe_load("""
- source_matchers: [alertname=~"Outage.*"]
  target_matchers: [alertname=~"Outage.*|Slow"]
  equal: [cluster]
"""))


def test_alert_does_not_inhibit_itself():
    """An alert matching both sides of a rule is not muted by itself."""
    a = {"alertname": "OutageA", "cluster": "eu"}
    assert not muted(TWO_SIDED, [a], a)


def test_two_sided_alerts_do_not_mute_each_other():
    """Two alerts that both match source and target sides do not inhibit one another."""
    a = {"alertname": "OutageA", "cluster": "eu"}
    b = {"alertname": "OutageB", "cluster": "eu"}
    assert not muted(TWO_SIDED, [a, b], a)
    assert not muted(TWO_SIDED, [a, b], b)


def test_two_sided_target_is_muted_by_a_pure_source():
    """A two-sided target is still muted by a source that does not itself match the target side."""
    rules = parse_inhibit_rules([{
        "source_matchers": ['severity=~"critical|page"'],
        "target_matchers": ['severity=~"critical|warning"'],
        "equal": ["cluster"],
    }])
    page = {"severity": "page", "cluster": "eu"}  # source only
    crit = {"severity": "critical", "cluster": "eu"}  # source and target
    assert muted(rules, [page, crit], crit)
    assert not muted(rules, [crit], crit)
    assert not muted(rules, [page], page)  # page is not a target at all


def test_one_sided_target_is_muted_by_a_two_sided_source():
    """A target that is not a source is muted even by a source that also matches the target side."""
    a = {"alertname": "OutageA", "cluster": "eu"}
    slow = {"alertname": "Slow", "cluster": "eu"}
    assert muted(TWO_SIDED, [a], slow)


def test_inhibited_by_returns_the_first_inhibiting_fingerprint():
    """inhibited_by names the source that mutes the target (the first rule, first source)."""
    src = {"alertname": "HighLatency", "cluster": "eu", "severity": "critical"}
    tgt = {"alertname": "HighLatency", "cluster": "eu", "severity": "warning"}
    assert inhibited_by(RULES, tgt, fingerprint(tgt), index(RULES, [src])) == fingerprint(src)
    assert inhibited_by(RULES, tgt, fingerprint(tgt), index(RULES, [])) is None


def test_lookup_results_are_rechecked():
    """Entries that a coarse index returns but that do not qualify (wrong side, other equal values) are ignored."""
    tgt = {"alertname": "HighLatency", "cluster": "eu", "severity": "warning"}
    bogus = [("f1", {"alertname": "HighLatency", "cluster": "us", "severity": "critical"}),
             ("f2", {"alertname": "HighLatency", "cluster": "eu", "severity": "info"}),
             (fingerprint(tgt), tgt)]
    assert not inhibited(RULES, tgt, fingerprint(tgt), lambda i, key: bogus)


def test_equal_key_is_stable_and_treats_missing_as_empty():
    """equal_key depends only on the `equal` labels' values, in sorted name order, missing = ""."""
    rule = RULES[0]
    assert rule.equal == ("alertname", "cluster")
    assert rule.equal_key({"cluster": "eu", "alertname": "X", "other": "1"}) == '["X","eu"]'
    assert rule.equal_key({"alertname": "X"}) == rule.equal_key({"alertname": "X", "cluster": ""})
    assert rule.equal_key({"alertname": "a,b"}) != rule.equal_key({"alertname": "a", "cluster": "b"})


def test_rule_without_equal_inhibits_any_target():
    """With no `equal` labels, any firing source mutes every matching target."""
    rules = parse_inhibit_rules([{"source_matchers": ["alertname=Maintenance"], "target_matchers": ['team="db"']}])
    assert muted(rules, [{"alertname": "Maintenance"}], {"alertname": "SlowQuery", "team": "db"})


def test_rule_matchers_merge_old_and_new_styles():
    """source_match, source_match_re and source_matchers all apply together."""
    rule = InhibitRule.from_config({
        "source_match": {"a": "1"}, "source_match_re": {"b": "x|y"}, "source_matchers": ["c!=z"],
        "target_matchers": ["t=1"],
    }, "inhibit_rules[0]")
    assert rule.is_source({"a": "1", "b": "y"})
    assert not rule.is_source({"a": "1", "b": "y", "c": "z"})
    assert not rule.is_source({"a": "1", "b": "xy"})


@pytest.mark.parametrize(
    "d,path,msg",
    [
        ({"equal": ["a-b"]}, "inhibit_rules[0].equal[0]", "invalid label name"),
        ({"equal": "cluster"}, "inhibit_rules[0].equal", "list"),
        ({"source_match_re": {"a": "(("}}, "inhibit_rules[0].source_match_re.a", "missing closing )"),
        ({"target_matchers": ['a="b']}, "inhibit_rules[0].target_matchers[0]", "unescaped double quote"),
        ({"source_match": {"a b": "c"}}, "inhibit_rules[0].source_match", "invalid label name"),
        ({"equals": ["a"]}, "inhibit_rules[0].equals", "unknown field"),
    ],
)
def test_rule_config_errors_name_the_path(d, path, msg):
    """Invalid inhibit rules are ConfigErrors at the offending field."""
    with pytest.raises(ConfigError) as ei:
        parse_inhibit_rules([d])
    assert ei.value.path == path and msg in ei.value.message
