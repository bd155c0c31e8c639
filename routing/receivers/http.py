"""The one HTTP sender every Alertmanager-style receiver uses, and secrets read at send time.

`HttpSender` is built from a receiver's `http_config` (Prometheus' common HTTP client settings: `authorization`
with `credentials`/`credentials_file`, `bearer_token`/`bearer_token_file`, `basic_auth` with `password`/
`password_file`, `proxy_url`, `tls_config`, `follow_redirects`). It owns one aiohttp session, applies the
timeout, and turns every outcome into either a response or a `NotifyError` whose `retryable` follows
Alertmanager's `Retrier.Check`: 2xx is success, 5xx is retried, other statuses are retried only when the
integration lists them (e.g. Opsgenie's 429), network errors are retried. `Retry-After` (seconds or an HTTP
date) is carried to the outbox. Errors name the host only, never a URL path or query (webhook URLs are
secrets), and every secret value this sender knows of is replaced in any response text quoted in an error.

`Secret` is a value given inline or in a `*_file` setting: the file is read when sending, as Alertmanager
does, and an unreadable file is a delivery error that names its path.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Iterable

import aiohttp

from routing.receivers.base import NotifyError, redact, redact_url

USER_AGENT = "Tocsin (Alertmanager-compatible)"


@dataclass(frozen=True)
class Secret:
    """An inline secret or the path of a file holding it (read at every use)."""

    value: str | None = None
    file: str | None = None
    key: str = "secret"  # the config key, for error messages (e.g. "bot_token_file")

    def __bool__(self) -> bool:
        return bool(self.value) or bool(self.file)

    def get(self) -> str:
        if self.value is not None and self.value != "":
            return str(self.value)
        if self.file:
            try:
                with open(self.file, encoding="utf-8") as fh:
                    return fh.read().strip()
            except OSError as e:
                raise NotifyError(f"cannot read {self.key} {self.file}: {e.strerror or e}", False, label="secretFileUnreadable") from None
        return ""


def secret(d: dict[str, Any], key: str, default: Secret | None = None) -> Secret:
    """The Secret named `key` / `key_file` in a config mapping, else `default`."""
    v, f = d.get(key), d.get(f"{key}_file")
    if (v is None or v == "") and not f:
        return default or Secret(key=f"{key}_file")
    return Secret(None if v is None else str(v), f or None, f"{key}_file" if f else key)


def retry_after_seconds(value: str | None, now_epoch: float | None = None) -> float | None:
    """A Retry-After header as seconds: a number, or an HTTP date relative to `now_epoch`."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    if now_epoch is None:
        return None
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now_epoch)
    except (TypeError, ValueError, IndexError):
        return None


def failure_reason(status: int) -> str:
    """Alertmanager's failure reason label for an HTTP status."""
    if 400 <= status < 500:
        return "clientError"
    if 500 <= status < 600:
        return "serverError"
    return "other"


def check_status(status: int, body: str, retry_codes: Iterable[int] = (), retry_after: str | None = None,
                 secrets: Iterable[str] = (), now_epoch: float | None = None) -> NotifyError | None:
    """Alertmanager's Retrier.Check: None for 2xx, else the error (retryable for 5xx and `retry_codes`)."""
    if 200 <= status < 300:
        return None
    retryable = 500 <= status < 600 or status in set(retry_codes)
    snippet = scrub(body[:300], secrets) if body else ""
    reason = f"{failure_reason(status)}: unexpected status code {status}" + (f": {snippet}" if snippet else "")
    return NotifyError(reason, retryable, retry_after_seconds(retry_after, now_epoch), status)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every known secret value and anything secret-looking replaced."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "<redacted>")
    return redact(text)


def _url_parts(url: str) -> list[str]:
    """The parts of a URL that may be secret (webhook paths, query values), longest first, for scrub()."""
    from urllib.parse import parse_qsl, urlsplit

    u = urlsplit(url)
    parts = [url, u.path + ("?" + u.query if u.query else ""), u.path, u.path.lstrip("/")]
    parts += [v for _, v in parse_qsl(u.query)]
    return sorted({p for p in parts if p and len(p) >= 6}, key=len, reverse=True)


