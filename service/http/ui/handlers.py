"""The web UI's aiohttp handlers: incidents, alerts, silences, login. They read and act through the same code as
the HTTP API (the incident store's list/get and `incident_api.apply_action`, the API's own GET /api/v2/alerts and
/api/v2/silences handlers called in-process, the silence store's upsert/expire), so the page shows exactly what
the API says. Pure view logic is in views.py; sessions, CSRF and origin checks in auth.py."""
from __future__ import annotations

import asyncio
import json
import math
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

import jinja2
import structlog
from aiohttp import web
from multidict import CIMultiDict

from routing.durations import parse_duration
from routing.matchers import parse_matchers
from routing.silences import SilenceError

from service.http import api as api_handlers
from service.http.appkeys import ENGINE
from service.core.errors import ConfigError
from service.http.ui import auth, views

log = structlog.get_logger("tocsin.ui")

PAGE_SIZE = 25  # incidents per page (read in two pipelines; computing their snapshots is most of the cost)
FILTERED_SCAN = 1000  # incidents looked through when a text filter is set
MERGE_CHOICES = 10  # the newest incidents offered by "Merge into"
Page = Callable[[web.Request, auth.Session], Awaitable[web.StreamResponse]]

_env = jinja2.Environment(loader=jinja2.PackageLoader("service.http.ui", "templates"), autoescape=True,
                          trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
_env.globals.update(fmt_time=views.fmt_time, fmt_iso=views.fmt_iso, fmt_age=views.fmt_age,
                    labels_text=views.labels_text, matchers_text=views.matchers_text,
                    silence_matchers_text=views.silence_matchers_text, STATES=views.STATES,
                    SEVERITIES=views.SEVERITIES, fmt_span=views.fmt_span)
_env.tests["http_url"] = lambda v: isinstance(v, str) and v.lower().startswith(("http://", "https://"))


def redirect(location: str) -> web.Response:
    """303 See Other (after a form POST the browser GETs the result: reloading never repeats an action)."""
    return web.Response(status=303, headers={"Location": location})


FORM: web.RequestKey[Any] = web.RequestKey("ui_form", object)
BASE: web.RequestKey[web.Request] = web.RequestKey("ui_base", web.Request)


class UIError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def render(request: web.Request, sess: auth.Session, template: str, status: int = 200, **ctx: Any) -> web.Response:
    engine = request.app[ENGINE]
    html = _env.get_template(template).render(
        sess=sess, csrf=sess.csrf, auth_required=auth.auth_required(request), path=request.path,
        now=engine.clock.now(), correlation=engine.incidents is not None, **ctx)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


def page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A GET page: a session is needed (login with a token, or an anonymous one in open mode)."""

    async def inner(request: web.Request) -> web.StreamResponse:
        sess = await auth.load(request)
        if sess is None:
            if auth.auth_required(request):
                if request.path.endswith(".json"):
                    return web.json_response({"code": 401, "message": "log in at /ui/login"}, status=401)
                raise web.HTTPSeeOther("/ui/login?" + urlencode({"next": request.path_qs}))
            sess = await auth.create(request, "web")
        try:
            resp = await handler(request, sess)
        except UIError as e:
            resp = render(request, sess, "error.html", status=e.status, message=e.message)
        if sess.new:
            auth.set_cookie(request, resp, sess)
        return resp

    return inner


def action(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A state-changing POST: same origin, a live session, and that session's CSRF token."""

    async def inner(request: web.Request) -> web.StreamResponse:
        if not auth.same_origin(request):
            return web.Response(status=403, text="cross-origin request refused\n")
        sess = await auth.load(request)
        if sess is None:
            return web.Response(status=403, text="no session: log in at /ui/login\n")
        request[BASE] = request.clone()  # before the body is read: the API's GET handlers are called on clones
        form = await request.post()
        given = request.headers.get("X-CSRF-Token") or form.get("csrf")
        if not auth.csrf_ok(sess, given):
            return web.Response(status=403, text="missing or invalid CSRF token\n")
        request[FORM] = form
        try:
            return await handler(request, sess)
        except UIError as e:
            return render(request, sess, "error.html", status=e.status, message=e.message)

    return inner


async def call_api(request: web.Request, sess: auth.Session, handler: Any, rel_url: str) -> Any:
    """Call one of the API's own GET handlers in-process (with the session's token), and return its JSON."""
    headers = CIMultiDict(request.headers)
    headers.popall("Authorization", None)
    if auth.auth_required(request):
        secret = auth.token_secret(request, sess.token_hash)
        if secret is None:
            raise UIError(403, "the token of this session is no longer accepted")
        headers["Authorization"] = "Bearer " + secret.decode()
    base = request.get(BASE, request)
    try:
        resp = await handler(base.clone(method="GET", rel_url=rel_url, headers=headers))
        raw = resp.body
    except web.HTTPException as e:  # e.g. the API's 400 for a bad `filter`
        resp, raw = e, (e.text or "").encode()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    if resp.status >= 400:
        raise UIError(resp.status, str(body.get("message", "request failed")) if isinstance(body, dict)
                      else "request failed")
    return body


# ------------------------------------------------------------------------------------------------- incidents

def _filters(request: web.Request) -> dict[str, str]:
    q = request.query
    f = {k: q.get(k, "").strip()[:200] for k in ("state", "severity", "service", "q", "before")}
    if f["before"]:
        try:
            ok = math.isfinite(float(f["before"]))
        except ValueError:
            ok = False
        if not ok:
            raise UIError(400, "before: must be a time in epoch seconds")
    for name, allowed in (("state", views.STATES), ("severity", views.SEVERITIES)):
        if (why := views.check_choice(f[name], allowed, name)) is not None:
            raise UIError(400, why)
    return f


async def _incident_rows(request: web.Request, f: dict[str, str]) -> list[dict[str, Any]]:
    engine = request.app[ENGINE]
    narrow = bool(f["q"])  # the store filters by service itself; free text is matched here, on the snapshots
    until = float(f["before"]) - 1e-6 if f["before"] else None  # older than the previous page's last one
    snaps = await engine.incidents.list(state=f["state"] or None, severity=f["severity"] or None, until=until,
                                        service=f["service"] or None, limit=FILTERED_SCAN if narrow else PAGE_SIZE)
    now = engine.clock.now()
    rows = [dict(views.incident_row(s, now), opened=s["opened_at"]) for s in snaps
            if views.matches_filters(s, f["service"], f["q"])]
    return rows[:PAGE_SIZE]


async def _unassigned(engine: Any) -> int:
    """Firing alerts that are in no incident (e.g. on routes with `tocsin: {correlate: false}`). Without
    `correlation.domain_labels` every alert is in the default domain, so the firing fingerprints come from the
    alert store's end-time index and no alert record is read; with them, each firing alert's labels name its
    domain."""
    inc = engine.incidents
    now = engine.clock.now()
    if not inc.cfg.domain_labels:
        return await inc.count_without_incident({"default": await engine.dispatcher.store.firing_fingerprints(now)})
    by_domain: dict[str, list[str]] = {}
    for a in await engine.dispatcher.store.all():
        if not a.resolved_at(now):
            by_domain.setdefault(inc.domain(a.labels), []).append(a.fingerprint)
    return await inc.count_without_incident(by_domain)


async def index(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    engine = request.app[ENGINE]
    if engine.incidents is None:
        return await _groups(request, sess)
    f = _filters(request)
    rows, unassigned = await asyncio.gather(_incident_rows(request, f), _unassigned(engine))
    older = ""
    if len(rows) == PAGE_SIZE:
        older = "/ui/?" + urlencode({**{k: v for k, v in f.items() if v and k != "before"},
                                     "before": repr(rows[-1]["opened"])})
    return render(request, sess, "incidents.html", rows=rows, f=f, unassigned=unassigned, page_size=PAGE_SIZE,
                  older=older, self_url=request.path_qs)


async def index_json(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    """What the list page polls for its live refresh."""
    engine = request.app[ENGINE]
    if engine.incidents is None:
        raise UIError(404, "correlation is off")
    try:
        f = _filters(request)
    except UIError as e:
        return web.json_response({"code": e.status, "message": e.message}, status=e.status)
    rows, unassigned = await asyncio.gather(_incident_rows(request, f), _unassigned(engine))
    return web.json_response({"rows": rows, "unassigned": unassigned, "at": views.fmt_time(engine.clock.now())},
                             headers={"Cache-Control": "no-store"})


async def _groups(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    """With correlation off: the alert groups, as Alertmanager's UI lists them."""
    engine = request.app[ENGINE]
    alerts = await call_api(request, sess, api_handlers.get_alerts, _alerts_url(request))
    groups = views.alert_groups(alerts, engine.cfg.route)
    return render(request, sess, "groups.html", groups=groups, q=_alert_query(request),
                  receivers=sorted(engine.cfg.receivers))


async def _escalations(engine: Any, snap: dict[str, Any]) -> list[views.Escalation]:
    """The incident's escalations, read from their stored state (read only)."""
    esc = engine.escalator
    if esc is None:
        return []
    out = []
    for name, policy in esc.cfg.policies.items():
        h, due = await esc.state(snap["id"], name)
        if h:
            out.append(views.escalation_from_state(name, policy, h, due, snap["state"]))
    return out


async def incident(request: web.Request, sess: auth.Session, status: int = 200, error: str = "") -> web.StreamResponse:
    engine = request.app[ENGINE]
    if engine.incidents is None:
        raise UIError(404, "correlation is off: set tocsin.correlation.enabled")
    from service.http.incident_api import _get

    iid = request.match_info["id"]
    try:
        snap = await _get(engine, iid)
    except web.HTTPNotFound:
        raise UIError(404, f"incident {iid} not found") from None
    now = engine.clock.now()
    escalations = await _escalations(engine, snap)
    names = {m["fingerprint"]: views.member_name(m) for m in snap["members"]}
    root = (snap.get("root_causes") or [None])[0]
    members = [dict(m, reasons=views.join_reasons(m, names), name=views.member_name(m), root=views.is_root(m, root))
               for m in snap["members"]]
    others = [s for s in await engine.incidents.list(limit=MERGE_CHOICES)
              if s["id"] != iid and s["state"] != "resolved"]
    index_ = views.evidence_index(snap.get("evidence"))
    return render(request, sess, "incident.html", status=status, inc=snap, members=members,
                  chart=views.timeline_chart(snap, now, escalations), escalations=escalations,
                  cited=views.cited(snap.get("summary"), index_), others=others, error=error,
                  done=DONE.get(request.query.get("done", ""), ""), summaries=engine.summaries is not None)


ACTIONS = ("ack", "resolve", "snooze", "noise", "merge_into", "split", "feedback")
DONE = {"ack": "acknowledged", "resolve": "resolved", "snooze": "snoozed", "noise": "marked as noise",
        "merge_into": "merged", "split": "split", "feedback": "feedback recorded"}


async def incident_action(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    """The detail page's buttons: the same calls as POST /api/v1/incidents/{id}/{action}."""
    engine = request.app[ENGINE]
    if engine.incidents is None:
        raise UIError(404, "correlation is off")
    from service.http.incident_api import _get
    from service.incidents import IncidentConflict, IncidentNotFound

    iid = request.match_info["id"]
    form = request[FORM]
    act = str(form.get("action", ""))
    if act not in ACTIONS:
        raise UIError(400, f"action: must be one of {', '.join(ACTIONS)}")
    try:
        await _get(engine, iid)
    except web.HTTPNotFound:
        raise UIError(404, f"incident {iid} not found") from None
    try:
        target = await _run_action(engine, iid, act, form, sess.user)
    except IncidentConflict as e:
        return await incident(request, sess, status=409, error=str(e))
    except IncidentNotFound as e:
        raise UIError(404, str(e)) from None
    return redirect(f"/ui/incidents/{target}?" + urlencode({"done": act}))


async def _run_action(engine: Any, iid: str, act: str, form: Any, who: str) -> str:
    """Do `act`; returns the incident to show next (the merge target, or the split-off incident)."""
    from service.http.incident_api import apply_action

    if act in ("ack", "resolve", "noise"):
        await apply_action(engine, iid, act, who)
    elif act == "snooze":
        try:
            secs = parse_duration(str(form.get("duration", "1h")), "duration")
        except ConfigError as e:
            raise UIError(400, str(e)) from None
        if secs <= 0:
            raise UIError(400, "duration: must be positive")
        await apply_action(engine, iid, "snooze", who, secs)
    elif act == "merge_into":
        return await _merge_into(engine, iid, str(form.get("target", "")), who)
    elif act == "split":
        return await _split(engine, iid, [str(v) for v in form.getall("fp", [])], who)
    else:
        await _feedback(engine, iid, str(form.get("helpful", "")), who)
    return iid


async def _merge_into(engine: Any, iid: str, target: str, who: str) -> str:
    """Merge this incident into `target`: POST /api/v1/incidents/{target}/merge {"other": iid}, same calls."""
    from service.http.incident_api import _get

    if not target or target == iid:
        raise UIError(400, "target: choose another incident to merge into")
    try:
        await _get(engine, target)
    except web.HTTPNotFound:
        raise UIError(404, f"incident {target} not found") from None
    await engine.incidents.merge(target, iid, who)
    await engine.dispatcher.regroup_incident(iid, target)
    await engine.dispatcher.touch_incident(target)
    return target


async def _split(engine: Any, iid: str, fps: list[str], who: str) -> str:
    """POST /api/v1/incidents/{id}/split {"fingerprints": fps}, same calls."""
    if not fps:
        raise UIError(400, "fingerprints: tick the members to split off")
    new_id = await engine.incidents.split(iid, fps, who)
    await engine.dispatcher.regroup_incident(iid, new_id, fps)
    await engine.dispatcher.touch_incident(iid)
    return str(new_id)


async def _feedback(engine: Any, iid: str, helpful: str, who: str) -> None:
    if helpful not in ("yes", "no"):
        raise UIError(400, "helpful: must be yes or no")
    if engine.summaries is None:
        raise UIError(404, "no summarizer configured")
    await engine.summaries.record_feedback(iid, helpful == "yes", who)


# ------------------------------------------------------------------------------------------------- alerts

ALERT_FLAGS = ("active", "silenced", "inhibited")


def _alert_query(request: web.Request) -> dict[str, Any]:
    """The alert filters. Like Alertmanager's UI, silenced and inhibited alerts are hidden until asked for; once
    the form was sent (`f=1`), an unticked box means no."""
    q = request.query
    sent = "f" in q
    flags = {k: (q.get(k) == "true") if sent else (k == "active") for k in ALERT_FLAGS}
    return {"filter": q.get("filter", "")[:1000], "receiver": q.get("receiver", "")[:200], **flags}


def _alerts_url(request: web.Request) -> str:
    q = _alert_query(request)
    params: list[tuple[str, str]] = []
    if q["filter"]:
        params.append(("filter", q["filter"]))
    if q["receiver"]:
        params.append(("receiver", q["receiver"]))
    for k in ALERT_FLAGS:
        params.append((k, "true" if q[k] else "false"))
    return "/api/v2/alerts?" + urlencode(params)


async def alerts(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    """Alertmanager's alert list with its filters (matchers, receiver, active/silenced/inhibited)."""
    engine = request.app[ENGINE]
    items = await call_api(request, sess, api_handlers.get_alerts, _alerts_url(request))
    groups = views.alert_groups(items, engine.cfg.route)
    return render(request, sess, "alerts.html", alerts=items, groups=groups, q=_alert_query(request),
                  receivers=sorted(engine.cfg.receivers))


# ------------------------------------------------------------------------------------------------- silences

async def silences(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    items = await call_api(request, sess, api_handlers.get_silences, "/api/v2/silences")
    return render(request, sess, "silences.html", silences=items, done=request.query.get("done", "")[:20])


async def _all_alerts(request: web.Request, sess: auth.Session) -> list[dict[str, Any]]:
    return await call_api(request, sess, api_handlers.get_alerts,
                          "/api/v2/alerts?active=true&silenced=true&inhibited=true")


async def silence_new(request: web.Request, sess: auth.Session, status: int = 200, error: str = "",
                      form: Any = None) -> web.StreamResponse:
    """The silence form, filled from an alert's labels (?fingerprint=) or from the matchers typed in, with the
    list of current alerts the silence would mute."""
    current = await _all_alerts(request, sess)
    src = form if form is not None else request.query
    text = str(src.get("matchers", ""))[:2000]
    fp = request.query.get("fingerprint", "")
    if not text and fp:
        alert = next((a for a in current if a["fingerprint"] == fp), None)
        if alert is not None:
            text = views.matchers_text(alert["labels"])
    matched: list[dict[str, Any]] = []
    parse_error = ""
    if text:
        try:
            matched = views.preview(parse_matchers(text, "matchers"), current)
        except ConfigError as e:
            parse_error = str(e)
    return render(request, sess, "silence_new.html", status=status, matchers=text, matched=matched,
                  parse_error=parse_error, error=error, duration=str(src.get("duration", "2h"))[:20],
                  comment=str(src.get("comment", ""))[:1000], total=len(current))


async def silence_preview(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    """The live preview the silence form polls: the current alerts these matchers would mute."""
    current = await _all_alerts(request, sess)
    try:
        ms = parse_matchers(request.query.get("matchers", "")[:2000], "matchers")
    except ConfigError as e:
        return web.json_response({"error": str(e), "alerts": [], "total": len(current)})
    hits = views.preview(ms, current)
    return web.json_response({"error": "", "alerts": [views.labels_text(a["labels"]) for a in hits[:200]],
                              "count": len(hits), "total": len(current)})


async def silence_create(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    engine = request.app[ENGINE]
    form = request[FORM]
    if form.get("do") == "preview":
        return await silence_new(request, sess, form=form)
    now = engine.clock.now()
    try:
        ms = parse_matchers(str(form.get("matchers", "")), "matchers")
        secs = parse_duration(str(form.get("duration", "")), "duration")
    except ConfigError as e:
        return await silence_new(request, sess, status=400, error=str(e), form=form)
    body = views.silence_body(ms, now, now + secs, sess.user, str(form.get("comment", "")))
    try:
        sid = await engine.silences.upsert(body, now)  # what POST /api/v2/silences does
    except SilenceError as e:
        return await silence_new(request, sess, status=e.status, error=str(e), form=form)
    log.info("ui_silence_created", silence=sid, by=sess.user)
    return redirect("/ui/silences?" + urlencode({"done": "created"}))


async def silence_expire(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    engine = request.app[ENGINE]
    sid = request.match_info["id"]
    if (bad := api_handlers._uuid_or_422(sid)) is not None:
        raise UIError(422, json.loads(bad.body)["message"])
    try:
        await engine.silences.expire(sid, engine.clock.now())  # what DELETE /api/v2/silence/{id} does
    except SilenceError as e:
        raise UIError(e.status if e.status < 500 else 409, str(e)) from None
    return redirect("/ui/silences?" + urlencode({"done": "expired"}))


# ------------------------------------------------------------------------------------------------- login

def _next(value: str) -> str:
    """Only a path of this UI (never another site: no scheme, no //host)."""
    return value if value.startswith("/ui/") and not value.startswith("//") and "\\" not in value else "/ui/"


async def login_form(request: web.Request) -> web.StreamResponse:
    sess = await auth.load(request)
    if sess is None:
        sess = await auth.create(request, "web")  # anonymous: carries the login form's CSRF token
    resp = render(request, sess, "login.html", next=_next(request.query.get("next", "/ui/")), error="")
    if sess.new:
        auth.set_cookie(request, resp, sess)
    return resp


async def login(request: web.Request) -> web.StreamResponse:
    if not auth.same_origin(request):
        return web.Response(status=403, text="cross-origin request refused\n")
    stored = await auth.stored(request)
    form = await request.post()
    old = auth.Session(stored.sid, stored.csrf, "", "", False) if stored else None
    if old is None or not auth.csrf_ok(old, form.get("csrf")):
        return web.Response(status=403, text="missing or invalid CSRF token: reload the login page\n")
    name = str(form.get("name", "")).strip()[:100]
    if auth.auth_required(request):
        if await auth.login_blocked(request):
            return render(request, old, "login.html", status=429, next=_next(str(form.get("next", ""))),
                          error="Too many wrong tokens from this address; try again in a few minutes.")
        th = auth.check_token(request, str(form.get("token", "")))
        if th is None:
            await auth.login_failed(request)
            log.info("ui_login_refused", remote=request.remote)
            return render(request, old, "login.html", status=401, next=_next(str(form.get("next", ""))),
                          error="That token is not accepted.")
        tname = auth.token_name(request, th)
        # The name typed is recorded with the token that vouched for it: "dana (oncall-team)".
        sess = await auth.create(request, f"{name} ({tname})" if name and name != tname else tname, th, old=old)
    else:
        sess = await auth.create(request, name or "web", old=old)
    resp = redirect(_next(str(form.get("next", "/ui/"))))
    auth.set_cookie(request, resp, sess)
    return resp


async def logout(request: web.Request, sess: auth.Session) -> web.StreamResponse:
    await auth.destroy(request, sess)
    resp = redirect("/ui/login")
    auth.clear_cookie(resp)
    return resp
