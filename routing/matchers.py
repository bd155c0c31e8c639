"""Label matchers with Alertmanager 0.25's semantics, and the Go regexps they use.

Matchers (`Matcher`, `parse_matcher`, `parse_matchers_list`, `matchers_from_config`, `matchers_key`)
follow pkg/labels of Alertmanager 0.25: the classic matcher syntax, Go-%q printing, the sort order
of Matchers.Less, anchored regexes (`^(?:value)$`), and a missing label reading as "".

Regexps run on RE2 (the `google-re2` bindings), the engine Go's `regexp` package implements: the same
syntax (Unicode classes, `(?U)`, `\\Q...\\E`, POSIX classes, ASCII `\\d \\w \\s \\b`, `$` as end of text) and,
above all, matching in time linear in the input, so a hostile pattern in a silence, a filter or an inhibit
rule cannot stall the event loop. `compile_go` is the one place any user regex is compiled (matchers,
silences, GET filters and `receiver`, inhibition); it rejects the two things RE2 accepts and the Go of
Alertmanager 0.25 does not (`\\C`, `(?<name>...)`), and phrases errors as Go does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import re2

from service.core.errors import ConfigError


class GoRegexError(ValueError):
    """The pattern is not a valid Go regexp."""


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = 8 << 20  # RE2's default program budget; a pattern needing more is an error, not a stall
# RE2's error texts -> Go's regexp/syntax error codes (ErrMissingParen, ...).
_GO_ERRORS = (
    ("missing )", "missing closing )"), ("unexpected )", "unexpected )"), ("missing ]", "missing closing ]"),
    ("invalid perl operator", "invalid or unsupported Perl syntax"),
    ("bad repetition operator", "invalid nested repetition operator"),
    ("no argument for repetition operator", "missing argument to repetition operator"),
    ("invalid repetition size", "invalid repeat count"), ("invalid escape sequence", "invalid escape sequence"),
    ("trailing \\", "trailing backslash at end of expression"),
    ("invalid character class range", "invalid character class range"),
    ("invalid character class", "invalid character class"), ("invalid named capture group", "invalid named capture"),
    ("duplicate capture group name", "duplicate capture group name"), ("invalid UTF-8", "invalid UTF-8"),
    ("pattern too large", "expression too large"),
)
# Accepted by RE2, refused by Go 1.19's regexp (Alertmanager 0.25): \C (any byte) and (?<name>...).
_NOT_GO = re.compile(r"(?<!\\)(?:\\\\)*(\\C|\(\?<(?![=!]))")


def _go_error(pattern: str, err: Exception) -> GoRegexError:
    text = err.args[0].decode("utf-8", "replace") if err.args and isinstance(err.args[0], bytes) else str(err)
    for prefix, go in _GO_ERRORS:
        if text.startswith(prefix):
            return GoRegexError(f"error parsing regexp: {go}: `{pattern}`")
    return GoRegexError(f"error parsing regexp: {text}: `{pattern}`")


class GoRegex:
    """A compiled Go regexp: `search(text)` is Go's MatchString (unanchored), in linear time."""

    __slots__ = ("pattern", "_re")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            self._re = re2.compile(pattern, options=_RE2_OPTIONS)
        except re2.error as e:
            raise _go_error(pattern, e) from None

    def search(self, text: str) -> Any:
        try:
            return self._re.search(text)
        except UnicodeEncodeError:  # a lone surrogate (never stored: intake rejects them): Go reads U+FFFD
            return self._re.search(text.encode("utf-8", "replace").decode("utf-8"))


def compile_go(pattern: str) -> GoRegex:
    """Compile a Go regexp for `.search`; GoRegexError if Go would not accept it."""
    m = _NOT_GO.search(pattern)
    if m is not None:
        what = "invalid escape sequence: `\\C`" if m.group(1) == "\\C" else "invalid or unsupported Perl syntax"
        raise GoRegexError(f"error parsing regexp: {what}: `{pattern}`")
    return GoRegex(pattern)


# ---------------------------------------------------------------------------------------------
# Matchers
# ---------------------------------------------------------------------------------------------

