"""Tocsin's incident API, and the two inbound doors that change incidents: Slack's interactivity endpoint
(Acknowledge / Resolve / Snooze / Mark as noise / summary feedback buttons) and PagerDuty's webhook v3.

Every change to an incident goes through `apply_action`, which records it (with who and when) and flushes the
incident's groups at once, so the Slack message is edited in place, PagerDuty is acknowledged or resolved, and
escalation stops (escalation checks the incident's state before every step)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from service.http.pagerduty_webhook import PagerDutyEvent, make_pagerduty_webhook_handler
from service.http.slack_actions import RedisReplayGuard, SlackAction, make_slack_actions_handler

from service.http.api import json_error, require_token, _json_body
from service.http.appkeys import ENGINE
from service.core.clock import parse_rfc3339

log = structlog.get_logger("tocsin.incidents")


async def apply_action(engine: Any, iid: str, action: str, who: str, snooze_seconds: float | None = None) -> None:
    inc = engine.incidents
    now = engine.clock.now()
    if action in ("ack", "snooze"):  # "noise" may judge a resolved incident afterwards: it changes no state
        from service.incidents import IncidentConflict

        state = (await inc.get(iid))["state"]
        if state == "resolved":  # a stale button or a late PagerDuty retry must not revive a resolved incident
            raise IncidentConflict(f"incident {iid} is resolved; {action} does not apply")
    if action == "ack":
        await inc.ack(iid, who)
    elif action == "resolve":
        await inc.resolve(iid, who)
    elif action == "snooze":
        await inc.snooze(iid, now + float(snooze_seconds or 3600), who)
    elif action == "noise":
        await inc.mark_noise(iid, who)
    elif action in ("summary_helpful", "summary_unhelpful"):
        if engine.summaries is not None:
            await engine.summaries.record_feedback(iid, action == "summary_helpful", who)
        return
    elif action == "unack":
        await inc.unack(iid, who)
    else:
        raise ValueError(f"unknown action {action!r}")
    log.info("incident_action", incident=iid, action=action, who=who)
    await engine.dispatcher.touch_incident(iid)


def _engine_with_incidents(request: web.Request) -> Any:
    engine = request.app[ENGINE]
    if engine.incidents is None:
        raise web.HTTPNotFound(text='{"code": 404, "message": "correlation is off: set tocsin.correlation.enabled"}',
                               content_type="application/json")
    return engine


def _time_param(request: web.Request, name: str) -> float | None:
    v = request.query.get(name)
    if v is None:
        return None
    try:
        return float(v)
    except ValueError:
        pass
    try:
        return parse_rfc3339(v)
    except ValueError:
        raise web.HTTPBadRequest(text=f'{{"code": 400, "message": "{name}: not a time"}}',
                                 content_type="application/json") from None


@require_token("api")
async def list_incidents(request: web.Request) -> web.Response:
    engine = _engine_with_incidents(request)
    state = request.query.get("state")
    if state and state not in ("triggered", "acknowledged", "snoozed", "resolved"):
        return json_error(400, "state: must be triggered, acknowledged, snoozed or resolved")
    sev = request.query.get("severity")
    if sev and sev not in ("critical", "error", "warning", "info"):
        return json_error(400, "severity: must be critical, error, warning or info")
    items = await engine.incidents.list(state=state, severity=sev, since=_time_param(request, "since"),
                                        until=_time_param(request, "until"))
    return web.json_response(items)


async def _get(engine: Any, iid: str) -> dict[str, Any]:
    from service.incidents import IncidentNotFound

    try:
        snap = await engine.incidents.get(iid)
    except IncidentNotFound:
        raise web.HTTPNotFound(text='{"code": 404, "message": "incident not found"}',
                               content_type="application/json") from None
    if engine.summaries is not None:
        from service.summaries.evidence import build_evidence

        try:
            snap["evidence"] = build_evidence(snap).model_dump(mode="json")
        except ValueError:
            pass
        snap["summary_feedback"] = await engine.summaries.feedback(iid)
    return snap


@require_token("api")
async def summary_feedback(request: web.Request) -> web.Response:
    """The share of summary votes that said helpful, over all incidents (also tocsin_llm_summary_helpful_share)."""
    engine = _engine_with_incidents(request)
    share = await engine.summaries.helpful_share() if engine.summaries is not None else None
    return web.json_response({"helpful_share": share})


@require_token("api")
async def get_incident(request: web.Request) -> web.Response:
    engine = _engine_with_incidents(request)
    return web.json_response(await _get(engine, request.match_info["id"]))


@require_token("api")
async def post_action(request: web.Request) -> web.Response:
    engine = _engine_with_incidents(request)
    iid = request.match_info["id"]
    action = request.match_info["action"]
    body = await _json_body(request) if request.can_read_body else {}
    if not isinstance(body, dict):
        return json_error(400, "body: must be an object")
    who = body.get("by") or body.get("who") or "api"
    if not isinstance(who, str):
        return json_error(400, "by: must be a string")
    await _get(engine, iid)  # 404 for unknown incidents
    from service.incidents import IncidentConflict

    try:
        if action in ("ack", "resolve", "noise"):
            await apply_action(engine, iid, action, who)
        elif action == "snooze":
            secs = body.get("seconds", 3600)
            if not isinstance(secs, (int, float)) or secs <= 0:
                return json_error(400, "seconds: must be a positive number")
            await apply_action(engine, iid, "snooze", who, float(secs))
        elif action == "merge":
            other = body.get("other")
            if not isinstance(other, str) or not other:
                return json_error(400, "other: the id of the incident to merge into this one is required")
            await _get(engine, other)
            await engine.incidents.merge(iid, other, who)
            await engine.dispatcher.regroup_incident(other, iid)
            await engine.dispatcher.touch_incident(iid)
        elif action == "split":
            fps = body.get("fingerprints")
            if not isinstance(fps, list) or not fps or not all(isinstance(f, str) for f in fps):
                return json_error(400, "fingerprints: a non-empty list of member fingerprints is required")
            new_id = await engine.incidents.split(iid, fps, who)
            await engine.dispatcher.regroup_incident(iid, new_id, fps)
            await engine.dispatcher.touch_incident(iid)
            return web.json_response(await _get(engine, new_id))
        elif action == "feedback":
            helpful = body.get("helpful")
            if not isinstance(helpful, bool):
                return json_error(400, "helpful: must be true or false")
            if engine.summaries is None:
                return json_error(404, "no summarizer configured")
            await engine.summaries.record_feedback(iid, helpful, who)
        else:
            return json_error(404, f"unknown action {action!r}")
    except IncidentConflict as e:
        return json_error(409, str(e))
    return web.json_response(await _get(engine, iid))


def _secret(cfg: dict[str, Any], key: str) -> str | None:
    if cfg.get(key):
        return str(cfg[key])
    if cfg.get(f"{key}_file"):
        return Path(cfg[f"{key}_file"]).read_text().strip()
    if cfg.get(f"{key}_env"):
        return os.environ.get(cfg[f"{key}_env"])
    return None


def _pd_secrets(pd_cfg: dict[str, Any]) -> list[str]:
    one = _secret(pd_cfg, "webhook_secret")
    return list(pd_cfg.get("webhook_secrets") or []) + ([one] if one else [])


def add_incident_routes(app: web.Application, slack_cfg: dict[str, Any], pd_cfg: dict[str, Any], clock: Any) -> None:
    """Incident routes, and the Slack / PagerDuty doors. Their secrets are read from the live configuration, so a
    reload that rotates them takes effect (and a door without a secret answers 404)."""
    r = app.router
    r.add_get("/api/v1/incidents", list_incidents)
    r.add_get("/api/v1/summaries/feedback", summary_feedback)
    r.add_get("/api/v1/incidents/{id}", get_incident)
    r.add_post("/api/v1/incidents/{id}/{action}", post_action)
    _add_slack_door(app, clock)
    _add_pagerduty_door(app, clock)


def _add_slack_door(app: web.Application, clock: Any) -> None:
    """POST /api/v1/slack/actions: the buttons of Tocsin's Slack messages (signed; 404 without a signing secret)."""

    async def on_slack(a: SlackAction) -> None:
        engine = app[ENGINE]
        if engine.incidents is None or a.incident_id.startswith("group:"):
            return
        who = a.user_name or a.user_id
        from service.incidents import IncidentConflict

        try:
            await apply_action(engine, a.incident_id, a.action, who, a.snooze_seconds)
        except IncidentConflict as e:
            log.info("slack_action_ignored", action=a.action, incident=a.incident_id, reason=str(e))
        except Exception as e:
            log.error("slack_action_failed", action=a.action, incident=a.incident_id, error=repr(e))

    holder: dict[str, Any] = {}

    async def slack_actions(request: web.Request) -> web.StreamResponse:
        engine = request.app[ENGINE]
        cfg = engine.cfg.tocsin.slack or {}
        signing = _secret(cfg, "signing_secret")
        if not signing:
            return web.json_response({"code": 404, "message": "set tocsin.slack.signing_secret"}, status=404)
        allowed = tuple(cfg.get("allowed_users") or ())
        if holder.get("key") != (signing, allowed):  # first use, or the secret / allow-list was reloaded
            holder["key"] = (signing, allowed)
            holder["h"] = make_slack_actions_handler(
                signing, clock, on_slack, allowed_users=allowed or None,
                replay_guard=RedisReplayGuard(engine.redis, engine.keys.prefix))
        return await holder["h"](request)

    app[SLACK_HANDLER] = holder
    app.router.add_post("/api/v1/slack/actions", slack_actions)


