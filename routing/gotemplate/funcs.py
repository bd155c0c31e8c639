"""Go's template builtins (text/template/funcs.go, Go 1.19) and Alertmanager's template functions.

Builtins: and, or (lazy, Go 1.18+), not, len, index, slice, eq/ne/lt/le/gt/ge with Go's comparison rules
("incompatible types for comparison" for 1 vs 1.0, "invalid type for comparison" for ordering bools), print,
printf, println, html, js, urlquery, call.

Alertmanager 0.25 (template/template.go DefaultFuncs; checked against the real 0.25 binary) defines exactly
toUpper, toLower, title (x/text cases.Title: first letter of a word upper, the rest lower), join, match, safeHtml,
reReplaceAll and stringSlice. Later versions add trimSpace (0.26), date, tz, since and humanizeDuration (0.27+),
and Prometheus's rule templates have humanize, humanize1024, humanizePercentage and humanizeTimestamp. Tocsin
defines these too (with Alertmanager's and prometheus/common's semantics): templates written for newer versions
render, where Alertmanager 0.25 would reject them as "function not defined"; templates valid for 0.25 render
the same.

Regular expressions use Go's RE2 syntax through google-re2 (the `re2` module), so a pattern Go rejects fails
here too; without it Python's `re` is used (RE2 is a subset of re except for a few escapes, so valid patterns
behave the same but some invalid ones are accepted). Replacement strings use Go's `$1`/`${name}` expansion.
"""
from __future__ import annotations

import math
import unicodedata
from typing import Any, Callable

import routing.gotemplate.gofmt as gofmt
from routing.gotemplate.gotime import GoDuration, GoLocationError, GoTime, load_location
from routing.gotemplate.values import HTML, NO_VALUE, GoFunc, basic_kind, is_true, type_name

try:  # Go's regexp is RE2; google-re2 gives the same syntax and semantics
    import re2 as _re  # type: ignore[import-not-found]

    RE_ENGINE = "re2"
except ImportError:  # pragma: no cover - google-re2 is a dependency
    import re as _re  # type: ignore[no-redef]

    RE_ENGINE = "re"


class FuncError(Exception):
    pass


# --------------------------------------------------------------------------------------- builtins

def _and(thunks: list[Callable[[], Any]]) -> Any:
    v: Any = None
    for t in thunks:
        v = t()
        if not is_true(v):
            return v
    return v


def _or(thunks: list[Callable[[], Any]]) -> Any:
    v: Any = None
    for t in thunks:
        v = t()
        if is_true(v):
            return v
    return v


def _not(v: Any) -> bool:
    return not is_true(v)


def _len(v: Any) -> int:
    if isinstance(v, str):
        return len(v.encode())
    if isinstance(v, (list, dict, tuple)):
        return len(v)
    if v is None or v is NO_VALUE:
        raise FuncError("len of untyped nil" if v is NO_VALUE else "len of nil pointer")
    raise FuncError(f"len of type {type_name(v)}")


def _index_of(item: Any, idx: Any) -> Any:
    if isinstance(item, dict):
        if not isinstance(idx, str) and idx is not None:
            raise FuncError(f"value has type {type_name(idx)}; should be string")
        if idx in item:
            return item[idx]
        return getattr(item, "elem_zero", NO_VALUE)
    if isinstance(item, (list, str)):
        if type(idx) is not int:
            raise FuncError(f"cannot index slice/array with type {type_name(idx)}")
        seq = item.encode() if isinstance(item, str) else item
        if idx < 0 or idx >= len(seq):
            raise FuncError(f"index out of range: {idx}")
        return seq[idx]
    if item is NO_VALUE or item is None:
        raise FuncError("index of untyped nil")
    raise FuncError(f"can't index item of type {type_name(item)}")


def _index(item: Any, *indexes: Any) -> Any:
    for i in indexes:
        item = _index_of(item, i)
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is NO_VALUE or item is None:
        raise FuncError("slice of untyped nil")
    if len(indexes) > 3:
        raise FuncError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise FuncError("cannot 3-index slice a string")
        seq: Any = item.encode()
    elif isinstance(item, list):
        seq = item
    else:
        raise FuncError(f"can't slice item of type {type_name(item)}")
    idx = [0, len(seq)]
    for k, i in enumerate(indexes):
        if type(i) is not int:
            raise FuncError(f"cannot index slice/array with type {type_name(i)}")
        if i < 0 or i > len(seq):
            raise FuncError(f"index out of range: {i}")
        if k < 2:
            idx[k] = i
    if idx[0] > idx[1]:
        raise FuncError(f"invalid slice index: {idx[0]} > {idx[1]}")
    out = seq[idx[0]:idx[1]]
    if isinstance(item, str):
        return out.decode("utf-8", errors="replace")
    return type(item)(out) if type(item) is not list else out


