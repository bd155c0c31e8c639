"""Configuration: an Alertmanager file read unchanged plus the `tocsin:` section; unknown keys are errors naming
their path, unsupported Alertmanager integrations are warnings naming them, references are checked, secrets come
from files and the environment, and reloads (POST /-/reload) swap in a good config and reject a bad one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from service.http.appkeys import ENGINE
from service.config.sections import EnvSettings, load_config, parse_config, redacted
from service.core.errors import ConfigErrors
from tests.pipeline_kit import BASE, T0, Harness, alert, serving, with_redis

NO_ENV = EnvSettings(redis_url=None, tocsin_key_prefix=None, tocsin_data_dir=None)


def parse(text: str, env: EnvSettings = NO_ENV) -> Any:
    return parse_config(text, env)


def errors_of(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ConfigErrors) as ei:
        parse(text)
    return [(e.path, e.message) for e in ei.value.errors]


def paths_of(text: str) -> list[str]:
    return [p for p, _ in errors_of(text)]


def test_example_config_is_valid() -> None:
    """The shipped example config/tocsin.yml parses without errors or warnings."""
    cfg = load_config(Path(__file__).parent.parent / "config" / "tocsin.yml", NO_ENV)
    assert cfg.warnings == []
    assert set(cfg.receivers) == {"console"}
    assert cfg.resolve_timeout == 300


def test_alertmanager_config_is_read_unchanged() -> None:
    """A typical Alertmanager file (old and new matchers, continue, nested routes, inhibit rules, time intervals)
    parses into the route tree it describes."""
    cfg = parse("""
global: {resolve_timeout: 2m}
route:
  receiver: default
  group_by: ['...']
  routes:
    - match: {team: db}
      receiver: db
      continue: true
      routes:
        - match_re: {severity: "page|critical"}
          receiver: db-pager
          mute_time_intervals: [nights]
    - matchers: ['env=~"prod|staging"', 'severity!="info"']
      receiver: default
      active_time_intervals: [office]
receivers:
  - name: default
    webhook_configs: [{url: "http://127.0.0.1:1/a", send_resolved: false}]
  - name: db
  - name: db-pager
    webhook_configs: [{url: "http://127.0.0.1:1/b"}]
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname]
time_intervals:
  - name: nights
    time_intervals: [{times: [{start_time: "22:00", end_time: "24:00"}]}]
  - name: office
    time_intervals: [{weekdays: ["monday:friday"]}]
""")
    assert cfg.resolve_timeout == 120
    assert [r.opts.receiver for r in cfg.route.match({"team": "db", "severity": "page"})] == ["db-pager"]
    assert [r.opts.receiver for r in cfg.route.match({"team": "db", "env": "prod"})] == ["db", "default"]
    assert [r.opts.receiver for r in cfg.route.match({"x": "y"})] == ["default"]
    assert cfg.route.opts.group_by_all
    assert len(cfg.inhibit_rules) == 1 and set(cfg.time_intervals) == {"nights", "office"}
    assert cfg.receivers["db"].integrations == []


@pytest.mark.parametrize("snippet,path", [
    ("bogus: 1", "bogus"),
    ("global: {resolve_timeout: 5m, resolv_timeout: 1m}", "global.resolv_timeout"),
    ("tocsin: {listn: '127.0.0.1:1'}", "tocsin.listn"),
    ("tocsin: {redis: {url: 'redis://x', prefix: a}}", "tocsin.redis.prefix"),
    ("tocsin: {auth: {tokens: [{name: a, token: b, scope: all}]}}", "tocsin.auth.tokens[0].scope"),
    ("tocsin: {delivery: {max_attempt: 3}}", "tocsin.delivery.max_attempt"),
    ("tocsin: {events: {resolve_afer: 1m}}", "tocsin.events.resolve_afer"),
])
def test_unknown_keys_are_errors_naming_the_path(snippet: str, path: str) -> None:
    """A key that neither Alertmanager nor Tocsin knows is an error at its path, never silently ignored."""
    raw = yaml.safe_load(BASE)
    for k, v in yaml.safe_load(snippet).items():
        raw[k] = v if not isinstance(v, dict) else {**raw.get(k, {}), **v}
    errs = errors_of(yaml.safe_dump(raw))
    assert [p for p, _ in errs] == [path]
    assert "unknown" in errs[0][1]


def test_unknown_receiver_and_route_keys_are_errors() -> None:
    """Unknown keys in a receiver and in a nested route are errors at their paths."""
    assert paths_of("""