def _ssl_context(tls: dict[str, Any]) -> ssl.SSLContext | bool | None:
    if not tls:
        return None
    ctx = ssl.create_default_context(cafile=tls.get("ca_file") or None)
    if tls.get("cert_file"):
        ctx.load_cert_chain(tls["cert_file"], tls.get("key_file") or None)
    if tls.get("insecure_skip_verify"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class Response:
    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        import json

        return json.loads(self.text or "null")


class HttpSender:
    """One aiohttp session with a receiver's http_config applied; see the module docstring."""

    def __init__(self, http_config: dict[str, Any] | None = None, timeout: float = 10.0, clock: Any = None):
        hc = http_config or {}
        self.timeout = aiohttp.ClientTimeout(total=timeout if timeout and timeout > 0 else None)
        self.proxy = hc.get("proxy_url") or None
        self.follow_redirects = hc.get("follow_redirects", True) is not False
        self.tls = dict(hc.get("tls_config") or {})
        self.clock = clock
        a = hc.get("authorization") or None
        self.auth_type = str((a or {}).get("type") or "Bearer")
        self.auth_secret: Secret | None = None
        if a is not None:
            self.auth_secret = secret(a, "credentials")
        elif hc.get("bearer_token") or hc.get("bearer_token_file"):
            self.auth_secret = secret(hc, "bearer_token")
        b = hc.get("basic_auth") or None
        self.basic_user = str((b or {}).get("username") or "") if b is not None else None
        self.basic_password = secret(b, "password") if b is not None else None
        self._session: aiohttp.ClientSession | None = None

    def has_authorization(self) -> bool:
        return self.auth_secret is not None

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ctx = _ssl_context(self.tls)
            conn = aiohttp.TCPConnector(ssl=ctx) if ctx is not None else aiohttp.TCPConnector()
            self._session = aiohttp.ClientSession(connector=conn)
        return self._session

    def _auth(self, secrets: list[str]) -> tuple[dict[str, str], aiohttp.BasicAuth | None]:
        headers: dict[str, str] = {}
        basic = None
        if self.auth_secret is not None:
            cred = self.auth_secret.get()
            secrets.append(cred)
            headers["Authorization"] = f"{self.auth_type} {cred}"
        if self.basic_user is not None and self.basic_password is not None:
            pw = self.basic_password.get()
            secrets.append(pw)
            basic = aiohttp.BasicAuth(self.basic_user, pw)
        return headers, basic

    async def request(self, method: str, url: str, *, json: Any = None, data: Any = None,
                      headers: dict[str, str] | None = None, retry_codes: Iterable[int] = (),
                      secrets: Iterable[str] = (), check: bool = True) -> Response:
        """Send one request; raise NotifyError for network errors and (with `check`) non-2xx statuses."""
        known = [s for s in secrets if s] + _url_parts(url)
        auth_headers, basic = self._auth(known)
        h = {"User-Agent": USER_AGENT, **auth_headers, **(headers or {})}
        try:
            async with self._sess().request(method, url, json=json, data=data, headers=h, auth=basic,
                                            timeout=self.timeout, proxy=self.proxy,
                                            allow_redirects=self.follow_redirects) as r:
                text = await r.text(errors="replace")
                resp = Response(r.status, text, {k: v for k, v in r.headers.items()})
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
            raise NotifyError(f"network error: {type(e).__name__} talking to {redact_url(url)}", True) from None
        if check:
            now = self.clock.now() if self.clock is not None else None
            err = check_status(resp.status, resp.text, retry_codes, resp.headers.get("Retry-After"), known, now)
            if err is not None:
                raise err
        return resp

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpIntegration:
    """What the Alertmanager-style HTTP receivers share: config, send_resolved, the sender, close().

    Subclasses set `kind`, `send_resolved_default` and implement `deliver(n)`."""

    kind = ""
    send_resolved_default = True

    def __init__(self, integration: str, c: dict[str, Any], path: str, *, timeout: float = 10.0,
                 clock: Any = None, global_: dict[str, Any] | None = None):
        self.integration = integration
        self.path = path
        self.c = c
        self.global_ = global_ or {}
        self.clock = clock
        self.send_resolved = bool(c.get("send_resolved", self.send_resolved_default))
        hc = c.get("http_config")
        if hc is None:
            hc = self.global_.get("http_config")
        self.http = HttpSender(hc or {}, timeout, clock)

    async def send(self, n: Any, state: dict[str, Any] | None = None) -> Any:
        from routing.receivers.base import Delivered

        await self.deliver(n)
        return Delivered()

    async def deliver(self, n: Any) -> None:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    async def close(self) -> None:
        await self.http.close()
