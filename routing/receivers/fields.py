"""The one place every templated text field of an Alertmanager-style receiver is rendered.

Alertmanager fills `title`, `message`, `text`, `subject`, `html`, `details` ... from Go templates (by default
`{{ template "telegram.default.message" . }}` and the like). Every receiver in this package asks
`render_field(kind, field, configured_value, notification)` for such a field and nothing else, so that one
switch turns on Go-template rendering for all of them.

The rules:
- no value configured: Tocsin's own plain rendering (the title line below, or `Renderer.plain_text`, the same
  text the webhook/console receivers use);
- a configured value without template actions (`{{`): that literal text, which is exactly what Go renders;
- a configured Go template: rendered by `routing.gotemplate` exactly as Alertmanager renders it, with the
  configuration's `templates:` files (GO_TEMPLATES, set by the outbox for each delivery); a template that fails
  fails the notification without a retry, as in Alertmanager.
With `html=True` (Alertmanager's TmplHTML: Telegram parse_mode HTML, email html) the plain rendering is
HTML-escaped, as Go's html/template escapes data.
"""
from __future__ import annotations

import html as _html
from contextvars import ContextVar
from typing import Any

from service.core.models import Notification

# Fields whose Alertmanager default is the one-line title/subject.
_TITLE_FIELDS = {"title", "subject", "summary", "entity_display_name", "username"}
# Fields whose Alertmanager default is the multi-line message.
_MESSAGE_FIELDS = {"message", "text", "description", "html", "state_message", "content"}
# Fields whose Alertmanager default is a constant or the external URL.
_CONSTANT_DEFAULTS = {"monitoring_tool": "Tocsin", "to_user": "", "to_party": "", "to_tag": "",
                      "agent_id": "", "url_title": "", "note": "", "priority": "", "tags": "", "entity": "",
                      "actions": ""}
_URL_FIELDS = {"source", "url", "client_url"}

_renderer: Any = None
# The configuration's Go templates (service.config.Config.go_templates) for the delivery in progress: set by the
# outbox around each send (a context variable: concurrent deliveries each see their own configuration's set).
GO_TEMPLATES: ContextVar[Any] = ContextVar("go_templates", default=None)


def has_go_template(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _plain_renderer() -> Any:
    global _renderer
    if _renderer is None:
        from routing.receivers.render import Renderer

        _renderer = Renderer()
    return _renderer


def title_line(n: Notification) -> str:
    """Alertmanager's default subject: `[FIRING:2] <group label values> (<other common label values>)`."""
    firing = sum(1 for a in n.alerts if not a.resolved_at(n.timestamp))
    status = n.status.upper() + (f":{firing}" if n.status == "firing" else "")
    group = " ".join(v for _, v in sorted(n.group_labels.items()))
    common = n.common_labels()
    extra = {k: v for k, v in common.items() if k not in n.group_labels}
    out = f"[{status}] {group}"
    if len(common) > len(n.group_labels) and extra:
        out += " (" + " ".join(v for _, v in sorted(extra.items())) + ")"
    return out


def plain_default(kind: str, field: str, n: Notification) -> str:
    if field in _TITLE_FIELDS:
        return title_line(n)
    if field in _URL_FIELDS:
        return n.external_url
    if field in _CONSTANT_DEFAULTS:
        return _CONSTANT_DEFAULTS[field]
    if field in _MESSAGE_FIELDS:
        return _plain_renderer().plain_text(n)
    return ""


def render_field(kind: str, field: str, configured: Any, n: Notification, *, html: bool = False) -> str:
    """The text of one templated field of a `kind` receiver for notification `n` (see the module docstring)."""
    if configured is not None and not has_go_template(configured):
        return str(configured)
    if configured is not None:
        from routing.gotemplate import TemplateError
        from routing.gotemplate import render_field as go_render

        from routing.receivers.base import NotifyError

        try:
            return go_render(str(configured), n, GO_TEMPLATES.get(), html=html)
        except TemplateError as e:  # as Alertmanager: the notification fails, and is not retried
            raise NotifyError(f"template of {kind} {field}: {e}", False) from None
    text = plain_default(kind, field, n)
    return _html.escape(text, quote=False) if html else text


def render_map(kind: str, field: str, configured: dict[str, Any] | None, n: Notification) -> dict[str, str]:
    """A map of templated values (Opsgenie `details`, VictorOps `custom_fields`), each through render_field."""
    return {str(k): render_field(kind, f"{field}.{k}", v, n) for k, v in (configured or {}).items()}


def truncate_runes(s: str, limit: int) -> tuple[str, bool]:
    """Alertmanager's notify.TruncateInRunes: at most `limit` characters, ending in "…" when cut."""
    if len(s) <= limit:
        return s, False
    if limit <= 3:
        return s[:limit], True
    return s[: limit - 1] + "…", True


def truncate_bytes(s: str, limit: int) -> tuple[str, bool]:
    """Alertmanager's notify.TruncateInBytes: at most `limit` UTF-8 bytes, ending in "…" when cut."""
    b = s.encode()
    if len(b) <= limit:
        return s, False
    cut = b[: max(0, limit - len("…".encode()))].decode(errors="ignore")
    return cut + "…", True
