"""Browser sessions for the web UI: the API's bearer tokens, turned into a cookie at a login form.

- The login form takes a token that would open the API (`tocsin.auth.tokens` with source `api` or `all`;
  compared in constant time against every token). A valid one starts a session: a random id in an HttpOnly,
  SameSite=Strict cookie scoped to /ui; Redis holds (service/store/sessions.py), under the SHA-256 of that id
  and with a TTL, the session's CSRF token, the name actions are recorded under, and the SHA-256 of the token
  (never the token). Every request checks that the token still exists, so removing it from the configuration
  and reloading ends its sessions.
- Without configured tokens (open mode) every visitor gets an anonymous session on the first page, so that
  actions still carry a CSRF token.
- Every state-changing request must come from the same origin (Origin, else Referer, equal to this server or
  to `external_url`) and carry the session's CSRF token (form field `csrf` or header `X-CSRF-Token`).

Written here rather than with aiohttp-session/aiohttp-security: those keep the session in the cookie or need
their own storage adapters; this is one Redis key per session with the service's own client and prefix."""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from service.http.appkeys import ENGINE, TOKENS
from service.store.sessions import SessionStore

COOKIE = "tocsin_ui"
LOGIN_FAILURES = 20  # wrong tokens per client address and window before logins are refused (429)
LOGIN_WINDOW = 300
SESSION_TTL = 12 * 3600
ANON_TTL = 12 * 3600


@dataclass
class Session:
    sid: str
    csrf: str
    user: str
    token_hash: str  # "" in open mode
    authenticated: bool
    new: bool = False  # the cookie must be set on this response


def _digest(s: str | bytes) -> str:
    return hashlib.sha256(s.encode() if isinstance(s, str) else s).hexdigest()


def _store(request: web.Request) -> SessionStore:
    engine = request.app[ENGINE]
    return SessionStore(engine.redis, engine.keys)


def auth_required(request: web.Request) -> bool:
    return bool(request.app[TOKENS])


def check_token(request: web.Request, given: str) -> str | None:
    """The SHA-256 of `given` if it is a token that opens the API, else None. Constant time per token."""
    raw = given.strip().encode()
    ok = False
    for secret, sources in request.app[TOKENS]:
        match = hmac.compare_digest(raw, secret)
        ok |= match and ("all" in sources or "api" in sources)
    return _digest(raw) if ok and raw else None


def token_name(request: web.Request, token_hash: str) -> str:
    """The configured name of the token with this hash (shown as who acted, unless the person gave a name)."""
    for t in request.app[ENGINE].cfg.tocsin.auth.tokens:
        try:
            if hmac.compare_digest(_digest(t.resolve().encode()), token_hash):
                return str(t.name)
        except Exception:  # a token file that went away: not this one
            continue
    return "token"


def token_secret(request: web.Request, token_hash: str) -> bytes | None:
    """The live token with this hash (to call the API's own handlers in-process), or None if it is gone."""
    for secret, sources in request.app[TOKENS]:
        if hmac.compare_digest(_digest(secret), token_hash) and ("all" in sources or "api" in sources):
            return secret
    return None


async def login_blocked(request: web.Request) -> bool:
    """Too many wrong tokens from this address lately (guessing tokens is slowed to 20 per 5 minutes)."""
    return await _store(request).failures(_digest(request.remote or "?")) >= LOGIN_FAILURES


async def login_failed(request: web.Request) -> None:
    await _store(request).count_failure(_digest(request.remote or "?"), LOGIN_WINDOW)


async def stored(request: web.Request) -> Session | None:
    """The session the request's cookie names, as stored (whether or not it still admits its holder)."""
    sid = request.cookies.get(COOKIE)
    if not sid or len(sid) > 100:
        return None
    raw = await _store(request).get(_digest(sid))
    if not raw:
        return None
    d = json.loads(raw)
    return Session(sid, d["csrf"], d["user"], d.get("token_hash", ""), bool(d.get("auth")))


async def load(request: web.Request) -> Session | None:
    """The request's session, if it admits its holder: in open mode any; else an authenticated one whose token is
    still configured."""
    s = await stored(request)
    if s is None:
        return None
    if auth_required(request):
        if not s.authenticated or token_secret(request, s.token_hash) is None:
            return None  # an anonymous session from open mode, or a token removed by a reload
    return s


async def create(request: web.Request, user: str, token_hash: str = "", old: Session | None = None) -> Session:
    """A new session (a new id: logging in never keeps the id a visitor had before)."""
    store = _store(request)
    if old is not None:
        await store.delete(_digest(old.sid))
    s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), user, token_hash, bool(token_hash), new=True)
    body = json.dumps({"csrf": s.csrf, "user": user, "token_hash": token_hash, "auth": s.authenticated})
    await store.put(_digest(s.sid), body, SESSION_TTL if token_hash else ANON_TTL)
    return s


async def destroy(request: web.Request, s: Session) -> None:
    await _store(request).delete(_digest(s.sid))


def set_cookie(request: web.Request, resp: web.StreamResponse, s: Session) -> None:
    resp.set_cookie(COOKIE, s.sid, path="/ui", httponly=True, samesite="Strict", secure=request.secure,
                    max_age=SESSION_TTL)


def clear_cookie(resp: web.StreamResponse) -> None:
    resp.del_cookie(COOKIE, path="/ui")


def _origin_of(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}" if p.scheme and p.netloc else ""


def same_origin(request: web.Request) -> bool:
    """The request was sent by a page of this server (Origin, else Referer)."""
    allowed = {f"{request.scheme}://{request.host}"}
    ext = request.app[ENGINE].cfg.tocsin.external_url
    if ext:
        allowed.add(_origin_of(ext))
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin in allowed
    ref = request.headers.get("Referer")
    return bool(ref) and _origin_of(ref) in allowed


def csrf_ok(s: Session, given: Any) -> bool:
    return isinstance(given, str) and bool(given) and hmac.compare_digest(given.encode(), s.csrf.encode())
