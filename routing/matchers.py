"""Label matchers with Alertmanager 0.25's semantics, and the Go regexps they use.

Matchers (`Matcher`, `parse_matcher`, `parse_matchers_list`, `matchers_from_config`, `matchers_key`)
follow pkg/labels of Alertmanager 0.25: the classic matcher syntax, Go-%q printing, the sort order
of Matchers.Less, anchored regexes, and a missing label reading as "".

Go (RE2) regexps on Python's `re`: the two dialects agree on the everyday syntax but differ at the
edges, and a drop-in replacement must not quietly match something Alertmanager would not.
`translate` rewrites a Go pattern into a Python pattern with the same meaning, and refuses what Go
refuses (lookaround, backreferences, possessive quantifiers, unknown escapes) or what Python
cannot express (\\p{...} Unicode classes, the U flag). Where meanings differ it rewrites:
- `$` outside multi-line mode is end of text in Go (Python's also matches before a final "\\n") -> `\\Z`;
- `\\d \\w \\s \\b` are ASCII-only in Go -> explicit ASCII classes;
- `\\z` -> `\\Z`; `\\Q...\\E` -> escaped literals; `\\x{10FFFF}` and octal `\\123` -> code points;
- `[[:alpha:]]` POSIX classes -> ASCII ranges;
- a flag group in mid-pattern, `a(?i)b`, scopes to the rest of its group -> `a(?i:b)`;
- `{` that does not start a valid repeat is a literal in Go (Python reads `{,3}` as a repeat).
Known residual difference: `\\D \\W \\S` inside a bracket class keep Python's Unicode meaning.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from service.errors import ConfigError

_WORD = "0-9A-Za-z_"
_PERL = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "w": f"[{_WORD}]",
    "W": f"[^{_WORD}]",
    "s": r"[\t\n\f\r ]",
    "S": r"[^\t\n\f\r ]",
}
_PERL_IN_CLASS = {"d": "0-9", "w": _WORD, "s": r"\t\n\f\r ", "D": r"\D", "W": r"\W", "S": r"\S"}
_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": r"\x00-\x7f",
    "blank": r"\t ",
    "cntrl": r"\x00-\x1f\x7f",
    "digit": "0-9",
    "graph": r"!-~",
    "lower": "a-z",
    "print": r" -~",
    "punct": r"!-/:-@\[-`{-~",
    "space": r"\t\n\v\f\r ",
    "upper": "A-Z",
    "word": _WORD,
    "xdigit": "0-9A-Fa-f",
}
_WB = rf"(?:(?<=[{_WORD}])(?![{_WORD}])|(?<![{_WORD}])(?=[{_WORD}]))"
_NWB = rf"(?:(?<=[{_WORD}])(?=[{_WORD}])|(?<![{_WORD}])(?![{_WORD}]))"
_SIMPLE_ESC = {"a": 7, "f": 12, "t": 9, "n": 10, "r": 13, "v": 11}
_REPEAT_RE = re.compile(r"\{([0-9]+)(,([0-9]*))?\}")
_MAX_REPEAT = 1000
_CLASS_SPECIAL = set("[]\\^-&~|")


class GoRegexError(ValueError):
    """The pattern is not a valid Go regexp, or uses a Go feature Tocsin cannot run."""


def _char(cp: int) -> str:
    return re.escape(chr(cp))


def _class_char(cp: int) -> str:
    c = chr(cp)
    if c in _CLASS_SPECIAL:
        return "\\" + c
    if cp < 0x20 or cp == 0x7F:
        return f"\\x{cp:02x}"
    return c


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []
        # One frame per open group: [flags active inside, number of scoped-flag groups opened by
        # mid-group `(?flags)` (closed with the group), the openers to repeat after each `|`].
        self.frames: list[list] = [[set(), 0, []]]
        self.last_quant = False  # the previous token was a repetition operator
        self.last_lazy = False
        self.can_repeat = False  # the previous token is something a repetition can apply to

    def error(self, msg: str) -> GoRegexError:
        return GoRegexError(f"error parsing regexp: {msg}: `{self.p}`")

    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            if c in "*+?" or (c == "{" and _REPEAT_RE.match(p, self.i)):
                self._repeat(c)
                continue
            self.last_quant = self.last_lazy = False
            self.can_repeat = True
            if c == "\\":
                self._escape()
            elif c == "[":
                self.i += 1
                self.out.append(self._class())
            elif c == "(":
                self._open()
                self.can_repeat = False
            elif c == ")":
                if len(self.frames) == 1:
                    raise self.error("unexpected )")
                frame = self.frames.pop()
                self.out.append(")" * (frame[1] + 1))
                self.i += 1
            elif c == "|":
                # A mid-group flag change lasts to the end of the group, across alternations:
                # close the scoped groups and reopen them after the bar.
                self._alternate()
                self.can_repeat = False
            elif c == "$":
                self.out.append("$" if "m" in self.frames[-1][0] else r"\Z")
                self.i += 1
            elif c == "{":
                self.out.append(r"\{")
                self.i += 1
            else:
                self.out.append(c if c in ".^" else re.escape(c))
                self.i += 1
        if len(self.frames) != 1:
            raise self.error("missing closing )")
        self.out.append(")" * self.frames[0][1])
        return "".join(self.out)

    # -- pieces -------------------------------------------------------------------------------

    def _repeat(self, c: str) -> None:
        p = self.p
        if self.last_quant:
            if c == "?" and not self.last_lazy:
                self.out.append("?")
                self.last_lazy = True
                self.i += 1
                return
            raise self.error("invalid nested repetition operator")
        if not self.can_repeat:
            raise self.error("missing argument to repetition operator")
        if c == "{":
            m = _REPEAT_RE.match(p, self.i)
            lo = int(m.group(1))
            hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
            if lo > _MAX_REPEAT or (hi is not None and (hi > _MAX_REPEAT or hi < lo)):
                raise self.error(f"invalid repeat count: `{m.group(0)}`")
            self.out.append(m.group(0))
            self.i = m.end()
        else:
            self.out.append(c)
            self.i += 1
        self.last_quant = True
        self.last_lazy = False

    def _alternate(self) -> None:
        frame = self.frames[-1]
        self.out.append(")" * frame[1])
        self.out.append("|")
        self.out.append("".join(frame[2]))
        self.i += 1

    def _open(self) -> None:
        p = self.p
        flags = set(self.frames[-1][0])
        if p.startswith("(?", self.i):
            if p.startswith("(?P<", self.i):
                end = p.find(">", self.i)
                name = p[self.i + 4 : end] if end != -1 else ""
                if end == -1 or not re.fullmatch(r"[A-Za-z0-9_]+", name):
                    raise self.error("invalid named capture")
                self.out.append(p[self.i : end + 1])
                self.frames.append([flags, 0, []])
                self.i = end + 1
                return
            m = re.compile(r"\(\?([A-Za-z-]*)([:)])").match(p, self.i)
            if m is None:
                raise self.error("invalid or unsupported Perl syntax")
            spec, kind = m.group(1), m.group(2)
            on, off, neg = set(), set(), False
            if spec == "" and kind == ")":
                raise self.error("missing argument to repetition operator")
            for ch in spec:
                if ch == "-":
                    if neg:
                        raise self.error("invalid or unsupported Perl syntax")
                    neg = True
                elif ch in "ims":
                    (off if neg else on).add(ch)
                elif ch == "U":
                    raise GoRegexError(f"the Go regexp flag U (ungreedy) is not supported: `{self.p}`")
                else:
                    raise self.error("invalid or unsupported Perl syntax")
            if neg and not off or spec.endswith("-"):
                raise self.error("invalid or unsupported Perl syntax")
            scoped = "(?" + "".join(sorted(on)) + ("-" + "".join(sorted(off)) if off else "")
            new_flags = (flags | on) - off
            self.i = m.end()
            if kind == ":":
                self.out.append(scoped + ":" if (on or off) else "(?:")
                self.frames.append([new_flags, 0, []])
            else:
                # (?flags) applies to the rest of the enclosing group.
                frame = self.frames[-1]
                opener = scoped + ":"
                self.out.append(opener)
                frame[0] = new_flags
                frame[1] += 1
                frame[2].append(opener)
            return
        self.out.append("(")
        self.frames.append([flags, 0, []])
        self.i += 1

    def _escape(self) -> None:
        p = self.p
        if self.i + 1 >= len(p):
            raise self.error("trailing backslash at end of expression")
        c = p[self.i + 1]
        self.i += 2
        if c in _PERL:
            self.out.append(_PERL[c])
        elif c == "b":
            self.out.append(_WB)
        elif c == "B":
            self.out.append(_NWB)
        elif c == "A":
            self.out.append(r"\A")
        elif c == "z":
            self.out.append(r"\Z")
        elif c == "Q":
            end = p.find(r"\E", self.i)
            lit = p[self.i :] if end == -1 else p[self.i : end]
            self.i = len(p) if end == -1 else end + 2
            # Each quoted character is its own atom: `\Qab\E*` repeats only the b, as in Go.
            self.out.extend(re.escape(ch) for ch in lit)
        else:
            self.i -= 2
            self.out.append(_char(self._single_escape()))

    def _single_escape(self) -> int:
        """Read an escape that stands for one character (self.i at the backslash); its code point."""
        p = self.p
        c = p[self.i + 1]
        self.i += 2
        if c in _SIMPLE_ESC:
            return _SIMPLE_ESC[c]
        if c == "x":
            if p.startswith("{", self.i):
                end = p.find("}", self.i)
                digits = p[self.i + 1 : end] if end != -1 else ""
                if not re.fullmatch(r"[0-9A-Fa-f]+", digits) or int(digits, 16) > 0x10FFFF:
                    raise self.error("invalid escape sequence")
                self.i = end + 1
                return int(digits, 16)
            digits = p[self.i : self.i + 2]
            if not re.fullmatch(r"[0-9A-Fa-f]{2}", digits):
                raise self.error("invalid escape sequence")
            self.i += 2
            return int(digits, 16)
        if c in "01234567":
            # Go: a lone \1-\7 would be a backreference (unsupported); otherwise up to 3 octal digits.
            if c != "0" and not (self.i < len(p) and p[self.i] in "01234567"):
                raise self.error("invalid escape sequence")
            digits = c
            while len(digits) < 3 and self.i < len(p) and p[self.i] in "01234567":
                digits += p[self.i]
                self.i += 1
            return int(digits, 8)
        if c in "pP":
            raise GoRegexError(f"Unicode classes (\\{c}) in regexps are not supported by Tocsin: `{self.p}`")
        if ord(c) < 0x80 and not c.isalnum():
            return ord(c)
        raise self.error(f"invalid escape sequence: `\\{c}`")

    def _class(self) -> str:
        """Translate a bracket class; self.i is just past the '['."""
        p = self.p
        parts = ["["]
        if p.startswith("^", self.i):
            parts.append("^")
            self.i += 1
        first = True
        while True:
            if self.i >= len(p):
                raise self.error("missing closing ]")
            c = p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if p.startswith("[:", self.i):
                end = p.find(":]", self.i + 2)
                if end != -1:
                    name = p[self.i + 2 : end]
                    if name.startswith("^"):
                        raise GoRegexError(f"negated POSIX classes are not supported by Tocsin: `{self.p}`")
                    if name not in _POSIX:
                        raise self.error(f"invalid character class range: `[:{name}:]`")
                    parts.append(_POSIX[name])
                    self.i = end + 2
                    continue
            if c == "\\" and self.i + 1 < len(p) and p[self.i + 1] in _PERL_IN_CLASS:
                parts.append(_PERL_IN_CLASS[p[self.i + 1]])
                self.i += 2
                continue
            lo = self._class_single()
            if p.startswith("-", self.i) and self.i + 1 < len(p) and p[self.i + 1] != "]":
                self.i += 1
                if p[self.i] == "\\" and self.i + 1 < len(p) and p[self.i + 1] in _PERL_IN_CLASS:
                    raise self.error("invalid character class range")
                hi = self._class_single()
                if hi < lo:
                    raise self.error(f"invalid character class range: `{chr(lo)}-{chr(hi)}`")
                parts.append(_class_char(lo) + "-" + _class_char(hi))
            else:
                parts.append(_class_char(lo))
        parts.append("]")
        return "".join(parts)

    def _class_single(self) -> int:
        p = self.p
        if p[self.i] == "\\":
            if self.i + 1 >= len(p):
                raise self.error("trailing backslash at end of expression")
            return self._single_escape()
        c = p[self.i]
        self.i += 1
        return ord(c)


def translate(pattern: str) -> str:
    """A Python `re` pattern matching exactly what the Go `regexp` pattern matches (unanchored search)."""
    return _Translator(pattern).run()


def compile_go(pattern: str) -> re.Pattern[str]:
    """Compile a Go regexp for `re.search`; GoRegexError if Go (or Tocsin) would not accept it."""
    py = translate(pattern)
    try:
        return re.compile(py)
    except re.error as e:
        raise GoRegexError(f"error parsing regexp: {e}: `{pattern}`") from None


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
    _re: re.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False, hash=False)

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