def _cmp_kinds(a: Any, b: Any) -> tuple[str | None, str | None]:
    return basic_kind(a), basic_kind(b)


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise FuncError("missing argument for comparison")
    k1 = basic_kind(a)
    for b in bs:
        k2 = basic_kind(b)
        if k1 != k2:
            if a is not NO_VALUE and b is not NO_VALUE:
                raise FuncError("incompatible types for comparison")
            continue
        if k1 is not None:
            if a == b:
                return True
            continue
        if a is None or b is None:
            if (a is None) == (b is None):
                return True
            continue
        if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
            raise FuncError(f"non-comparable type {gofmt.sprint_one(a)}: {type_name(a)}")
        if type_name(a) != type_name(b):
            raise FuncError(f"non-comparable types {gofmt.sprint_one(a)}: {type_name(a)}, "
                            f"{gofmt.sprint_one(b)}: {type_name(b)}")
        if a == b:
            return True
    return False


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _lt(a: Any, b: Any) -> bool:
    k1 = basic_kind(a)
    if k1 is None:
        raise FuncError("invalid type for comparison")
    k2 = basic_kind(b)
    if k2 is None:
        raise FuncError("invalid type for comparison")
    if k1 != k2:
        raise FuncError("incompatible types for comparison")
    if k1 == "bool":
        raise FuncError("invalid type for comparison")
    return a < b


def _le(a: Any, b: Any) -> bool:
    return _lt(a, b) or _eq(a, b)


def _gt(a: Any, b: Any) -> bool:
    return not _le(a, b)


def _ge(a: Any, b: Any) -> bool:
    return not _lt(a, b)


