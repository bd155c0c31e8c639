"""The routing tree: Alertmanager 0.25's config validation, inheritance, matching and group keys."""
from __future__ import annotations

import pytest
import yaml

from routing.durations import format_duration, parse_duration
from routing.route_tree import Route, RouteOpts, group_key, labelset_string
from service.core.errors import ConfigError

TREE = """
receiver: default
group_by: [alertname]
routes:
- matchers: ['{owner="team-A"}', 'level!="critical"']
  receiver: team-a
  routes:
  - matchers: [env="testing", 'baz!~".*quux"']
    receiver: team-a-testing
    group_by: ['...']
  - match: {env: production}
    receiver: team-a-prod-1
    group_wait: 1m
    continue: true
  - match_re: {env: "produ.*", job: ".*"}
    receiver: team-a-prod-2
    group_wait: 30s
    group_interval: 5m
    repeat_interval: 1h
    group_by: [job]
- match_re: {owner: "team-(B|C)"}
  group_by: [foo, bar]
  group_wait: 2m
  receiver: team-bc
- matchers: [group_by="role"]
  group_by: [role]
  routes:
  - matchers: ['{env="testing"}']
    receiver: role-testing
    routes:
    - matchers: [wait="long"]
      group_wait: 2m
- matchers: [page="yes"]
  receiver: pager
  continue: true
- matchers: [page="yes"]
  receiver: page-log
"""

# labels -> [(receiver, route key, group key), ...] in match order
ROUTING_TABLE = [
    (
        {"owner": "team-A", "alertname": "X"},
        [("team-a", '{}/{level!="critical",owner="team-A"}', '{}/{level!="critical",owner="team-A"}:{alertname="X"}')],
    ),
    (
        {"owner": "team-A", "env": "unset"},
        [("team-a", '{}/{level!="critical",owner="team-A"}', '{}/{level!="critical",owner="team-A"}:{}')],
    ),
    (
        # level=critical fails team-A's route: falls through to the root
        {"owner": "team-A", "level": "critical", "alertname": "X"},
        [("default", "{}", '{}:{alertname="X"}')],
    ),
    (
        {"owner": "team-C", "foo": "1", "bar": "2", "baz": "3"},
        [("team-bc", '{}/{owner=~"^(?:team-(B|C))$"}', '{}/{owner=~"^(?:team-(B|C))$"}:{bar="2", foo="1"}')],
    ),
    (
        # group_by ['...']: every label is a group label
        {"owner": "team-A", "env": "testing", "x": "y"},
        [(
            "team-a-testing",
            '{}/{level!="critical",owner="team-A"}/{baz!~".*quux",env="testing"}',
            '{}/{level!="critical",owner="team-A"}/{baz!~".*quux",env="testing"}:{env="testing", owner="team-A", x="y"}',
        )],
    ),
    (
        # continue: true on the first production route lets the next one match too
        {"owner": "team-A", "env": "production", "job": "api", "alertname": "X"},
        [
            ("team-a-prod-1", '{}/{level!="critical",owner="team-A"}/{env="production"}',
             '{}/{level!="critical",owner="team-A"}/{env="production"}:{alertname="X"}'),
            ("team-a-prod-2", '{}/{level!="critical",owner="team-A"}/{env=~"^(?:produ.*)$",job=~"^(?:.*)$"}',
             '{}/{level!="critical",owner="team-A"}/{env=~"^(?:produ.*)$",job=~"^(?:.*)$"}:{job="api"}'),
        ],
    ),
    (
        # a route without a receiver inherits its parent's
        {"group_by": "role", "role": "db"},
        [("default", '{}/{group_by="role"}', '{}/{group_by="role"}:{role="db"}')],
    ),
    (
        {"group_by": "role", "env": "testing", "wait": "long", "role": "db"},
        [("role-testing", '{}/{group_by="role"}/{env="testing"}/{wait="long"}',
          '{}/{group_by="role"}/{env="testing"}/{wait="long"}:{role="db"}')],
    ),
    (
        # continue at the top level: both sibling routes get it
        {"page": "yes", "alertname": "Down"},
        [("pager", '{}/{page="yes"}', '{}/{page="yes"}:{alertname="Down"}'),
         ("page-log", '{}/{page="yes"}', '{}/{page="yes"}:{alertname="Down"}')],
    ),
    ({}, [("default", "{}", "{}:{}")]),
]


