"""Alertmanager's inhibition rules (inhibit/inhibit.go, 0.25) as pure decisions.

A firing source alert (matching a rule's source matchers) mutes a target alert (matching its target
matchers) when every `equal` label has the same value on both, a missing label counting as "".
If the target also matches the rule's source side, only sources that do NOT match the target side
may mute it; that keeps two alerts that match both sides from muting each other (and an alert from
muting itself).

State lives with the caller. The intended index: for each rule i and each firing alert a with
`rule.is_source(a.labels)`, file (a.fingerprint, a.labels) under (i, rule.equal_key(a.labels)).
Then `inhibited(rules, labels, fp, lookup)` with `lookup(i, equal_key)` returning those pairs.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from service.core.errors import ConfigError

from routing.matchers import Matcher, check_label_name, matchers_from_config, matches_all

INHIBIT_KEYS = frozenset(
    {
        "source_match",
        "source_match_re",
        "source_matchers",
        "target_match",
        "target_match_re",
        "target_matchers",
        "equal",
        "name",  # optional; Alertmanager 0.29+ has it, Tocsin accepts it everywhere
    }
)

# firing_sources(rule_index, equal_key) -> (fingerprint, labels) of firing source alerts of that rule.
SourceLookup = Callable[[int, str], Iterable[tuple[str, Mapping[str, str]]]]


@dataclass(frozen=True)
class InhibitRule:
    source_matchers: list[Matcher]
    target_matchers: list[Matcher]
    equal: tuple[str, ...]  # sorted, de-duplicated label names
    name: str = ""

    @classmethod
    def from_config(cls, d: dict, path: str) -> InhibitRule:
        """One entry of `inhibit_rules`: source_/target_ matchers (new and old style) and `equal`."""
        if not isinstance(d, dict):
            raise ConfigError(path, f"inhibit rule must be a mapping, got {type(d).__name__}")
        for k in d:
            if k not in INHIBIT_KEYS:
                raise ConfigError(f"{path}.{k}", "unknown field in inhibit rule")
        source = matchers_from_config(
            d, path, eq_key="source_match", re_key="source_match_re", list_key="source_matchers"
        )
        target = matchers_from_config(
            d, path, eq_key="target_match", re_key="target_match_re", list_key="target_matchers"
        )
        raw_equal = d.get("equal")
        if raw_equal is None:
            raw_equal = []
        if not isinstance(raw_equal, list):
            raise ConfigError(f"{path}.equal", "must be a list of label names")
        for i, ln in enumerate(raw_equal):
            check_label_name(ln, f"{path}.equal[{i}]", "label name in equal list")
        name = d.get("name") or ""
        if not isinstance(name, str):
            raise ConfigError(f"{path}.name", "must be a string")
        return cls(source_matchers=source, target_matchers=target, equal=tuple(sorted(set(raw_equal))), name=name)

    def is_source(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.source_matchers, labels)

    def is_target(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.target_matchers, labels)

    def equal_key(self, labels: Mapping[str, str]) -> str:
        """A stable string of the `equal` labels' values (missing = ""), to index sources by."""
        return json.dumps([labels.get(n, "") for n in self.equal], ensure_ascii=False, separators=(",", ":"))

    def equal_labels_match(self, a: Mapping[str, str], b: Mapping[str, str]) -> bool:
        return all(a.get(n, "") == b.get(n, "") for n in self.equal)


def inhibited_by(
    rules: list[InhibitRule], target_labels: Mapping[str, str], target_fp: str, firing_sources: SourceLookup
) -> str | None:
    """The fingerprint of a firing alert that inhibits the target, or None (AM's Inhibitor.Mutes).

    Rules are tried in order and the first inhibiting source wins, as in Alertmanager 0.25, which
    records one inhibitor per alert. `firing_sources` must return only firing (unresolved) alerts;
    they are re-checked here against the source matchers and `equal`, so a coarse index is safe.
    """
    for i, rule in enumerate(rules):
        if not rule.is_target(target_labels):
            continue
        two_sided = rule.is_source(target_labels)
        for fp, labels in firing_sources(i, rule.equal_key(target_labels)):
            if fp == target_fp:
                continue
            if not rule.is_source(labels) or not rule.equal_labels_match(labels, target_labels):
                continue
            if two_sided and rule.is_target(labels):
                continue
            return fp
    return None


def inhibited(
    rules: list[InhibitRule], target_labels: Mapping[str, str], target_fp: str, firing_sources: SourceLookup
) -> bool:
    """AM's Inhibitor.Mutes: is the target muted by any rule? See `inhibited_by`."""
    return inhibited_by(rules, target_labels, target_fp, firing_sources) is not None


def parse_inhibit_rules(items: list[dict] | None, path: str = "inhibit_rules") -> list[InhibitRule]:
    """The top-level `inhibit_rules` list."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError(path, "must be a list of inhibit rules")
    return [InhibitRule.from_config(d, f"{path}[{i}]") for i, d in enumerate(items)]
