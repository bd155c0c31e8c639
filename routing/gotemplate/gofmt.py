"""Go's fmt for templates: Sprint, Sprintln, Sprintf with the verbs %v %+v %s %q %d %f %e %g %x %X %o %b %c %t %T %U.

Values print as Go prints them: floats in %v are strconv's shortest 'g' (1e+06, 123456, 1.5e-05), slices `[a b]`,
maps `map[k:v]` in sorted key order, structs `{a b}` (`{Name:a Value:b}` with %+v), values with a String()
method through it (also inside slices, maps and structs), bad verbs as `%!d(string=x)`, missing operands
`%!d(MISSING)` and extra ones `%!(EXTRA type=value)`.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from routing.gotemplate.values import NO_VALUE, GoFunc, GoStruct, go_method, type_name


def quote(s: str, q: str = '"', ascii_only: bool = False) -> str:
    """strconv.Quote."""
    out = [q]
    for ch in s:
        o = ord(ch)
        if ch == q or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable() and not (ascii_only and o >= 0x80):
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append(q)
    return "".join(out)


def _digits(v: float) -> tuple[str, int]:
    """Shortest decimal digits of v and the decimal point position (strconv's digs.d, digs.dp)."""
    t = Decimal(repr(abs(v))).normalize().as_tuple()
    ds = "".join(map(str, t.digits)).rstrip("0") or "0"
    dp = len(t.digits) + t.exponent
    if ds == "0":
        dp = 0
    return ds, dp


def format_float_g_shortest(v: float, upper: bool = False) -> str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    neg = v < 0 or (v == 0 and str(v).startswith("-"))
    ds, dp = _digits(v)
    if ds == "0":
        return "-0" if neg else "0"
    exp = dp - 1
    # strconv.FormatFloat(v, 'g', -1, 64): with the shortest precision the %e threshold is 6.
    s = _e_from_digits(ds, exp, upper) if exp < -4 or exp >= 6 else _f_from_digits(ds, dp)
    return ("-" if neg else "") + s


def _e_from_digits(ds: str, exp: int, upper: bool) -> str:
    m = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    e = "E" if upper else "e"
    sign = "-" if exp < 0 else "+"
    return f"{m}{e}{sign}{abs(exp):02d}"


def _f_from_digits(ds: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * (-dp) + ds
    if dp >= len(ds):
        return ds + "0" * (dp - len(ds))
    return ds[:dp] + "." + ds[dp:]


class _Spec:
    __slots__ = ("minus", "plus", "sharp", "space", "zero", "width", "prec", "verb", "plusv", "sharpv")

    def __init__(self) -> None:
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.width: int | None = None
        self.prec: int | None = None
        self.verb = "v"
        self.plusv = self.sharpv = False


def _pad(s: str, sp: _Spec, numeric: bool = False) -> str:
    if sp.width is None or len(s) >= sp.width:
        return s
    n = sp.width - len(s)
    if sp.minus:
        return s + " " * n
    if sp.zero and numeric:
        sign = s[0] if s and s[0] in "+- " else ""
        body = s[len(sign):]
        return sign + "0" * n + body
    if sp.zero and not numeric:
        return "0" * n + s
    return " " * n + s


def _bad(sp: _Spec, v: Any) -> str:
    if v is None:
        return f"%!{sp.verb}(<nil>)"
    return f"%!{sp.verb}({type_name(v)}={sprint_one(v)})"


def _fmt_int(v: int, sp: _Spec) -> str:
    verb = sp.verb
    if verb == "c":
        return _pad(chr(v), sp)
    if verb == "q":
        return _pad(quote(chr(v), "'"), sp)
    if verb == "U":
        s = f"U+{v:04X}"
        if sp.sharp:
            s += f" '{chr(v)}'"
        return _pad(s, sp)
    base = {"d": 10, "v": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}.get(verb)
    if base is None:
        return _bad(sp, v)
    neg = v < 0
    a = -v if neg else v
    digits = {2: format(a, "b"), 8: format(a, "o"), 10: str(a), 16: format(a, "x")}[base]
    if verb == "X":
        digits = digits.upper()
    if sp.prec is not None:
        if sp.prec == 0 and a == 0:
            digits = ""
        digits = digits.rjust(sp.prec, "0")
    prefix = ""
    if verb == "O":
        prefix = "0o"
    elif sp.sharp:
        prefix = {2: "0b", 8: "0" if not digits.startswith("0") else "", 16: "0x" if verb == "x" else "0X"}.get(base, "")
    sign = "-" if neg else "+" if sp.plus else " " if sp.space else ""
    s = sign + prefix + digits
    if sp.zero and not sp.minus and sp.prec is None and sp.width:
        n = sp.width - len(s)
        if n > 0:
            s = sign + prefix + "0" * n + digits
        return s
    return _pad(s, sp)


def _fmt_float(v: float, sp: _Spec) -> str:
    verb = sp.verb
    if verb not in "vfFeEgG":
        return _bad(sp, v)
    if v != v or v in (float("inf"), float("-inf")):
        s = "NaN" if v != v else ("+Inf" if v > 0 else "-Inf")
        if s != "NaN" and v > 0 and not sp.plus:
            s = "Inf" if not sp.space else " Inf"
        if s == "NaN" and (sp.plus or sp.space):
            s = ("+" if sp.plus else " ") + s
        sp2 = _Spec()
        sp2.width, sp2.minus = sp.width, sp.minus
        return _pad(s, sp2)
    if verb == "v" or (verb in "gG" and sp.prec is None):
        s = format_float_g_shortest(v, upper=verb == "G")
    elif verb in "fF":
        s = f"{v:.{6 if sp.prec is None else sp.prec}f}"
    elif verb in "eE":
        s = f"{v:.{6 if sp.prec is None else sp.prec}{verb}}"
    else:
        p = (sp.prec or 1) if sp.prec is not None else 6
        s = f"{v:.{p}{verb}}"
    if sp.plus and not s.startswith("-"):
        s = "+" + s
    elif sp.space and not s.startswith("-"):
        s = " " + s
    return _pad(s, sp, numeric=True)


def _fmt_str(s: str, sp: _Spec) -> str:
    verb = sp.verb
    if verb in "vs":
        if sp.prec is not None:
            s = s[:sp.prec]
        return _pad(s, sp)
    if verb == "q":
        if sp.prec is not None:
            s = s[:sp.prec]
        if sp.sharp and "`" not in s and all(c.isprintable() or c == "\t" for c in s):
            return _pad("`" + s + "`", sp)
        return _pad(quote(s, ascii_only=sp.plus), sp)
    if verb in "xX":
        b = s.encode()
        if sp.prec is not None:
            b = b[:sp.prec]
        h = b.hex() if verb == "x" else b.hex().upper()
        pairs = [h[i:i + 2] for i in range(0, len(h), 2)]
        pre = ("0x" if verb == "x" else "0X") if sp.sharp else ""
        if sp.space:
            out = " ".join(pre + p for p in pairs)
        else:
            out = pre + "".join(pairs) if pairs else ""
        return _pad(out, sp)
    return _bad(sp, s)


def _sorted_keys(d: dict) -> list:
    try:
        return sorted(d)
    except TypeError:
        return list(d)


def _fmt_composite(v: Any, sp: _Spec, depth: int) -> str | None:
    if isinstance(v, dict):
        inner = [fmt_value(k, sp, depth + 1) + ":" + fmt_value(v[k], sp, depth + 1) for k in _sorted_keys(v)]
        return "map[" + " ".join(inner) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(fmt_value(x, sp, depth + 1) for x in v) + "]"
    if isinstance(v, GoStruct):
        parts = []
        for f in v.go_fields:
            s = fmt_value(getattr(v, f), sp, depth + 1)
            parts.append(f"{f}:{s}" if sp.plusv else s)
        return "{" + " ".join(parts) + "}"
    return None


def _fmt_nil(v: Any, verb: str, sp: _Spec) -> str:
    if v is NO_VALUE:
        return "<no value>" if verb in "vs" else f"%!{verb}(<no value>)"
    return _pad("<nil>", sp) if verb == "v" else f"%!{verb}(<nil>)"


def fmt_value(v: Any, sp: _Spec, depth: int = 0) -> str:
    """Go's printArg/printValue for one operand."""
    verb = sp.verb
    if verb == "T":
        return _pad(type_name(v), sp)
    if v is NO_VALUE or v is None:
        return _fmt_nil(v, verb, sp)
    if verb in "vsxXq" and not sp.sharpv and not isinstance(v, GoFunc):  # Stringer
        m = go_method(v, "String")
        if m is not None:
            return _fmt_str(m(), sp)
    if isinstance(v, bool):
        return _pad("true" if v else "false", sp) if verb in "tv" else _bad(sp, v)
    if isinstance(v, int):
        return _fmt_int(int(v), sp)
    if isinstance(v, float):
        return _fmt_float(v, sp)
    if isinstance(v, str):
        return _fmt_str(str(v), sp)
    composite = _fmt_composite(v, sp, depth)
    if composite is not None:
        return composite
    return "0x1" if isinstance(v, GoFunc) else _pad(str(v), sp)


def sprint_one(v: Any) -> str:
    return fmt_value(v, _Spec())


def sprint(args: list[Any]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    prev_string = True
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(sprint_one(a))
        prev_string = is_string
    return "".join(out)


def sprintln(args: list[Any]) -> str:
    return " ".join(sprint_one(a) for a in args) + "\n"


class _Printf:
    """Go's doPrintf state: the format, the operands and the next operand's index."""

    def __init__(self, fmt: str, args: list[Any]):
        self.fmt, self.args = fmt, args
        self.i = 0
        self.argn = 0
        self.reordered = False
        self.out: list[str] = []

    def _flags(self, sp: _Spec) -> None:
        fmt = self.fmt
        while self.i < len(fmt) and fmt[self.i] in "+-# 0":
            c = fmt[self.i]
            if c == "-":
                sp.minus, sp.zero = True, False
            elif c == "0":
                sp.zero = not sp.minus
            else:
                setattr(sp, {"+": "plus", "#": "sharp", " ": "space"}[c], True)
            self.i += 1

    def _arg_index(self) -> None:
        fmt = self.fmt
        if self.i < len(fmt) and fmt[self.i] == "[":
            k = fmt.find("]", self.i)
            if k > 0 and fmt[self.i + 1:k].isdigit():
                self.argn = int(fmt[self.i + 1:k]) - 1
                self.reordered = True
                self.i = k + 1

    def _number(self, bad: str) -> int | None:
        """A width or precision: digits, or `*` taking an int operand; None when absent."""
        fmt = self.fmt
        if self.i < len(fmt) and fmt[self.i] == "*":
            self.i += 1
            a = self.args[self.argn] if self.argn < len(self.args) else None
            self.argn += 1
            if type(a) is int:
                return a
            self.out.append(bad)
            return None
        start = self.i
        while self.i < len(fmt) and fmt[self.i].isdigit():
            self.i += 1
        return int(fmt[start:self.i]) if self.i > start else None

    def _spec(self) -> _Spec:
        sp = _Spec()
        self._flags(sp)
        self._arg_index()
        sp.width = self._number("%!(BADWIDTH)")
        if sp.width is not None and sp.width < 0:
            sp.minus, sp.width = True, -sp.width
        if self.i < len(self.fmt) and self.fmt[self.i] == ".":
            self.i += 1
            prec = self._number("%!(BADPREC)")
            sp.prec = 0 if prec is None else prec if prec >= 0 else None
        return sp

    def _verb(self, sp: _Spec, verb: str) -> None:
        sp.verb = verb
        if verb == "v":
            sp.plusv, sp.sharpv = sp.plus, sp.sharp
            sp.plus = sp.sharp = False
        if self.argn >= len(self.args):
            self.out.append(f"%!{verb}(MISSING)")
            return
        a = self.args[self.argn]
        self.argn += 1
        self.out.append(go_syntax(a) if verb == "v" and sp.sharpv else fmt_value(a, sp))

    def run(self) -> str:
        fmt, n = self.fmt, len(self.fmt)
        while self.i < n:
            j = fmt.find("%", self.i)
            if j < 0:
                self.out.append(fmt[self.i:])
                break
            self.out.append(fmt[self.i:j])
            self.i = j + 1
            sp = self._spec()
            if self.i >= n:
                self.out.append("%!(NOVERB)")
                break
            verb = fmt[self.i]
            self.i += 1
            if verb == "%":
                self.out.append("%")
            else:
                self._verb(sp, verb)
        if not self.reordered and self.argn < len(self.args):
            extra = ", ".join("<nil>" if a is None else f"{type_name(a)}={sprint_one(a)}" for a in self.args[self.argn:])
            self.out.append(f"%!(EXTRA {extra})")
        return "".join(self.out)


def sprintf(fmt: str, args: list[Any]) -> str:
    """fmt.Sprintf."""
    return _Printf(fmt, args).run()


def go_syntax(v: Any) -> str:
    """%#v for the common cases."""
    if isinstance(v, str):
        return quote(v)
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return sprint_one(v)
    if isinstance(v, list):
        if all(isinstance(x, str) for x in v):
            return "[]string{" + ", ".join(quote(x) for x in v) + "}"
        return "[]interface {}{" + ", ".join(go_syntax(x) for x in v) + "}"
    if isinstance(v, dict):
        return type_name(v) + "{" + ", ".join(f"{quote(k)}:{go_syntax(v[k])}" for k in _sorted_keys(v)) + "}"
    return sprint_one(v)

