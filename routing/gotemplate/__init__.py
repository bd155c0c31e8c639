"""Alertmanager's Go templates, rendered exactly as Alertmanager 0.25 renders them.

Alertmanager configurations write their message fields (Slack `title`/`text`, PagerDuty `description`/`details`,
email `html`, ...) in Go's text/template language over Alertmanager's template data, often with `templates:`
files of `{{ define }}` blocks. No well-kept Python library implements Go's template language (the PyPI
projects that mention it are unmaintained and cover a fraction of the syntax and none of Go's value, printing
or comparison rules), so this package is a small implementation of it, tested against Go's documented
behaviour and differentially against the real Alertmanager 0.25 (tests/compat/test_templates_differential.py):

- parse.py: lexer and parser (actions, pipelines, comments, trim markers, if/else if/range/with/define/
  template/block/break/continue, variables);
- exec.py: execution (field/method/map access, missingkey, argument conversion, range order, errors);
- funcs.py: Go's builtins and Alertmanager's functions; gofmt.py: Go's fmt verbs; gotime.py: time.Time;
- data.py: template.Data built from a Tocsin Notification; escape.py: html/template's contextual escaping;
- alertmanager/default.tmpl, email.tmpl: Alertmanager 0.25's default templates (Apache-2.0, see NOTICE).

The API the receivers use (one function):

    render_field(text: str, notification: Notification, templates: Templates | None = None, *,
                 html: bool = False, now: Callable[[], float] | None = None) -> str

renders one config field as Alertmanager's tmplText/ExecuteTextString does (`html=True`: ExecuteHTMLString,
for email `html`). `templates` is the config's loaded set (`Config.go_templates`, built by
`Templates.load(config.templates, base_dir)` at config load); None means Alertmanager's defaults only.
`now` (epoch seconds; inject the service clock) feeds `since`. A parse or execution error raises
`TemplateError` with Go's message; Alertmanager fails the notification on it (not retried), and so should
callers. `is_go_template(text)` tells whether a field uses the template language at all.
"""
from __future__ import annotations

from typing import Callable

from service.models import Notification

from .data import Data, build_data
from .engine import Templates, TemplateLoadError
from .parse import TemplateError

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