route:
  receiver: a
  routes: [{receiver: a, group_wiat: 1m}]
receivers: [{name: a, webhok_configs: []}]
""") == ["receivers[0].webhok_configs", "route.routes[0].group_wiat"]


def test_unknown_integration_keys_are_errors_when_receivers_are_built() -> None:
    """A misspelt key inside a webhook config is an error naming its path (found by building the receivers)."""
    from service.pipeline.engine import build_receivers, default_receiver_factory

    cfg = parse(BASE.replace("- url:", "- sendresolved: true\n        url:"))
    with pytest.raises(Exception) as ei:
        build_receivers(cfg, default_receiver_factory)
    assert "receivers[0].webhook_configs[0].sendresolved" in str(ei.value)


def test_unsupported_alertmanager_integrations_are_warnings_naming_them() -> None:
    """rocketchat_configs and other Alertmanager integrations Tocsin lacks are warnings naming them; the receiver keeps
    its deliverable integrations (email and Opsgenie are delivered now)."""
    cfg = parse("""
global: {smtp_smarthost: "mail:25", smtp_from: am@example.com}
route: {receiver: ops}
receivers:
  - name: ops
    email_configs: [{to: ops@example.com}]
    opsgenie_configs: [{api_key: x}]
    rocketchat_configs: [{channel: "#ops"}]
    webhook_configs: [{url: "http://127.0.0.1:1/"}]
templates: ['/etc/am/*.tmpl']
""")
    text = "\n".join(cfg.warnings)
    assert "receivers[0].rocketchat_configs" in text and "email_configs" not in text and "opsgenie" not in text
    assert [k for k, _ in cfg.receivers["ops"].integrations] == ["email", "opsgenie", "rocketchat", "webhook"]


def test_undefined_receiver_is_an_error_at_the_route_that_names_it() -> None:
    """A route naming a receiver that does not exist is an error at that route's receiver key, reported once."""
    errs = errors_of("""
route:
  receiver: a
  routes:
    - receiver: nobody
      matchers: ['x="1"']
      routes: [{matchers: ['y="1"']}]
receivers: [{name: a}]
""")
    assert errs == [("route.routes[0].receiver", "undefined receiver 'nobody'")]


def test_undefined_time_interval_is_an_error() -> None:
    """A route muting or activating on an unknown time interval is an error naming the field and the interval."""
    errs = errors_of("""
route:
  receiver: a
  routes:
    - {receiver: a, matchers: ['x="1"'], mute_time_intervals: [weekend]}
    - {receiver: a, matchers: ['x="2"'], active_time_intervals: [office]}
receivers: [{name: a}]
""")
    assert errs == [("route.routes[0].mute_time_intervals[0]", "undefined time interval 'weekend'"),
                    ("route.routes[1].active_time_intervals[0]", "undefined time interval 'office'")]


