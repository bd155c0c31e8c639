"""Alertmanager's webhook integration: POSTs the version-4 payload, so any Alertmanager webhook consumer works
unchanged. Supports url / url_file, send_resolved, max_alerts and the common http_config auth settings."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from service.errors import ConfigError
from service.models import Notification

from .base import Delivered, NotifyError, error_for_status, redact_url

KNOWN = {"url", "url_file", "send_resolved", "max_alerts", "http_config", "_path"}
HTTP_KNOWN = {"authorization", "basic_auth", "bearer_token", "bearer_token_file", "tls_config", "follow_redirects",
              "proxy_url", "enable_http2", "oauth2"}


class WebhookReceiver:
    def __init__(self, integration: str, url: str, send_resolved: bool = True, headers: dict[str, str] | None = None,
                 auth: aiohttp.BasicAuth | None = None, timeout: float = 10.0, session: aiohttp.ClientSession | None = None):
        self.integration = integration
        self.url = url
        self.send_resolved = send_resolved
        self.headers = {"Content-Type": "application/json", "User-Agent": "Tocsin", **(headers or {})}
        self.auth = auth
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._own_session = session is None

    @classmethod
    def from_config(cls, c: dict[str, Any], integration: str, timeout: float = 10.0) -> "WebhookReceiver":
        path = c.get("_path", integration)
        for k in c:
            if k not in KNOWN:
                raise ConfigError(f"{path}.{k}", "unknown key")
        url = c.get("url")
        if url is None and c.get("url_file"):
            try:
                url = Path(c["url_file"]).read_text().strip()
            except OSError as e:
                raise ConfigError(f"{path}.url_file", f"cannot read: {e.strerror}") from None
        if not url or not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError(f"{path}.url", "an http(s) URL is required")
        headers: dict[str, str] = {}
        auth = None
        hc = c.get("http_config") or {}
        for k in hc:
            if k not in HTTP_KNOWN:
                raise ConfigError(f"{path}.http_config.{k}", "unknown key")
        if "authorization" in hc:
            a = hc["authorization"] or {}
            cred = a.get("credentials") or (Path(a["credentials_file"]).read_text().strip() if a.get("credentials_file") else "")
            headers["Authorization"] = f"{a.get('type', 'Bearer')} {cred}"
        if hc.get("bearer_token") or hc.get("bearer_token_file"):
            tok = hc.get("bearer_token") or Path(hc["bearer_token_file"]).read_text().strip()
            headers["Authorization"] = f"Bearer {tok}"
        if "basic_auth" in hc:
            b = hc["basic_auth"] or {}
            pw = b.get("password") or (Path(b["password_file"]).read_text().strip() if b.get("password_file") else "")
            auth = aiohttp.BasicAuth(b.get("username", ""), pw)
        return cls(integration, url, bool(c.get("send_resolved", True)), headers, auth, timeout)

    def _sess(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._own_session = True
        return self._session

    async def send(self, n: Notification, state: dict[str, Any] | None = None) -> Delivered:
        try:
            async with self._sess().post(self.url, json=n.webhook_payload(), headers=self.headers, auth=self.auth,
                                         timeout=self.timeout) as r:
                if r.status >= 300:
                    raise error_for_status(r.status, await r.text(), r.headers.get("Retry-After"))
                await r.read()
        except NotifyError:
            raise
        except (aiohttp.ClientError, TimeoutError) as e:
            raise NotifyError(f"network error posting to {redact_url(self.url)}: {type(e).__name__}", True) from None
        return Delivered()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
