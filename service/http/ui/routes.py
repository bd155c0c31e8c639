"""The web UI, served by `tocsin serve` under /ui/: incidents (or alert groups with correlation off), an
incident's detail with its timeline chart and actions, alerts, silences, and replay.

Server-rendered HTML (Jinja2, autoescaped) with one small script for live refresh and the silence preview; CSS
and JS ship in the package (service/http/ui/static), no build step, nothing from the internet. Every /ui response
carries a strict Content-Security-Policy (no inline script or style) and the usual hardening headers.
`add_ui(app)` is the one call service/http/app.py makes."""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from service.http.ui import handlers as h
from service.http.ui.replay_view import replay_page, replay_run

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/ui" or request.path.startswith("/ui/"):
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        if not request.path.startswith("/ui/static/"):
            response.headers.setdefault("Cache-Control", "no-store")


async def _slash(request: web.Request) -> web.StreamResponse:
    return h.redirect("/ui/")


def add_ui(app: web.Application) -> None:
    r = app.router
    r.add_get("/ui", _slash)
    r.add_get("/ui/", h.page(h.index))
    r.add_get("/ui/incidents.json", h.page(h.index_json))
    r.add_get("/ui/incidents/{id}", h.page(h.incident))
    r.add_post("/ui/incidents/{id}", h.action(h.incident_action))
    r.add_get("/ui/alerts", h.page(h.alerts))
    r.add_get("/ui/silences", h.page(h.silences))
    r.add_get("/ui/silences/new", h.page(h.silence_new))
    r.add_get("/ui/silences/preview.json", h.page(h.silence_preview))
    r.add_post("/ui/silences", h.action(h.silence_create))
    r.add_post("/ui/silences/{id}/expire", h.action(h.silence_expire))
    r.add_get("/ui/replay", h.page(replay_page))
    r.add_post("/ui/replay", h.action(replay_run))
    r.add_get("/ui/login", h.login_form)
    r.add_post("/ui/login", h.login)
    r.add_post("/ui/logout", h.action(h.logout))
    r.add_static("/ui/static/", STATIC, name="ui_static", append_version=False)
    app.on_response_prepare.append(_headers)
