"""html/template's contextual auto-escaping, for Alertmanager's HTML bodies (email `html`).

Go's html/template escapes statically: it walks the template text, finds the HTML context of every action and
adds escaper functions to its pipeline. Here the same context is tracked while executing (the text written so
far decides the context of the next action), which gives the same result for templates where every branch
ends in the same context (html/template rejects the others at parse time, which this does not do).

Covered contexts and their escapers (as in html/template's escaper.go):
- element text and RCDATA (<title>, <textarea>): htmlEscaper (`& < > " ' + NUL`); values made with `safeHtml`
  are written as they are in element text;
- quoted and unquoted attribute values: htmlEscaper (unquoted: htmlNospaceEscaper), HTML-typed values have
  their tags stripped first;
- URL attributes (href, src, action, ... and names containing src/uri/url): at the start of the URL the
  scheme filter (anything but http, https, mailto becomes `#ZgotmplZ`) and the normaliser, before `?`/`#`
  the normaliser, after them the query escaper; then the attribute escaper;
- `on*` attributes and <script> bodies: jsValEscaper (JSON values; JS string literals inside scripts are not
  tracked as a separate context);
- HTML comments are removed from the output; an action inside one prints nothing.
Not covered: CSS contexts (style attributes and <style> bodies get a conservative filter: plain words, numbers,
colours and units pass, anything else becomes `ZgotmplZ`), actions in attribute or tag names (`ZgotmplZ`
unless the value is a plain name), JS string/regexp/template sub-contexts, srcset, and the parse-time
"ambiguous context" errors.
"""
from __future__ import annotations

import json
import re
from typing import Any

from routing.gotemplate.funcs import query_escape
from routing.gotemplate.gofmt import sprint_one
from routing.gotemplate.values import HTML, NO_VALUE

_HTML_TABLE = {"\0": "\ufffd", '"': "&#34;", "&": "&amp;", "'": "&#39;", "+": "&#43;", "<": "&lt;", ">": "&gt;"}
_HTML_NORM_TABLE = {k: v for k, v in _HTML_TABLE.items() if k != "&"}
_NOSPACE_TABLE = dict(_HTML_TABLE, **{"\t": "&#9;", "\n": "&#10;", "\v": "&#11;", "\f": "&#12;", "\r": "&#13;",
                                       " ": "&#32;", "=": "&#61;", "`": "&#96;"})
_URL_ATTRS = {"action", "archive", "background", "cite", "classid", "codebase", "data", "formaction", "href", "icon",
              "longdesc", "manifest", "poster", "profile", "src", "usemap", "xmlns"}
_RAW_ELEMS = {"script", "style", "textarea", "title"}
_TAG_RE = re.compile(r"<[^>]*>?")
_TAG_START = re.compile(r"</?([A-Za-z][A-Za-z0-9:-]*)")
_ATTR_NAME = re.compile(r"[^\s=>/]+")


def _replace(s: str, table: dict[str, str]) -> str:
    return "".join(table.get(c, c) for c in s)


def html_escaper(v: Any) -> str:
    if isinstance(v, HTML):
        return _replace(_TAG_RE.sub("", str(v)), _HTML_NORM_TABLE)
    return _replace(_stringify(v), _HTML_TABLE)


def _stringify(v: Any) -> str:
    if v is None or v is NO_VALUE:
        return ""
    if isinstance(v, str):
        return str(v)
    return sprint_one(v)


def url_filter(s: str) -> str:
    i = s.find(":")
    if i >= 0 and "/" not in s[:i]:
        scheme = s[:i].lower()
        if scheme not in ("http", "https", "mailto"):
            return "#ZgotmplZ"
    return s


def url_process(s: str, norm: bool) -> str:
    out = []
    b = s.encode()
    i = 0
    while i < len(b):
        c = chr(b[i])
        keep = False
        if c in "!#$&*+,/:;=?@[]":
            keep = norm
        elif c in "-._~" or c.isascii() and c.isalnum():
            keep = True
        elif c == "%":
            keep = norm and i + 2 < len(b) and _ishex(b[i + 1]) and _ishex(b[i + 2])
        out.append(c if keep else f"%{b[i]:02x}")
        i += 1
    return "".join(out)


