"""Lexer and parser of Go's text/template language (Go 1.19 syntax), producing a small node tree.

Follows text/template/parse (lex.go, parse.go, node.go): `{{`/`}}` delimiters with `{{- ` and ` -}}` trim
markers, comments `{{/* */}}`, pipelines with `|`, variable declarations `$x :=` and assignments `$x =`,
`if/else if/else`, `range` (with `$i, $v :=` and `else`), `with`, `define`, `template`, `block`, `break` and
`continue`, parenthesised pipelines and field chains on them. Functions must be known when parsing (as in Go:
"function %q not defined"), variables must be declared ("undefined variable"). Error messages have Go's
shape: `template: NAME:LINE: message`.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Callable

LEFT, RIGHT = "{{", "}}"
SPACE_CHARS = " \t\r\n"


class TemplateError(Exception):
    """A parse or execution error, worded as Go's text/template words it."""


# ---------------------------------------------------------------------------------------------- lexer

@dataclass
class Tok:
    kind: str  # text, left, right, space, field, var, ident, kw, string, rawstring, char, number, bool, nil,
    #            dot, pipe, lparen, rparen, comma, declare, assign, comment, eof
    val: str
    pos: int
    line: int


KEYWORDS = {"block", "break", "continue", "define", "else", "end", "if", "range", "nil", "template", "with"}


