"""/ui/replay: "how many pages would this recording have produced?" in the browser.

An uploaded stream (the `tocsin replay` input: JSONL of postable alerts and detector events) runs twice through
service.replay, in-process, on the live Redis under a private key prefix that replay removes afterwards: once with
the given configuration (correlation as configured) and once with correlation off (plain Alertmanager grouping by
the routes' group_by). The page shows both side by side: notifications, pages, and the incidents or groups."""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import structlog
import yaml
from aiohttp import web

from service.http.appkeys import ENGINE
from service.config.sections import Config, parse_config
from service.core.errors import ConfigErrors
from service.core.models import Notification
from service.pipeline.replay import ReplayInputError, replay
from service.http.ui import auth
from service.http.ui.handlers import FORM, UIError, render
from service.http.ui.views import fmt_time

log = structlog.get_logger("tocsin.ui.replay")

MAX_LINES = 50_000


@dataclass
class Side:
    name: str
    notifications: int = 0
    pages: int = 0  # new messages (see summarize)
    units: dict[str, dict[str, Any]] = field(default_factory=dict)  # incident id or group key -> summary


def summarize(name: str, sent: list[Notification]) -> Side:
    """Count notifications and collect the incidents (correlation on) or groups (off) they were about. Pure.

    A page is a new message, as bench/correlation/scorer.py counts them: a firing notification that is not an
    update; with an incident snapshot the first one per (receiver, incident), without one every firing
    notification (each is a new message in Alertmanager). Updates and resolutions are in `notifications`."""
    side = Side(name)
    seen: set[tuple[str, str]] = set()
    for n in sent:
        side.notifications += 1
        inc = n.incident if isinstance(n.incident, dict) else None
        if n.status == "firing":
            if inc is None or (n.receiver, str(inc.get("id"))) not in seen:
                side.pages += 1
            if inc is not None:
                seen.add((n.receiver, str(inc.get("id"))))
        key = str(inc["id"]) if inc and inc.get("id") else n.group_key
        u = side.units.setdefault(key, {"key": key, "title": "", "alerts": set(), "notifications": 0,
                                        "first": n.timestamp})
        u["notifications"] += 1
        u["first"] = min(u["first"], n.timestamp)
        u["title"] = (inc or {}).get("title") or ", ".join(f"{k}={v}" for k, v in sorted(n.group_labels.items()))
        u["alerts"].update(a.fingerprint or str(sorted(a.labels.items())) for a in n.alerts)
    for u in side.units.values():
        u["alerts"] = len(u["alerts"])
        u["first"] = fmt_time(u["first"])
    return side


def file_references(raw: Any, path: str = "") -> list[str]:
    """Paths of the keys of an uploaded configuration that name files on this server (`templates`, `*_file`,
    `*_files`). Pure. An upload must not make the server read its own files (a parse error could echo them);
    the replay needs no secrets, its receivers only record."""
    out: list[str] = []
    if isinstance(raw, dict):
        for k, v in raw.items():
            p = f"{path}.{k}" if path else str(k)
            if str(k) == "templates" or str(k).endswith(("_file", "_files")):
                out.append(p)
            else:
                out.extend(file_references(v, p))
    elif isinstance(raw, list):
        for i, v in enumerate(raw):
            out.extend(file_references(v, f"{path}[{i}]"))
    return out


def redis_url_of(engine: Any) -> str:
    """The URL of the Redis the service uses (unix socket or TCP), for replay's own client."""
    kw = engine.redis.connection_pool.connection_kwargs
    db = kw.get("db", 0)
    if kw.get("path"):
        return f"unix://{kw['path']}?db={db}"
    cred = ""
    if kw.get("password"):
        from urllib.parse import quote

        cred = f"{quote(kw.get('username') or '')}:{quote(kw['password'])}@"
    scheme = "rediss" if kw.get("ssl") or "SSL" in type(engine.redis.connection_pool.connection_class).__name__ \
        else "redis"
    return f"{scheme}://{cred}{kw.get('host', '127.0.0.1')}:{kw.get('port', 6379)}/{db}"


async def run_both(cfg: Config, lines: list[str], redis_url: str) -> tuple[Side, Side]:
    on_sent: list[Notification] = []
    off_sent: list[Notification] = []
    on = copy.deepcopy(cfg)
    # Never an LLM call from an uploaded configuration: its base_url and api_key_env would hand this server's key
    # to any address. Summaries come from the evidence (what the page shows does not depend on them).
    on.tocsin.llm = {"enabled": False}
    on.extensions = dataclasses.replace(on.extensions, llm=None)  # the settings validated at load go too
    off = copy.deepcopy(on)
    off.tocsin.correlation = {"enabled": False}
    off.tocsin.escalation = {}
    await replay(on, lines, on_sent.append, redis_url=redis_url)
    await replay(off, lines, off_sent.append, redis_url=redis_url)
    on_name = "Tocsin (correlation on)" if (cfg.tocsin.correlation or {}).get("enabled") else \
        "this configuration (correlation off)"
    return summarize(on_name, on_sent), summarize("Alertmanager grouping (correlation off)", off_sent)


async def replay_page(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    return render(request, sess, "replay.html", result=None, error="", config_text="")


def _uploaded_config(engine: Any, text: str) -> Config:
    """The uploaded configuration (refused if it names server files), or a copy of the running one."""
    if not text.strip():
        return copy.deepcopy(engine.cfg)
    try:
        refs = file_references(yaml.safe_load(text))
    except yaml.YAMLError as e:
        raise UIError(400, f"config: not YAML: {e}") from None
    if refs:
        raise UIError(400, f"config: {refs[0]}: files on this server are not read for an uploaded configuration; "
                           "remove it (replay sends nothing, so no secret is needed) or leave the configuration "
                           "empty to use the running one")
    try:
        return parse_config(text)
    except ConfigErrors as e:
        raise UIError(400, f"config: {e}") from None


def _stream_lines(data: bytes) -> list[str]:
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise UIError(400, "stream: not UTF-8 text (JSON lines expected)") from None
    if not any(x.strip() for x in lines):
        raise UIError(400, "stream: empty; upload a recording (one JSON alert or event per line)")
    if len(lines) > MAX_LINES:
        raise UIError(413, f"stream: {len(lines)} lines; at most {MAX_LINES} here (use `tocsin replay`)")
    return lines


async def replay_run(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    engine = request.app[ENGINE]
    form = request[FORM]
    stream = form.get("stream")
    data = stream.file.read() if hasattr(stream, "file") else str(stream or "").encode()
    config_text = ""
    cfg_field = form.get("config")
    if hasattr(cfg_field, "file"):
        config_text = cfg_field.file.read().decode("utf-8", "replace")
    elif isinstance(form.get("config_text"), str):
        config_text = form["config_text"]
    try:
        cfg = _uploaded_config(engine, config_text)
        lines = _stream_lines(data)
        try:
            result = await run_both(cfg, lines, redis_url_of(engine))
        except ReplayInputError as e:
            raise UIError(400, f"stream: {e}") from None
    except UIError as e:
        return render(request, sess, "replay.html", status=e.status, result=None, error=e.message,
                      config_text=config_text[:100_000])
    log.info("ui_replay", lines=len(lines), by=sess.user, on=result[0].notifications, off=result[1].notifications)
    return render(request, sess, "replay.html", result=result, error="", config_text=config_text[:100_000],
                  lines=len(lines))
