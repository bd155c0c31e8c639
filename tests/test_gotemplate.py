"""The Go template language as Go's text/template defines it; expectations from Go's own exec_test/parse tests."""
from __future__ import annotations

import pytest

from routing.gotemplate import parse as P
from routing.gotemplate.exec import State
from routing.gotemplate.funcs import builtin_funcs
from routing.gotemplate.gofmt import sprint, sprintf, sprintln
from routing.gotemplate.values import GoMap, GoStruct


class U(GoStruct):
    go_type = "template.U"
    go_fields = ("V",)

    def __init__(self, v: str):
        self.V = v


class IntMap(GoMap):
    go_type = "map[string]int"
    elem_zero = 0


class T(GoStruct):
    """A cut-down version of exec_test.go's T."""

    go_type = "*template.T"
    go_fields = ("True", "I", "X", "FloatZero", "U", "SI", "SIEmpty", "SB", "MSI", "MSIone", "MSIEmpty", "MXI",
                 "SMSI", "Empty0", "Empty1", "Empty2", "Empty3", "Empty4", "PS", "NIL", "Str")

    def __init__(self) -> None:
        setattr(self, "True", True)
        self.I, self.X, self.FloatZero = 17, "x", 0.0
        self.U = U("v")
        self.SI, self.SIEmpty, self.SB = [3, 4, 5], [], [True, False]
        self.MSI = IntMap(one=1, two=2, three=3)
        self.MSIone = IntMap(one=1)
        self.MSIEmpty = IntMap()
        self.MXI = GoMap(one=1)
        self.SMSI = [IntMap(one=1, two=2), IntMap(eleven=11, twelve=12)]
        self.Empty0, self.Empty1, self.Empty2, self.Empty3, self.Empty4 = None, 3, "empty2", [7, 8], U("UinEmpty")
        self.PS, self.NIL, self.Str = "a string", None, "foozle"

    def go_Method0(self) -> str:
        return "M0"


ERR = object()


def run(text: str, data, missingkey: str = "default") -> str:
    trees = P.parse("test", text, lambda n: n in builtin_funcs())
    return State("test", trees, builtin_funcs(lambda: 0.0), missingkey).run(trees["test"], data)