@pytest.fixture(scope="module")
def tree() -> Route:
    return Route.from_config(yaml.safe_load(TREE))


@pytest.mark.parametrize("labels,want", ROUTING_TABLE)
def test_routing_table(tree, labels, want):
    """Each label set reaches exactly the receivers, route keys and group keys Alertmanager gives."""
    got = [(r.opts.receiver, r.key, group_key(r, r.group_labels(labels))) for r in tree.match(labels)]
    assert got == want


def test_inherited_options(tree):
    """Children inherit unset receiver, group_by and timers from their parent (AM's NewRoute)."""
    by_receiver = {r.opts.receiver: r for r in tree.walk()}
    assert tree.opts == RouteOpts(
        receiver="default", group_by=("alertname",), group_by_all=False,
        group_wait=30.0, group_interval=300.0, repeat_interval=14400.0,
        mute_time_intervals=(), active_time_intervals=(),
    )
    assert by_receiver["team-a-prod-1"].opts.group_wait == 60.0
    assert by_receiver["team-a-prod-1"].opts.group_by == ("alertname",)
    assert by_receiver["team-a-prod-2"].opts.repeat_interval == 3600.0
    assert by_receiver["team-bc"].opts.group_by == ("bar", "foo")  # sorted
    assert by_receiver["team-a-testing"].opts.group_by_all is True
    wait_long = tree.routes[2].routes[0].routes[0]
    assert (wait_long.opts.receiver, wait_long.opts.group_wait, wait_long.opts.group_by) == (
        "role-testing", 120.0, ("role",))


def test_walk_order_and_ids(tree):
    """walk() is depth-first, parent first; ids are paths of matchers, unique in the tree."""
    assert [r.opts.receiver for r in tree.walk()] == [
        "default", "team-a", "team-a-testing", "team-a-prod-1", "team-a-prod-2",
        "team-bc", "default", "role-testing", "role-testing", "pager", "page-log",
    ]
    ids = [r.id for r in tree.walk()]
    assert ids[:4] == ["{}", '{}/{level!="critical",owner="team-A"}',
                       '{}/{level!="critical",owner="team-A"}/{baz!~".*quux",env="testing"}',
                       '{}/{level!="critical",owner="team-A"}/{env="production"}']
    assert ids[-2:] == ['{}/{page="yes"}', '{}/{page="yes"}/1']
    assert '{}/{group_by="role"}/{env="testing"}/{wait="long"}' in ids and len(set(ids)) == len(ids)
    assert tree.by_id()['{}/{owner=~"^(?:team-(B|C))$"}'].opts.receiver == "team-bc"


def test_ids_do_not_change_when_routes_with_other_matchers_are_added_or_removed():
    """Inserting a route above others, or removing one, keeps every other route's id; only a sibling with the same
    matchers shifts the count of the ones after it."""
    def ids(*children: str) -> dict[str, str]:
        root = Route.from_config(yaml.safe_load("receiver: r\nroutes:\n" + "\n".join(children)))
        return {r.opts.receiver: r.id for r in root.walk() if r.parent is not None}

    a, b, a2 = "- {matchers: [team=a], receiver: a}", "- {matchers: [team=b], receiver: b}", \
        "- {matchers: [team=a], receiver: a2}"
    assert ids(a) == {"a": '{}/{team="a"}'}
    assert ids(b, a) == {"b": '{}/{team="b"}', "a": '{}/{team="a"}'}
    assert ids(a, a2) == {"a": '{}/{team="a"}', "a2": '{}/{team="a"}/1'}
    assert ids(b, a, b, a2) == {"b": '{}/{team="b"}/1', "a": '{}/{team="a"}', "a2": '{}/{team="a"}/1'}


def test_keys_are_not_unique_but_ids_are(tree):
    """Two sibling routes with the same matchers share AM's key but not their id."""
    pager, log = tree.routes[3], tree.routes[4]
    assert pager.key == log.key and pager.id != log.id


