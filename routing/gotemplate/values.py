"""How Go values are represented in Python for the template engine, and Go's type names and truth rules.

string -> str, int -> int, float64 -> float, bool -> bool, nil -> None, slices -> list (subclasses for named
slice types), maps -> dict (KV is map[string]string), structs -> subclasses of GoStruct, time.Time ->
gotime.GoTime, time.Duration -> gotime.GoDuration. NO_VALUE stands for Go's invalid reflect.Value (what a
missing key of a map[string]interface{} yields), printed `<no value>`. Go methods of a Python class are its
attributes named `go_<Method>`.
"""
from __future__ import annotations

from typing import Any, Callable

from routing.gotemplate.gotime import GoDuration, GoTime, Month, Weekday


class _NoValue:
    _inst: "_NoValue | None" = None

    def __new__(cls) -> "_NoValue":
        if cls._inst is None:
            cls._inst = super().__new__(cls)
        return cls._inst

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()


class HTML(str):
    """html/template.HTML: trusted markup, not escaped by the HTML escaper (what safeHtml returns)."""

    go_type = "template.HTML"


class GoStruct:
    """Base of Go structs: `go_fields` in declaration order (printing and field access)."""

    go_type = "struct"
    go_fields: tuple[str, ...] = ()


class GoMap(dict):
    """A map whose element type is known (missingkey=zero gives the zero of `elem`)."""

    go_type = "map[string]interface {}"
    elem_zero: Any = NO_VALUE


class GoFunc:
    """A function callable from templates: its Go parameter types drive argument conversion."""

    def __init__(self, name: str, fn: Callable[..., Any], params: list[str] | None, variadic: str | None = None,
                 returns_error: bool = False, raw: bool = False):
        self.name, self.fn, self.params, self.variadic = name, fn, params or [], variadic
        self.returns_error, self.raw = returns_error, raw


_SCALAR_TYPES = ((bool, "bool"), (GoDuration, "time.Duration"), (Month, "time.Month"), (Weekday, "time.Weekday"),
                 (int, "int"), (float, "float64"), (HTML, "template.HTML"), (str, "string"), (GoTime, "time.Time"))


def type_name(v: Any) -> str:
    """The Go type name of a value (for %T and error messages)."""
    if v is None:
        return "<nil>"
    for cls, name in _SCALAR_TYPES:
        if isinstance(v, cls):
            return name
    gt = getattr(type(v), "go_type", None)
    if gt and type(v) not in (GoMap,):
        return gt
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return "[]string" if v and all(isinstance(x, str) for x in v) else "[]interface {}"
    if isinstance(v, GoFunc):
        return "func"
    return "interface {}"


def basic_kind(v: Any) -> str | None:
    """Go's basicKind for comparisons: bool, int, float, string, or None (not a basic kind)."""
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return None


def is_true(v: Any) -> bool:
    """text/template's truth: false, 0, nil, empty string/slice/map are false; structs and times are true."""
    if v is NO_VALUE or v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, (str, list, dict, tuple)):
        return len(v) > 0
    return True


def go_method(v: Any, name: str) -> Callable[..., Any] | None:
    if v is None or v is NO_VALUE or isinstance(v, (bool, float)) or type(v) in (int, str, list, dict):
        return None
    return getattr(v, "go_" + name, None)