class Lexer:
    def __init__(self, name: str, text: str):
        self.name, self.text = name, text
        self.toks: list[Tok] = []
        self.pos = 0
        self.paren = 0
        self._nl = [i for i, c in enumerate(text) if c == "\n"]

    @property
    def line(self) -> int:
        return self.lineat(self.pos)

    def lineat(self, pos: int) -> int:
        return bisect.bisect_left(self._nl, pos) + 1

    def err(self, msg: str, line: int | None = None) -> TemplateError:
        return TemplateError(f"template: {self.name}:{line or self.line}: {msg}")

    def emit(self, kind: str, start: int, val: str | None = None) -> None:
        v = self.text[start:self.pos] if val is None else val
        self.toks.append(Tok(kind, v, start, self.lineat(start)))

    def run(self) -> list[Tok]:
        text = self.text
        while True:
            i = text.find(LEFT, self.pos)
            if i < 0:
                if self.pos < len(text):
                    self._text(self.pos, len(text))
                self.toks.append(Tok("eof", "", len(text), self.line))
                return self.toks
            trim = text.startswith("-", i + 2) and i + 3 < len(text) and text[i + 3] in SPACE_CHARS
            end = i
            if trim:
                end = len(text[self.pos:i].rstrip(SPACE_CHARS)) + self.pos
            if end > self.pos:
                self._text(self.pos, end)
            self.pos = i + 2 + (2 if trim else 0)
            self.toks.append(Tok("left", LEFT, i, self.lineat(i)))
            self._inside()

    def _text(self, a: int, b: int) -> None:
        self.toks.append(Tok("text", self.text[a:b], a, self.lineat(a)))

    def _at_right(self) -> tuple[bool, bool]:
        """(at a right delimiter, it carries a trim marker)."""
        t, p = self.text, self.pos
        if p < len(t) and t[p] in SPACE_CHARS:
            q = p
            while q < len(t) and t[q] in SPACE_CHARS:
                q += 1
            if t.startswith("-" + RIGHT, q):
                return True, True
        return t.startswith(RIGHT, p), False

    def _close(self, trim: bool) -> None:
        t = self.text
        if trim:
            while t[self.pos] in SPACE_CHARS:
                self.pos += 1
            self.pos += 1  # "-"
        self.toks.append(Tok("right", RIGHT, self.pos, self.line))
        self.pos += 2
        if trim:
            q = self.pos
            while q < len(t) and t[q] in SPACE_CHARS:
                q += 1
            self.pos = q

    def _inside(self) -> None:
        """lexInsideAction: the tokens of one action up to its right delimiter."""
        t = self.text
        if t.startswith("/*", self.pos):
            self._comment()
            return
        self.paren = 0
        while True:
            at, trim = self._at_right()
            if at and self.paren == 0:
                self._close(trim)
                return
            if self.pos >= len(t):
                raise self.err("unclosed action")
            if t.startswith(RIGHT, self.pos) and self.paren:
                raise self.err("unclosed left paren")
            self._token(t[self.pos], self.pos)

    _SINGLE = {"=": "assign", "|": "pipe", ",": "comma", "(": "lparen", ")": "rparen"}

    def _token(self, c: str, start: int) -> None:
        t = self.text
        if c in SPACE_CHARS:
            while self.pos < len(t) and t[self.pos] in SPACE_CHARS:
                self.pos += 1
            self.emit("space", start)
        elif c in self._SINGLE:
            self.pos += 1
            self.paren += {"(": 1, ")": -1}.get(c, 0)
            if self.paren < 0:
                raise self.err("unexpected right paren U+0029 ')'")
            self.emit(self._SINGLE[c], start)
        elif c == ":":
            if not t.startswith(":=", self.pos):
                raise self.err("expected :=")
            self.pos += 2
            self.emit("declare", start)
        elif c in "\"`'":
            self._quoted(c, start)
        elif c == "$":
            self.pos += 1
            self._word()
            self.emit("var", start)
        elif c == "." and not (self.pos + 1 < len(t) and t[self.pos + 1].isdigit()):
            self.pos += 1
            if self.pos < len(t) and _alnum(t[self.pos]):
                self._word()
                self.emit("field", start)
            else:
                self.emit("dot", start)
        elif c in "+-." or c.isdigit():
            self._number(start)
        elif _alnum(c):
            self._identifier(start)
        else:
            raise self.err(f"unrecognized character in action: {_quote_rune(c)}")

    def _quoted(self, c: str, start: int) -> None:
        if c == '"':
            self._quote(start)
        elif c == "'":
            self._char(start)
        else:
            j = self.text.find("`", self.pos + 1)
            if j < 0:
                raise self.err("unterminated raw quoted string")
            self.pos = j + 1
            self.emit("rawstring", start)

    def _identifier(self, start: int) -> None:
        self._word()
        w = self.text[start:self.pos]
        kind = "kw" if w in KEYWORDS else "bool" if w in ("true", "false") else "ident"
        if w == "nil":
            kind = "nil"
        self.emit(kind, start)
        if kind != "kw":
            self._check_term_end()

    def _check_term_end(self) -> None:
        t = self.text
        if self.pos >= len(t):
            return
        c = t[self.pos]
        if c in SPACE_CHARS or c in ".,|:)(=" or t.startswith(RIGHT, self.pos) or c == "-" and t.startswith("-" + RIGHT, self.pos):
            return
        raise self.err(f"bad character {_quote_rune(c)}")

    def _word(self) -> None:
        t = self.text
        while self.pos < len(t) and _alnum(t[self.pos]):
            self.pos += 1

    def _comment(self) -> None:
        t = self.text
        j = t.find("*/", self.pos + 2)
        if j < 0:
            raise self.err("unclosed comment")
        self.pos = j + 2
        at, trim = self._at_right()
        if not at:
            raise self.err("comment ends before closing delimiter")
        self.toks.append(Tok("comment", "", j, self.lineat(j)))
        self._close(trim)

    def _quote(self, start: int) -> None:
        t = self.text
        p = self.pos + 1
        while True:
            if p >= len(t) or t[p] == "\n":
                raise self.err("unterminated quoted string")
            if t[p] == "\\":
                p += 2
                continue
            if t[p] == '"':
                break
            p += 1
        self.pos = p + 1
        self.emit("string", start)

    def _char(self, start: int) -> None:
        t = self.text
        p = self.pos + 1
        while True:
            if p >= len(t) or t[p] == "\n":
                raise self.err("unterminated character constant")
            if t[p] == "\\":
                p += 2
                continue
            if t[p] == "'":
                break
            p += 1
        self.pos = p + 1
        self.emit("char", start)

    def _number(self, start: int) -> None:
        t = self.text
        p = self.pos
        if t[p] in "+-":
            p += 1
        digits = "0123456789_"
        if t.startswith(("0x", "0X"), p):
            p += 2
            digits = "0123456789abcdefABCDEF_"
        elif t.startswith(("0o", "0O"), p):
            p += 2
            digits = "01234567_"
        elif t.startswith(("0b", "0B"), p):
            p += 2
            digits = "01_"
        while p < len(t) and t[p] in digits:
            p += 1
        if p < len(t) and t[p] == ".":
            p += 1
            while p < len(t) and t[p] in digits:
                p += 1
        exp = "pP" if "a" in digits else "eE"
        if p < len(t) and t[p] in exp:
            p += 1
            if p < len(t) and t[p] in "+-":
                p += 1
            while p < len(t) and t[p] in "0123456789_":
                p += 1
        if p < len(t) and t[p] == "i":
            p += 1
        if p < len(t) and _alnum(t[p]):
            self.pos = p + 1
            raise self.err(f"bad number syntax: {t[start:p + 1]!r}".replace("'", '"'))
        self.pos = p
        self.emit("number", start)


