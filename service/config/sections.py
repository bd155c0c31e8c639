"""Configuration: an Alertmanager configuration file, read as it is, plus Tocsin's own `tocsin:` section.

`load_config(path)` returns a fully validated `Config` or raises `ConfigErrors` listing every problem with the
path of the bad key. Alertmanager keys Tocsin does not implement are reported by name as warnings (they are
never silently ignored); keys that neither Alertmanager nor Tocsin know are errors.

`parse_config` reads one section per function (`_global_section`, `_tocsin_section`, `_receivers_section`,
`_route_section`, ...), each recording its problems in one `_Report`, so every problem of a file is reported at
once. `tocsin:` is a tree of strict pydantic models (unknown keys and bad values are errors with their path);
correlation, escalation and llm are validated once, by their own models, into `Config.extensions`. Every secret
(`x`, `x_file` or `x_env`) is read by `resolve_secret`.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from routing.durations import parse_duration
from routing.inhibition import InhibitRule
from routing.route_tree import Route
from routing.time_intervals import TimeInterval, parse_time_intervals

from service.core.errors import BadField, ConfigError, ConfigErrors, pydantic_errors

# Alertmanager's own top-level keys, and which of them Tocsin implements.
AM_TOP_LEVEL = {"global", "route", "receivers", "inhibit_rules", "time_intervals", "mute_time_intervals", "templates"}
AM_GLOBAL_SUPPORTED = {
    "resolve_timeout", "slack_api_url", "slack_api_url_file", "pagerduty_url", "http_config",
    "smtp_from", "smtp_hello", "smtp_smarthost", "smtp_auth_username", "smtp_auth_password",
    "smtp_auth_password_file", "smtp_auth_secret", "smtp_auth_identity", "smtp_require_tls", "opsgenie_api_key",
    "opsgenie_api_key_file", "opsgenie_api_url", "wechat_api_url", "wechat_api_secret", "wechat_api_corp_id",
    "victorops_api_key", "victorops_api_key_file", "victorops_api_url", "telegram_api_url", "webex_api_url",
}
AM_GLOBAL_KNOWN = set(AM_GLOBAL_SUPPORTED)
RECEIVER_INTEGRATIONS = {"webhook_configs", "slack_configs", "pagerduty_configs", "console_configs", "digest_configs",
                         "email_configs", "opsgenie_configs", "wechat_configs", "pushover_configs",
                         "victorops_configs", "telegram_configs", "webex_configs", "discord_configs",
                         "msteams_configs", "msteamsv2_configs", "sns_configs"}
# Alertmanager integrations Tocsin does not deliver (a route to a receiver with only these is an error).
RECEIVER_UNSUPPORTED = {"jira_configs", "rocketchat_configs", "incidentio_configs"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- secrets ---------------------------------------------------------------------------------------------------

def resolve_secret(section: Mapping[str, Any], name: str, path: str, *, required: bool = False) -> str | None:
    """The one way a secret is read from the configuration: `name` (the value), `name_file` (a file, trailing
    newline stripped) or `name_env` (an environment variable), at most one of them (exactly one when `required`).

    Raises ConfigError at the path of the key that is wrong; the secret itself never appears in the message."""
    given = [k for k in (name, f"{name}_file", f"{name}_env") if section.get(k) not in (None, "")]
    if len(given) > 1:
        raise ConfigError(f"{path}.{given[1]}", f"give only one of {name}, {name}_file, {name}_env")
    if not given:
        if required:
            raise ConfigError(f"{path}.{name}", f"one of {name}, {name}_file or {name}_env is required")
        return None
    key, value = given[0], section[given[0]]
    if not isinstance(value, str):
        raise ConfigError(f"{path}.{key}", "must be a string")
    if key == name:
        return value
    if key.endswith("_file"):
        try:
            return Path(value).read_text().strip()
        except OSError as e:
            raise ConfigError(f"{path}.{key}", f"cannot read {value}: {e.strerror}") from None
    got = os.environ.get(value)
    if not got:
        raise ConfigError(f"{path}.{key}", f"environment variable {value} is not set")
    return got


def _seconds(v: Any) -> float:
    try:
        return parse_duration(v, "", numbers_as_seconds=True)
    except ConfigError as e:
        raise ValueError(e.message) from None


# A Prometheus duration string ("90s", "1h30m") or a number of seconds, above zero.
PositiveDuration = Annotated[float, BeforeValidator(_seconds), Field(gt=0)]


# -- the `tocsin:` section, one model per sub-section ------------------------------------------------------------

class TokenConfig(_Strict):
    """A bearer token accepted on the ingest API. Give exactly one of token, token_file, token_env."""

    name: str
    token: str | None = None
    token_file: str | None = None
    token_env: str | None = None
    # "read": the GET doors of the API (alerts, silences, status, receivers, incidents), nothing that changes state
    sources: list[Literal["alerts", "alertmanager", "events", "api", "read", "all"]] = ["all"]

    def resolve(self) -> str:
        secret = resolve_secret(self.model_dump(), "token", "token", required=True)
        assert secret is not None
        return secret


class AuthConfig(_Strict):
    tokens: list[TokenConfig] = []


class RedisConfig(_Strict):
    # REDIS_URL overrides; unset: embedded. redis+cluster:// (rediss+cluster://) selects Redis Cluster.
    url: str | None = Field(None, pattern=r"^(redis|rediss|unix|redis\+cluster|rediss\+cluster)://")
    key_prefix: str = Field("tocsin", pattern=r"^[^{}\s]+$")  # braces would break the hash tags
    shards: int = Field(16, ge=1, le=1024)
    # The embedded Redis's append-only fsync policy: `always` (no acknowledged alert is lost even if the machine
    # crashes) or `everysec` (faster; up to a second of acknowledged writes lost in a machine crash).
    fsync: Literal["always", "everysec"] = "always"


class DeliveryConfig(_Strict):
    max_attempts: int = Field(40, ge=1)  # with backoff capped at 60 s: about 35 minutes of outage
    backoff_initial: PositiveDuration = 0.5
    backoff_max: PositiveDuration = 60.0
    timeout: PositiveDuration = 10.0

    @model_validator(mode="after")
    def _ordered(self) -> "DeliveryConfig":
        if self.backoff_max < self.backoff_initial:
            raise BadField("backoff_max", "must not be below backoff_initial")
        return self


class EventsConfig(_Strict):
    """POST /api/v1/events settings."""

    resolve_after: PositiveDuration | None = None  # how long an anomaly stays open; default resolve_timeout


class AlertmanagerDoorConfig(_Strict):
    """POST /api/v1/alertmanager settings."""

    # An upstream Alertmanager re-sends a firing alert only every repeat_interval (default 4h), not every minute
    # as Prometheus does: a firing alert from it stays open this long (set it above the upstream's
    # repeat_interval) unless a resolved notification comes first.
    resolve_after: PositiveDuration = 15000.0  # 4h10m


class SlackDoorConfig(_Strict):
    """`tocsin.slack`: the Slack interactivity door (buttons). The signing secret is read per request, so a
    reload rotates it."""

    signing_secret: str | None = None
    signing_secret_file: str | None = None
    signing_secret_env: str | None = None
    allowed_users: list[str] = []


class PagerDutyDoorConfig(_Strict):
    """`tocsin.pagerduty`: the PagerDuty webhook door (V3 webhook signatures)."""

    webhook_secret: str | None = None
    webhook_secret_file: str | None = None
    webhook_secret_env: str | None = None
    webhook_secrets: list[str] = []


class TocsinSection(_Strict):
    """Tocsin's own settings: the top-level `tocsin:` key of the configuration file.

    correlation, escalation and llm are validated by their own models (`Extensions`); slack and pagerduty by
    SlackDoorConfig and PagerDutyDoorConfig, and kept as the mappings their doors read."""

    listen: str = Field("127.0.0.1:9093", pattern=r"^.*:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}"
                                                   r"|655[0-2][0-9]|6553[0-5])$")
    external_url: str = Field("", pattern=r"^(https?://.+)?$")
    data_dir: str = Field(".tocsin", min_length=1)
    redis: RedisConfig = RedisConfig()
    auth: AuthConfig = AuthConfig()
    max_body_bytes: int = Field(10 * 2**20, ge=1)
    alert_retention: PositiveDuration = 3600.0  # resolved alerts are forgotten this long after they end
    delivery: DeliveryConfig = DeliveryConfig()
    events: EventsConfig = EventsConfig()
    alertmanager: AlertmanagerDoorConfig = AlertmanagerDoorConfig()
    correlation: dict[str, Any] = {}
    escalation: dict[str, Any] = {}
    llm: dict[str, Any] = {}
    slack: dict[str, Any] = {}
    pagerduty: dict[str, Any] = {}
    detect: dict[str, Any] = {}  # validated by service.config.detect (Tocsin's own detectors)
    # Accept routes to receivers none of whose integrations Tocsin can deliver (their notifications are then
    # logged and counted as failed). Off: such a configuration is an error.
    allow_undeliverable_receivers: bool = False


class EnvSettings(BaseSettings):
    """Settings from the environment; they override the file (secrets belong here or in *_file keys)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore")
    redis_url: str | None = None
    tocsin_key_prefix: str | None = None
    tocsin_data_dir: str | None = None