EXEC_CASES = [
    # (name, template, expected)  -- exec_test.go
    ("empty", "", ""),
    ("text", "some text", "some text"),
    ("nil action", "{{nil}}", ERR),
    ("ideal int", "{{typeOf 3}}", None),
    ("ideal float", "{{print 1.0}}", "1"),
    ("ideal exp float", "{{print 1e1}}", "10"),
    ("ideal big float", "{{print 1e6}}", "1e+06"),
    ("ideal hex", "{{print 0x10}}", "16"),
    ("ideal char", "{{print 'a'}}", "97"),
    ("$ int", "{{$}}", "123"),
    ("$.I", "{{$.I}}", "17"),
    ("$.U.V", "{{$.U.V}}", "v"),
    ("declare in action", "{{$x := $.U.V}}{{$x}}", "v"),
    ("simple assignment", "{{$x := 2}}{{$x = 3}}{{$x}}", "3"),
    ("nested assignment", "{{$x := 2}}{{if true}}{{$x = 3}}{{end}}{{$x}}", "3"),
    ("nested assignment changes the last declaration",
     "{{$x := 1}}{{if true}}{{$x := 2}}{{if true}}{{$x = 3}}{{end}}{{end}}{{$x}}", "1"),
    ("NIL", "{{.NIL}}", "<nil>"),
    ("empty nil", "{{.Empty0}}", "<nil>"),
    ("empty with int", "{{.Empty1}}", "3"),
    ("empty with slice", "{{.Empty3}}", "[7 8]"),
    ("empty with struct", "{{.Empty4}}", "{UinEmpty}"),
    ("empty with struct, field", "{{.Empty4.V}}", "UinEmpty"),
    (".Method0", "-{{.Method0}}-", "-M0-"),
    ("parens: $ in paren", "{{($).X}}", "x"),
    ("if true", "{{if true}}TRUE{{end}}", "TRUE"),
    ("if false", "{{if false}}TRUE{{else}}FALSE{{end}}", "FALSE"),
    ("if nil", "{{if nil}}TRUE{{end}}", ERR),
    ("if 1", "{{if 1}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO"),
    ("if 0", "{{if 0}}NON-ZERO{{else}}ZERO{{end}}", "ZERO"),
    ("if 1.5", "{{if 1.5}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO"),
    ("if 0.0", "{{if .FloatZero}}NON-ZERO{{else}}ZERO{{end}}", "ZERO"),
    ("if emptystring", "{{if ``}}NON-EMPTY{{else}}EMPTY{{end}}", "EMPTY"),
    ("if string", "{{if `notempty`}}NON-EMPTY{{else}}EMPTY{{end}}", "NON-EMPTY"),
    ("if emptyslice", "{{if .SIEmpty}}NON-EMPTY{{else}}EMPTY{{end}}", "EMPTY"),
    ("if slice", "{{if .SI}}NON-EMPTY{{else}}EMPTY{{end}}", "NON-EMPTY"),
    ("if emptymap", "{{if .MSIEmpty}}NON-EMPTY{{else}}EMPTY{{end}}", "EMPTY"),
    ("if map", "{{if .MSI}}NON-EMPTY{{else}}EMPTY{{end}}", "NON-EMPTY"),
    ("if map unset", "{{if .MXI.none}}NON-ZERO{{else}}ZERO{{end}}", "ZERO"),
    ("if map not unset", "{{if not .MXI.none}}ZERO{{else}}NON-ZERO{{end}}", "ZERO"),
    ("if $x with $y int", "{{if $x := true}}{{with $y := .I}}{{$x}},{{$y}}{{end}}{{end}}", "true,17"),
    ("if $x with $x int", "{{if $x := true}}{{with $x := .I}}{{$x}},{{end}}{{$x}}{{end}}", "17,true"),
    ("if else if", "{{if false}}FALSE{{else if true}}TRUE{{end}}", "TRUE"),
    ("if else chain", "{{if eq 1 3}}1{{else if eq 2 3}}2{{else if eq 3 3}}3{{end}}", "3"),
    ("print", '{{print "hello, print"}}', "hello, print"),
    ("print 123", "{{print 1 2 3}}", "1 2 3"),
    ("print nil", "{{print nil}}", "<nil>"),
    ("println", "{{println 1 2 3}}", "1 2 3\n"),
    ("printf int", '{{printf "%04x" 127}}', "007f"),
    ("printf float", '{{printf "%g" 3.5}}', "3.5"),
    ("printf string", '{{printf "%s" "hello"}}', "hello"),
    ("printf field", '{{printf "%s" .U.V}}', "v"),
    ("printf method", '{{printf "%s" .Method0}}', "M0"),
    ("printf dot", '{{with .I}}{{printf "%d" .}}{{end}}', "17"),
    ("printf var", '{{with $x := .I}}{{printf "%d" $x}}{{end}}', "17"),
    ("printf lots", '{{printf "%d %s %g %s" 127 "hello" 7.5 .Method0}}', "127 hello 7.5 M0"),
    ("html", '{{html "<script>alert(\\"XSS\\");</script>"}}', "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;"),
    ("html pipeline", '{{printf "<script>alert(\\"XSS\\");</script>" | html}}',
     "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;"),
    ("html field", "{{html .PS}}", "a string"),
    ("js", "{{js .X}}{{js `It'd be nice.`}}", "xIt\\'d be nice."),
    ("urlquery", '{{"http://www.example.org/"|urlquery}}', "http%3A%2F%2Fwww.example.org%2F"),
    ("not", "{{not true}} {{not false}}", "false true"),
    ("and", "{{and false 0}} {{and 1 0}} {{and 0 true}} {{and 1 1}}", "false 0 0 1"),
    ("or", "{{or 0 0}} {{or 1 0}} {{or 0 true}} {{or 1 1}}", "0 1 true 1"),
    ("and short-circuits", "{{and false .Nope}}", "false"),
    ("or short-circuits", "{{or true .Nope}}", "true"),
    ("boolean if", "{{if and true 1 `hi`}}TRUE{{else}}FALSE{{end}}", "TRUE"),
    ("boolean if not", "{{if and true 1 `hi` | not}}TRUE{{else}}FALSE{{end}}", "FALSE"),
    ("slice[0]", "{{index .SI 0}}", "3"),
    ("slice[HUGE]", "{{index .SI 10}}", ERR),
    ("slice[WRONG]", "{{index .SI `hello`}}", ERR),
    ("map[one]", "{{index .MSI `one`}}", "1"),
    ("map[NO]", "{{index .MSI `XXX`}}", "0"),
    ("map[WRONG]", "{{index .MSI 10}}", ERR),
    ("double index", "{{index .SMSI 1 `eleven`}}", "11"),
    ("nil[1]", "{{index nil 1}}", ERR),
    ("len slice", "{{len .SI}}", "3"),
    ("len map", "{{len .MSI }}", "3"),
    ("len of int", "{{len 3}}", ERR),
    ("len of string is bytes", "{{len `héllo`}}", "6"),
    ("slice string", "{{slice `abcdef` 1 3}}", "bc"),
    ("slice slice", "{{slice .SI 1}}", "[4 5]"),
    ("with true", "{{with true}}{{.}}{{end}}", "true"),
    ("with false", "{{with false}}{{.}}{{else}}FALSE{{end}}", "FALSE"),
    ("with 1.5", "{{with 1.5}}{{.}}{{else}}ZERO{{end}}", "1.5"),
    ("with emptyslice", "{{with .SIEmpty}}{{.}}{{else}}EMPTY{{end}}", "EMPTY"),
    ("with slice", "{{with .SI}}{{.}}{{else}}EMPTY{{end}}", "[3 4 5]"),
    ("with map", "{{with .MSIone}}{{.}}{{else}}EMPTY{{end}}", "map[one:1]"),
    ("with $x struct.U.V", "{{with $x := $}}{{$x.U.V}}{{end}}", "v"),
    ("range []int", "{{range .SI}}-{{.}}-{{end}}", "-3--4--5-"),
    ("range empty no else", "{{range .SIEmpty}}-{{.}}-{{end}}", ""),
    ("range []int else", "{{range .SI}}-{{.}}-{{else}}EMPTY{{end}}", "-3--4--5-"),
    ("range empty else", "{{range .SIEmpty}}-{{.}}-{{else}}EMPTY{{end}}", "EMPTY"),
    ("range []bool", "{{range .SB}}-{{.}}-{{end}}", "-true--false-"),
    ("range map (sorted keys)", "{{range .MSI}}-{{.}}-{{end}}", "-1--3--2-"),
    ("range empty map else", "{{range .MSIEmpty}}-{{.}}-{{else}}EMPTY{{end}}", "EMPTY"),
    ("range empty nil", "{{range .Empty0}}-{{.}}-{{end}}", ""),
    ("range $x SI", "{{range $x := .SI}}<{{$x}}>{{end}}", "<3><4><5>"),
    ("range $x $y SI", "{{range $x, $y := .SI}}<{{$x}}={{$y}}>{{end}}", "<0=3><1=4><2=5>"),
    ("range $x $y MSIone", "{{range $x, $y := .MSIone}}<{{$x}}={{$y}}>{{end}}", "<one=1>"),
    ("declare in range", "{{range $x := .SI}}<{{$foo:=$x}}{{$x}}>{{end}}", "<3><4><5>"),
    ("range break", "{{range .SI}}{{if eq . 4}}{{break}}{{end}}-{{.}}-{{end}}", "-3-"),
    ("range continue", "{{range .SI}}{{if eq . 4}}{{continue}}{{end}}-{{.}}-{{end}}", "-3--5-"),
    ("range assign", "{{$i := 0}}{{range $i = .SI}}{{end}}{{$i}}", "5"),
    ("or as if true", '{{or .SI "slice is empty"}}', "[3 4 5]"),
    ("or as if false", '{{or .SIEmpty "slice is empty"}}', "slice is empty"),
    ("bug7a", "{{3 2}}", ERR),
    ("bug7b", "{{$x := 1}}{{$x 2}}", ERR),
    ("bug7c", "{{$x := 1}}{{3 | $x}}", ERR),
    ("bug14a", "{{(nil).True}}", ERR),
    ("bug14b", "{{$x := nil}}{{$x.anything}}", ERR),
    ("bug16a", "{{true|printf}}", ERR),
    ("bug16b", "{{1|printf}}", ERR),
    ("bug16k", '{{"aaa"|printf }}', "aaa"),
    ("unknown field", "{{.Nope}}", ERR),
    ("field of field chain", "{{.U.Nope}}", ERR),
    ("template call", '{{define "x"}}[{{.}}]{{end}}{{template "x" .I}}', "[17]"),
    ("template without data", '{{define "x"}}[{{.}}]{{end}}{{template "x"}}', "[<no value>]"),
    ("template not defined", '{{template "nope" .}}', ERR),
    ("block", '{{block "b" .X}}<{{.}}>{{end}}', "<x>"),
    ("template vars are fresh", '{{define "x"}}{{$}}{{end}}{{$y := 1}}{{template "x" 2}}', "2"),
]


