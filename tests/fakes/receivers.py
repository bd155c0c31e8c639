"""Fake APIs of the Alertmanager-style receivers, on 127.0.0.1, speaking each service's wire format.

`FakeReceivers` is one aiohttp app serving Telegram's Bot API, Discord and Teams webhooks, Opsgenie's Alert
API v2, VictorOps' REST endpoint, Pushover's Messages API, Webex' Messages API and WeChat Work's gettoken and
message/send. Each checks what the real service checks first (the credential in the place it belongs) and
answers as the real service does. `fail(kind, status, times, retry_after)` makes the next requests of a kind
fail. Error bodies echo the request path and credentials back, as some real services do, so that tests can
prove the receivers never let a secret through into an error.

`FakeSMTP` is a real SMTP server (aiosmtpd) with STARTTLS or implicit TLS, AUTH PLAIN, LOGIN and CRAM-MD5.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web

from . import LocalServer

TELEGRAM_TOKEN = "123456:AAH-telegram-secret-token"
OPSGENIE_KEY = "0psg3n1e-secret-key"
VICTOROPS_KEY = "v1ct0r0ps-secret-key"
PUSHOVER_TOKEN = "pushover-app-secret-token"
PUSHOVER_USER = "pushover-user-secret-key"
WEBEX_TOKEN = "webex-bot-secret-token"
WECHAT_SECRET = "wechat-corp-secret"
WECHAT_CORP = "ww-corp-id"
WEBHOOK_SECRET_PATH = "T000/B000/hook-secret-path"
SNS_SECRET_KEY = "wJalrXUtnFEMI-contract-sns-secret"


@dataclass
class Req:
    kind: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, form dict, or text


def _kind(path: str) -> str:
    for prefix, kind in (("/bot", "telegram"), ("/discord/", "discord"), ("/teams/", "msteams"),
                         ("/flows/", "msteamsv2"), ("/v2/alerts", "opsgenie"), ("/victorops/", "victorops"),
                         ("/1/messages.json", "pushover"), ("/v1/messages", "webex"), ("/cgi-bin/", "wechat"),
                         ("/sns/", "sns")):
        if path.startswith(prefix):
            return kind
    return "unknown"


class FakeReceivers(LocalServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Req] = []
        self._fail: dict[str, list[tuple[int, str | None]]] = {}
        self.wechat_tokens: set[str] = set()
        self.wechat_expire_next = False
        self.wechat_issued = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail(self, kind: str, status: int, times: int = 1, retry_after: str | None = None) -> None:
        self._fail.setdefault(kind, []).extend([(status, retry_after)] * times)

    def of(self, kind: str) -> list[Req]:
        return [r for r in self.requests if r.kind == kind]

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        kind = _kind(request.path)
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        body: Any
        if "json" in ctype:
            body = json.loads(raw or b"null")
        elif "form" in ctype:
            body = dict((await request.post()).items()) if raw else {}
            if not body:
                from urllib.parse import parse_qsl

                body = dict(parse_qsl(raw.decode()))
        else:
            body = raw.decode(errors="replace")
        self.requests.append(Req(kind, request.method, request.path, dict(request.query),
                                 dict(request.headers), body))
        queued = self._fail.get(kind)
        if queued:
            status, retry_after = queued.pop(0)
            return self._error(kind, status, request, retry_after)
        handler = getattr(self, f"_{kind}", None)
        if handler is None:
            return web.json_response({"error": "no such API"}, status=404)
        return await handler(request, body)

    def _error(self, kind: str, status: int, request: web.Request, retry_after: str | None) -> web.StreamResponse:
        echo = f"rejected {request.path_qs} auth={request.headers.get('Authorization', '')}"
        headers = {"Retry-After": retry_after} if retry_after else {}
        if kind == "telegram":
            body: dict[str, Any] = {"ok": False, "error_code": status, "description": f"Bad Request: {echo}"}
            if status == 429:
                body["parameters"] = {"retry_after": int(retry_after or 1)}
            return web.json_response(body, status=status, headers=headers)
        if kind == "wechat" and status == 200:
            return web.json_response({"errcode": 40001, "errmsg": f"invalid credential {echo}"})
        return web.json_response({"message": echo, "status": status}, status=status, headers=headers)

    # -- the services -----------------------------------------------------------------------------------

    async def _telegram(self, request: web.Request, body: Any) -> web.StreamResponse:
        token, _, method = request.path.removeprefix("/bot").partition("/")
        if token != TELEGRAM_TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        if method != "sendMessage" or not isinstance(body, dict) or not body.get("chat_id") or not body.get("text"):
            return web.json_response({"ok": False, "error_code": 400, "description": "Bad Request"}, status=400)
        return web.json_response({"ok": True, "result": {"message_id": len(self.requests), "date": 1,
                                                         "chat": {"id": int(body["chat_id"]), "type": "group"},
                                                         "text": body["text"]}})

    async def _discord(self, request: web.Request, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict) or not (body.get("content") or body.get("embeds")):
            return web.json_response({"code": 50006, "message": "Cannot send an empty message"}, status=400)
        return web.Response(status=204)

    async def _msteams(self, request: web.Request, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict) or body.get("type") != "MessageCard":
            return web.Response(status=400, text="Summary or Text is required.")
        return web.Response(text="1")

    async def _msteamsv2(self, request: web.Request, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict) or body.get("type") != "message":
            return web.Response(status=400, text="bad request")
        return web.Response(status=202)

    async def _opsgenie(self, request: web.Request, body: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"GenieKey {OPSGENIE_KEY}":
            return web.json_response({"message": "Key format is not valid!", "took": 0.0}, status=422)
        if request.path == "/v2/alerts" and not (isinstance(body, dict) and body.get("message")):
            return web.json_response({"message": "Request body is not processable.",
                                      "errors": {"message": "Message can not be empty."}}, status=422)
        return web.json_response({"result": "Request will be processed", "took": 0.1, "requestId": "r1"},
                                 status=202)

    async def _victorops(self, request: web.Request, body: Any) -> web.StreamResponse:
        parts = request.path.removeprefix("/victorops/").split("/")
        if len(parts) != 2 or parts[0] != VICTOROPS_KEY:
            return web.json_response({"result": "failure", "message": "Invalid API key"}, status=401)
        return web.json_response({"result": "success", "entity_id": (body or {}).get("entity_id")})

    async def _pushover(self, request: web.Request, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict) or body.get("token") != PUSHOVER_TOKEN:
            return web.json_response({"token": "invalid", "errors": ["application token is invalid"], "status": 0},
                                     status=400)
        if body.get("user") != PUSHOVER_USER:
            return web.json_response({"user": "invalid", "errors": ["user identifier is invalid"], "status": 0},
                                     status=400)
        return web.json_response({"status": 1, "request": "5042853c-402d-4a18-abcb-168734a801de"})

    async def _webex(self, request: web.Request, body: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {WEBEX_TOKEN}":
            return web.json_response({"message": "The request requires a valid access token set in the "
                                                 "Authorization request header."}, status=401)
        return web.json_response({"id": "m1", "roomId": body.get("roomId"), "markdown": body.get("markdown")})

    async def _sns(self, request: web.Request, body: Any) -> web.StreamResponse:
        """The SNS Query API's Publish: a SigV4-signed form POST, answered in XML."""
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 Credential=") or "X-Amz-Date" not in request.headers:
            return web.Response(status=403, content_type="text/xml", text=(
                "<ErrorResponse><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code>"
                "<Message>Request is missing Authentication Token</Message></Error></ErrorResponse>"))
        if not isinstance(body, dict) or body.get("Action") != "Publish" or not body.get("Message"):
            return web.Response(status=400, content_type="text/xml", text=(
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidParameter</Code>"
                "<Message>Invalid parameter: Message</Message></Error></ErrorResponse>"))
        return web.Response(content_type="text/xml", text=(
            '<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult>'
            f"<MessageId>m{len(self.requests)}</MessageId></PublishResult></PublishResponse>"))

    async def _wechat(self, request: web.Request, body: Any) -> web.StreamResponse:
        if request.path.endswith("/gettoken"):
            if request.query.get("corpsecret") != WECHAT_SECRET or request.query.get("corpid") != WECHAT_CORP:
                return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
            self.wechat_issued += 1
            tok = f"tok{self.wechat_issued}"
            self.wechat_tokens.add(tok)
            return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": tok, "expires_in": 7200})
        if request.query.get("access_token") not in self.wechat_tokens:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        if self.wechat_expire_next:
            self.wechat_expire_next = False
            self.wechat_tokens.discard(request.query["access_token"])
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": ""})