@pytest.mark.parametrize("text,path", [
    ("receivers: [{name: a}]", "route"),
    ("route: {receiver: a, group_wait: 30}\nreceivers: [{name: a}]", "route.group_wait"),
    ("route: {receiver: a}\nreceivers: [{name: a}, {name: a}]", "receivers[1].name"),
    ("route: {receiver: a}\nreceivers: [{name: a}]\nglobal: {resolve_timeout: soon}", "global.resolve_timeout"),
    ("route: {receiver: a}\nreceivers: [{name: a}]\ntocsin: {events: {resolve_after: later}}",
     "tocsin.events.resolve_after"),
    ("route: {receiver: a}\nreceivers: [{name: a}]\ntocsin: {redis: {shards: 0}}", "tocsin.redis.shards"),
    ("route: {receiver: a}\nreceivers: [{name: a}]\ntocsin: {alertmanager: {resolve_after: never}}",
     "tocsin.alertmanager.resolve_after"),
    ("route: {receiver: a}\nreceivers: [{name: a}]\ninhibit_rules: [{source_matchers: ['a=\"1\"'], eqal: [x]}]",
     "inhibit_rules[0].eqal"),
    ("route: {receiver: a}\nreceivers: [{name: a}]\ntocsin: {auth: {tokens: [{name: t}]}}", "tocsin.auth.tokens[0].token"),
    ("route: {receiver: a, tocsin: {min_confidnce: 0.3}}\nreceivers: [{name: a}]", "route.tocsin.min_confidnce"),
    ("route: {receiver: a, tocsin: {min_confidence: high}}\nreceivers: [{name: a}]", "route.tocsin.min_confidence"),
    ("route: {receiver: a, tocsin: {min_confidence: 1.5}}\nreceivers: [{name: a}]", "route.tocsin.min_confidence"),
    ("route: {receiver: a, routes: [{tocsin: {correlate: maybe}}]}\nreceivers: [{name: a}]",
     "route.routes[0].tocsin.correlate"),
    ("route: {receiver: a, tocsin: {held_receiver: nowhere}}\nreceivers: [{name: a}]", "route.tocsin.held_receiver"),
    ("route: {receiver: a, tocsin: {escalation: nope}}\nreceivers: [{name: a}]", "route.tocsin.escalation"),
])
def test_bad_values_are_errors_naming_the_path(text: str, path: str) -> None:
    """Missing route, durations without units, duplicate receivers, bad Tocsin settings and tokens without a
    secret are errors at their paths."""
    assert path in paths_of(text)


def test_all_errors_are_reported_together() -> None:
    """Several problems are reported in one go, each with its path."""
    paths = paths_of("bogus: 1\nglobal: {nope: 1}\nroute: {receiver: missing}\nreceivers: [{name: a, x: 1}]")
    assert paths == ["bogus", "global.nope", "receivers[0].x", "route.receiver"]


@pytest.mark.parametrize("text", ["route: [", "- a\n- b", "route: {receiver: a}\n\treceivers: []"])
def test_malformed_yaml_is_one_clear_error(text: str) -> None:
    """Text that is not a YAML mapping is rejected with one error saying so."""
    [(_, msg)] = errors_of(text)
    assert "YAML" in msg or "mapping" in msg


def test_events_resolve_after() -> None:
    """tocsin.events.resolve_after sets how long a detector anomaly stays open; by default resolve_timeout."""
    assert parse(BASE).events_resolve_after == 300
    assert parse("global: {resolve_timeout: 1m}\n" + BASE).events_resolve_after == 60
    assert parse(BASE + "tocsin: {events: {resolve_after: 15m}}").events_resolve_after == 900


# -- secrets ----------------------------------------------------------------------------------------------------

def test_token_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens can come from a file (trailing newline stripped) or an environment variable."""
    (tmp_path / "tok").write_text("from-file-secret\n")
    monkeypatch.setenv("TOCSIN_TEST_TOKEN", "from-env-secret")
    cfg = parse(BASE + f"""
tocsin:
  auth:
    tokens:
      - {{name: f, token_file: {tmp_path / 'tok'}, sources: [alerts]}}
      - {{name: e, token_env: TOCSIN_TEST_TOKEN}}
""")
    assert [t.resolve() for t in cfg.tocsin.auth.tokens] == ["from-file-secret", "from-env-secret"]


def test_missing_token_file_or_env_is_an_error_without_the_secret(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable token file or an unset token variable is an error at the token's path."""
    monkeypatch.delenv("TOCSIN_UNSET_TOKEN", raising=False)
    errs = errors_of(BASE + f"""
tocsin:
  auth:
    tokens:
      - {{name: f, token_file: {tmp_path / 'missing'}}}
      - {{name: e, token_env: TOCSIN_UNSET_TOKEN}}
""")
    assert [p for p, _ in errs] == ["tocsin.auth.tokens[0].token_file", "tocsin.auth.tokens[1].token_env"]
    assert "TOCSIN_UNSET_TOKEN" in errs[1][1]


