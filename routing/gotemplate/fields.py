"""Alertmanager's templated receiver fields, with its defaults: what a Slack or PagerDuty config renders.

`SlackFields.from_config` picks the slack_config keys Alertmanager templates (title, title_link, pretext, text,
fields, footer, fallback, color, callback_id, image_url, thumb_url, actions, username, icon_emoji, icon_url,
channel) and `payload()` builds notify/slack's request body exactly as Alertmanager 0.25 does (one attachment,
defaults from its DefaultSlackConfig, title truncated to 1024 characters, empty fields omitted).
`PagerDutyFields` renders the pagerduty_config keys Alertmanager templates (description, client, client_url,
details, source, severity, class, component, group, links, images) that the config writes as templates; the
receiver puts them over its own event (Tocsin's summary and custom details stay for what the config leaves out).

`alertmanager_mode(d, templates)` says whether a receiver renders through Go templates: its config sets one of
the message keys, or the `templates:` files redefine one of Alertmanager's `<kind>.default.*` templates (what
Alertmanager would then send). Otherwise Tocsin's own Jinja2 rendering stays in place.
"""
from __future__ import annotations

from typing import Any, Callable

from service.core.errors import ConfigError
from service.core.models import Notification

from routing.gotemplate import Templates, render_data
from routing.gotemplate.data import build_data
from routing.gotemplate.parse import TemplateError

SLACK_DEFAULTS = {
    "color": '{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}',
    "username": '{{ template "slack.default.username" . }}',
    "title": '{{ template "slack.default.title" . }}',
    "title_link": '{{ template "slack.default.titlelink" . }}',
    "icon_emoji": '{{ template "slack.default.iconemoji" . }}',
    "icon_url": '{{ template "slack.default.iconurl" . }}',
    "pretext": '{{ template "slack.default.pretext" . }}',
    "text": '{{ template "slack.default.text" . }}',
    "fallback": '{{ template "slack.default.fallback" . }}',
    "callback_id": '{{ template "slack.default.callbackid" . }}',
    "footer": '{{ template "slack.default.footer" . }}',
    "channel": "",
    "image_url": "",
    "thumb_url": "",
}
SLACK_MESSAGE_KEYS = {"title", "title_link", "pretext", "text", "fields", "footer", "fallback", "color", "callback_id",
                      "image_url", "thumb_url", "actions"}
PAGERDUTY_KEYS = ("description", "client", "client_url", "source", "severity", "class", "component", "group")
_ATTACHMENT_ORDER = ("title", "title_link", "pretext", "text", "fallback", "callback_id", "fields", "actions",
                     "image_url", "thumb_url", "footer", "color")
_ALWAYS = {"text", "fallback", "callback_id", "footer"}  # not omitempty in Alertmanager 0.25's attachment


class FieldRenderError(Exception):
    """A template of a receiver field failed (Alertmanager fails the notification, without retrying)."""


def alertmanager_mode(d: dict[str, Any], templates: Templates | None, kind: str, keys: set[str]) -> bool:
    if any(d.get(k) not in (None, "", [], {}) for k in keys):
        return True
    if any(isinstance(v, str) and "{{" in v for v in d.values()):  # e.g. a templated username or channel
        return True
    return templates is not None and any(n.startswith(f"{kind}.default.") for n in templates.user_defined)


def truncate(s: str, n: int) -> str:
    """notify.Truncate: at most n runes, the last one "…" when cut."""
    if len(s) <= n:
        return s
    return s[:n - 1] + "…"