def _alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


def _quote_rune(c: str) -> str:
    return f"U+{ord(c):04X} '{c}'"


# ---------------------------------------------------------------------------------------------- nodes

@dataclass
class Node:
    pos: int
    line: int


@dataclass
class TextNode(Node):
    text: str


@dataclass
class CommentNode(Node):
    pass


@dataclass
class FieldNode(Node):
    ident: list[str]

    def __str__(self) -> str:
        return "".join("." + i for i in self.ident)


@dataclass
class VariableNode(Node):
    ident: list[str]  # ["$x", "Field", ...]

    def __str__(self) -> str:
        return ".".join(self.ident)


@dataclass
class ChainNode(Node):
    node: Node
    field: list[str]

    def __str__(self) -> str:
        s = str(self.node)
        if isinstance(self.node, PipeNode):
            s = f"({s})"
        return s + "".join("." + f for f in self.field)


@dataclass
class IdentifierNode(Node):
    ident: str

    def __str__(self) -> str:
        return self.ident


@dataclass
class DotNode(Node):
    def __str__(self) -> str:
        return "."


@dataclass
class NilNode(Node):
    def __str__(self) -> str:
        return "nil"


@dataclass
class BoolNode(Node):
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass
class NumberNode(Node):
    text: str
    is_int: bool = False
    is_float: bool = False
    int_value: int = 0
    float_value: float = 0.0
    is_char: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass
class StringNode(Node):
    quoted: str
    value: str

    def __str__(self) -> str:
        return self.quoted


@dataclass
class CommandNode(Node):
    args: list[Node]

    def __str__(self) -> str:
        out = []
        for a in self.args:
            out.append(f"({a})" if isinstance(a, PipeNode) else str(a))
        return " ".join(out)


@dataclass
class PipeNode(Node):
    is_assign: bool
    decl: list[VariableNode]
    cmds: list[CommandNode]

    def __str__(self) -> str:
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


@dataclass
class ActionNode(Node):
    pipe: PipeNode

    def __str__(self) -> str:
        return "{{" + str(self.pipe) + "}}"


@dataclass
class ListNode(Node):
    nodes: list[Node] = field(default_factory=list)


@dataclass
class BranchNode(Node):
    kind: str  # if | range | with
    pipe: PipeNode
    list: ListNode
    else_list: ListNode | None

    def __str__(self) -> str:
        return "{{" + self.kind + " " + str(self.pipe) + "}}"


@dataclass
class TemplateNode(Node):
    name: str
    pipe: PipeNode | None

    def __str__(self) -> str:
        return "{{template " + _go_quote(self.name) + (" " + str(self.pipe) if self.pipe else "") + "}}"