# -- SMTP ---------------------------------------------------------------------------------------------

SMTP_USER = "alerts@example.org"
SMTP_PASSWORD = "smtp-secret-password"
SMTP_CRAM_SECRET = "smtp-cram-secret"


def self_signed_cert(directory: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1/localhost (cert path, key path), made with `cryptography`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=36500))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cp, kp = f"{directory}/cert.pem", f"{directory}/key.pem"
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(kp, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cp, kp


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    auth: str | None  # the mechanism used, None without AUTH
    tls: bool


@dataclass
class FakeSMTP:
    """aiosmtpd on 127.0.0.1. mode: "plain" (no TLS offered), "starttls" or "tls" (implicit, on `port`)."""

    mode: str = "starttls"
    cert: tuple[str, str] | None = None
    port: int = 0
    mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN", "CRAM-MD5")
    require_auth: bool = True
    mails: list[Mail] = field(default_factory=list)
    auth_failures: int = 0
    reject_rcpt: bool = False

    def __post_init__(self) -> None:
        self._controller: Any = None

    def _ctx(self) -> ssl.SSLContext:
        assert self.cert
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.cert)
        return ctx

    def __enter__(self) -> "FakeSMTP":
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        fake = self

        class Handler:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
                if fake.reject_rcpt:
                    return "450 4.2.1 mailbox busy, try later"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                fake.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos),
                                       message_from_bytes(envelope.original_content or envelope.content),
                                       getattr(session, "_tocsin_mech", None),
                                       server.transport.get_extra_info("ssl_object") is not None))
                return "250 Message accepted for delivery"

            async def auth_CRAM__MD5(self, server, args):  # noqa: N802 - aiosmtpd maps "__" to "-"
                challenge = b"<1896.697170952@tocsin.test>"
                resp = await server.challenge_auth(challenge, encode_to_b64=True)
                user, _, digest = resp.decode().rpartition(" ")
                want = hmac.new(SMTP_CRAM_SECRET.encode(), challenge, hashlib.md5).hexdigest()
                ok = user == SMTP_USER and hmac.compare_digest(digest, want)
                if ok:
                    server.session._tocsin_mech = "CRAM-MD5"
                else:
                    fake.auth_failures += 1
                return AuthResult(success=ok, handled=False)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (getattr(auth_data, "login", b"") == SMTP_USER.encode()
                  and getattr(auth_data, "password", b"") == SMTP_PASSWORD.encode())
            if ok:
                session._tocsin_mech = mechanism
            else:
                fake.auth_failures += 1
            return AuthResult(success=ok, handled=False)

        kwargs: dict[str, Any] = {
            "hostname": "127.0.0.1", "port": self.port or _free_port(), "authenticator": authenticator,
            "auth_require_tls": self.mode == "starttls", "auth_required": self.require_auth,
            "auth_exclude_mechanism": [m for m in ("PLAIN", "LOGIN") if m not in self.mechanisms],
        }
        if "CRAM-MD5" not in self.mechanisms:
            delattr(Handler, "auth_CRAM__MD5")
        if self.mode == "starttls":
            kwargs["tls_context"] = self._ctx()
            kwargs["require_starttls"] = False
        elif self.mode == "tls":
            kwargs["ssl_context"] = self._ctx()
        self.port = kwargs["port"]
        self._controller = Controller(Handler(), **kwargs)
        self._controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._controller.stop()


def _free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()
