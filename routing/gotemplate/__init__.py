"""Alertmanager's Go templates, rendered exactly as Alertmanager 0.25 renders them.

Alertmanager configurations write their message fields (Slack `title`/`text`, PagerDuty `description`/`details`,
email `html`, ...) in Go's text/template language over Alertmanager's template data, often with `templates:`
files of `{{ define }}` blocks. No well-kept Python library implements Go's template language (on PyPI the
only candidate is cognihub-pygotemplate 0.0.2, a new CGo wrapper that would need a Go toolchain and still
lack Alertmanager's functions, data types and html/template), so this package is a small implementation of it
(Go 1.19, which built Debian's
Alertmanager 0.25), tested against Go's own test expectations (tests/test_gotemplate*.py) and differentially
against the real Alertmanager 0.25 (tests/compat/test_templates_differential.py: 86 Slack templates from
Alertmanager's tests, its default.tmpl, public configurations and Go's semantics, rendered by both and also sent
end to end by `tocsin serve`; tests/compat/test_html_templates_differential.py: 20 email HTML bodies):

- parse.py: lexer and parser (actions, pipelines, comments, trim markers, if/else if/range/with/define/
  template/block/break/continue, variables, Go's redefinition rules);
- exec.py: execution (field/method/map access, missingkey, argument conversion, range order, errors);
- funcs.py: Go's builtins and Alertmanager's functions; gofmt.py: Go's fmt verbs; gotime.py: time.Time;
- data.py: template.Data built from a Tocsin Notification; escape.py: html/template's contextual escaping;
- engine.py: the template set (defaults + `templates:` files); fields.py: Alertmanager's Slack and PagerDuty
  fields with its defaults (what the receivers send);
- alertmanager/default.tmpl, email.tmpl: Alertmanager 0.25's default templates (Apache-2.0, see NOTICE).

The API the receivers use (one function):

    render_field(text: str, notification: Notification, templates: Templates | None = None, *,
                 html: bool = False, now: Callable[[], float] | None = None) -> str

renders one config field as Alertmanager's tmplText/ExecuteTextString does (`html=True`: ExecuteHTMLString,
for email `html`). `templates` is the config's loaded set, `Config.go_templates` (built by service.config from
the `templates:` globs at config load); None means Alertmanager's defaults only. `now` (epoch seconds; pass
the service clock's `now`) feeds `since`. A parse or execution error raises `TemplateError` with Go's message;
Alertmanager fails the notification on it without retrying, and so should callers (NotifyError(...,
retryable=False)). A receiver rendering several fields builds the data once: `render_data(text,
build_data(n), templates, ...)`. `is_go_template(text)` tells whether a value uses the template language.
Notification.receiver is used as is: the dispatcher stores it QuoteMeta'd, as Alertmanager's data has it.
"""
from __future__ import annotations

from typing import Callable

from service.core.models import Notification

from routing.gotemplate.data import Data, build_data
from routing.gotemplate.engine import Templates, TemplateLoadError
from routing.gotemplate.parse import TemplateError

__all__ = ["render_field", "render_data", "is_go_template", "Templates", "TemplateError", "TemplateLoadError",
           "build_data", "Data"]


def render_data(text: str, data: Data, templates: Templates | None = None, *, html: bool = False,
                now: Callable[[], float] | None = None) -> str:
    """Render `text` over prepared template data (build it once with build_data for many fields)."""
    t = templates if templates is not None else Templates.default()
    return t.execute_html(text, data, now) if html else t.execute_text(text, data, now)


def render_field(text: str, notification: Notification, templates: Templates | None = None, *, html: bool = False,
                 now: Callable[[], float] | None = None) -> str:
    """Render one Alertmanager config field (Go template text) for a notification, as Alertmanager does."""
    if text == "":
        return ""
    return render_data(text, build_data(notification), templates, html=html, now=now)


def is_go_template(text: str | None) -> bool:
    """Whether a config value contains template actions (a plain string renders as itself)."""
    return bool(text) and "{{" in text