@dataclass
class BreakNode(Node):
    pass


@dataclass
class ContinueNode(Node):
    pass


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Tree:
    name: str
    root: ListNode
    text: str = ""
    parse_name: str = ""  # the name of the top-level template this one was parsed with (for error positions)

    def is_empty(self) -> bool:
        """Go's parse.IsEmptyTree: only whitespace text and comments (a redefinition with it keeps the old body)."""
        return _empty(self.root)


def _empty(n: Node) -> bool:
    if isinstance(n, ListNode):
        return all(_empty(c) for c in n.nodes)
    if isinstance(n, TextNode):
        return n.text.strip(" \t\r\n") == ""
    return isinstance(n, CommentNode)


# ---------------------------------------------------------------------------------------------- parser

class Parser:
    """Parses one source text into {name: Tree}: the text's own top level (named `name`) and its defines."""

    def __init__(self, name: str, text: str, has_func: Callable[[str], bool]):
        self.name, self.text, self.has_func = name, text, has_func
        self.toks = Lexer(name, text).run()
        self.i = 0
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.trees: dict[str, Tree] = {}
        self.cur = name

    # tokens
    def peek(self) -> Tok:
        return self.toks[self.i]

    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def backup(self) -> None:
        self.i -= 1

    def next_ns(self) -> Tok:
        t = self.next()
        while t.kind == "space":
            t = self.next()
        return t

    def peek_ns(self) -> Tok:
        t = self.next_ns()
        self.backup()
        return t

    def err(self, msg: str, tok: Tok | None = None) -> TemplateError:
        line = (tok or self.toks[max(self.i - 1, 0)]).line
        return TemplateError(f"template: {self.name}:{line}: {msg}")

    def expect(self, kind: str, ctx: str) -> Tok:
        t = self.next_ns()
        if t.kind != kind:
            raise self.unexpected(t, ctx)
        return t

    def unexpected(self, t: Tok, ctx: str) -> TemplateError:
        if t.kind == "eof":
            return self.err(f"unexpected EOF in {ctx}", t)
        desc = {"right": "}}", "left": "{{"}.get(t.kind, t.val)
        what = _tok_desc(t, desc)
        return self.err(f"unexpected {what} in {ctx}", t)

    # top level
    def parse(self) -> dict[str, Tree]:
        root = ListNode(0, 1)
        while self.peek().kind != "eof":
            if self.peek().kind == "left":
                save = self.i
                self.next()
                t = self.next_ns()
                if t.kind == "kw" and t.val == "define":
                    self._define()
                    continue
                self.i = save
            n = self.text_or_action()
            if isinstance(n, (EndTok, ElseTok)):
                raise self.err(f"unexpected {n}", n.tok)
            root.nodes.append(n)
        self.cur = self.name
        self._add(Tree(self.name, root, self.text, self.name))
        return self.trees

    def _add(self, tree: Tree) -> None:
        """parse.Tree.add: within one text a second non-empty definition of a name is an error."""
        old = self.trees.get(tree.name)
        if old is None or old.is_empty():
            self.trees[tree.name] = tree
        elif not tree.is_empty():
            raise TemplateError(f"template: {self.name}:{self.toks[max(self.i - 1, 0)].line}: template: multiple "
                                f"definition of template {_go_quote(tree.name)}")

    def _define(self) -> None:
        ctx = "define clause"
        name_tok = self.next_ns()
        if name_tok.kind not in ("string", "rawstring"):
            raise self.unexpected(name_tok, ctx)
        name = unquote(name_tok, self)
        self.expect("right", ctx)
        outer, self.cur = self.cur, name
        saved_vars, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        if not isinstance(end, EndTok):
            raise self.err(f"unexpected {end} in {ctx}", end.tok)
        self.vars = saved_vars
        self._add(Tree(name, body, self.text, self.name))
        self.cur = outer

    def item_list(self) -> tuple[ListNode, Any]:
        lst = ListNode(self.peek().pos, self.peek().line)
        while True:
            if self.peek().kind == "eof":
                raise self.err("unexpected EOF", self.peek())
            n = self.text_or_action()
            if isinstance(n, (EndTok, ElseTok)):
                return lst, n
            lst.nodes.append(n)

    def text_or_action(self) -> Any:
        t = self.next()
        if t.kind == "text":
            return TextNode(t.pos, t.line, t.val)
        if t.kind == "left":
            return self.action()
        raise self.unexpected(t, "input")

    def action(self) -> Any:
        t = self.next_ns()
        if t.kind == "comment":
            self.expect("right", "comment")
            return CommentNode(t.pos, t.line)
        if t.kind == "kw":
            kw = t.val
            if kw == "block":
                return self.block(t)
            if kw == "break":
                return self.break_continue(t, BreakNode)
            if kw == "continue":
                return self.break_continue(t, ContinueNode)
            if kw == "else":
                return self.else_(t)
            if kw == "end":
                self.expect("right", "end")
                return EndTok(t)
            if kw in ("if", "range", "with"):
                return self.branch(t, kw)
            if kw == "template":
                return self.template(t)
            if kw == "define":
                raise self.err("unexpected <define> in command", t)
        self.backup()
        # `{{nil}}` is special-cased in Go's parser.
        pipe = self.pipeline("command", "right", t)
        return ActionNode(t.pos, t.line, pipe)

    def break_continue(self, t: Tok, cls: type) -> Node:
        nt = self.next_ns()
        if nt.kind != "right":
            raise self.unexpected(nt, "{{" + t.val + "}}")
        if self.range_depth == 0:
            raise self.err(f"{{{{{t.val}}}}} outside {{{{range}}}}", t)
        return cls(t.pos, t.line)

    def else_(self, t: Tok) -> Any:
        nt = self.peek_ns()
        if nt.kind == "kw" and nt.val == "if":
            return ElseTok(t, chained=True)
        self.expect("right", "else")
        return ElseTok(t)

    def branch(self, t: Tok, kind: str) -> Node:
        mark = len(self.vars)
        if kind == "range":
            self.range_depth += 1
        pipe = self.pipeline(kind, "right", t)
        body, nxt = self.item_list()
        if kind == "range":
            self.range_depth -= 1
        else_list = None
        if isinstance(nxt, ElseTok):
            if nxt.chained:
                # {{else if ...}} is {{else}}{{if ...}}...{{end}}{{end}}
                et = self.next_ns()  # the "if"
                else_list = ListNode(et.pos, et.line, [self.branch(et, "if")])
            else:
                else_list, nxt2 = self.item_list()
                if not isinstance(nxt2, EndTok):
                    raise self.err("expected end; found " + str(nxt2), nxt2.tok)
        del self.vars[mark:]
        return BranchNode(t.pos, t.line, kind, pipe, body, else_list)

    def template(self, t: Tok) -> Node:
        ctx = "template clause"
        nt = self.next_ns()
        if nt.kind not in ("string", "rawstring"):
            raise self.unexpected(nt, ctx)
        name = unquote(nt, self)
        pipe = None
        nt2 = self.next_ns()
        if nt2.kind != "right":
            self.backup()
            pipe = self.pipeline(ctx, "right", t)
        return TemplateNode(t.pos, t.line, name, pipe)

    def block(self, t: Tok) -> Node:
        ctx = "block clause"
        nt = self.next_ns()
        if nt.kind not in ("string", "rawstring"):
            raise self.unexpected(nt, ctx)
        name = unquote(nt, self)
        pipe = self.pipeline(ctx, "right", t)
        outer, self.cur = self.cur, name
        saved_vars, self.vars = self.vars, ["$"]
        body, end = self.item_list()
        if not isinstance(end, EndTok):
            raise self.err(f"unexpected {end} in {ctx}", end.tok)
        self.vars = saved_vars
        self._add(Tree(name, body, self.text, self.name))
        self.cur = outer
        return TemplateNode(t.pos, t.line, name, pipe)

    def pipeline(self, ctx: str, end: str, start: Tok) -> PipeNode:
        pipe = PipeNode(start.pos, start.line, False, [], [])
        self._decls(pipe, ctx)
        while True:
            t = self.next_ns()
            if t.kind == end:
                self._check_pipeline(pipe, ctx, t)
                return pipe
            if t.kind in ("bool", "char", "dot", "field", "ident", "number", "nil", "rawstring", "string",
                          "var", "lparen") or (t.kind == "kw" and t.val == "nil"):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                raise self.unexpected(t, ctx)

    def _decls(self, pipe: PipeNode, ctx: str) -> None:
        save = self.i
        v = self.next_ns()
        if v.kind != "var":
            self.i = save
            return
        nt = self.next_ns()
        if nt.kind in ("declare", "assign"):
            pipe.is_assign = nt.kind == "assign"
            pipe.decl.append(VariableNode(v.pos, v.line, [v.val]))
            if nt.kind == "declare":
                self.vars.append(v.val)
            elif v.val not in self.vars:
                raise self.err(f"undefined variable \"{v.val}\"", v)
            return
        if nt.kind == "comma" and ctx == "range":
            v2 = self.next_ns()
            nt2 = self.next_ns()
            if v2.kind == "var" and nt2.kind in ("declare", "assign"):
                pipe.is_assign = nt2.kind == "assign"
                pipe.decl += [VariableNode(v.pos, v.line, [v.val]), VariableNode(v2.pos, v2.line, [v2.val])]
                if nt2.kind == "declare":
                    self.vars += [v.val, v2.val]
                return
            raise self.err("range can only initialize variables", v)
        if nt.kind == "comma":
            raise self.err(f"too many declarations in {ctx}", v)
        self.i = save

    def _check_pipeline(self, pipe: PipeNode, ctx: str, t: Tok) -> None:
        if not pipe.cmds:
            raise self.err(f"missing value for {ctx}", t)
        for c in pipe.cmds[1:]:
            a = c.args[0]
            if isinstance(a, (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                raise self.err(f"non executable command in pipeline stage {pipe.cmds.index(c) + 1}", t)

    def command(self) -> CommandNode:
        t0 = self.peek_ns()
        cmd = CommandNode(t0.pos, t0.line, [])
        while True:
            self.peek_ns()
            op = self.operand()
            if op is not None:
                cmd.args.append(op)
            t = self.next()
            if t.kind == "space":
                continue
            if t.kind in ("right", "rparen"):
                self.backup()
            elif t.kind == "pipe":
                pass
            else:
                raise self.unexpected(t, "operand")
            break
        if not cmd.args:
            raise self.err("empty command", t0)
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().kind == "field":
            fields = []
            while self.peek().kind == "field":
                fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                node = FieldNode(node.pos, node.line, node.ident + fields)
            elif isinstance(node, VariableNode):
                node = VariableNode(node.pos, node.line, node.ident + fields)
            elif isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                raise self.err(f"unexpected . after term {str(node)!r}".replace("'", '"'))
            else:
                node = ChainNode(node.pos, node.line, node, fields)
        return node

    def term(self) -> Node | None:
        t = self.next_ns()
        k = t.kind
        if k == "ident":
            if not self.has_func(t.val):
                raise self.err(f"function {_go_quote(t.val)} not defined", t)
            return IdentifierNode(t.pos, t.line, t.val)
        if k == "dot":
            return DotNode(t.pos, t.line)
        if k == "nil":
            return NilNode(t.pos, t.line)
        if k == "var":
            if t.val not in self.vars:
                raise self.err(f"undefined variable {_go_quote(t.val)}", t)
            return VariableNode(t.pos, t.line, [t.val])
        if k == "field":
            return FieldNode(t.pos, t.line, [t.val[1:]])
        if k == "bool":
            return BoolNode(t.pos, t.line, t.val == "true")
        if k in ("char", "number"):
            return parse_number(t, self)
        if k == "lparen":
            pipe = self.pipeline("parenthesized pipeline", "rparen", t)
            return pipe
        if k in ("string", "rawstring"):
            return StringNode(t.pos, t.line, t.val, unquote(t, self))
        self.backup()
        return None


class EndTok:
    def __init__(self, tok: Tok):
        self.tok = tok

    def __str__(self) -> str:
        return "{{end}}"


class ElseTok:
    def __init__(self, tok: Tok, chained: bool = False):
        self.tok, self.chained = tok, chained

    def __str__(self) -> str:
        return "{{else}}"


def _tok_desc(t: Tok, desc: str) -> str:
    if t.kind in ("kw",):
        return f"<{t.val}>"
    if t.kind == "string" or t.kind == "rawstring":
        return "quoted string"
    return f'"{desc}"' if t.kind in ("right", "left", "pipe", "rparen", "lparen", "comma", "declare", "assign") else f"<{desc}>"


_ESC = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", "'": "'", '"': '"'}


def unquote(t: Tok, p: Any) -> str:
    """Go's strconv.Unquote for "..." and `...` literals."""
    s = t.val
    if t.kind == "rawstring":
        return s[1:-1].replace("\r", "")
    try:
        return _unescape(s[1:-1], '"')
    except ValueError:
        raise p.err("invalid syntax") from None


def _unescape(body: str, quote: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        i += 1
        e = body[i]
        if e in _ESC:
            if e in "'\"" and e != quote:
                raise ValueError(e)
            out.append(_ESC[e])
            i += 1
        elif e == "x":
            out.append(chr(int(body[i + 1:i + 3], 16)))
            i += 3
        elif e == "u":
            out.append(chr(int(body[i + 1:i + 5], 16)))
            i += 5
        elif e == "U":
            out.append(chr(int(body[i + 1:i + 9], 16)))
            i += 9
        elif e in "01234567":
            out.append(chr(int(body[i:i + 3], 8)))
            i += 3
        else:
            raise ValueError(e)
    return "".join(out)


def parse_number(t: Tok, p: Any) -> NumberNode:
    n = NumberNode(t.pos, t.line, t.val)
    if t.kind == "char":
        try:
            s = _unescape(t.val[1:-1], "'")
        except (ValueError, IndexError):
            raise p.err(f"malformed character constant: {t.val}") from None
        if len(s) != 1:
            raise p.err(f"malformed character constant: {t.val}")
        n.is_int = n.is_float = n.is_char = True
        n.int_value = ord(s)
        n.float_value = float(ord(s))
        return n
    text = t.val.replace("_", "")
    if text.endswith("i"):
        raise p.err(f"complex constants are not supported: {t.val}")
    try:
        iv = int(text, 0) if not (len(text.lstrip("+-")) > 1 and text.lstrip("+-")[0] == "0"
                                  and text.lstrip("+-")[1].isdigit()) else int(text, 8)
        n.is_int = True
        n.int_value = iv
        n.is_float = True
        n.float_value = float(iv)
        return n
    except ValueError:
        pass
    try:
        fv = float.fromhex(text) if text.lower().lstrip("+-").startswith("0x") else float(text)
    except ValueError:
        raise p.err(f"illegal number syntax: {t.val!r}".replace("'", '"')) from None
    n.is_float = True
    n.float_value = fv
    if fv == int(fv) if fv == fv and abs(fv) != float("inf") else False:
        n.is_int = True
        n.int_value = int(fv)
    return n


def parse(name: str, text: str, has_func: Callable[[str], bool]) -> dict[str, Tree]:
    """Parse `text` (named `name`) into its trees: the top level under `name`, each define under its own."""
    return Parser(name, text, has_func).parse()