def test_receivers_and_time_interval_names():
    """receivers() and time_interval_names() collect names across the whole tree."""
    root = Route.from_config(yaml.safe_load("""
receiver: a
routes:
- {receiver: b, matchers: [x=1], mute_time_intervals: [nights], active_time_intervals: [office]}
- {matchers: [x=2], routes: [{receiver: c, mute_time_intervals: [weekends]}]}
"""))
    assert root.receivers() == {"a", "b", "c"}
    assert root.time_interval_names() == {"nights", "office", "weekends"}


def test_time_intervals_are_not_inherited():
    """A child does not inherit its parent's mute/active time intervals (AM's NewRoute)."""
    root = Route.from_config(yaml.safe_load("""
receiver: a
routes:
- matchers: [x=1]
  mute_time_intervals: [nights]
  active_time_intervals: [office]
  routes: [{matchers: [y=1]}]
"""))
    child = root.routes[0].routes[0]
    assert root.routes[0].opts.mute_time_intervals == ("nights",)
    assert child.opts.mute_time_intervals == () and child.opts.active_time_intervals == ()


def test_group_by_inheritance_edges():
    """'...' is inherited; a child's own names override it; an empty group_by list inherits."""
    root = Route.from_config(yaml.safe_load("""
receiver: r
routes:
- matchers: [env=parent]
  group_by: ['...']
  routes:
  - matchers: [env=child1]
  - matchers: [env=child2]
    group_by: [foo]
  - matchers: [env=child3]
    group_by: []
"""))
    parent = root.routes[0]
    c1, c2, c3 = parent.routes
    assert parent.opts.group_by_all and c1.opts.group_by_all and c3.opts.group_by_all
    assert not c2.opts.group_by_all and c2.opts.group_by == ("foo",)


def test_group_labels_omit_missing_labels():
    """Group labels are the alert's labels named in group_by; absent ones are left out."""
    root = Route.from_config({"receiver": "r", "group_by": ["cluster", "alertname"]})
    assert root.group_labels({"alertname": "X", "job": "j"}) == {"alertname": "X"}


def test_labelset_string_matches_go():
    """LabelSet.String sorts the `name="value"` strings, so a0 sorts before a, and %q-quotes values."""
    assert labelset_string({"a": "1", "a0": "2", "b": 'q"\n'}) == '{a0="2", a="1", b="q\\"\\n"}'
    assert labelset_string({}) == "{}"


def test_tocsin_extra_is_inherited_key_by_key():
    """The `tocsin:` mapping is accepted, kept raw, and merged over the parent's key by key."""
    root = Route.from_config(yaml.safe_load("""
receiver: r
tocsin: {escalation: default, summarise: true}
routes:
- matchers: [team=db]
  tocsin: {escalation: db-oncall}
  routes: [{matchers: [sev=page]}]
"""))
    child = root.routes[0]
    assert child.extra == {"escalation": "db-oncall", "summarise": True}
    assert child.own_extra == {"escalation": "db-oncall"}
    assert child.routes[0].extra == child.extra
    assert root.extra == {"escalation": "default", "summarise": True}


CONFIG_ERRORS = [
    ("group_by: [a]", "route.receiver", "root route must specify a default receiver"),
    ("receiver: r\nmatchers: [a=b]", "route", "root route must not have any matchers"),
    ("receiver: r\nmatch: {a: b}", "route", "root route must not have any matchers"),
    ("receiver: r\ncontinue: true", "route.continue", "cannot have continue in root route"),
    ("receiver: r\nmute_time_intervals: [x]", "route.mute_time_intervals", "root route must not"),
    ("receiver: r\nactive_time_intervals: [x]", "route.active_time_intervals", "root route must not"),
    ("receiver: r\nrecevier: typo", "route.recevier", "unknown field"),
    ("receiver: r\ngroup_by: ['...', a]", "route.group_by", "cannot have wildcard group_by"),
    ("receiver: r\ngroup_by: [a, b, a]", "route.group_by[2]", "duplicated label 'a' in group_by"),
    ("receiver: r\ngroup_by: [a-b]", "route.group_by[0]", "invalid label name"),
    ("receiver: r\ngroup_wait: 30", "route.group_wait", "no unit"),
    ("receiver: r\ngroup_wait: 1.5m", "route.group_wait", "not a valid duration"),
    ("receiver: r\ngroup_interval: 0s", "route.group_interval", "group_interval cannot be zero"),
    ("receiver: r\nrepeat_interval: '0'", "route.repeat_interval", "repeat_interval cannot be zero"),
    ("receiver: r\nroutes: [{matchers: [a=b]}, {group_wait: soon}]", "route.routes[1].group_wait",
     "not a valid duration"),
    ("receiver: r\nroutes: [{routes: [{match_re: {env: '('}}]}]", "route.routes[0].routes[0].match_re.env",
     "missing closing )"),
    ("receiver: r\nroutes: [{matchers: ['a==\"b']}]", "route.routes[0].matchers[0]", "unescaped double quote"),
    ("receiver: r\nroutes: [{continue: 'yes'}]", "route.routes[0].continue", "true or false"),
    ("receiver: r\nroutes: {a: 1}", "route.routes", "list"),
    ("receiver: r\nroutes: [[]]", "route.routes[0]", "mapping"),
    ("receiver: r\ntocsin: [1]", "route.tocsin", "mapping"),
    ("receiver: 5", "route.receiver", "string"),
]