@pytest.mark.parametrize("name,text,want", [c for c in EXEC_CASES if c[2] is not None], ids=[c[0] for c in EXEC_CASES if c[2] is not None])
def test_exec(name: str, text: str, want) -> None:
    """Each template executes to Go's output, or fails where Go fails."""
    data = 123 if text.startswith("{{$}}") else T()
    if want is ERR:
        with pytest.raises(P.TemplateError):
            run(text, data)
    else:
        assert run(text, data) == want


CMP_CASES = [
    ("eq true true", "true"), ("eq true false", "false"), ("eq 1.5 1.5", "true"), ("eq 1.5 2.5", "false"),
    ("eq 1 1", "true"), ("eq 1 2", "false"), ("eq `xy` `xy`", "true"), ("eq `xy` `xyz`", "false"),
    ("eq 3 4 5 6 3", "true"), ("eq 3 4 5 6 7", "false"), ("ne true true", "false"), ("ne 1 2", "true"),
    ("ne `xy` `xyz`", "true"), ("lt 1.5 1.5", "false"), ("lt 1.5 2.5", "true"), ("lt 1 1", "false"),
    ("lt 1 2", "true"), ("lt `xy` `xy`", "false"), ("lt `xy` `xyz`", "true"), ("le 1.5 1.5", "true"),
    ("le 2.5 1.5", "false"), ("le 2 1", "false"), ("le `xyz` `xy`", "false"), ("gt 1.5 1.5", "false"),
    ("gt 2 1", "true"), ("gt `xy` `xyz`", "false"), ("ge 1.5 1.5", "true"), ("ge 1 2", "false"),
    ("ge `xyz` `xy`", "true"), ("eq (index `x` 0) 'x'", "true"), ("eq (index `x` 0) 'y'", "false"),
    ("eq `xy` 1", ERR), ("eq 2 2.0", ERR), ("lt true true", ERR), ("lt 1 `a`", ERR), ("eq 1", ERR),
]


