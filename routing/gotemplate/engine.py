"""A set of Go templates as Alertmanager holds it: its default templates, then the config's `templates:` files.

`Templates.load(globs, base_dir)` is Alertmanager's template.FromGlobs: default.tmpl and email.tmpl first, then
each glob (relative to the config file's folder) in order, files of one glob in sorted order; a later
`{{ define }}` replaces an earlier one unless its body is empty; a glob that matches nothing is fine; a file
that does not parse is an error naming the file. `execute_text`/`execute_html` are ExecuteTextString and
ExecuteHTMLString: the field text is parsed as a new template "" in a copy of the set (its defines stay local),
with missingkey=zero, and executed over the data; "" renders as "".
"""
from __future__ import annotations

import glob as _glob
import os
from collections import ChainMap
from functools import lru_cache
from typing import Any, Callable

import routing.gotemplate.parse as P
from routing.gotemplate.escape import HtmlEscaper
from routing.gotemplate.exec import State
from routing.gotemplate.funcs import builtin_funcs

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FILES = (os.path.join(_HERE, "alertmanager", "default.tmpl"), os.path.join(_HERE, "alertmanager", "email.tmpl"))
FUNC_NAMES = frozenset(builtin_funcs())


def _has_func(name: str) -> bool:
    return name in FUNC_NAMES


class TemplateLoadError(Exception):
    """A `templates:` file that cannot be read or parsed; the message names the file."""


def _merge(into: dict[str, P.Tree], trees: dict[str, P.Tree]) -> None:
    """text/template's associate: a later definition replaces an earlier one, unless its body is empty."""
    for name, tree in trees.items():
        if name in into and tree.is_empty():
            continue
        into[name] = tree


@lru_cache(maxsize=1)
def _default_trees() -> tuple[tuple[str, P.Tree], ...]:
    trees: dict[str, P.Tree] = {}
    for path in DEFAULT_FILES:
        with open(path, encoding="utf-8") as f:
            _merge(trees, P.parse(os.path.basename(path), f.read(), _has_func))
    return tuple(trees.items())


@lru_cache(maxsize=512)
def _parse_field(text: str) -> tuple[tuple[str, P.Tree], ...]:
    return tuple(P.parse("", text, _has_func).items())


class Templates:
    """An immutable set of named template trees (build a new one to reload)."""

    def __init__(self, trees: dict[str, P.Tree], files: tuple[str, ...] = (), user_defined: frozenset[str] = frozenset()):
        self.trees = trees
        self.files = files
        self.user_defined = user_defined  # the names the config's files define (or redefine)

    @classmethod
    def default(cls) -> "Templates":
        return cls(dict(_default_trees()))

    @classmethod
    def load(cls, globs: list[str], base_dir: str = ".") -> "Templates":
        trees = dict(_default_trees())
        files: list[str] = []
        names: set[str] = set()
        for g in globs:
            pattern = g if os.path.isabs(g) else os.path.join(base_dir, g)
            try:
                matches = sorted(_glob.glob(pattern, include_hidden=True))
            except (OSError, ValueError) as e:
                raise TemplateLoadError(f"{pattern}: {e}") from None
            for path in matches:
                try:
                    with open(path, encoding="utf-8") as f:
                        text = f.read()
                except OSError as e:
                    raise TemplateLoadError(f"{path}: {e.strerror or e}") from None
                try:
                    parsed = P.parse(os.path.basename(path), text, _has_func)
                except P.TemplateError as e:
                    raise TemplateLoadError(f"{path}: {e}") from None
                _merge(trees, parsed)
                names.update(k for k, t in parsed.items() if not t.is_empty())
                files.append(path)
        return cls(trees, tuple(files), frozenset(names))

    def names(self) -> list[str]:
        return sorted(self.trees)

    def _run(self, text: str, data: Any, now: Callable[[], float] | None, html: bool) -> str:
        if text == "":
            return ""
        own = dict(_parse_field(text))
        local: Any = ChainMap({k: t for k, t in own.items() if k == "" or not t.is_empty() or k not in self.trees},
                              self.trees)  # the field's own defines over the set, as a Clone + Parse gives
        funcs = builtin_funcs(now)
        state = State("", local, funcs, "zero", HtmlEscaper() if html else None)
        return state.run(local[""], data)

    def execute_text(self, text: str, data: Any, now: Callable[[], float] | None = None) -> str:
        """Alertmanager's ExecuteTextString; raises parse.TemplateError on a parse or execution error."""
        return self._run(text, data, now, html=False)

    def execute_html(self, text: str, data: Any, now: Callable[[], float] | None = None) -> str:
        """Alertmanager's ExecuteHTMLString (html/template's contextual escaping, see escape.py)."""
        return self._run(text, data, now, html=True)

    def execute_template(self, name: str, data: Any, now: Callable[[], float] | None = None, html: bool = False) -> str:
        """Execute one named template of the set (e.g. "slack.default.title")."""
        tree = self.trees.get(name)
        if tree is None:
            raise P.TemplateError(f'template: no template "{name}" associated with template ""')
        state = State(name, self.trees, builtin_funcs(now), "zero", HtmlEscaper() if html else None)
        return state.run(tree, data)
