"""Alertmanager's email integration, over SMTP with aiosmtplib.

Config (Alertmanager 0.25, with the global smtp_* defaults): to, from, hello, smarthost (host:port),
auth_username, auth_password / auth_password_file (read when sending), auth_secret, auth_identity, headers,
html (default: the plain message, HTML-escaped, in <pre>), text (default none), require_tls (default
global smtp_require_tls, true), tls_config, send_resolved (default false).

The session goes as Alertmanager's: port 465 is implicit TLS; otherwise plain, then STARTTLS when require_tls
(an error if the server does not offer it). If the server offers AUTH and auth_username is set, the first
of the server's mechanisms that Alertmanager supports (CRAM-MD5 with auth_secret, PLAIN or LOGIN with the
password) is used. Headers are Subject (default the title line), To, From, the configured ones (names
canonicalised, values Q-encoded when not ASCII), Date, and a multipart/alternative body (text first, then
html, both quoted-printable). As Alertmanager: connection, TLS, AUTH, MAIL, RCPT and DATA failures are retried;
bad addresses and bad config are not.
"""
from __future__ import annotations

import ssl
from email.charset import QP, Charset
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, getaddresses
from datetime import datetime, timezone
from typing import Any

from routing.receivers.base import Delivered, NotifyError
from routing.receivers.fields import has_go_template, render_field
from routing.receivers.http import Secret, scrub, secret
from routing.receivers.validate import canonical_header

_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP
_UTF8_QP.header_encoding = QP


def split_hostport(s: str) -> tuple[str, str]:
    host, sep, port = str(s).rpartition(":")
    if not sep:
        raise ValueError(f"address {s}: missing port in address")
    return host.strip("[]"), port


def _tls_context(tls: dict[str, Any], host: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls.get("ca_file") or None)
    if tls.get("cert_file"):
        ctx.load_cert_chain(tls["cert_file"], tls.get("key_file") or None)
    if tls.get("insecure_skip_verify"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class EmailReceiver:
    kind = "email"

    def __init__(self, integration: str, c: dict[str, Any], path: str, *, timeout: float = 10.0,
                 clock: Any = None, global_: dict[str, Any] | None = None):
        g = global_ or {}
        self.integration, self.path, self.c, self.clock = integration, path, c, clock
        self.timeout = timeout
        self.send_resolved = bool(c.get("send_resolved", False))
        self.to = str(c.get("to") or "")
        self.from_ = str(c.get("from") or g.get("smtp_from") or "")
        self.hello = str(c.get("hello") or g.get("smtp_hello") or "localhost")
        self.smarthost = str(c.get("smarthost") or g.get("smtp_smarthost") or "")
        self.username = str(c.get("auth_username") or g.get("smtp_auth_username") or "")
        own_pw = c.get("auth_password") or c.get("auth_password_file")
        self.password: Secret = secret(c, "auth_password") if own_pw else secret(g, "smtp_auth_password")
        self.auth_secret = str(c.get("auth_secret") or g.get("smtp_auth_secret") or "")
        self.identity = str(c.get("auth_identity") or g.get("smtp_auth_identity") or "")
        rt = c.get("require_tls")
        self.require_tls = bool(g.get("smtp_require_tls", True) if rt is None else rt)
        self.tls = dict(c.get("tls_config") or {})
        self.headers = {canonical_header(k): v for k, v in (c.get("headers") or {}).items()}

    # -- message -------------------------------------------------------------------------------------

    def build_message(self, n: Any, now: float) -> MIMEMultipart:
        headers = dict(self.headers)
        headers.setdefault("Subject", None)  # None: Alertmanager's default subject
        headers.setdefault("To", self.to)
        headers.setdefault("From", self.from_)
        msg = MIMEMultipart("alternative")
        for name, value in headers.items():
            text = render_field(self.kind, "subject" if name == "Subject" else f"headers.{name}", value, n)
            text = text.replace("\r", " ").replace("\n", " ")
            msg[name] = text if text.isascii() else Header(text, _UTF8_QP).encode()
        msg["Date"] = format_datetime(datetime.fromtimestamp(now, timezone.utc))
        text_cfg = self.c.get("text")
        if text_cfg:
            msg.attach(MIMEText(render_field(self.kind, "text", text_cfg, n), "plain", _UTF8_QP))
        html_cfg = self.c.get("html")
        if html_cfg is None or has_go_template(html_cfg):
            body = "<pre>" + render_field(self.kind, "html", html_cfg, n, html=True) + "</pre>"
        else:
            body = str(html_cfg)
        if body:
            msg.attach(MIMEText(body, "html", _UTF8_QP))
        return msg

    # -- SMTP ----------------------------------------------------------------------------------------

    async def _auth(self, smtp: Any, password: str) -> None:
        import aiosmtplib

        if not self.username or not smtp.supports_extension("auth"):
            return
        mechs = [m.upper() for m in (smtp.esmtp_extensions.get("auth") or "").split()]
        problems = []
        for mech in mechs:
            if mech == "CRAM-MD5":
                if not self.auth_secret:
                    problems.append("missing secret for CRAM-MD5 auth mechanism")
                    continue
                await smtp.auth_crammd5(self.username, self.auth_secret)
                return
            if mech in ("PLAIN", "LOGIN"):
                if not password:
                    problems.append(f"missing password for {mech} auth mechanism")
                    continue
                if mech == "PLAIN":
                    await smtp.auth_plain(self.username, password)
                else:
                    await smtp.auth_login(self.username, password)
                return
        raise aiosmtplib.SMTPException("; ".join(problems) or f"unknown auth mechanism: {' '.join(mechs)}")

    async def send(self, n: Any, state: dict[str, Any] | None = None) -> Delivered:
        import aiosmtplib

        try:
            host, port = split_hostport(self.smarthost)
        except ValueError as e:
            raise NotifyError(f"invalid address: {e}", False) from None
        sender = [a for _, a in getaddresses([render_field(self.kind, "from", self.from_, n)]) if a]
        rcpts = [a for _, a in getaddresses([render_field(self.kind, "to", self.to, n)]) if a]
        if len(sender) != 1:
            raise NotifyError("must be exactly one from address", False)
        if not rcpts:
            raise NotifyError("parsing to addresses: no address", False)
        password = self.password.get()
        now = self.clock.now() if self.clock is not None else datetime.now(timezone.utc).timestamp()
        message = self.build_message(n, now)
        implicit = port == "465"
        ctx = _tls_context(self.tls, host)
        smtp = aiosmtplib.SMTP(hostname=host, port=int(port), local_hostname=self.hello, timeout=self.timeout,
                               use_tls=implicit, start_tls=False, tls_context=ctx if implicit else None,
                               validate_certs=not self.tls.get("insecure_skip_verify"))
        try:
            await smtp.connect()
            await smtp.ehlo()
            if self.require_tls and not implicit:
                if not smtp.supports_extension("starttls"):
                    raise NotifyError(f"require_tls: true (default), but {self.smarthost!r} does not advertise "
                                      "the STARTTLS extension", True)
                await smtp.starttls(tls_context=ctx, server_hostname=self.tls.get("server_name") or host)
                await smtp.ehlo()
            await self._auth(smtp, password)
            await smtp.send_message(message, sender=sender[0], recipients=rcpts)
            await smtp.quit()
        except NotifyError:
            smtp.close()
            raise
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as e:
            smtp.close()
            raise NotifyError(f"smtp {host}:{port}: {scrub(str(e), [password, self.auth_secret])}", True) from None
        return Delivered()

    async def close(self) -> None:
        return None