@pytest.mark.parametrize("expr,want", CMP_CASES, ids=[c[0] for c in CMP_CASES])
def test_comparison(expr: str, want) -> None:
    """Comparison functions follow Go's type rules (exec_test.go cmpTests)."""
    text = "{{if %s}}true{{else}}false{{end}}" % expr
    if want is ERR:
        with pytest.raises(P.TemplateError):
            run(text, T())
    else:
        assert run(text, T()) == want


TRIM_CASES = [
    ("{{- 3}}", "3"), ("{{3 -}}", "3"), ("x \n {{- 3 -}} \n y", "x3y"), ("x {{- /* c */ -}} y", "xy"),
    ("x {{/* c */}} y", "x  y"), ("a\n{{- if true }}\nb\n{{- end }}\nc", "a\nb\nc"),
    ("{{-3}}", "-3"), ("{{ -3 }}", "-3"),
]


@pytest.mark.parametrize("text,want", TRIM_CASES, ids=[c[0] for c in TRIM_CASES])
def test_trim_markers(text: str, want: str) -> None:
    """`{{- ` and ` -}}` trim the adjacent white space; `{{-3}}` is the number -3."""
    assert run(text, None) == want


PARSE_ERRORS = [
    ("{{range .X}}{{end", "unclosed action"),
    ("{{if .X}}", "unexpected EOF"),
    ("{{end}}", "unexpected {{end}}"),
    ("{{nope}}", 'function "nope" not defined'),
    ("{{$x}}", 'undefined variable "$x"'),
    ("{{break}}", "{{break}} outside {{range}}"),
    ("{{/* x */ 3}}", "comment ends before closing delimiter"),
    ("{{/* x ", "unclosed comment"),
    ('{{"abc}}', "unterminated quoted string"),
    ("{{3 | 4}}", "non executable command in pipeline stage 2"),
    ("{{range $i, $v, $w := .}}{{end}}", "range can only initialize variables"),
    ("{{if}}{{end}}", "missing value for if"),
    ("{{(1}}", "unclosed left paren"),
    ("{{#}}", "unrecognized character in action"),
    ('{{define "x"}}{{define "y"}}{{end}}{{end}}', "unexpected <define>"),
]