def test_a_token_with_two_sources_of_secret_is_an_error() -> None:
    """A token must have exactly one of token, token_file and token_env."""
    errs = errors_of(BASE + "tocsin: {auth: {tokens: [{name: t, token: a, token_env: HOME}]}}")
    assert [p for p, _ in errs] == ["tocsin.auth.tokens[0].token_env"]


def test_environment_overrides_the_file() -> None:
    """REDIS_URL, TOCSIN_KEY_PREFIX and TOCSIN_DATA_DIR override the file's settings."""
    text = BASE + "tocsin: {redis: {url: 'redis://file:6379', key_prefix: fromfile}, data_dir: /file}"
    cfg = parse(text, EnvSettings(redis_url="redis://env:6379", tocsin_key_prefix="fromenv", tocsin_data_dir="/env"))
    assert (cfg.tocsin.redis.url, cfg.tocsin.redis.key_prefix, cfg.tocsin.data_dir) == (
        "redis://env:6379", "fromenv", "/env")
    assert parse(text).tocsin.redis.url == "redis://file:6379"


def test_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an explicit EnvSettings, REDIS_URL is read from the process environment."""
    monkeypatch.setenv("REDIS_URL", "redis://from-env:1")
    assert parse_config(BASE).tocsin.redis.url == "redis://from-env:1"


def test_redacted_config_hides_secrets_but_keeps_file_and_env_names() -> None:
    """The config shown by /api/v2/status masks tokens, URLs and keys but keeps *_file paths and *_env names."""
    raw = yaml.safe_load(BASE + """
global: {slack_api_url: "https://hooks.slack.com/services/T/B/X"}
tocsin:
  auth: {tokens: [{name: a, token: s3cret}, {name: b, token_file: /run/tok, token_env: TOK}]}
  redis: {url: "redis://:pw@r:6379", key_prefix: k}
""")
    out = redacted(raw)
    assert out["receivers"][0]["webhook_configs"][0]["url"] == "<secret>"
    assert out["global"]["slack_api_url"] == "<secret>"
    assert out["tocsin"]["auth"]["tokens"][0] == {"name": "a", "token": "<secret>"}
    assert out["tocsin"]["auth"]["tokens"][1] == {"name": "b", "token_file": "/run/tok", "token_env": "TOK"}
    assert out["tocsin"]["redis"] == {"url": "<secret>", "key_prefix": "k"}
    assert out["route"] == raw["route"]



@pytest.mark.parametrize("tocsin, path", [
    ({"alert_retention": "one hour"}, "tocsin.alert_retention"),
    ({"alert_retention": -5}, "tocsin.alert_retention"),
    ({"alert_retention": "0"}, "tocsin.alert_retention"),
    ({"delivery": {"timeout": "10 seconds"}}, "tocsin.delivery.timeout"),
    ({"delivery": {"timeout": 0}}, "tocsin.delivery.timeout"),
    ({"delivery": {"backoff_initial": -1}}, "tocsin.delivery.backoff_initial"),
    ({"delivery": {"backoff_initial": 10, "backoff_max": 1}}, "tocsin.delivery.backoff_max"),
    ({"delivery": {"max_attempts": 0}}, "tocsin.delivery.max_attempts"),
    ({"delivery": {"retries": 3}}, "tocsin.delivery.retries"),
    ({"max_body_bytes": 0}, "tocsin.max_body_bytes"),
    ({"listen": "localhost"}, "tocsin.listen"),
    ({"listen": "0.0.0.0:99999"}, "tocsin.listen"),
    ({"external_url": "tocsin.example"}, "tocsin.external_url"),
    ({"data_dir": ""}, "tocsin.data_dir"),
    ({"redis": {"url": "http://127.0.0.1:6379"}}, "tocsin.redis.url"),
    ({"redis": {"key_prefix": "a{b}"}}, "tocsin.redis.key_prefix"),
    ({"redis": {"shards": 0}}, "tocsin.redis.shards"),
    ({"events": {"resolve_after": "soon"}}, "tocsin.events.resolve_after"),
    ({"alertmanager": {"resolve_after": "later"}}, "tocsin.alertmanager.resolve_after"),
    ({"scoring": {"weights": {"x": 1}}}, "tocsin.scoring"),
    ({"digest": {"every": "1h"}}, "tocsin.digest"),
    ({"slack": {"signing_secrt": "x"}}, "tocsin.slack.signing_secrt"),
    ({"slack": {"signing_secret": "a", "signing_secret_env": "B"}}, "tocsin.slack.signing_secret_env"),
    ({"slack": {"allowed_users": "U1"}}, "tocsin.slack.allowed_users"),
    ({"pagerduty": {"webhook_secrets": "one"}}, "tocsin.pagerduty.webhook_secrets"),
    ({"pagerduty": {"webhook_secret_env": "TOCSIN_UNSET_TEST_VAR"}}, "tocsin.pagerduty.webhook_secret_env"),
    ({"auth": {"tokens": [{"name": "t"}]}}, "tocsin.auth.tokens[0].token"),
])
def test_bad_tocsin_values_are_load_time_errors_with_their_path(tocsin: dict, path: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every bad value or unknown key of `tocsin:` fails the load with its path; none is accepted to fail later."""
    monkeypatch.delenv("TOCSIN_UNSET_TEST_VAR", raising=False)
    assert paths_of(BASE + yaml.safe_dump({"tocsin": tocsin})) == [path]