@dataclass
class Receiver:
    name: str
    integrations: list[tuple[str, dict[str, Any]]]  # ("webhook", config dict) in config order


@dataclass
class Config:
    source: str
    raw: dict[str, Any]
    resolve_timeout: float
    route: Route
    receivers: dict[str, Receiver]
    inhibit_rules: list[InhibitRule]
    inhibit_rule_ids: list[str]
    time_intervals: dict[str, list[TimeInterval]]
    templates: list[str]
    tocsin: TocsinSection
    global_: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    extensions: Extensions = field(default_factory=lambda: Extensions())
    events_resolve_after: float = 300.0  # tocsin.events.resolve_after, else resolve_timeout
    alertmanager_resolve_after: float = 15000.0  # tocsin.alertmanager.resolve_after
    go_templates: Any = None  # routing.gotemplate.Templates of the `templates:` files (None: Alertmanager's defaults)

    @property
    def hash(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()[:12]


class _Loader(yaml.SafeLoader):
    """YAML as Alertmanager (Go) reads it: no YAML 1.1 base-60 numbers, so `10:30` stays the string "10:30"."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    __import__("re").compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    __import__("re").compile(r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?"
                             r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."),
)


def _construct_mapping_no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    """Go's YAML decoder rejects a key given twice in one mapping (`field receiver already set`): so do we."""
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            hash(key)
        except TypeError:
            continue
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice (line {seen[key] + 1} and line "
                            f"{key_node.start_mark.line + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates)
_TRAILING_TAB = __import__("re").compile(r"[ \t]*\t[ \t]*(?=\r?$)", __import__("re").MULTILINE)


def go_yaml_text(text: str) -> str:
    """Text PyYAML reads as Go's YAML decoder reads it: a tab in the whitespace that ends a line (after a value,
    `smtp_require_tls: false<TAB>`) is accepted by Go and dropped here."""
    return _TRAILING_TAB.sub("", text) if "\t" in text else text


@dataclass
class _Report:
    """Problems found while reading a configuration: errors (the load fails) and warnings (it goes on)."""

    errors: list[ConfigError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, path: str, message: str) -> None:
        self.errors.append(ConfigError(path, message))

    def add(self, e: ConfigError | ConfigErrors) -> None:
        self.errors.extend(e.errors if isinstance(e, ConfigErrors) else [e])

    def model(self, cls: type[BaseModel], data: Any, path: str) -> Any:
        """`cls` validated from `data`, or None with the errors recorded at their paths."""
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            self.errors.extend(pydantic_errors(e, path))
            return None


def _mapping(raw: dict[str, Any], key: str, report: _Report) -> dict[str, Any]:
    v = raw.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        report.error(key, "must be a mapping")
        return {}
    return v


# -- one function per section -----------------------------------------------------------------------------------

def _read_yaml(text: str) -> dict[str, Any]:
    try:
        raw = yaml.load(go_yaml_text(text), Loader=_Loader) or {}
    except yaml.YAMLError as e:
        raise ConfigErrors([ConfigError("", f"not valid YAML: {e}")]) from None
    if not isinstance(raw, dict):
        raise ConfigErrors([ConfigError("", "the configuration must be a mapping")])
    return raw


def _top_level(raw: dict[str, Any], report: _Report) -> None:
    for key in raw:
        if key not in AM_TOP_LEVEL and key != "tocsin":
            report.error(str(key), "unknown key (not an Alertmanager or Tocsin setting)")


def _global_section(raw: dict[str, Any], report: _Report) -> tuple[dict[str, Any], float]:
    """Alertmanager's `global:`: (the mapping, resolve_timeout in seconds)."""
    g = _mapping(raw, "global", report)
    for key in g:
        if key not in AM_GLOBAL_KNOWN:
            report.error(f"global.{key}", "unknown key")
        elif key not in AM_GLOBAL_SUPPORTED:
            report.warnings.append(f"global.{key}: Alertmanager setting not supported by Tocsin; ignored")
    resolve_timeout = 300.0
    if "resolve_timeout" in g:
        try:
            resolve_timeout = parse_duration(g["resolve_timeout"], "global.resolve_timeout")
        except ConfigError as e:
            report.add(e)
    return g, resolve_timeout


def _secrets_section(tocsin: TocsinSection, report: _Report) -> None:
    """Every secret of `tocsin:` can be read now (a missing file or variable fails the load, not a request)."""
    for i, t in enumerate(tocsin.auth.tokens):
        try:
            value = resolve_secret(t.model_dump(), "token", f"tocsin.auth.tokens[{i}]", required=True)
            if not (value or "").strip():  # an empty token would let every request of its scope in
                kind = next((k for k in ("token", "token_file", "token_env") if getattr(t, k, None) is not None),
                            "token")
                report.add(ConfigError(f"tocsin.auth.tokens[{i}].{kind}", "the token is empty"))
        except ConfigError as e:
            report.add(e)
    for key, cls, secret in (("slack", SlackDoorConfig, "signing_secret"),
                             ("pagerduty", PagerDutyDoorConfig, "webhook_secret")):
        section = getattr(tocsin, key)
        if report.model(cls, section, f"tocsin.{key}") is not None:
            try:
                resolve_secret(section, secret, f"tocsin.{key}")
            except ConfigError as e:
                report.add(e)


def _tocsin_section(raw: dict[str, Any], env: EnvSettings, report: _Report) -> TocsinSection:
    """Tocsin's own `tocsin:` section, with the environment's overrides applied."""
    data = _mapping(raw, "tocsin", report)
    tocsin = report.model(TocsinSection, data, "tocsin") or TocsinSection()
    if env.redis_url:
        tocsin.redis.url = env.redis_url
    if env.tocsin_key_prefix:
        tocsin.redis.key_prefix = env.tocsin_key_prefix
    if env.tocsin_data_dir:
        tocsin.data_dir = env.tocsin_data_dir
    _secrets_section(tocsin, report)
    return tocsin


def _time_intervals_section(raw: dict[str, Any], report: _Report) -> dict[str, list[TimeInterval]]:
    """`time_intervals` and the deprecated top-level `mute_time_intervals`, by name."""
    intervals: dict[str, list[TimeInterval]] = {}
    for key in ("time_intervals", "mute_time_intervals"):
        try:
            parsed = parse_time_intervals(raw.get(key) or [], key)
        except ConfigError as e:
            report.add(e)
            continue
        for name, ivs in parsed.items():
            if name in intervals:
                report.error(key, f"time interval {name!r} is defined twice")
            intervals[name] = ivs
    return intervals


def _integrations(r: dict[str, Any], path: str, g: dict[str, Any], report: _Report,
                  undeliverable: dict[str, list[str]]) -> list[tuple[str, dict[str, Any]]]:
    """One receiver's integrations, ("webhook", config) in config order; each config keeps its `_path` and is
    validated as Alertmanager 0.25 validates it. Integrations Tocsin cannot deliver are noted in `undeliverable`."""
    out: list[tuple[str, dict[str, Any]]] = []
    name = str(r["name"])
    for key, value in r.items():
        if key == "name":
            continue
        if key in RECEIVER_UNSUPPORTED:
            # Kept as an integration whose every delivery fails: logged and counted, never silent.
            report.warnings.append(f"{path}.{key}: integration not supported by Tocsin; receiver {name!r} cannot "
                                   "deliver through it (each notification for it fails and is counted)")
            if value:
                undeliverable.setdefault(name, []).append(key)
        elif key not in RECEIVER_INTEGRATIONS:
            report.error(f"{path}.{key}", "unknown key")
            continue
        if value is None:  # `webhook_configs:` with nothing under it, as Go reads it: no integrations
            continue
        if not isinstance(value, list):
            report.error(f"{path}.{key}", "must be a list")
            continue
        kind = key.removesuffix("_configs")
        for j, c in enumerate(value):
            if not isinstance(c, dict):
                report.error(f"{path}.{key}[{j}]", "must be a mapping")
                continue
            for e in _receiver_checks(key, [c], g, path, j):
                report.add(e)
            out.append((kind, dict(c, _path=f"{path}.{key}[{j}]")))
    return out


def _receivers_section(raw: dict[str, Any], g: dict[str, Any], report: _Report
                       ) -> tuple[dict[str, Receiver], dict[str, list[str]]]:
    """The receivers, and for each the integrations Tocsin cannot deliver."""
    for e in _global_checks(g):
        report.add(e)
    receivers: dict[str, Receiver] = {}
    undeliverable: dict[str, list[str]] = {}
    items = raw.get("receivers") or []
    if not isinstance(items, list):
        report.error("receivers", "must be a list")
        items = []
    for i, r in enumerate(items):
        path = f"receivers[{i}]"
        if not isinstance(r, dict) or not r.get("name"):
            report.error(f"{path}.name", "every receiver needs a name")
            continue
        name = str(r["name"])
        if name in receivers:
            report.error(f"{path}.name", f"receiver {name!r} is defined twice")
        receivers[name] = Receiver(name, _integrations(r, path, g, report, undeliverable))
    return receivers, undeliverable


def _route_section(raw: dict[str, Any], receivers: dict[str, Receiver], intervals: dict[str, list[TimeInterval]],
                   report: _Report, undeliverable: dict[str, list[str]] | None = None,
                   allow_undeliverable: bool = False) -> Route | None:
    """The routing tree, and every receiver and time interval it names."""
    if "route" not in raw:
        report.error("route", "a root route is required")
        return None
    try:
        route = Route.from_config(raw["route"] or {}, "route")
    except (ConfigError, ConfigErrors) as e:
        report.add(e)
        return None
    for r in route.walk():
        inherited = r.parent is not None and r.parent.opts.receiver == r.opts.receiver
        if r.opts.receiver not in receivers and not inherited:  # report it where it is written, once
            report.error(f"{r.path}.receiver", f"undefined receiver {r.opts.receiver!r}")
        if not inherited and not allow_undeliverable:
            for e in _undeliverable_route(r, receivers, undeliverable):
                report.add(e)
        for key, names in (("mute_time_intervals", r.opts.mute_time_intervals),
                           ("active_time_intervals", r.opts.active_time_intervals)):
            for j, n in enumerate(names):
                if n not in intervals:
                    report.error(f"{r.path}.{key}[{j}]", f"undefined time interval {n!r}")
    return route


def _inhibit_section(raw: dict[str, Any], report: _Report) -> tuple[list[InhibitRule], list[str]]:
    """The inhibition rules, and a stable id per rule (its content's hash) for the Redis source index."""
    rules: list[InhibitRule] = []
    rule_ids: list[str] = []
    for i, d in enumerate(raw.get("inhibit_rules") or []):
        try:
            rules.append(InhibitRule.from_config(d, f"inhibit_rules[{i}]"))
            rule_ids.append(hashlib.sha1(repr(sorted((d or {}).items(), key=str)).encode()).hexdigest()[:12])
        except ConfigError as e:
            report.add(e)
    return rules, rule_ids


@dataclass(frozen=True)
class Extensions:
    """The validated correlation, LLM and escalation settings (service.correlation.CorrelationConfig,
    service.summaries.config.LLMConfig, service.incidents.policies.EscalationConfig)."""

    correlation: Any = None
    llm: Any = None
    escalation: Any = None


def _escalation_references(esc: Any, receivers: dict[str, Receiver], report: _Report) -> None:
    for name, p in esc.policies.items():
        for i, level in enumerate(p.levels):
            for j, t in enumerate(level.targets):
                if t.receiver not in receivers:
                    report.error(f"tocsin.escalation.policies.{name}.levels[{i}].targets[{j}].receiver",
                                 f"undefined receiver {t.receiver!r}")


class RouteTocsin(BaseModel):
    """A route's own `tocsin:` keys (inherited key by key by its children), validated at load time."""

    model_config = ConfigDict(extra="forbid")
    correlate: StrictBool = True  # false: plain Alertmanager groups on this route, no incidents
    escalation: str | None = None  # an escalation policy of tocsin.escalation.policies (null: none)
    min_confidence: float | None = Field(None, ge=0, le=1)  # overrides tocsin.correlation.min_confidence
    held_receiver: str | None = None  # where incidents held below min_confidence go (e.g. a digest receiver)


def _route_extras(route: Route | None, receivers: dict[str, Receiver], policies: set[str], report: _Report) -> None:
    for r in route.walk() if route is not None else ():
        got = report.model(RouteTocsin, r.own_extra, f"{r.path}.tocsin")
        if got is None:
            continue
        if got.escalation is not None and got.escalation not in policies:
            report.error(f"{r.path}.tocsin.escalation", f"undefined escalation policy {got.escalation!r}")
        if got.held_receiver is not None and got.held_receiver not in receivers:
            report.error(f"{r.path}.tocsin.held_receiver", f"undefined receiver {got.held_receiver!r}")


def _extensions_section(tocsin: TocsinSection, receivers: dict[str, Receiver], route: Route | None,
                        report: _Report) -> Extensions:
    """Tocsin's correlation, escalation and LLM sections and their references, validated once, with paths."""
    from service.incidents.policies import EscalationConfig

    from service.incidents.correlation import CorrelationConfig
    from service.summaries.config import LLMConfig

    correlation = report.model(CorrelationConfig, tocsin.correlation or {}, "tocsin.correlation")
    llm = None
    try:
        llm = LLMConfig.parse(tocsin.llm or {}, "tocsin.llm")
    except (ConfigError, ConfigErrors) as e:
        report.add(e)
    esc = None
    try:
        esc = report.model(EscalationConfig, tocsin.escalation or {}, "tocsin.escalation")
    except ConfigError as e:
        report.error(f"tocsin.escalation.{e.path}", e.message)
    if esc is not None:
        _escalation_references(esc, receivers, report)
    if tocsin.detect:
        from service.config.detect import section_errors  # only configs with detectors pay the import

        for e in section_errors(tocsin.detect):
            report.add(e)
    _route_extras(route, receivers, set(esc.policies) if esc is not None else set(), report)
    return Extensions(correlation, llm, esc)


def _templates_section(raw: dict[str, Any], base_dir: str | None, report: _Report) -> tuple[list[str], Any]:
    """The `templates:` globs and their parsed Go templates, loaded (and checked) with the config as Alertmanager
    does, relative to the config file's folder."""
    templates = raw.get("templates") or []
    if not isinstance(templates, list) or not all(isinstance(t, str) for t in templates):
        report.error("templates", "must be a list of file globs")
        return [], None
    if not templates:
        return [], None
    from routing.gotemplate import TemplateLoadError, Templates  # only configs with templates pay the import

    try:
        return list(templates), Templates.load(templates, base_dir or os.getcwd())
    except TemplateLoadError as e:
        report.error("templates", str(e))
        return list(templates), None


def parse_config(text: str, env: EnvSettings | None = None, base_dir: str | None = None) -> Config:
    """A fully validated Config from a configuration file's text, or ConfigErrors listing every problem."""
    raw = _read_yaml(text)
    report = _Report()
    _top_level(raw, report)
    g, resolve_timeout = _global_section(raw, report)
    tocsin = _tocsin_section(raw, env or EnvSettings(), report)
    intervals = _time_intervals_section(raw, report)
    receivers, undeliverable = _receivers_section(raw, g, report)
    route = _route_section(raw, receivers, intervals, report, undeliverable, tocsin.allow_undeliverable_receivers)
    rules, rule_ids = _inhibit_section(raw, report)
    extensions = _extensions_section(tocsin, receivers, route, report)
    templates, go_templates = _templates_section(raw, base_dir, report)
    if report.errors:
        raise ConfigErrors(report.errors)
    assert route is not None
    return Config(
        source=text, raw=raw, resolve_timeout=resolve_timeout, route=route, receivers=receivers,
        inhibit_rules=rules, inhibit_rule_ids=rule_ids, time_intervals=intervals, templates=templates,
        go_templates=go_templates,
        tocsin=tocsin, global_=dict(g), warnings=report.warnings, extensions=extensions,
        events_resolve_after=tocsin.events.resolve_after or resolve_timeout,
        alertmanager_resolve_after=tocsin.alertmanager.resolve_after,
    )


def _undeliverable_route(r: Route, receivers: dict[str, Receiver], undeliverable: dict[str, list[str]]
                         ) -> list[ConfigError]:
    """An error if route `r` names a receiver none of whose integrations Tocsin can deliver."""
    name = r.opts.receiver
    if name not in undeliverable or name not in receivers:
        return []
    if any(f"{k}_configs" not in RECEIVER_UNSUPPORTED for k, _ in receivers[name].integrations):
        return []
    return [ConfigError(f"{r.path}.receiver", f"receiver {name!r} has no integration Tocsin can deliver "
                        f"({', '.join(undeliverable[name])}): its alerts would be dropped; give it one Tocsin "
                        "delivers, or set tocsin.allow_undeliverable_receivers: true")]


def _receiver_checks(key: str, value: Any, g: dict[str, Any], path: str, start: int = 0) -> list[ConfigError]:
    """Alertmanager 0.25's validation of `<kind>_configs` entries (routing.receivers.validate)."""
    from routing.receivers.validate import CHECKS, validate_integration

    kind = key.removesuffix("_configs")
    if kind not in CHECKS or not isinstance(value, list):
        return []
    return [e for j, c in enumerate(value) if isinstance(c, dict)
            for e in validate_integration(kind, c, g, f"{path}.{key}[{start + j}]")]


def _global_checks(g: dict[str, Any]) -> list[ConfigError]:
    from routing.receivers.validate import validate_global

    return validate_global(g) if isinstance(g, dict) else []


def load_config(path: str | os.PathLike[str], env: EnvSettings | None = None) -> Config:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigErrors([ConfigError("", f"cannot read {path}: {e.strerror}")]) from None
    return parse_config(text, env, base_dir=str(Path(path).resolve().parent))


SECRET_VALUE_KEYS = {"token", "url", "api_url", "slack_api_url", "webhook_url", "routing_key", "service_key",
                     "api_key", "password", "bearer_token", "credentials", "client_secret", "signing_secret",
                     "secret", "auth_password", "smtp_auth_password", "smtp_auth_secret"}


def redacted(raw: Any) -> Any:
    """A copy of a configuration mapping with secret values replaced by "<secret>", as Alertmanager shows its
    config (webhook and Slack URLs, tokens, keys, passwords). Paths to secret files and env var names are kept."""
    if isinstance(raw, dict):
        out = {}
        for k, v in raw.items():
            key = str(k).lower()
            named = (key in SECRET_VALUE_KEYS or key.endswith(("_token", "_secret", "_password", "_key", "_secrets",
                                                                 "_tokens", "_keys"))) \
                and not key.endswith(("_file", "_env", "_files"))
            if named and isinstance(v, (str, int, float)):
                out[k] = "<secret>"
            elif named and isinstance(v, list):  # e.g. pagerduty.webhook_secrets: every item is a secret
                out[k] = ["<secret>" if isinstance(x, (str, int, float)) else redacted(x) for x in v]
            else:
                out[k] = redacted(v)
        return out
    if isinstance(raw, list):
        return [redacted(v) for v in raw]
    return raw


_URL_KEYS = {"url", "api_url", "webhook_url", "slack_api_url", "pagerduty_url", "opsgenie_api_url",
             "victorops_api_url", "wechat_api_url", "telegram_api_url", "webex_api_url"}


def _parseable_urls(raw: Any, red: Any) -> Any:
    """Masked URLs as URLs (`https://host/<secret>`), so that Alertmanager's loader, which amtool runs on
    /api/v2/status (`amtool config routes`), still reads them: it accepts "<secret>" only where it masks too."""
    if isinstance(raw, dict) and isinstance(red, dict):
        out = {}
        for k, v in red.items():
            orig = raw.get(k)
            if k in _URL_KEYS and v == "<secret>" and isinstance(orig, str) and "://" in orig:
                from urllib.parse import urlsplit

                u = urlsplit(orig)
                out[k] = f"{u.scheme}://{u.hostname or 'host'}/<secret>"
            else:
                out[k] = _parseable_urls(orig, v)
        return out
    if isinstance(raw, list) and isinstance(red, list):
        return [_parseable_urls(a, b) for a, b in zip(raw, red)]
    return red


def redacted_source(cfg: Config) -> str:
    """The configuration as YAML with its secrets masked (for /api/v2/status)."""
    return yaml.safe_dump(_parseable_urls(cfg.raw, redacted(cfg.raw)), sort_keys=False)


def retention_seconds(cfg: Config) -> float:
    return cfg.tocsin.alert_retention