@pytest.mark.parametrize("text,msg", PARSE_ERRORS, ids=[c[0] for c in PARSE_ERRORS])
def test_parse_errors(text: str, msg: str) -> None:
    """Malformed templates fail to parse with Go's message and the template's name and line."""
    with pytest.raises(P.TemplateError) as e:
        P.parse("t", text, lambda n: n in builtin_funcs())
    assert msg in str(e.value)
    assert str(e.value).startswith("template: t:")


def test_parse_error_line_number() -> None:
    """A parse error reports the line of the bad token (TestUnterminatedStringError)."""
    with pytest.raises(P.TemplateError) as e:
        P.parse("X", "hello\n\n{{`unterminated\n\n\n\n}}\n some more\n\n", lambda n: True)
    assert str(e.value).startswith("template: X:3:")


def test_exec_error_names_template_and_position() -> None:
    """An execution error in a nested template has Go's shape (TestExecError)."""
    text = ('line 1\nline 2\nline 3\n{{template "one" .}}\n{{define "one"}}{{template "two" .}}{{end}}\n'
            '{{define "two"}}{{template "three" .}}{{end}}\n{{define "three"}}{{index "hi" $}}{{end}}')
    trees = P.parse("top", text, lambda n: n in builtin_funcs())
    with pytest.raises(P.TemplateError) as e:
        State("top", trees, builtin_funcs(), "default").run(trees["top"], 5)
    assert str(e.value) == 'template: top:7:20: executing "three" at <index "hi" $>: error calling index: index out of range: 5'