def eval_args(args: tuple[Any, ...]) -> str:
    """text/template's evalArgs: one string as is, else fmt.Sprint of the printable values."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return gofmt.sprint(["<no value>" if a is None or a is NO_VALUE else a for a in args])


_HTML_ESC = {'"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;", "\0": "\ufffd"}


def html_escape_string(s: str) -> str:
    """template.HTMLEscapeString."""
    return "".join(_HTML_ESC.get(c, c) for c in s)


def js_escape_string(s: str) -> str:
    """template.JSEscapeString (Go 1.19)."""
    out = []
    for c in s:
        o = ord(c)
        if c == "\\":
            out.append("\\\\")
        elif c == "'":
            out.append("\\'")
        elif c == '"':
            out.append('\\"')
        elif c in "<>&=":
            out.append(f"\\u{o:04X}")
        elif o < 0x20:
            out.append(f"\\u{o:04X}")
        elif o < 0x80 or c.isprintable():
            out.append(c)
        else:
            out.append(f"\\u{o:04X}")
    return "".join(out)


_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def query_escape(s: str) -> str:
    """url.QueryEscape."""
    out = []
    for b in s.encode():
        c = chr(b)
        if c in _UNRESERVED:
            out.append(c)
        elif c == " ":
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def _call(fn: Any, *args: Any) -> Any:
    if not isinstance(fn, GoFunc) and not callable(fn):
        raise FuncError(f"non-function of type {type_name(fn)}")
    f = fn.fn if isinstance(fn, GoFunc) else fn
    return f(*args)


# --------------------------------------------------------------------------------------- Alertmanager

_SIMPLE_LOWER_EXCEPTIONS = {"İ": "i"}


def to_upper(s: str) -> str:
    """strings.ToUpper: Unicode simple case mapping, rune by rune."""
    out = []
    for c in s:
        u = c.upper()
        out.append(u if len(u) == 1 else c)
    return "".join(out)


def to_lower(s: str) -> str:
    out = []
    for c in s:
        low = c.lower()
        out.append(low if len(low) == 1 else _SIMPLE_LOWER_EXCEPTIONS.get(c, c))
    return "".join(out)


_MID = set("'.:·’‘․﹒＇．:︓﹕：")


def _cased(c: str) -> bool:
    return c.lower() != c.upper() or unicodedata.category(c) in ("Lu", "Ll", "Lt")


def _is_break(c: str) -> bool:
    if c in _MID or c == "_":
        return False
    cat = unicodedata.category(c)
    return not (cat[0] in "LMN" or cat == "Cf")


def title(s: str) -> str:
    """cases.Title(language.AmericanEnglish): the first cased letter of each word upper (title) case, the rest lower.

    Word breaks follow x/text/cases' simplification of Unicode word breaking: letters, digits, marks, `_` and the
    "mid" punctuation (' . : and kin) keep a word going; two mid characters in a row, or anything else, end it.
    """
    out = []
    mid_word = False
    was_mid = False
    for c in s:
        is_mid = c in _MID
        if was_mid and is_mid:
            mid_word = False
        if _cased(c):
            if not mid_word:
                t = c.title() if len(c.title()) == 1 else c.upper()
                out.append(t if len(t) == 1 else c)
                mid_word = True
            else:
                low = c.lower()
                out.append(low if len(low) == 1 else c)
        else:
            out.append(c)
            if _is_break(c):
                mid_word = False
        was_mid = is_mid
    return "".join(out)


_GO_SPACE = set("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
                "\u2028\u2029\u202f\u205f\u3000")


def trim_space(s: str) -> str:
    """strings.TrimSpace (unicode.IsSpace)."""
    a, b = 0, len(s)
    while a < b and s[a] in _GO_SPACE:
        a += 1
    while b > a and s[b - 1] in _GO_SPACE:
        b -= 1
    return s[a:b]


def _join(sep: str, items: list[str] | None) -> str:
    return sep.join(items or [])


_RE_CACHE: dict[str, Any] = {}


def compile_re(pattern: str) -> Any:
    r = _RE_CACHE.get(pattern)
    if r is None:
        try:
            r = _re.compile(pattern)
        except Exception as e:
            raise FuncError(f"error parsing regexp: {e}: `{pattern}`") from None
        if len(_RE_CACHE) > 256:
            _RE_CACHE.clear()
        _RE_CACHE[pattern] = r
    return r


def _match(pattern: str, s: str) -> bool:
    return compile_re(pattern).search(s) is not None


def _expand(template: str, m: Any, groupindex: dict[str, int]) -> str:
    """regexp.Expand: $1, ${1}, $name, ${name}, $$; an unknown name or group is empty."""
    out = []
    i, n = 0, len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        name, brace = "", False
        if i < n and template[i] == "{":
            k = template.find("}", i + 1)
            if k < 0 or not _is_name(template[i + 1:k]):
                out.append("$")
                continue
            name, brace = template[i + 1:k], True
            i = k + 1
        else:
            k = i
            while k < n and (template[k].isalnum() or template[k] == "_") and template[k].isascii():
                k += 1
            if k == i:
                out.append("$")
                continue
            name = template[i:k]
            i = k
        del brace
        out.append(_group(m, name, groupindex))
    return "".join(out)


def _is_name(s: str) -> bool:
    return bool(s) and all((c.isalnum() or c == "_") and c.isascii() for c in s)


def _group(m: Any, name: str, groupindex: dict[str, int]) -> str:
    try:
        if name.isdigit():
            g = m.group(int(name))
        elif name in groupindex:
            g = m.group(name)
        else:
            return ""
    except (IndexError, Exception):
        return ""
    return g or ""


def re_replace_all(pattern: str, repl: str, text: str) -> str:
    """regexp.MustCompile(pattern).ReplaceAllString(text, repl), with Go's handling of empty matches."""
    r = compile_re(pattern)
    gi = dict(getattr(r, "groupindex", {}) or {})
    out = []
    last_end = 0
    pos = 0
    n = len(text)
    while pos <= n:
        m = r.search(text, pos)
        if m is None:
            break
        a, b = m.span()
        out.append(text[last_end:a])
        if b > last_end or a == 0:
            out.append(_expand(repl, m, gi))
        last_end = b
        if pos + 1 > b:
            pos += 1
        else:
            pos = b
    out.append(text[last_end:])
    return "".join(out)


def _string_slice(*s: str) -> list[str]:
    return list(s)


def _date(layout: str, t: GoTime) -> str:
    return t.go_Format(layout)


def _tz(name: str, t: GoTime) -> GoTime:
    try:
        return GoTime(t.ns, load_location(name))
    except GoLocationError as e:
        raise FuncError(str(e)) from None


def convert_to_float(v: Any) -> float:
    """prometheus/common ConvertToFloat: float64, int, string (strconv.ParseFloat), time.Duration (seconds)."""
    if isinstance(v, GoDuration):
        return int(v) / 1e9
    if type(v) is float:
        return v
    if type(v) is int:
        return float(v)
    if isinstance(v, str):
        return parse_float(v)
    raise FuncError(f"can't convert {type_name(v)} to float")


def parse_float(s: str) -> float:
    """strconv.ParseFloat(s, 64)."""
    t = s
    bad = not t or t != t.strip() or ("_" in t and not t.lstrip("+-").lower().startswith(("0x", "0b", "0o")))
    low = t.lower().lstrip("+-")
    if not bad and low in ("inf", "infinity", "nan"):
        return float(t.replace("infinity", "inf").replace("Infinity", "inf"))
    try:
        if bad:
            raise ValueError
        if low.startswith("0x"):
            return float.fromhex(t.replace("_", ""))
        return float(t)
    except ValueError:
        raise FuncError(f'strconv.ParseFloat: parsing {gofmt.quote(s)}: invalid syntax') from None


def _g4(v: float) -> str:
    return gofmt.sprintf("%.4g", [v])


def humanize(i: Any) -> str:
    v = convert_to_float(i)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    if abs(v) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix = p
            v /= 1000
        return _g4(v) + prefix
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return _g4(v) + prefix


def humanize1024(i: Any) -> str:
    v = convert_to_float(i)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix = p
        v /= 1024
    return _g4(v) + prefix


def humanize_duration(i: Any) -> str:
    v = convert_to_float(i)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return _g4(v) + "s"
    if abs(v) >= 1:
        sign = ""
        if v < 0:
            sign, v = "-", -v
        d = int(v)
        seconds, minutes, hours, days = d % 60, d // 60 % 60, d // 3600 % 24, d // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return f"{_g4(v)}{prefix}s"


def humanize_percentage(i: Any) -> str:
    return gofmt.sprintf("%.4g%%", [convert_to_float(i) * 100])


def humanize_timestamp(i: Any) -> str:
    v = convert_to_float(i)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    return GoTime(int(v * 1e9) // 10**6 * 10**6).go_String()


def _safe_html(s: str) -> HTML:
    return HTML(s)


def builtin_funcs(now: Callable[[], float] | None = None) -> dict[str, GoFunc]:
    """Go's builtins plus Alertmanager's functions; `now` (epoch seconds) feeds `since` (time is injected)."""
    def since(t: GoTime) -> GoDuration:
        if now is None:
            raise FuncError("since: no clock")
        return GoDuration(GoTime.from_epoch(now()).ns - t.ns)

    funcs = dict(_STATIC_FUNCS or _static_funcs())
    funcs["since"] = GoFunc("since", since, ["time.Time"])
    return funcs


_STATIC_FUNCS: dict[str, GoFunc] = {}


def _static_funcs() -> dict[str, GoFunc]:
    F = GoFunc
    fs = [
        F("and", _and, ["reflect"], "reflect", raw=True), F("or", _or, ["reflect"], "reflect", raw=True),
        F("not", _not, ["reflect"]), F("len", _len, ["reflect"]), F("index", _index, ["reflect"], "reflect"),
        F("slice", _slice, ["reflect"], "reflect"),
        F("eq", _eq, ["reflect"], "reflect"), F("ne", _ne, ["reflect", "reflect"]),
        F("lt", _lt, ["reflect", "reflect"]), F("le", _le, ["reflect", "reflect"]),
        F("gt", _gt, ["reflect", "reflect"]), F("ge", _ge, ["reflect", "reflect"]),
        F("print", lambda *a: gofmt.sprint(list(a)), [], "any"),
        F("println", lambda *a: gofmt.sprintln(list(a)), [], "any"),
        F("printf", lambda f, *a: gofmt.sprintf(f, list(a)), ["string"], "any"),
        F("html", lambda *a: html_escape_string(eval_args(a)), [], "any"),
        F("js", lambda *a: js_escape_string(eval_args(a)), [], "any"),
        F("urlquery", lambda *a: query_escape(eval_args(a)), [], "any"),
        F("call", _call, ["reflect"], "reflect"),
        # Alertmanager 0.25
        F("toUpper", to_upper, ["string"]), F("toLower", to_lower, ["string"]), F("title", title, ["string"]),
        F("trimSpace", trim_space, ["string"]), F("join", _join, ["string", "[]string"]),
        F("match", _match, ["string", "string"]), F("safeHtml", _safe_html, ["string"]),
        F("reReplaceAll", re_replace_all, ["string", "string", "string"]),
        F("stringSlice", _string_slice, [], "string"),
        # later Alertmanager versions and Prometheus's template functions
        F("date", _date, ["string", "time.Time"]), F("tz", _tz, ["string", "time.Time"]),
        F("humanize", humanize, ["any"]), F("humanize1024", humanize1024, ["any"]),
        F("humanizeDuration", humanize_duration, ["any"]), F("humanizePercentage", humanize_percentage, ["any"]),
        F("humanizeTimestamp", humanize_timestamp, ["any"]),
    ]
    _STATIC_FUNCS.update({f.name: f for f in fs})
    return _STATIC_FUNCS