def _ishex(c: int) -> bool:
    return chr(c) in "0123456789abcdefABCDEF"


def js_val_escaper(v: Any) -> str:
    if v is None or v is NO_VALUE:
        return " null "
    if isinstance(v, bool):
        s = "true" if v else "false"
    elif isinstance(v, (int, float)):
        s = sprint_one(v)
    elif isinstance(v, str):
        s = json.dumps(str(v), ensure_ascii=False)
    else:
        try:
            s = json.dumps(v, ensure_ascii=False, default=sprint_one)
        except (TypeError, ValueError):
            s = json.dumps(sprint_one(v), ensure_ascii=False)
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if s and (_js_ident(s[0]) or _js_ident(s[-1])):
        s = " " + s + " "
    return s


def _js_ident(c: str) -> bool:
    return c == "$" or c == "_" or c.isalnum()


_CSS_SAFE = re.compile(r"^[-\w\s#.,%!]*$")


def css_value_filter(v: Any) -> str:
    s = _stringify(v)
    low = s.lower()
    if _CSS_SAFE.match(s) and "expression" not in low and "url" not in low and "javascript" not in low:
        return s
    return "ZgotmplZ"


class HtmlEscaper:
    """The HTML context of the output so far; escapes each action's value for it and strips comments."""

    def __init__(self) -> None:
        self.state = "text"
        self.elem = ""
        self.attr = ""
        self.attr_type = "normal"
        self.delim = ""
        self.url_part = "none"
        self._buf = ""  # a partial "<!-" / "</scr" at the end of a text chunk

    # ---- text
    def text(self, s: str) -> str:
        """The template text `s` as written (HTML comments removed), advancing the context over it."""
        s = self._buf + s
        self._buf = ""
        out: list[str] = []
        i = 0
        while i < len(s):
            i = getattr(self, "_scan_" + self.state)(s, i, out)
        return "".join(out)

    def _scan_text(self, s: str, i: int, out: list[str]) -> int:
        j = s.find("<", i)
        if j < 0:
            out.append(s[i:])
            return len(s)
        out.append(s[i:j])
        rest = s[j:]
        if rest.startswith("<!--"):
            self.state = "comment"
            return j + 4
        if len(rest) < 4 and "<!--".startswith(rest):
            self._buf = rest  # maybe a comment opening split across chunks
            return len(s)
        m = _TAG_START.match(rest)
        if m:
            self.elem = "" if rest[1] == "/" else m.group(1).lower()
            self.state = "tag"
            out.append(m.group(0))
            return j + len(m.group(0))
        out.append("<")
        return j + 1

    def _scan_comment(self, s: str, i: int, out: list[str]) -> int:
        j = s.find("-->", i)
        if j < 0:
            tail = s[max(i, len(s) - 2):]
            self._buf = tail if tail in ("-", "--") else ""
            return len(s)
        self.state = "text"
        return j + 3

    def _scan_raw(self, s: str, i: int, out: list[str]) -> int:
        m = re.compile(r"</" + re.escape(self.elem) + r"(?=[\s/>])", re.I).search(s, i)
        if not m:
            out.append(s[i:])
            return len(s)
        out.append(s[i:m.start()])
        self.state = "text"
        return m.start()

    def _scan_tag(self, s: str, i: int, out: list[str]) -> int:
        c = s[i]
        if c == ">":
            self.state = "raw" if self.elem in _RAW_ELEMS else "text"
            out.append(c)
            return i + 1
        if c.isspace() or c == "/":
            out.append(c)
            return i + 1
        m = _ATTR_NAME.match(s, i)
        name = m.group(0) if m else c
        self._set_attr(name)
        out.append(name)
        self.state = "attrname"
        return i + len(name)

    def _scan_attrname(self, s: str, i: int, out: list[str]) -> int:
        c = s[i]
        if c.isspace():
            out.append(c)
            return i + 1
        if c == "=":
            out.append(c)
            self.state = "beforevalue"
            return i + 1
        self.state = "tag"
        return i

    def _scan_beforevalue(self, s: str, i: int, out: list[str]) -> int:
        c = s[i]
        if c.isspace():
            out.append(c)
            return i + 1
        if c in "\"'":
            out.append(c)
            self._start_value(c)
            return i + 1
        if c == ">":
            self.state = "tag"
            return i
        self._start_value(" ")
        return i

    def _scan_attr(self, s: str, i: int, out: list[str]) -> int:
        end = self._value_end(s, i)
        chunk = s[i:end]
        self._url_advance(chunk)
        out.append(chunk)
        if end >= len(s):
            return end
        self.state = "tag"
        if self.delim != " ":
            out.append(s[end])
            return end + 1
        return end

    def _set_attr(self, name: str) -> None:
        a = name.lower()
        if a.startswith("data-"):
            a = a[5:]
        elif ":" in a:
            a = a.split(":", 1)[1]
        self.attr = a
        if a.startswith("on"):
            self.attr_type = "js"
        elif a == "style":
            self.attr_type = "css"
        elif a in _URL_ATTRS or "src" in a or "uri" in a or "url" in a:
            self.attr_type = "url"
        else:
            self.attr_type = "normal"

    def _start_value(self, delim: str) -> None:
        self.state = "attr"
        self.delim = delim
        self.url_part = "none"

    def _value_end(self, s: str, i: int) -> int:
        if self.delim == " ":
            m = re.compile(r"[\s>]").search(s, i)
            return m.start() if m else len(s)
        j = s.find(self.delim, i)
        return j if j >= 0 else len(s)

    def _url_advance(self, chunk: str) -> None:
        if self.attr_type != "url" or not chunk:
            return
        if "?" in chunk or "#" in chunk:
            self.url_part = "query"
        elif chunk.strip() and self.url_part == "none":
            self.url_part = "prequery"

    # ---- values
    def value(self, v: Any, node: Any) -> str:
        st = self.state
        last = _last_ident(node)
        if st == "comment":
            return ""
        if st == "text":
            if isinstance(v, HTML) or last == "html":
                return str(v)
            return _replace(_stringify(v), _HTML_TABLE)
        if st == "raw":
            if self.elem == "script":
                return js_val_escaper(v)
            if self.elem == "style":
                return css_value_filter(v)
            return _replace(_stringify(v), _HTML_TABLE)
        if st in ("tag", "attrname"):
            s = _stringify(v)
            return s if re.fullmatch(r"[A-Za-z0-9_-]+", s) else "ZgotmplZ"
        if st == "beforevalue":
            self._start_value(" ")
        return self._attr_value(v, last)

    def _attr_value(self, v: Any, last: str) -> str:
        t = self.attr_type
        if t == "url":
            s = _stringify(v)
            if self.url_part == "none":
                s = url_process(url_filter(s), True)
            elif self.url_part == "prequery":
                s = url_process(s, True)
            elif last != "urlquery":  # a pipeline ending in urlquery is not escaped twice (as in Go)
                s = url_process(s, False)
            v = s
        elif t == "js":
            v = js_val_escaper(v)
        elif t == "css":
            v = css_value_filter(v)
        if self.delim == " ":
            return _replace(_stringify(v), _NOSPACE_TABLE)
        return html_escaper(v)


def _last_ident(node: Any) -> str:
    """The function name ending an action's pipeline ("html", "urlquery" are not escaped twice)."""
    pipe = getattr(node, "pipe", None)
    if pipe is None or not pipe.cmds:
        return ""
    first = pipe.cmds[-1].args[0]
    return getattr(first, "ident", "") if isinstance(getattr(first, "ident", None), str) else ""


__all__ = ["HtmlEscaper", "html_escaper", "query_escape"]