@pytest.mark.parametrize("text,path,msg", CONFIG_ERRORS)
def test_config_errors_name_the_path(text, path, msg):
    """Invalid route config is rejected as Alertmanager rejects it, naming the offending field."""
    with pytest.raises(ConfigError) as ei:
        Route.from_config(yaml.safe_load(text))
    assert ei.value.path == path
    assert msg in ei.value.message


def test_zero_group_wait_is_allowed():
    """group_wait may be zero (only group_interval and repeat_interval may not)."""
    assert Route.from_config({"receiver": "r", "group_wait": "0s"}).opts.group_wait == 0.0


def test_check_references():
    """Undefined receivers and time intervals are reported at the route that names them."""
    root = Route.from_config(yaml.safe_load("""
receiver: r
routes:
- matchers: [a=1]
  routes: [{receiver: ghost}]
- {matchers: [a=2], mute_time_intervals: [known, unknown]}
"""))
    with pytest.raises(ConfigError) as ei:
        root.check_references({"r"}, {"known", "unknown"})
    assert (ei.value.path, ei.value.message) == ("route.routes[0].routes[0].receiver",
                                                 "undefined receiver 'ghost' used in route")
    with pytest.raises(ConfigError) as ei:
        root.check_references({"r", "ghost"}, {"known"})
    assert ei.value.path == "route.routes[1].mute_time_intervals[1]"
    root.check_references({"r", "ghost"}, {"known", "unknown"})


# Prometheus durations, as route timers use them: (text, seconds)
DURATIONS = [
    ("0", 0.0), ("0s", 0.0), (0, 0.0), ("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0),
    ("1d", 86400.0), ("1w", 604800.0), ("1y", 31536000.0), ("1y2w3d4h5m6s7ms", 33019506.007), ("90m", 5400.0),
]


@pytest.mark.parametrize("text,seconds", DURATIONS)
def test_parse_duration(text, seconds):
    """Prometheus duration strings convert to seconds, units in y-w-d-h-m-s-ms order."""
    assert parse_duration(text, "route.group_wait") == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["", "1.5h", "30m1h", "1h1h", "-5m", "5 m", "5M", "1s500", "s", True, 30, 1.5, None, "300y"]
)
def test_parse_duration_rejects(value):
    """Anything Prometheus' ParseDuration refuses (and numbers other than 0) is a ConfigError at the path."""
    with pytest.raises(ConfigError) as ei:
        parse_duration(value, "route.routes[3].repeat_interval")
    assert ei.value.path == "route.routes[3].repeat_interval"


def test_parse_duration_numbers_as_seconds_opt_in():
    """Tocsin's own keys may opt in to plain numbers as seconds; negatives stay errors."""
    assert parse_duration(90, "tocsin.x", numbers_as_seconds=True) == 90.0
    with pytest.raises(ConfigError):
        parse_duration(-1, "tocsin.x", numbers_as_seconds=True)


@pytest.mark.parametrize("seconds,text", [(0, "0s"), (0.5, "500ms"), (5400, "1h30m"), (86400, "1d"), (14400, "4h")])
def test_format_duration(seconds, text):
    """format_duration spells seconds the way Prometheus prints a model.Duration."""
    assert format_duration(seconds) == text
