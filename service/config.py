"""Configuration: an Alertmanager configuration file, read as it is, plus Tocsin's own `tocsin:` section.

`load_config(path)` returns a fully validated `Config` or raises `ConfigErrors` listing every problem with the
path of the bad key. Alertmanager keys Tocsin does not implement are reported by name as warnings (they are
never silently ignored); keys that neither Alertmanager nor Tocsin know are errors.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from routing.durations import parse_duration
from routing.inhibition import InhibitRule
from routing.route_tree import Route
from routing.time_intervals import TimeInterval, parse_time_intervals

from .errors import ConfigError, ConfigErrors

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


class TokenConfig(_Strict):
    """A bearer token accepted on the ingest API. Give exactly one of token, token_file, token_env."""

    name: str
    token: str | None = None
    token_file: str | None = None
    token_env: str | None = None
    sources: list[Literal["alerts", "alertmanager", "events", "api", "all"]] = ["all"]

    @model_validator(mode="after")
    def _one_secret(self) -> "TokenConfig":
        given = [k for k in ("token", "token_file", "token_env") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of token, token_file, token_env (got {', '.join(given) or 'none'})")
        return self

    def resolve(self) -> str:
        if self.token is not None:
            return self.token
        if self.token_file is not None:
            return Path(self.token_file).read_text().strip()
        if self.token_env is not None:
            v = os.environ.get(self.token_env)
            if not v:
                raise ValueError(f"environment variable {self.token_env} is not set")
            return v
        raise ValueError("one of token, token_file or token_env is required")


class AuthConfig(_Strict):
    tokens: list[TokenConfig] = []


class RedisConfig(_Strict):
    url: str | None = None  # REDIS_URL overrides; unset -> embedded redis-server under data_dir
    key_prefix: str = "tocsin"
    shards: int = Field(16, ge=1, le=1024)
    # The embedded Redis's append-only fsync policy: `always` (no acknowledged alert is lost even if the machine
    # crashes) or `everysec` (faster; up to a second of acknowledged writes lost in a machine crash).
    fsync: Literal["always", "everysec"] = "always"


class DeliveryConfig(_Strict):
    max_attempts: int = Field(40, ge=1)  # with backoff capped at 60 s: about 35 minutes of outage
    backoff_initial: float = 0.5
    backoff_max: float = 60.0
    timeout: float = 10.0


class EventsConfig(_Strict):
    """POST /api/v1/events settings."""

    resolve_after: str | int | float | None = None  # how long an anomaly stays open; default resolve_timeout


class AlertmanagerDoorConfig(_Strict):
    """POST /api/v1/alertmanager settings."""

    # An upstream Alertmanager re-sends a firing alert only every repeat_interval (default 4h), not every minute
    # as Prometheus does: a firing alert from it stays open this long (set it above the upstream's
    # repeat_interval) unless a resolved notification comes first.
    resolve_after: str | int | float = "4h10m"


class TocsinSection(_Strict):
    """Tocsin's own settings: the top-level `tocsin:` key of the configuration file."""

    listen: str = "127.0.0.1:9093"
    external_url: str = ""
    data_dir: str = ".tocsin"
    redis: RedisConfig = RedisConfig()
    auth: AuthConfig = AuthConfig()
    max_body_bytes: int = 10 * 2**20
    alert_retention: str = "1h"  # resolved alerts are forgotten this long after they end
    delivery: DeliveryConfig = DeliveryConfig()
    events: EventsConfig = EventsConfig()
    alertmanager: AlertmanagerDoorConfig = AlertmanagerDoorConfig()
    correlation: dict[str, Any] = {}
    scoring: dict[str, Any] = {}
    escalation: dict[str, Any] = {}
    llm: dict[str, Any] = {}
    digest: dict[str, Any] = {}
    slack: dict[str, Any] = {}
    pagerduty: dict[str, Any] = {}
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
    events_resolve_after: float = 300.0  # tocsin.events.resolve_after, else resolve_timeout
    alertmanager_resolve_after: float = 15000.0  # tocsin.alertmanager.resolve_after

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


def _pydantic_errors(e: ValidationError, base: str) -> list[ConfigError]:
    out = []
    for err in e.errors():
        loc = base
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else f".{part}"
        msg = "unknown key (not an Alertmanager or Tocsin setting)" if err["type"] == "extra_forbidden" else err["msg"]
        out.append(ConfigError(loc, msg))
    return out


