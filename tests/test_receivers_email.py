"""The email receiver (aiosmtplib) against a real SMTP server (aiosmtpd) on 127.0.0.1."""
from __future__ import annotations

import os
import socket
import tempfile

import pytest
import yaml

from routing.receivers.base import NotifyError
from service.core.clock import ManualClock
from service.config.sections import parse_config
from service.pipeline.dispatch import integrations_of
from service.pipeline.engine import default_receiver_factory
from tests.fakes.receivers import SMTP_CRAM_SECRET, SMTP_PASSWORD, SMTP_USER, FakeSMTP, self_signed_cert
from tests.fakes.samples import T0, alert, notification


@pytest.fixture(scope="module")
def cert():
    with tempfile.TemporaryDirectory() as d:
        yield self_signed_cert(d)


@pytest.fixture
def tmp():
    with tempfile.TemporaryDirectory() as d:
        yield d


def build(smtp: FakeSMTP, cert, glob: dict | None = None, **c):
    conf = {"to": "oncall@example.org, Second <two@example.org>", "smarthost": f"127.0.0.1:{smtp.port}",
            "tls_config": {"ca_file": cert[0]}, **c}
    text = yaml.safe_dump({"global": {"smtp_from": "Tocsin <tocsin@example.org>", **(glob or {})},
                           "route": {"receiver": "mail"}, "receivers": [{"name": "mail", "email_configs": [conf]}]})
    cfg = parse_config(text)
    ((kind, d),) = cfg.receivers["mail"].integrations
    return cfg, default_receiver_factory("mail/email/0", kind, d, cfg, ManualClock(T0 + 60))


def firing():
    return notification(alerts=[alert(team="db"), alert("DiskFull", team="db")])


def _pw_file(d: str, value: str = SMTP_PASSWORD) -> str:
    p = os.path.join(d, "pw")
    with open(p, "w") as f:
        f.write(value + "\n")
    return p


async def test_starttls_auth_plain_headers_and_html_body(cert, tmp):
    """STARTTLS, AUTH PLAIN with a password file, Alertmanager's headers and an HTML part, to every recipient."""
    with FakeSMTP("starttls", cert, mechanisms=("PLAIN",)) as smtp:
        _, r = build(smtp, cert, auth_username=SMTP_USER, auth_password_file=_pw_file(tmp),
                     headers={"x-team": "db ✓", "reply-to": "sre@example.org"})
        await r.send(firing())
    (m,) = smtp.mails
    assert m.tls and m.auth == "PLAIN"
    assert m.mail_from == "tocsin@example.org" and m.rcpt_tos == ["oncall@example.org", "two@example.org"]
    msg = m.message
    assert msg["Subject"] == "[FIRING:2] HighLatency (warning db)"  # common labels by name
    assert msg["To"] == "oncall@example.org, Second <two@example.org>" and msg["From"] == "Tocsin <tocsin@example.org>"
    assert msg["Reply-To"] == "sre@example.org"
    assert "=?utf-8?q?" in msg["X-Team"].lower()  # Q-encoded, as Go's mime.QEncoding
    from email.header import decode_header, make_header
    assert str(make_header(decode_header(msg["X-Team"]))) == "db ✓"
    assert msg["Date"] and msg.get_content_type() == "multipart/alternative"
    (part,) = msg.get_payload()
    assert part.get_content_type() == "text/html" and part["Content-Transfer-Encoding"] == "quoted-printable"
    assert "HighLatency" in part.get_payload(decode=True).decode()


async def test_auth_login_and_text_part(cert):
    """A server offering only LOGIN gets LOGIN; a configured text body comes before the html part."""
    with FakeSMTP("starttls", cert, mechanisms=("LOGIN",)) as smtp:
        _, r = build(smtp, cert, auth_username=SMTP_USER, auth_password=SMTP_PASSWORD, text="plain body",
                     html="<b>html body</b>")
        await r.send(firing())
    (m,) = smtp.mails
    assert m.auth == "LOGIN"
    text, html = m.message.get_payload()
    assert text.get_content_type() == "text/plain" and text.get_payload(decode=True) == b"plain body"
    assert html.get_payload(decode=True) == b"<b>html body</b>"


