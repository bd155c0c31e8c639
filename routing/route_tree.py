"""Alertmanager's routing tree (config/config.go validation + dispatch/route.go semantics, 0.25).

Build it once per config load with `Route.from_config(cfg["route"])`; then, per alert,
`root.match(labels)` gives the routes (hence receivers) it reaches, `route.group_labels(labels)`
its group labels there, and `group_key(route, group_labels)` Alertmanager's aggregation-group key.
Everything here is pure: no I/O, no clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

from service.core.errors import ConfigError

from routing.durations import parse_duration
from routing.matchers import LABEL_NAME_RE, Matcher, go_quote, matchers_from_config, matches_all, matchers_key

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0

ROUTE_KEYS = frozenset(
    {
        "receiver",
        "group_by",
        "match",
        "match_re",
        "matchers",
        "mute_time_intervals",
        "active_time_intervals",
        "continue",
        "routes",
        "group_wait",
        "group_interval",
        "repeat_interval",
        "tocsin",
    }
)


@dataclass(frozen=True)
class RouteOpts:
    """The options in force at a route, after inheritance (AM's RouteOpts)."""

    receiver: str
    group_by: tuple[str, ...]  # sorted label names
    group_by_all: bool  # group_by: ['...']
    group_wait: float
    group_interval: float
    repeat_interval: float
    mute_time_intervals: tuple[str, ...]  # not inherited, as in Alertmanager
    active_time_intervals: tuple[str, ...]  # not inherited, as in Alertmanager


def labelset_string(labels: Mapping[str, str]) -> str:
    """prometheus/common model.LabelSet.String(): sorted `name="value"` strings joined by ", "."""
    return "{" + ", ".join(sorted(f"{k}={go_quote(v)}" for k, v in labels.items())) + "}"


def _str_list(v: Any, path: str) -> list[str]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise ConfigError(path, f"must be a list of strings, got {type(v).__name__}")
    for i, s in enumerate(v):
        if not isinstance(s, str):
            raise ConfigError(f"{path}[{i}]", f"must be a string, got {type(s).__name__}")
    return list(v)


ROOT_DEFAULTS = RouteOpts(
    receiver="",
    group_by=(),
    group_by_all=False,
    group_wait=DEFAULT_GROUP_WAIT,
    group_interval=DEFAULT_GROUP_INTERVAL,
    repeat_interval=DEFAULT_REPEAT_INTERVAL,
    mute_time_intervals=(),
    active_time_intervals=(),
)


def route_id(parent_id: str, matchers: str, same_matchers_before: int) -> str:
    """A route's identity: its parent's id, "/", its own sorted matchers (AM's Matchers.String()), and "/n" for the
    n-th (n >= 1) sibling with the same matchers.

    Alertmanager's Route.ID() is Route.Key() + "/" + the position among all siblings; Alertmanager can afford the
    position because it keeps groups in memory and rebuilds them on reload, and keys its notification log by the
    group key, which has no position. Tocsin keys stored group state (membership, notification log) by route id,
    so the id counts only siblings with the same matchers: inserting, removing or moving a route never changes the
    id of a route with other matchers, and the ids stay unique in the tree.
    """
    own = matchers if same_matchers_before == 0 else f"{matchers}/{same_matchers_before}"
    return f"{parent_id}/{own}"


def _assign_ids(route: "Route") -> None:
    """Give every route below `route` its `route_id` (the root's id is its key, "{}")."""
    seen: dict[str, int] = {}
    for child in route.routes:
        own = matchers_key(child.matchers)
        child.id = route_id(route.id, own, seen.get(own, 0))
        seen[own] = seen.get(own, 0) + 1
        _assign_ids(child)


def _receiver(d: dict, path: str, is_root: bool) -> str | None:
    receiver = d.get("receiver")
    if receiver is not None and not isinstance(receiver, str):
        raise ConfigError(f"{path}.receiver", "must be a string")
    if is_root and not receiver:
        raise ConfigError(f"{path}.receiver", "root route must specify a default receiver")
    return receiver


def _continue(d: dict, path: str, is_root: bool) -> bool:
    cont = d.get("continue", False)
    if cont is None:
        cont = False
    if not isinstance(cont, bool):
        raise ConfigError(f"{path}.continue", "must be true or false")
    if is_root and cont:
        raise ConfigError(f"{path}.continue", "cannot have continue in root route")
    return cont


def _own_extra(d: dict, path: str) -> dict:
    own_extra = d.get("tocsin")
    if own_extra is None:
        return {}
    if not isinstance(own_extra, dict):
        raise ConfigError(f"{path}.tocsin", "must be a mapping")
    return own_extra


def _group_by(d: dict, path: str) -> tuple[list[str], bool]:
    """The route's own group_by: (label names, '...' given)."""
    gb_names: list[str] = []
    gb_all = False
    for i, ln in enumerate(_str_list(d.get("group_by"), f"{path}.group_by")):
        if ln == "...":
            gb_all = True
            continue
        if not LABEL_NAME_RE.fullmatch(ln):
            raise ConfigError(f"{path}.group_by[{i}]", f"invalid label name {ln!r} in group_by list")
        if ln in gb_names:
            raise ConfigError(f"{path}.group_by[{i}]", f"duplicated label {ln!r} in group_by")
        gb_names.append(ln)
    if gb_names and gb_all:
        raise ConfigError(f"{path}.group_by", "cannot have wildcard group_by (`...`) and other labels at the same time")
    return gb_names, gb_all


def _durations(d: dict, path: str) -> dict[str, float | None]:
    durations: dict[str, float | None] = {}
    for name in ("group_wait", "group_interval", "repeat_interval"):
        v = d.get(name)
        durations[name] = None if v is None else parse_duration(v, f"{path}.{name}")
    for name in ("group_interval", "repeat_interval"):
        if durations[name] == 0:
            raise ConfigError(f"{path}.{name}", f"{name} cannot be zero")
    return durations


def _intervals(d: dict, path: str, is_root: bool) -> tuple[list[str], list[str]]:
    mute = _str_list(d.get("mute_time_intervals"), f"{path}.mute_time_intervals")
    active = _str_list(d.get("active_time_intervals"), f"{path}.active_time_intervals")
    if is_root and mute:
        raise ConfigError(f"{path}.mute_time_intervals", "root route must not have any mute time intervals")
    if is_root and active:
        raise ConfigError(f"{path}.active_time_intervals", "root route must not have any active time intervals")
    return mute, active


def _inherit(p: RouteOpts, receiver: str | None, group_by: tuple[list[str], bool],
             durations: dict[str, float | None], intervals: tuple[list[str], list[str]]) -> RouteOpts:
    """AM's NewRoute: unset options come from the parent. An empty `group_by: []` inherits the parent's grouping."""
    gb_names, gb_all = group_by
    by, by_all = p.group_by, p.group_by_all
    if gb_names:
        by, by_all = tuple(sorted(gb_names)), False
    elif gb_all:
        by_all = True

    def pick(name: str) -> float:
        v = durations[name]
        return getattr(p, name) if v is None else v

    return RouteOpts(
        receiver=receiver or p.receiver, group_by=by, group_by_all=by_all, group_wait=pick("group_wait"),
        group_interval=pick("group_interval"), repeat_interval=pick("repeat_interval"),
        mute_time_intervals=tuple(intervals[0]), active_time_intervals=tuple(intervals[1]),
    )


class Route:
    """A node of the routing tree.

    id: the route's identity (`route_id`): matchers-based, unique in the tree, and stable when other routes are
        inserted or removed, e.g. '{}' (root), '{}/{team="a"}', '{}/{team="a"}/{env="prod"}', '{}/{page="yes"}/1'.
    key: Alertmanager's Route.Key() (parent key + "/" + matchers), not unique in general.
    path: the config path of this route ("route", "route.routes[1]"), for error messages.
    extra: Tocsin's own per-route keys (the `tocsin:` mapping), merged key by key over the parent's.
    """

    __slots__ = ("id", "key", "path", "matchers", "continue_", "routes", "opts", "parent", "extra", "own_extra")

    def __init__(
        self,
        *,
        id: str,
        key: str,
        path: str,
        matchers: list[Matcher],
        continue_: bool,
        opts: RouteOpts,
        parent: Route | None,
        extra: dict,
        own_extra: dict,
    ) -> None:
        self.id = id
        self.key = key
        self.path = path
        self.matchers = matchers
        self.continue_ = continue_
        self.routes: list[Route] = []
        self.opts = opts
        self.parent = parent
        self.extra = extra
        self.own_extra = own_extra

    def __repr__(self) -> str:
        return f"<Route {self.id} {self.key} receiver={self.opts.receiver!r}>"

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_config(cls, d: dict, path: str = "route", parent: Route | None = None) -> Route:
        """Validate one route mapping (and its children) as AM's config.go does and build the tree.

        Children inherit unset options from their parent (AM's NewRoute). ConfigError names the
        path of the offending field, e.g. "route.routes[1].group_wait".
        """
        if not isinstance(d, dict):
            raise ConfigError(path, f"route must be a mapping, got {type(d).__name__}")
        for k in d:
            if k not in ROUTE_KEYS:
                raise ConfigError(f"{path}.{k}", "unknown field in route")
        is_root = parent is None
        receiver = _receiver(d, path, is_root)
        matchers = matchers_from_config(d, path)
        if is_root and matchers:
            raise ConfigError(path, "root route must not have any matchers")
        cont = _continue(d, path, is_root)
        own_extra = _own_extra(d, path)
        p_opts, p_extra = (ROOT_DEFAULTS, {}) if parent is None else (parent.opts, parent.extra)
        opts = _inherit(p_opts, receiver, _group_by(d, path), _durations(d, path), _intervals(d, path, is_root))
        key = (parent.key + "/" if parent is not None else "") + matchers_key(matchers)
        route = cls(id=key, key=key, path=path, matchers=matchers, continue_=cont,
                    opts=opts, parent=parent, extra={**p_extra, **own_extra}, own_extra=dict(own_extra))
        children = d.get("routes")
        if children is not None and not isinstance(children, list):
            raise ConfigError(f"{path}.routes", "must be a list of routes")
        route.routes = [cls.from_config(cd, f"{path}.routes[{i}]", route) for i, cd in enumerate(children or [])]
        if parent is None:
            _assign_ids(route)
        return route

    # -- queries --------------------------------------------------------------------------------

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """AM's Route.Match: depth-first, left to right; the first matching child stops the search
        unless it has `continue: true`; a matching route with no matching child matches itself."""
        if not matches_all(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            hits = child.match(labels)
            found.extend(hits)
            if hits and not child.continue_:
                break
        if not found:
            found.append(self)
        return found

    def walk(self) -> Iterator[Route]:
        """Every route of the subtree, depth-first, parent before children."""
        yield self
        for child in self.routes:
            yield from child.walk()

    def by_id(self) -> dict[str, Route]:
        return {r.id: r for r in self.walk()}

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """AM's getGroupLabels: the alert's labels named in group_by (all of them for '...')."""
        if self.opts.group_by_all:
            return dict(labels)
        return {k: v for k, v in labels.items() if k in self.opts.group_by}

    def receivers(self) -> set[str]:
        return {r.opts.receiver for r in self.walk()}

    def time_interval_names(self) -> set[str]:
        out: set[str] = set()
        for r in self.walk():
            out.update(r.opts.mute_time_intervals)
            out.update(r.opts.active_time_intervals)
        return out

    def check_references(self, receivers: set[str] | Mapping[str, Any], time_intervals: set[str] | Mapping[str, Any]) -> None:
        """AM's checkReceiver/checkTimeInterval: every named receiver and time interval exists.

        Raises ConfigError at the path of the first offending field (children first, as AM does).
        """
        for child in self.routes:
            child.check_references(receivers, time_intervals)
        own_receiver = self.opts.receiver if (self.parent is None or self.opts.receiver != self.parent.opts.receiver) else None
        if own_receiver is not None and own_receiver not in receivers:
            raise ConfigError(f"{self.path}.receiver", f"undefined receiver {own_receiver!r} used in route")
        for field_name in ("active_time_intervals", "mute_time_intervals"):
            for i, name in enumerate(getattr(self.opts, field_name)):
                if name not in time_intervals:
                    raise ConfigError(f"{self.path}.{field_name}[{i}]", f"undefined time interval {name!r} used in route")


def group_key(route: Route, group_labels: Mapping[str, str]) -> str:
    """AM's aggrGroup.GroupKey(): route key + ":" + the group labels' LabelSet.String()."""
    return f"{route.key}:{labelset_string(group_labels)}"