def parse_config(text: str, env: EnvSettings | None = None) -> Config:
    errors: list[ConfigError] = []
    warnings: list[str] = []
    try:
        raw = yaml.load(go_yaml_text(text), Loader=_Loader) or {}
    except yaml.YAMLError as e:
        raise ConfigErrors([ConfigError("", f"not valid YAML: {e}")]) from None
    if not isinstance(raw, dict):
        raise ConfigErrors([ConfigError("", "the configuration must be a mapping")])

    for key in raw:
        if key not in AM_TOP_LEVEL and key != "tocsin":
            errors.append(ConfigError(key, "unknown key (not an Alertmanager or Tocsin setting)"))

    g = raw.get("global") or {}
    resolve_timeout = 300.0
    if not isinstance(g, dict):
        errors.append(ConfigError("global", "must be a mapping"))
        g = {}
    for key in g:
        if key not in AM_GLOBAL_KNOWN:
            errors.append(ConfigError(f"global.{key}", "unknown key"))
        elif key not in AM_GLOBAL_SUPPORTED:
            warnings.append(f"global.{key}: Alertmanager setting not supported by Tocsin; ignored")
    if "resolve_timeout" in g:
        try:
            resolve_timeout = parse_duration(g["resolve_timeout"], "global.resolve_timeout")
        except ConfigError as e:
            errors.append(e)

    try:
        tocsin = TocsinSection.model_validate(raw.get("tocsin") or {})
    except ValidationError as e:
        errors.extend(_pydantic_errors(e, "tocsin"))
        tocsin = TocsinSection()
    env = env or EnvSettings()
    if env.redis_url:
        tocsin.redis.url = env.redis_url
    if env.tocsin_key_prefix:
        tocsin.redis.key_prefix = env.tocsin_key_prefix
    if env.tocsin_data_dir:
        tocsin.data_dir = env.tocsin_data_dir
    events_resolve_after = resolve_timeout
    if tocsin.events.resolve_after is not None:
        try:
            events_resolve_after = parse_duration(tocsin.events.resolve_after, "tocsin.events.resolve_after",
                                                  numbers_as_seconds=True)
        except ConfigError as e:
            errors.append(e)
    alertmanager_resolve_after = 15000.0
    try:
        alertmanager_resolve_after = parse_duration(tocsin.alertmanager.resolve_after,
                                                    "tocsin.alertmanager.resolve_after", numbers_as_seconds=True)
    except ConfigError as e:
        errors.append(e)
    for i, t in enumerate(tocsin.auth.tokens):
        try:
            t.resolve()
        except (OSError, ValueError) as e:
            errors.append(ConfigError(f"tocsin.auth.tokens[{i}]", str(e)))

    # time intervals (and the deprecated top-level mute_time_intervals)
    intervals: dict[str, list[TimeInterval]] = {}
    for key in ("time_intervals", "mute_time_intervals"):
        items = raw.get(key) or []
        try:
            parsed = parse_time_intervals(items, key)
        except ConfigError as e:
            errors.append(e)
            continue
        for name, ivs in parsed.items():
            if name in intervals:
                errors.append(ConfigError(key, f"time interval {name!r} is defined twice"))
            intervals[name] = ivs

    errors.extend(_global_checks(g))
    receivers, undeliverable = _parse_receivers(raw.get("receivers"), g, errors, warnings)

    route = None
    if "route" not in raw:
        errors.append(ConfigError("route", "a root route is required"))
    else:
        try:
            route = Route.from_config(raw["route"] or {}, "route")
        except ConfigError as e:
            errors.append(e)
        except ConfigErrors as e:
            errors.extend(e.errors)
    if route is not None:
        for r in route.walk():
            inherited = r.parent is not None and r.parent.opts.receiver == r.opts.receiver
            if r.opts.receiver not in receivers and not inherited:  # report it where it is written, once
                errors.append(ConfigError(f"{r.path}.receiver", f"undefined receiver {r.opts.receiver!r}"))
            if not inherited and not tocsin.allow_undeliverable_receivers:
                errors.extend(_undeliverable_route(r, receivers, undeliverable))
            for key, names in (("mute_time_intervals", r.opts.mute_time_intervals),
                               ("active_time_intervals", r.opts.active_time_intervals)):
                for j, n in enumerate(names):
                    if n not in intervals:
                        errors.append(ConfigError(f"{r.path}.{key}[{j}]", f"undefined time interval {n!r}"))

    rules: list[InhibitRule] = []
    rule_ids: list[str] = []
    for i, d in enumerate(raw.get("inhibit_rules") or []):
        try:
            rules.append(InhibitRule.from_config(d, f"inhibit_rules[{i}]"))
            rule_ids.append(hashlib.sha1(repr(sorted((d or {}).items(), key=str)).encode()).hexdigest()[:12])
        except ConfigError as e:
            errors.append(e)

    errors.extend(_check_extensions(tocsin, receivers, route))

    templates = raw.get("templates") or []
    if templates:
        warnings.append("templates: Alertmanager Go templates are not rendered by Tocsin; Tocsin renders its Jinja2 templates (templates/) instead")

    if errors:
        raise ConfigErrors(errors)
    assert route is not None
    return Config(
        source=text, raw=raw, resolve_timeout=resolve_timeout, route=route, receivers=receivers,
        inhibit_rules=rules, inhibit_rule_ids=rule_ids, time_intervals=intervals, templates=list(templates),
        tocsin=tocsin, global_=dict(g), warnings=warnings, events_resolve_after=events_resolve_after,
        alertmanager_resolve_after=alertmanager_resolve_after,
    )