def test_tocsin_durations_and_sections_are_read() -> None:
    """Durations of `tocsin:` take Prometheus duration strings (or seconds), and the Slack and PagerDuty sections
    are read as given."""
    from service.config.sections import retention_seconds

    cfg = parse(BASE + yaml.safe_dump({"tocsin": {
        "alert_retention": "2h", "delivery": {"timeout": "5s", "backoff_max": "2m"},
        "slack": {"signing_secret": "s3cret", "allowed_users": ["U1"]},
        "pagerduty": {"webhook_secrets": ["a", "b"]}}}))
    assert retention_seconds(cfg) == 7200
    assert (cfg.tocsin.delivery.timeout, cfg.tocsin.delivery.backoff_max) == (5, 120)
    assert cfg.tocsin.slack == {"signing_secret": "s3cret", "allowed_users": ["U1"]}
    assert cfg.tocsin.pagerduty == {"webhook_secrets": ["a", "b"]}


async def test_a_failing_retention_sweep_is_logged_and_counted(tmp_path: Path, key_prefix: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The retention sweeper reports every failed sweep (log line and tocsin_background_errors_total) and keeps
    running."""
    import asyncio

    from structlog.testing import capture_logs

    from service.http.app import _sweeper
    from service.store.embedded import EmbeddedRedis

    monkeypatch.delenv("REDIS_URL", raising=False)
    er = EmbeddedRedis(tmp_path / "redis", persist=False)
    async with serving(tmp_path, with_redis(BASE, er.url, key_prefix)) as h:  # Redis never started: sweeps fail
        with capture_logs() as logs:
            task = asyncio.create_task(_sweeper(h.engine, every=60))

            async def failures(n: int) -> int:
                for _ in range(1000):  # let the sweeper's connection attempts fail (not a time limit on them)
                    got = sum(e["event"] == "sweep_failed" for e in logs)
                    if got >= n:
                        break
                    await asyncio.sleep(0.01)
                return got

            assert await failures(1) == 1
            h.clock.advance(60)
            assert await failures(2) == 2  # still running after a failure
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        metrics = await (await h.client.get("/metrics")).text()
        assert 'tocsin_background_errors_total{task="sweep"}' in metrics

# -- reload -------------------------------------------------------------------------------------------------------

PAGER = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  routes:
    - matchers: ['severity="page"']
      receiver: pager
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:9/hook"}]
  - name: pager
    webhook_configs: [{url: "http://127.0.0.1:9/pager"}]
"""


async def test_reload_rejects_a_bad_config_and_the_old_one_keeps_working(h: Harness, redis_url: str,
                                                                        key_prefix: str) -> None:
    """POST /-/reload with an invalid file answers 400 with the errors, and the running config keeps routing."""
    h.write_config(with_redis(BASE, redis_url, key_prefix).replace("group_wait: 30s", "group_wait: 30"))
    r = await h.client.post("/-/reload")
    assert r.status == 400
    text = await r.text()
    assert "route.group_wait" in text and "old one keeps running" in text
    await h.post("/api/v2/alerts", [alert("A")])
    await h.step(30)
    assert [n.receiver for n in h.sink] == ["team"]
    assert h.engine.cfg.route.opts.group_wait == 30


async def test_reload_rejects_a_receiver_that_cannot_be_built(tmp_path: Path, redis_url: str, key_prefix: str,
                                                              redis: Any) -> None:
    """A reload whose new receiver fails its own validation is rejected and the old receivers stay."""
    async with serving(tmp_path, with_redis(BASE, redis_url, key_prefix)) as h:
        from service.pipeline.engine import default_receiver_factory

        h.engine.receiver_factory = default_receiver_factory  # build real receivers on reload
        h.write_config(with_redis(BASE.replace("http://127.0.0.1:9/hook", "ftp://x"), redis_url, key_prefix))
        r = await h.client.post("/-/reload")
        assert r.status == 400
        assert "receivers[0].webhook_configs[0].url" in await r.text()
        assert "team/webhook/0" in h.engine.receivers


async def test_reload_rejects_a_storage_layout_change(h: Harness, redis_url: str, key_prefix: str) -> None:
    """Changing the Redis key prefix needs a restart, so a reload that does it is rejected."""
    h.write_config(with_redis(BASE, redis_url, key_prefix + "x"))
    r = await h.client.post("/-/reload")
    assert r.status == 400
    assert "restart" in await r.text()


async def test_reload_with_a_good_config_takes_effect(h: Harness, redis_url: str, key_prefix: str) -> None:
    """POST /-/reload with a valid new file answers 200 and the new route sends pages to the new receiver."""
    h.write_config(with_redis(PAGER, redis_url, key_prefix))
    r = await h.client.post("/-/reload")
    assert (r.status, await r.text()) == (200, "reloaded\n")
    await h.post("/api/v2/alerts", [alert("A", severity="page"), alert("B")])
    await h.step(30)
    assert sorted((n.receiver, n.alerts[0].labels["alertname"]) for n in h.sink) == [("pager", "A"), ("team", "B")]
    r = await h.client.get("/api/v2/receivers")
    assert sorted(x["name"] for x in await r.json()) == ["pager", "team"]
    metrics = await (await h.client.get("/metrics")).text()
    assert 'tocsin_config_reloads_total{result="success"} 1.0' in metrics


async def test_reload_rotates_tokens(h: Harness, redis_url: str, key_prefix: str) -> None:
    """A reload that adds a token makes the API require it at once."""
    assert (await h.post("/api/v2/alerts", [alert("A")])).status == 200
    text = with_redis(BASE, redis_url, key_prefix, auth={"tokens": [{"name": "t", "token": "new-secret"}]})
    h.write_config(text)
    assert (await h.client.post("/-/reload")).status == 200
    assert (await h.post("/api/v2/alerts", [alert("B")])).status == 401
    assert (await h.post("/api/v2/alerts", [alert("B")], token="new-secret")).status == 200


async def test_reload_keeps_alerts_and_groups(h: Harness, redis_url: str, key_prefix: str) -> None:
    """Alerts received before a reload are still there and still notified after it."""
    await h.post("/api/v2/alerts", [alert("A")])
    h.write_config(with_redis(BASE.replace("repeat_interval: 4h", "repeat_interval: 1h"), redis_url, key_prefix))
    assert (await h.client.post("/-/reload")).status == 200
    assert h.app[ENGINE].cfg.route.opts.repeat_interval == 3600
    await h.step(30)
    assert [n.alerts[0].labels["alertname"] for n in h.sink] == ["A"]


async def test_events_use_resolve_after(tmp_path: Path, redis_url: str, key_prefix: str, redis: Any) -> None:
    """With tocsin.events.resolve_after set, an anomaly stays open that long after its timestamp."""
    async with serving(tmp_path, with_redis(BASE, redis_url, key_prefix, events={"resolve_after": "15m"})) as h:
        from service.core.clock import to_rfc3339

        ev = {"metric": "m", "timestamp": to_rfc3339(T0), "is_anomaly": True}
        assert (await h.post("/api/v1/events", ev)).status == 200
        [a] = await h.engine.dispatcher.store.all()
        assert a.ends_at == T0 + 900


TEAMS = """
route:
  receiver: team
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
{routes}
receivers:
  - name: team
    webhook_configs: [{{url: "http://127.0.0.1:9/team"}}]
  - name: team-a
    webhook_configs: [{{url: "http://127.0.0.1:9/a"}}]
  - name: team-b
    webhook_configs: [{{url: "http://127.0.0.1:9/b"}}]
  - name: any-team
    webhook_configs: [{{url: "http://127.0.0.1:9/any"}}]
"""
ROUTE_A = "    - {matchers: ['team=\"a\"'], receiver: team-a}"
ROUTE_B = "    - {matchers: ['team=\"b\"'], receiver: team-b}"
ROUTE_ANY = "    - {matchers: ['team=~\".+\"'], receiver: any-team}"


def teams(*routes: str) -> str:
    return TEAMS.format(routes="\n".join(routes))


async def reload_to(h: Harness, text: str, redis_url: str, key_prefix: str) -> None:
    h.write_config(with_redis(text, redis_url, key_prefix))
    r = await h.client.post("/-/reload")
    assert (r.status, await r.text()) == (200, "reloaded\n")


def paged(h: Harness) -> list[tuple[float, str, list[str]]]:
    return [(n.timestamp - T0, n.receiver, [a.labels["alertname"] for a in n.alerts]) for n in h.sink]


async def test_reload_that_inserts_a_route_above_keeps_existing_groups_on_their_route(
        tmp_path: Path, redis_url: str, key_prefix: str, redis: Any) -> None:
    """A route inserted before another does not hand the other's waiting groups to the new route."""
    async with serving(tmp_path, with_redis(teams(ROUTE_A), redis_url, key_prefix)) as h:
        assert (await h.post("/api/v2/alerts", [alert("A", starts=T0, ends=T0 + 3600, team="a")])).status == 200
        await reload_to(h, teams(ROUTE_B, ROUTE_A), redis_url, key_prefix)
        await h.step(30)
        await h.step(300)
        assert paged(h) == [(30.0, "team-a", ["A"])]


async def test_reload_keeps_the_notification_log_of_a_route_whose_position_changed(
        tmp_path: Path, redis_url: str, key_prefix: str, redis: Any) -> None:
    """A group that already notified does not notify again after a reload that only moves its route down."""
    async with serving(tmp_path, with_redis(teams(ROUTE_A), redis_url, key_prefix)) as h:
        assert (await h.post("/api/v2/alerts", [alert("A", starts=T0, ends=T0 + 3600, team="a")])).status == 200
        await h.step(30)
        await reload_to(h, teams(ROUTE_B, ROUTE_A), redis_url, key_prefix)
        await h.step(300)
        await h.step(300)
        assert paged(h) == [(30.0, "team-a", ["A"])]


async def test_reload_moves_alerts_whose_route_now_lies_elsewhere(tmp_path: Path, redis_url: str, key_prefix: str,
                                                                 redis: Any) -> None:
    """After a reload, each group's alerts are routed again: an alert that a new route above now catches is
    notified through that route only, as Alertmanager rebuilds its groups from the alerts on reload."""
    async with serving(tmp_path, with_redis(teams(ROUTE_ANY), redis_url, key_prefix)) as h:
        alerts = [alert("A", starts=T0, ends=T0 + 3600, team="a"), alert("B", starts=T0, ends=T0 + 3600, team="b")]
        assert (await h.post("/api/v2/alerts", alerts)).status == 200
        await reload_to(h, teams(ROUTE_A, ROUTE_ANY), redis_url, key_prefix)
        await h.step(30)
        await h.step(300)
        assert sorted(paged(h)) == [(30.0, "any-team", ["B"]), (30.0, "team-a", ["A"])]


async def test_reload_regroups_the_alerts_of_a_route_that_is_gone(tmp_path: Path, redis_url: str, key_prefix: str,
                                                                 redis: Any) -> None:
    """The alerts of a group whose route no longer exists after a reload are notified through their new route,
    not dropped with the group."""
    async with serving(tmp_path, with_redis(teams(ROUTE_A), redis_url, key_prefix)) as h:
        assert (await h.post("/api/v2/alerts", [alert("A", starts=T0, ends=T0 + 3600, team="a")])).status == 200
        await reload_to(h, teams(ROUTE_B), redis_url, key_prefix)
        await h.step(30)
        assert paged(h) == [(30.0, "team", ["A"])]


SUMMARIZED = """
global: {resolve_timeout: 1h}
route:
  receiver: team
  group_by: [service]
  group_wait: 30s
  group_interval: 1m
  tocsin: {min_confidence: 0}
receivers:
  - name: team
    webhook_configs: [{url: "http://127.0.0.1:9/team"}]
tocsin:
  correlation: {enabled: true}
  llm: {base_url: "%(llm)s", enabled: %(enabled)s, deadline: 5, max_retries: 0, timeout: 5, budget_per_hour: 60}
"""


async def test_reload_rebuilds_the_summary_service_from_the_new_llm_section(redis: Any, key_prefix: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The LLM settings of a reloaded config are the ones summaries use: turning the LLM on by a reload makes the
    next incident's page carry Claude's summary."""
    from tests.fakes.anthropic import FakeAnthropic, tool_answer
    from tests.pipeline_kit import harness, make_config

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    fake = FakeAnthropic()
    url = await fake.start()
    fake.reply(tool_answer({"headline": "Claude says payments-db", "root_cause": None, "reasoning": "[E1].",
                            "cited_evidence": ["E1"], "next_checks": [], "confidence": 0.7}))
    try:
        h = await harness(redis, SUMMARIZED % {"llm": url, "enabled": "false"}, key_prefix)
        await h.engine.reload(make_config(SUMMARIZED % {"llm": url, "enabled": "true"}, key_prefix))
        assert h.engine.summaries.llm is not None
        await h.post({"labels": {"alertname": "DBDown", "service": "payments-db"}, "annotations": {"summary": "x"}})
        await h.advance_to(30)
        assert fake.calls == 1
        assert [(n.incident or {}).get("summary", {}).get("headline") for n in h.sent] == ["Claude says payments-db"]
    finally:
        await fake.close()


def test_regroup_moves_only_what_the_new_tree_changes() -> None:
    """The reload's regrouping decision: memberships the new tree keeps stay, new ones are added, the rest are
    dropped; an alert whose groups are unknown is left alone."""
    from service.pipeline.regroup import Move, Target, moves

    a, b, c = (Target(g, f"route-{g}", f"key-{g}", {}, 30.0) for g in ("ga", "gb", "gc"))
    current = {"fp1": {"ga": "m1"}, "fp2": {"ga": "m2", "gb": "m2"}, "fp3": {"gc": "m3"}, "fp4": {"ga": "m4"}}
    targets = {"fp1": [a], "fp2": [b, c], "fp3": [a], "fp4": None}
    assert moves(current, targets) == [Move("fp2", "m2", (c,), ("ga",)), Move("fp3", "m3", (a,), ("gc",))]