MATCH_OPS = ("=", "!=", "=~", "!~")  # Go's MatchType order: sorting uses this index
_OP_INDEX = {op: i for i, op in enumerate(MATCH_OPS)}
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# pkg/labels/parse.go; Go's \s is [\t\n\f\r ]. '=~' before '=' so the '~' is not read as the value.
_WS = r"[\t\n\f\r ]*"
_MATCHER_RE = re.compile(
    rf"{_WS}([a-zA-Z_:][a-zA-Z0-9_:]*){_WS}(=~|=|!=|!~){_WS}(.*?){_WS}", re.DOTALL
)


def go_quote(s: str) -> str:
    """Go's strconv.Quote / fmt %q: a double-quoted string with Go escapes."""
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():  # same classes as Go's unicode.IsPrint: L, M, N, P, S and ' '
            out.append(ch)
        elif ch in _GO_CTRL_ESC:
            out.append(_GO_CTRL_ESC[ch])
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"\\x{cp:02x}")
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


_GO_CTRL_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


@dataclass(frozen=True)
class Matcher:
    """One label matcher, as Alertmanager's labels.Matcher (0.25).

    `matches` reads a missing label as "". Regexes are Go regexps, anchored as `^(?:value)$`.
    Constructing a Matcher with a bad op or regex raises GoRegexError/ValueError; the parse
    functions below turn that into a ConfigError naming the path.
    """

    name: str
    op: str
    value: str
    _re: GoRegex | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.op not in _OP_INDEX:
            raise ValueError(f"unknown match type {self.op!r}")
        if self.op in ("=~", "!~"):
            object.__setattr__(self, "_re", compile_go("^(?:" + self.value + ")$"))

    def matches_value(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = self._re.search(value) is not None  # type: ignore[union-attr]
        return hit if self.op == "=~" else not hit

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.matches_value(labels.get(self.name, ""))

    def sort_key(self) -> tuple[str, str, int]:
        """Alertmanager's Matchers.Less: by name, then value, then match type."""
        return (self.name, self.value, _OP_INDEX[self.op])

    def __str__(self) -> str:
        return f"{self.name}{self.op}{go_quote(self.value)}"


def new_matcher(op: str, name: str, value: str, path: str) -> Matcher:
    """A Matcher, or ConfigError(path, ...) if its regex does not compile."""
    try:
        return Matcher(name, op, value)
    except ValueError as e:
        raise ConfigError(path, str(e)) from None


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """AM's Matchers.Matches: every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)


def sort_matchers(ms: Iterable[Matcher]) -> list[Matcher]:
    return sorted(ms, key=Matcher.sort_key)


def matchers_key(ms: Iterable[Matcher]) -> str:
    """AM's Matchers.String() over the sorted matchers: '{a="1",b=~"x"}'."""
    return "{" + ",".join(str(m) for m in sort_matchers(ms)) + "}"


def parse_matcher(text: str, path: str) -> Matcher:
    """One matcher in Alertmanager 0.25's syntax: name, op, then a value that may be double-quoted.

    Inside the value `\\"`, `\\n` and `\\\\` are escapes; any other backslash is literal; an unescaped
    `"` may only open and close the value.
    """
    if not isinstance(text, str):
        raise ConfigError(path, f"matcher must be a string, got {type(text).__name__}")
    m = _MATCHER_RE.fullmatch(text)
    if m is None:
        raise ConfigError(path, f"bad matcher format: {text}")
    name, op, raw = m.group(1), m.group(2), m.group(3)
    if raw == "":
        raise ConfigError(path, f"matcher value is not present: {text}")
    expect_trailing_quote = raw.startswith('"')
    if expect_trailing_quote:
        raw = raw[1:]
    value: list[str] = []
    escaped = False
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            if ch == "n":
                value.append("\n")
            elif ch in '"\\':
                value.append(ch)
            else:  # a spurious escape: the backslash is literal
                value.append("\\" + ch)
            continue
        if ch == "\\":
            if i < len(raw) - 1:
                escaped = True
                continue
            value.append("\\")
        elif ch == '"':
            if not expect_trailing_quote or i < len(raw) - 1:
                raise ConfigError(path, f"matcher value contains unescaped double quote: {m.group(3)}")
            expect_trailing_quote = False
        else:
            value.append(ch)
    if expect_trailing_quote:
        raise ConfigError(path, f"matcher value contains unescaped double quote: {m.group(3)}")
    return new_matcher(op, name, "".join(value), path)


def split_matchers(text: str) -> list[str]:
    """AM's ParseMatchers tokenising: optional { }, commas outside double quotes separate matchers."""
    if text.startswith("{"):
        text = text[1:]
    if text.endswith("}"):
        text = text[:-1]
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for ch in text:
        if ch == "," and not inside_quotes:
            tokens.append("".join(token))
            token = []
            continue
        if ch == '"':
            if not escaped:
                inside_quotes = not inside_quotes
            else:
                escaped = False
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(ch)
    last = "".join(token).strip()  # Go strings.TrimSpace: Unicode white space
    if last:
        tokens.append(last)
    return tokens


def parse_matchers(text: str, path: str) -> list[Matcher]:
    """AM's ParseMatchers: '{a="1", b=~"x|y"}' or 'a=1,b!=2' -> matchers, in written order."""
    if not isinstance(text, str):
        raise ConfigError(path, f"matcher must be a string, got {type(text).__name__}")
    return [parse_matcher(tok, path) for tok in split_matchers(text)]


def parse_matchers_list(items: list[str], path: str) -> list[Matcher]:
    """The `matchers:` list of a route or inhibit rule; each string may hold several matchers. Sorted."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise ConfigError(path, f"must be a list of matcher strings, got {type(items).__name__}")
    out: list[Matcher] = []
    for i, item in enumerate(items):
        out.extend(parse_matchers(item, f"{path}[{i}]"))
    return sort_matchers(out)


def _label_value(v: Any, path: str) -> str:
    # yaml.v2 decodes a plain scalar into a Go string field as its text; PyYAML has already typed it.
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    raise ConfigError(path, f"must be a string (quote it in YAML), got {type(v).__name__} {v!r}")


def check_label_name(name: Any, path: str, what: str = "label name") -> str:
    if not isinstance(name, str) or not LABEL_NAME_RE.fullmatch(name):
        raise ConfigError(path, f"invalid {what} {name!r}")
    return name


def matchers_from_config(
    d: dict, path: str, *, eq_key: str = "match", re_key: str = "match_re", list_key: str = "matchers"
) -> list[Matcher]:
    """The matchers of a route or one side of an inhibit rule, merged as AM's NewRoute does, sorted.

    `match` gives equality matchers; `match_re` gives regex matchers whose value is the compiled
    regex's text, `^(?:v)$` (so route keys read `env=~"^(?:prod)$"`, as in Alertmanager);
    `matchers` adds new-style matchers.
    """
    out: list[Matcher] = []
    eq = d.get(eq_key)
    if eq is not None:
        if not isinstance(eq, dict):
            raise ConfigError(f"{path}.{eq_key}", "must be a mapping of label name to value")
        for k, v in eq.items():
            check_label_name(k, f"{path}.{eq_key}")
            out.append(new_matcher("=", k, _label_value(v, f"{path}.{eq_key}.{k}"), f"{path}.{eq_key}.{k}"))
    rx = d.get(re_key)
    if rx is not None:
        if not isinstance(rx, dict):
            raise ConfigError(f"{path}.{re_key}", "must be a mapping of label name to regex")
        for k, v in rx.items():
            check_label_name(k, f"{path}.{re_key}")
            p = f"{path}.{re_key}.{k}"
            text = _label_value(v, p)
            try:
                compile_go("^(?:" + text + ")$")
            except GoRegexError as e:
                raise ConfigError(p, str(e)) from None
            out.append(new_matcher("=~", k, "^(?:" + text + ")$", p))
    out.extend(parse_matchers_list(d.get(list_key), f"{path}.{list_key}"))
    return sort_matchers(out)