def _parse_receivers(items: Any, g: dict[str, Any], errors: list[ConfigError], warnings: list[str]
                     ) -> tuple[dict[str, Receiver], dict[str, list[str]]]:
    """The receivers, and for each the integrations Tocsin cannot deliver; problems go to `errors`."""
    if items is not None and not isinstance(items, list):
        errors.append(ConfigError("receivers", "must be a list"))
        items = []
    receivers: dict[str, Receiver] = {}
    undeliverable: dict[str, list[str]] = {}  # receiver -> its integrations Tocsin cannot deliver
    items = items or []
    for i, r in enumerate(items):
        path = f"receivers[{i}]"
        if not isinstance(r, dict) or not r.get("name"):
            errors.append(ConfigError(f"{path}.name", "every receiver needs a name"))
            continue
        name = str(r["name"])
        if name in receivers:
            errors.append(ConfigError(f"{path}.name", f"receiver {name!r} is defined twice"))
        integrations: list[tuple[str, dict[str, Any]]] = []
        for key, value in r.items():
            if key == "name":
                continue
            if key in RECEIVER_UNSUPPORTED:
                # Kept as an integration whose every delivery fails: logged and counted, never silent.
                warnings.append(f"{path}.{key}: integration not supported by Tocsin; receiver {name!r} cannot "
                                "deliver through it (each notification for it fails and is counted)")
                if value:
                    undeliverable.setdefault(name, []).append(key)
            elif key not in RECEIVER_INTEGRATIONS:
                errors.append(ConfigError(f"{path}.{key}", "unknown key"))
                continue
            integrations += _integrations(key, value, g, path, errors)
        receivers[name] = Receiver(name, integrations)
    return receivers, undeliverable


def _integrations(key: str, value: Any, g: dict[str, Any], path: str, errors: list[ConfigError]
                  ) -> list[tuple[str, dict[str, Any]]]:
    """The entries of one `<kind>_configs` list, validated as Alertmanager 0.25 validates them."""
    if value is None:  # `webhook_configs:` with nothing under it, as Go reads it: no integrations
        return []
    if not isinstance(value, list):
        errors.append(ConfigError(f"{path}.{key}", "must be a list"))
        return []
    kind = key.removesuffix("_configs")
    out = []
    for j, c in enumerate(value):
        if not isinstance(c, dict):
            errors.append(ConfigError(f"{path}.{key}[{j}]", "must be a mapping"))
            continue
        errors.extend(_receiver_checks(key, [c], g, path, j))
        out.append((kind, dict(c, _path=f"{path}.{key}[{j}]")))
    return out


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


def _check_escalation(section: dict[str, Any], receivers: dict[str, Receiver]) -> tuple[set[str], list[ConfigError]]:
    """The escalation policies' names, and the errors of the tocsin.escalation section."""
    from routing.escalation import EscalationConfig

    errors: list[ConfigError] = []
    try:
        esc = EscalationConfig.model_validate(section)
    except ValidationError as e:
        return set(), _pydantic_errors(e, "tocsin.escalation")
    except ConfigError as e:
        return set(), [ConfigError(f"tocsin.escalation.{e.path}", e.message)]
    for name, p in esc.policies.items():
        for i, level in enumerate(p.levels):
            for j, t in enumerate(level.targets):
                if t.receiver not in receivers:
                    errors.append(ConfigError(f"tocsin.escalation.policies.{name}.levels[{i}].targets[{j}].receiver",
                                              f"undefined receiver {t.receiver!r}"))
    return set(esc.policies), errors


def _check_extensions(tocsin: TocsinSection, receivers: dict[str, Receiver], route: Route | None) -> list[ConfigError]:
    """Validate Tocsin's correlation, escalation and LLM sections and their references, with paths.
    (Each section's module is imported only when the section is given: check-config stays fast.)"""
    errors: list[ConfigError] = []
    if tocsin.correlation:
        from .correlation import CorrelationConfig

        try:
            CorrelationConfig.model_validate(tocsin.correlation)
        except ValidationError as e:
            errors.extend(_pydantic_errors(e, "tocsin.correlation"))
    if tocsin.llm:
        from .summaries.config import LLMConfig

        try:
            LLMConfig.parse(tocsin.llm, "tocsin.llm")
        except ConfigErrors as e:
            errors.extend(e.errors)
        except ConfigError as e:
            errors.append(e)
    policies: set[str] = set()
    if tocsin.escalation:
        policies, esc_errors = _check_escalation(tocsin.escalation, receivers)
        errors.extend(esc_errors)
    if route is not None:
        for r in route.walk():
            p_name = r.own_extra.get("escalation")
            if p_name is not None and p_name not in policies:
                errors.append(ConfigError(f"{r.path}.tocsin.escalation", f"undefined escalation policy {p_name!r}"))
    return errors


def load_config(path: str | os.PathLike[str], env: EnvSettings | None = None) -> Config:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigErrors([ConfigError("", f"cannot read {path}: {e.strerror}")]) from None
    return parse_config(text, env)


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
    return parse_duration(cfg.tocsin.alert_retention, "tocsin.alert_retention")