async def test_auth_cram_md5_from_global_settings(cert):
    """CRAM-MD5 with auth_secret; username and secret come from the global smtp_* settings."""
    with FakeSMTP("starttls", cert, mechanisms=("CRAM-MD5",)) as smtp:
        _, r = build(smtp, cert, glob={"smtp_auth_username": SMTP_USER, "smtp_auth_secret": SMTP_CRAM_SECRET})
        await r.send(firing())
    (m,) = smtp.mails
    assert m.auth == "CRAM-MD5"


def _port_465_free() -> bool:
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 465))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.mark.skipif(not _port_465_free(), reason="127.0.0.1:465 is taken or not bindable (Alertmanager uses "
                                                  "implicit TLS only on port 465)")
async def test_implicit_tls_on_port_465(cert):
    """Port 465 is implicit TLS, as in Alertmanager."""
    with FakeSMTP("tls", cert, port=465) as smtp:
        _, r = build(smtp, cert, auth_username=SMTP_USER, auth_password=SMTP_PASSWORD)
        await r.send(firing())
    (m,) = smtp.mails
    assert m.tls and m.auth in ("PLAIN", "LOGIN")


async def test_require_tls_without_starttls_is_a_retryable_error(cert):
    """require_tls (the default) against a server that offers no STARTTLS fails, retryably, and sends nothing."""
    with FakeSMTP("plain", cert, require_auth=False) as smtp:
        _, r = build(smtp, cert)
        with pytest.raises(NotifyError) as ei:
            await r.send(firing())
    assert ei.value.retryable and "STARTTLS" in ei.value.reason
    assert smtp.mails == []


async def test_plain_smtp_without_auth_when_tls_not_required(cert):
    """smtp_require_tls: false sends over plain SMTP; no auth_username means no AUTH."""
    with FakeSMTP("plain", cert, require_auth=False) as smtp:
        _, r = build(smtp, cert, glob={"smtp_require_tls": False})
        await r.send(firing())
    (m,) = smtp.mails
    assert not m.tls and m.auth is None


async def test_wrong_password_is_retried_and_never_shown(cert, tmp):
    """A rejected login is a retryable error whose text does not contain the password."""
    with FakeSMTP("starttls", cert, mechanisms=("PLAIN",)) as smtp:
        _, r = build(smtp, cert, auth_username=SMTP_USER, auth_password_file=_pw_file(tmp, "wrong-" + SMTP_PASSWORD))
        with pytest.raises(NotifyError) as ei:
            await r.send(firing())
    assert ei.value.retryable and smtp.auth_failures == 1
    assert SMTP_PASSWORD not in str(ei.value) and "wrong-" not in str(ei.value)


async def test_rejected_recipient_is_retried(cert):
    """A 4xx to RCPT TO is retried, as Alertmanager does."""
    with FakeSMTP("starttls", cert, require_auth=False) as smtp:
        smtp.reject_rcpt = True
        _, r = build(smtp, cert)
        with pytest.raises(NotifyError) as ei:
            await r.send(firing())
    assert ei.value.retryable


async def test_missing_password_file_names_its_path(cert, tmp):
    """auth_password_file is read when sending: a missing one fails that delivery and names the path."""
    missing = os.path.join(tmp, "nope")
    with FakeSMTP("starttls", cert) as smtp:
        cfg, r = build(smtp, cert, auth_username=SMTP_USER, auth_password_file=missing)
        with pytest.raises(NotifyError) as ei:
            await r.send(firing())
    assert missing in ei.value.reason and not ei.value.retryable


async def test_send_resolved_defaults_to_false(cert):
    """Email, as in Alertmanager, does not send resolved notifications unless told to."""
    with FakeSMTP("starttls", cert) as smtp:
        cfg, r = build(smtp, cert)
        assert r.send_resolved is False and integrations_of(cfg)["mail"][0].send_resolved is False
        cfg, r = build(smtp, cert, send_resolved=True)
        assert r.send_resolved is True and integrations_of(cfg)["mail"][0].send_resolved is True