def _str(d: dict[str, Any], key: str, path: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise ConfigError(f"{path}.{key}", f"must be a string, not {type(v).__name__}")
    return v


class _Renderer:
    def __init__(self, templates: Templates | None):
        self.templates = templates

    def bind(self, n: Notification, now: Callable[[], float] | None) -> Callable[[str], str]:
        data = build_data(n)

        def tmpl(text: str) -> str:
            try:
                return render_data(text, data, self.templates, now=now)
            except TemplateError as e:
                raise FieldRenderError(str(e)) from None
        return tmpl


class SlackFields(_Renderer):
    def __init__(self, templates: Templates | None, values: dict[str, str], fields: list[dict[str, Any]],
                 actions: list[dict[str, Any]], short_fields: bool, link_names: bool, mrkdwn_in: list[str]):
        super().__init__(templates)
        self.values, self.fields, self.actions = values, fields, actions
        self.short_fields, self.link_names, self.mrkdwn_in = short_fields, link_names, mrkdwn_in

    @classmethod
    def from_config(cls, d: dict[str, Any], path: str, templates: Templates | None) -> "SlackFields":
        values = dict(SLACK_DEFAULTS)
        for k in SLACK_DEFAULTS:
            v = _str(d, k, path)
            if v is not None:
                values[k] = v
        fields = d.get("fields") or []
        if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
            raise ConfigError(f"{path}.fields", "must be a list of mappings")
        for i, f in enumerate(fields):
            for k in ("title", "value"):
                if not isinstance(f.get(k), str) or not f.get(k):
                    raise ConfigError(f"{path}.fields[{i}].{k}", "missing or empty")
            if f.get("short") is not None and not isinstance(f["short"], bool):
                raise ConfigError(f"{path}.fields[{i}].short", "must be true or false")
        actions = d.get("actions") or []
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            raise ConfigError(f"{path}.actions", "must be a list of mappings")
        mrkdwn_in = d.get("mrkdwn_in") or ["fallback", "pretext", "text"]
        if not isinstance(mrkdwn_in, list) or not all(isinstance(m, str) for m in mrkdwn_in):
            raise ConfigError(f"{path}.mrkdwn_in", "must be a list of strings")
        for k in ("short_fields", "link_names"):
            if d.get(k) is not None and not isinstance(d[k], bool):
                raise ConfigError(f"{path}.{k}", "must be true or false")
        return cls(templates, values, fields, actions, bool(d.get("short_fields", False)),
                   bool(d.get("link_names", False)), mrkdwn_in)

    @classmethod
    def build(cls, d: dict[str, Any], path: str, templates: Templates | None) -> "SlackFields | None":
        """Alertmanager's message for this slack_config, or None when Tocsin's own message applies."""
        if not alertmanager_mode(d, templates, "slack", SLACK_MESSAGE_KEYS):
            return None
        return cls.from_config(d, path, templates)

    def payload(self, n: Notification, now: Callable[[], float] | None = None) -> dict[str, Any]:
        """notify/slack's request body for `n` (raises FieldRenderError when a template fails)."""
        tmpl = self.bind(n, now)
        v = self.values
        att: dict[str, Any] = {}
        for k in _ATTACHMENT_ORDER:  # notify/slack's attachment: these keys are omitempty except _ALWAYS
            if k == "fields" and self.fields:
                att["fields"] = [{"title": tmpl(f["title"]), "value": tmpl(f["value"]),
                                  "short": f["short"] if f.get("short") is not None else self.short_fields}
                                 for f in self.fields]
            elif k == "actions" and self.actions:
                att["actions"] = [self._action(a, tmpl) for a in self.actions]
            elif k in v:
                s = tmpl(v[k])
                if k == "title":
                    s = truncate(s, 1024)
                if s or k in _ALWAYS:
                    att[k] = s
        att["mrkdwn_in"] = list(self.mrkdwn_in)
        req: dict[str, Any] = {}
        for k in ("channel", "username", "icon_emoji", "icon_url"):
            s = tmpl(v[k])
            if s:
                req[k] = s
        if self.link_names:
            req["link_names"] = True
        req["attachments"] = [att]
        return req

    @staticmethod
    def _action(a: dict[str, Any], tmpl: Callable[[str], str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in ("type", "text", "url", "style", "name", "value"):
            if isinstance(a.get(k), str):
                s = tmpl(a[k])
                if s:
                    out[k] = s
        confirm = a.get("confirm")
        if isinstance(confirm, dict):
            out["confirm"] = {k: tmpl(confirm[k]) for k in ("text", "title", "ok_text", "dismiss_text")
                              if isinstance(confirm.get(k), str)}
        return out


class PagerDutyFields(_Renderer):
    """The pagerduty_config keys written as Go templates (literal values stay with the receiver's own handling),
    plus Alertmanager's default description/client/client_url when the `templates:` files redefine
    `pagerduty.default.description`, `.client` or `.clientURL`."""

    DEFAULTS = {"description": ("pagerduty.default.description", '{{ template "pagerduty.default.description" .}}'),
                "client": ("pagerduty.default.client", '{{ template "pagerduty.default.client" . }}'),
                "client_url": ("pagerduty.default.clientURL", '{{ template "pagerduty.default.clientURL" . }}')}

    def __init__(self, templates: Templates | None, values: dict[str, str], details: dict[str, str],
                 links: list[dict[str, str]], images: list[dict[str, str]]):
        super().__init__(templates)
        self.values, self.details, self.links, self.images = values, details, links, images

    @classmethod
    def from_config(cls, d: dict[str, Any], path: str, templates: Templates | None) -> "PagerDutyFields":
        values = {k: v for k in PAGERDUTY_KEYS if (v := _str(d, k, path)) is not None and "{{" in v}
        user = templates.user_defined if templates is not None else frozenset()
        for key, (name, text) in cls.DEFAULTS.items():
            if key not in d and name in user:
                values[key] = text
        details = d.get("details") or {}
        if not isinstance(details, dict) or not all(isinstance(v, str) for v in details.values()):
            raise ConfigError(f"{path}.details", "must be a mapping of strings")
        links = [x for x in d.get("links") or [] if isinstance(x, dict) and any("{{" in str(v) for v in x.values())]
        images = [x for x in d.get("images") or [] if isinstance(x, dict) and any("{{" in str(v) for v in x.values())]
        return cls(templates, values, {str(k): v for k, v in details.items() if "{{" in v}, links, images)

    def templated(self) -> bool:
        return bool(self.values or self.details or self.links or self.images)

    @classmethod
    def build(cls, d: dict[str, Any], path: str, templates: Templates | None) -> "PagerDutyFields | None":
        """The templated fields of a pagerduty_config, or None when it has none."""
        f = cls.from_config(d, path, templates)
        return f if f.templated() else None

    def render(self, n: Notification, now: Callable[[], float] | None = None) -> dict[str, Any]:
        """{key: rendered} for the templated keys ("description" truncated to 1024 characters as Alertmanager
        does), "details", and "links"/"images" without the entries whose href/src renders empty."""
        tmpl = self.bind(n, now)
        out: dict[str, Any] = {k: tmpl(v) for k, v in self.values.items()}
        if "description" in out:
            out["description"] = truncate(out["description"], 1024)
        out["details"] = {k: tmpl(v) for k, v in self.details.items()}
        links = [{"href": tmpl(str(x.get("href", ""))), "text": tmpl(str(x.get("text", "")))} for x in self.links]
        out["links"] = [x for x in links if x["href"]]
        images = [{k: tmpl(str(x[k])) for k in ("src", "alt", "href") if k in x} for x in self.images]
        out["images"] = [x for x in images if x.get("src")]
        return out