def test_missing_map_key_modes() -> None:
    """missingkey=default prints <no value>, zero prints the element's zero, error fails (TestMissingMapKey)."""
    data = IntMap(x=99)
    assert run("{{.x}} {{.y}}", data) == "99 <no value>"
    assert run("{{.x}} {{.y}}", data, "zero") == "99 0"
    with pytest.raises(P.TemplateError):
        run("{{.x}} {{.y}}", data, "error")
    assert run("{{.y}}", GoMap(), "zero") == "<no value>"


def test_redefinition_rules() -> None:
    """In one text a second non-empty define is an error, an empty one is ignored (parse.Tree.add)."""
    with pytest.raises(P.TemplateError, match='multiple definition of template "a"'):
        P.parse("t", '{{define "a"}}one{{end}}{{define "a"}}two{{end}}', lambda n: True)
    trees = P.parse("t", '{{define "b"}}B{{end}}{{define "b"}} {{end}}{{define "c"}}{{end}}{{define "c"}}C{{end}}',
                    lambda n: True)
    assert run('{{define "b"}}B{{end}}{{define "b"}} {{end}}{{template "b"}}', None) == "B"
    assert not trees["c"].is_empty()


FMT_CASES = [
    ("%d", [42], "42"), ("%5d|%-5d|%05d", [42, 42, 42], "   42|42   |00042"), ("%+d", [5], "+5"),
    ("%x %X %o %b %c %q %U", [255, 255, 8, 5, 65, 65, 65], "ff FF 10 101 A 'A' U+0041"), ("%#x", [255], "0xff"),
    ("%f", [3.14159], "3.141590"), ("%.2f", [3.14159], "3.14"), ("%8.3f|", [3.14159], "   3.142|"),
    ("%e", [123456.789], "1.234568e+05"), ("%g", [1e21], "1e+21"), ("%g", [0.000001], "1e-06"),
    ("%.3g", [1234.5678], "1.23e+03"), ("%v", [100000.0], "100000"), ("%v", [1000000.0], "1e+06"),
    ("%v", [0.1 + 0.2], "0.30000000000000004"), ("%s", ["x"], "x"), ("%q", ['a"b\n'], '"a\\"b\\n"'),
    ("%10s|%-10s|", ["ab", "ab"], "        ab|ab        |"), ("%.2s", ["abc"], "ab"), ("%x", ["hi"], "6869"),
    ("%v %v", [True, None], "true <nil>"), ("%t", [False], "false"), ("%d", ["x"], "%!d(string=x)"),
    ("%s", [1], "%!s(int=1)"), ("%d %d", [1], "1 %!d(MISSING)"), ("%d", [1, 2], "1%!(EXTRA int=2)"),
    ("%v", [["a", "b"]], "[a b]"), ("%q", [["a", "b"]], '["a" "b"]'), ("%v", [{"b": 1, "a": 2}], "map[a:2 b:1]"),
    ("%T %T %T", ["a", 1, 1.5], "string int float64"), ("100%%", [], "100%"), ("%6.2f%%", [99.5], " 99.50%"),
]


@pytest.mark.parametrize("fmt,args,want", FMT_CASES, ids=[c[0] for c in FMT_CASES])
def test_sprintf(fmt: str, args: list, want: str) -> None:
    """printf's verbs, flags, widths and error forms print as Go's fmt prints them."""
    assert sprintf(fmt, args) == want


def test_sprint_spacing() -> None:
    """Sprint puts a space between operands only when neither is a string; Sprintln always."""
    assert sprint([1, 2, "a", 3.0, None]) == "1 2a3 <nil>"
    assert sprint(["a", "b"]) == "ab"
    assert sprintln(["a", 1]) == "a 1\n"


def test_runaway_recursion_is_a_template_error() -> None:
    """A template that calls itself forever fails with Go's depth error instead of exhausting the stack."""
    with pytest.raises(P.TemplateError, match="exceeded maximum template depth"):
        run('{{define "r"}}{{if true}}{{range $i := .}}{{with .}}{{template "r" $}}{{end}}{{end}}{{end}}{{end}}'
            '{{template "r" .}}', [1])