def _add_pagerduty_door(app: web.Application, clock: Any) -> None:
    """POST /api/v1/pagerduty/webhook: PagerDuty's V3 webhooks (signed; 404 without a webhook secret)."""

    async def on_pd(ev: PagerDutyEvent) -> None:
        engine = app[ENGINE]
        if engine.incidents is None or ev.agent_type == "service_reference":
            return  # our own acknowledge coming back through the API
        action = {"acknowledged": "ack", "resolved": "resolve", "unacknowledged": "unack"}.get(ev.kind)
        if action is None:
            return
        from service.incidents import IncidentConflict, IncidentNotFound

        try:
            await apply_action(engine, ev.incident_key, action, f"{ev.agent or 'someone'} (PagerDuty)")
        except IncidentNotFound:
            log.info("pagerduty_webhook_unknown_incident", incident=ev.incident_key)
        except IncidentConflict as e:
            log.info("pagerduty_webhook_ignored", incident=ev.incident_key, reason=str(e))

    pd_holder: dict[str, Any] = {}

    async def pd_webhook(request: web.Request) -> web.StreamResponse:
        engine = request.app[ENGINE]
        secrets = _pd_secrets(engine.cfg.tocsin.pagerduty or {})
        if not secrets:
            return web.json_response({"code": 404, "message": "set tocsin.pagerduty.webhook_secrets"}, status=404)
        if pd_holder.get("key") != tuple(secrets):
            pd_holder["key"] = tuple(secrets)
            pd_holder["h"] = make_pagerduty_webhook_handler(secrets, engine.redis, engine.keys.prefix, on_pd,
                                                             clock=clock)
        return await pd_holder["h"](request)

    app.router.add_post("/api/v1/pagerduty/webhook", pd_webhook)


SLACK_HANDLER: web.AppKey[dict[str, Any]] = web.AppKey("slack_handler", dict)
