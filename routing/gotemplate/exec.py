"""Execution of parsed Go templates (text/template/exec.go semantics) over the Go values of `values`.

Field chains look up methods first (`.Alerts.Firing`, `.Labels.SortedPairs`), then struct fields (an unknown
one is an error: "can't evaluate field X in type T"), then map keys (a missing key follows the missingkey
option: "default" gives <no value>, "zero" the map's zero element ("" for KV; <no value> for interface maps),
"error" fails). Functions get their arguments converted by their declared Go parameter types, as evalArg does
(literals by kind, values by type), and a function's error aborts execution ("error calling f: ..."). `range`
walks slices in order and maps in sorted key order; `break`/`continue` work in it; variables are scoped to
their block. An optional escaper (html.HtmlEscaper) makes execution contextual, as html/template does.
"""
from __future__ import annotations

from typing import Any

import routing.gotemplate.parse as P
from routing.gotemplate.gofmt import sprint_one
from routing.gotemplate.gotime import GoDuration
from routing.gotemplate.values import NO_VALUE, GoFunc, GoStruct, go_method, is_true, type_name

MISSING = object()  # "no final value" of a pipeline stage
MAX_DEPTH = 300  # Go allows 100000 nested template calls; Python's stack allows fewer


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class ExecError(P.TemplateError):
    pass


METHOD_PARAMS: dict[str, list[str]] = {
    "Remove": ["[]string"], "Format": ["string"], "Add": ["Duration"], "Sub": ["time.Time"], "Before": ["time.Time"],
    "After": ["time.Time"], "Equal": ["time.Time"], "In": ["any"], "Round": ["Duration"], "Truncate": ["Duration"],
}


class State:
    def __init__(self, tmpl_name: str, trees: dict[str, P.Tree], funcs: dict[str, GoFunc], missingkey: str = "zero",
                 escaper: Any = None):
        self.trees, self.funcs, self.missingkey = trees, funcs, missingkey
        self.out: list[str] = []
        self.vars: list[list[Any]] = []
        self.depth = 0
        self.tmpl_name = tmpl_name
        self.node: P.Node | None = None
        self.escaper = escaper

    # errors
    def errorf(self, msg: str) -> ExecError:
        name = self.tmpl_name
        tree = self.trees.get(name)
        loc = name
        if self.node is not None and tree is not None:
            text = tree.text[:self.node.pos]
            line = text.count("\n") + 1
            col = self.node.pos - (text.rfind("\n") + 1)
            loc = f"{tree.parse_name or name}:{line}:{col}"
            return ExecError(f"template: {loc}: executing {P._go_quote(name)} at <{_node_str(self.node)}>: {msg}")
        return ExecError(f"template: {loc}: {msg}")

    # variables
    def push(self, name: str, value: Any) -> None:
        self.vars.append([name, value])

    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def set_var(self, name: str, value: Any) -> None:
        for v in reversed(self.vars):
            if v[0] == name:
                v[1] = value
                return
        raise self.errorf(f"undefined variable: {name}")

    def set_top(self, n: int, value: Any) -> None:
        self.vars[-n][1] = value

    def var_value(self, name: str) -> Any:
        for v in reversed(self.vars):
            if v[0] == name:
                return v[1]
        raise self.errorf(f"undefined variable: {name}")

    # output
    def write_text(self, s: str) -> None:
        if self.escaper is not None:
            s = self.escaper.text(s)
        self.out.append(s)

    # walking
    def run(self, tree: P.Tree, dot: Any) -> str:
        self.push("$", dot)
        try:
            self.walk(dot, tree.root)
        except RecursionError:  # deeply nested blocks inside recursive templates: Go's depth error
            raise self.errorf(f"exceeded maximum template depth ({MAX_DEPTH})") from None
        return "".join(self.out)

    def walk(self, dot: Any, node: P.Node) -> None:
        self.node = node
        if isinstance(node, P.ListNode):
            for n in node.nodes:
                self.walk(dot, n)
        elif isinstance(node, P.TextNode):
            self.write_text(node.text)
        elif isinstance(node, P.ActionNode):
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.print_value(node, val)
        elif isinstance(node, P.BranchNode):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, P.TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, P.BreakNode):
            raise _Break()
        elif isinstance(node, P.ContinueNode):
            raise _Continue()
        elif isinstance(node, P.CommentNode):
            pass
        else:
            raise self.errorf(f"unknown node: {node}")

    def walk_if_or_with(self, dot: Any, node: P.BranchNode) -> None:
        mark = self.mark()
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if isinstance(val, GoFunc):
                raise self.errorf(f"{node.kind}/with can't use {val}")
            if is_true(val):
                self.walk(val if node.kind == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, node: P.BranchNode) -> None:
        """Go's walkRange: slices in order, maps in sorted key order, nil/empty runs the else branch."""
        mark0 = self.mark()
        try:
            items = self._range_items(node, self.eval_pipeline(dot, node.pipe))
            if not items:
                if node.else_list is not None:
                    self.walk(dot, node.else_list)
                return
            mark = self.mark()
            for idx, elem in items:
                if not self._range_once(node, mark, idx, elem):
                    break
        finally:
            self.pop(mark0)

    def _range_items(self, node: P.BranchNode, val: Any) -> list[tuple[Any, Any]]:
        if val is NO_VALUE or val is None:
            return []
        if isinstance(val, (list, tuple)):
            return list(enumerate(val))
        if isinstance(val, dict):
            return [(k, val[k]) for k in _sorted(val)]
        self.node = node
        raise self.errorf(f"range can't iterate over {sprint_one(val)}")

    def _range_once(self, node: P.BranchNode, mark: int, index: Any, elem: Any) -> bool:
        decl = node.pipe.decl
        if decl:
            if node.pipe.is_assign:
                self.set_var(decl[0].ident[0], index if len(decl) > 1 else elem)
            else:
                self.set_top(1, elem)
        if len(decl) > 1:
            if node.pipe.is_assign:
                self.set_var(decl[1].ident[0], elem)
            else:
                self.set_top(2, index)
        try:
            self.walk(elem, node.list)
        except _Continue:
            pass
        except _Break:
            return False
        finally:
            self.pop(mark)
        return True

    def walk_template(self, dot: Any, node: P.TemplateNode) -> None:
        tree = self.trees.get(node.name)
        if tree is None:
            raise self.errorf(f"template {P._go_quote(node.name)} not defined")
        if self.depth >= MAX_DEPTH:
            raise self.errorf(f"exceeded maximum template depth ({MAX_DEPTH})")
        new_dot = self.eval_pipeline(dot, node.pipe) if node.pipe is not None else NO_VALUE
        saved = (self.vars, self.tmpl_name)
        self.vars, self.tmpl_name = [["$", new_dot]], node.name
        self.depth += 1
        try:
            self.walk(new_dot, tree.root)
        finally:
            self.depth -= 1
            self.vars, self.tmpl_name = saved
            self.node = node

    # pipelines
    def eval_pipeline(self, dot: Any, pipe: P.PipeNode | None) -> Any:
        if pipe is None:
            return NO_VALUE
        self.node = pipe
        value: Any = MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for v in pipe.decl:
            if pipe.is_assign:
                self.set_var(v.ident[0], value)
            else:
                self.push(v.ident[0], value)
        return value

    def not_a_function(self, args: list[P.Node], final: Any) -> None:
        if len(args) > 1 or final is not MISSING:
            raise self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: P.CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        self.node = first
        if isinstance(first, P.FieldNode):
            return self.eval_field_chain(dot, dot, first, first.ident, cmd.args, final)
        if isinstance(first, P.ChainNode):
            return self.eval_chain(dot, first, cmd.args, final)
        if isinstance(first, P.IdentifierNode):
            return self.eval_function(dot, first, cmd.args, final, cmd)
        if isinstance(first, P.PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if isinstance(first, P.VariableNode):
            return self.eval_variable(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if isinstance(first, P.BoolNode):
            return first.value
        if isinstance(first, P.DotNode):
            return dot
        if isinstance(first, P.NilNode):
            raise self.errorf("nil is not a command")
        if isinstance(first, P.NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, P.StringNode):
            return first.value
        raise self.errorf(f"can't evaluate command {first}")

    def ideal_constant(self, n: P.NumberNode) -> Any:
        text = n.text.lower()
        if n.is_float and not n.is_char and not text.lstrip("+-").startswith("0x") and any(c in text for c in ".ep"):
            return n.float_value
        if n.is_int:
            return n.int_value
        if n.is_float:
            return n.float_value
        raise self.errorf(f"{n.text} overflows int")

    def eval_variable(self, dot: Any, v: P.VariableNode, args: list[P.Node], final: Any) -> Any:
        value = self.var_value(v.ident[0])
        if len(v.ident) == 1:
            self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, v, v.ident[1:], args, final)

    def eval_chain(self, dot: Any, chain: P.ChainNode, args: list[P.Node], final: Any) -> Any:
        if isinstance(chain.node, P.NilNode):
            raise self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, "any", chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.field, args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, node: P.Node, idents: list[str], args: list[P.Node],
                         final: Any) -> Any:
        n = len(idents)
        for i in range(n - 1):
            receiver = self.eval_field(dot, idents[i], node, [], MISSING, receiver)
        return self.eval_field(dot, idents[n - 1], node, args, final, receiver)

    def eval_field(self, dot: Any, name: str, node: P.Node, args: list[P.Node], final: Any,
                   receiver: Any) -> Any:
        if receiver is NO_VALUE:
            if self.missingkey == "error":
                raise self.errorf(f"nil data; no entry for key {P._go_quote(name)}")
            return NO_VALUE
        method = go_method(receiver, name) if name[:1].isupper() else None
        if method is not None:
            fn = GoFunc(name, method, METHOD_PARAMS.get(name, []))
            return self.eval_call(dot, fn, node, name, args, final)
        has_args = len(args) > 1 or final is not MISSING
        if isinstance(receiver, GoStruct):
            if name in receiver.go_fields:
                if has_args:
                    raise self.errorf(f"{name} has arguments but cannot be invoked as function")
                return getattr(receiver, name)
            if name[:1].islower() and name.capitalize() in receiver.go_fields:
                raise self.errorf(f"{name} is an unexported field of struct type {type_name(receiver)}")
            raise self.errorf(f"can't evaluate field {name} in type {type_name(receiver)}")
        if isinstance(receiver, dict):
            if has_args:
                raise self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            if self.missingkey == "error":
                raise self.errorf(f"map has no entry for key {P._go_quote(name)}")
            if self.missingkey == "zero":
                return getattr(receiver, "elem_zero", NO_VALUE)
            return NO_VALUE
        if receiver is None:
            raise self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        raise self.errorf(f"can't evaluate field {name} in type {type_name(receiver)}")

    def eval_function(self, dot: Any, node: P.IdentifierNode, args: list[P.Node], final: Any,
                      cmd: P.Node | None = None) -> Any:
        fn = self.funcs.get(node.ident)
        if fn is None:
            raise self.errorf(f"{P._go_quote(node.ident)} is not a defined function")
        return self.eval_call(dot, fn, cmd or node, node.ident, args, final)

    def eval_call(self, dot: Any, fn: GoFunc, node: P.Node, name: str, args: list[P.Node],
                  final: Any) -> Any:
        argn = list(args[1:]) if args else []
        num_in = len(argn) + (1 if final is not MISSING else 0)
        fixed = len(fn.params)
        if fn.variadic is not None:
            if num_in < fixed:
                raise self.errorf(f"wrong number of args for {name}: want at least {fixed} got {num_in}")
        elif num_in != fixed:
            raise self.errorf(f"wrong number of args for {name}: want {fixed} got {num_in}")
        if fn.raw:  # and/or: lazy evaluation of the arguments (Go 1.18)
            thunks = [(lambda a=a: self.eval_arg(dot, "reflect", a)) for a in argn]
            if final is not MISSING:
                thunks.append(lambda: final)
            try:
                return fn.fn(thunks)
            except P.TemplateError:
                raise
        values = []
        for i, a in enumerate(argn):
            typ = fn.params[i] if i < fixed else fn.variadic
            values.append(self.eval_arg(dot, typ, a))
        if final is not MISSING:
            typ = fn.params[fixed - 1] if fn.variadic is None else (fn.variadic if num_in > fixed else fn.params[-1])
            if fn.variadic is not None and len(argn) < fixed:
                typ = fn.params[len(argn)]
            values.append(self.validate_type(final, typ))
        self.node = node
        try:
            return fn.fn(*values)
        except P.TemplateError:
            raise
        except (_Break, _Continue):
            raise
        except RecursionError:
            raise self.errorf(f"exceeded maximum template depth ({MAX_DEPTH})") from None
        except Exception as e:  # a function's error or panic: Go reports it the same way
            raise self.errorf(f"error calling {name}: {e}") from None

    def eval_arg(self, dot: Any, typ: str, n: P.Node) -> Any:
        """Go's evalArg: a value node is evaluated and type-checked, a literal is converted by the parameter kind."""
        self.node = n
        if isinstance(n, P.NilNode):
            if typ in ("any", "reflect", "[]string", "map"):
                return None
            raise self.errorf(f"cannot assign nil to {typ}")
        value = self._eval_value_node(dot, n)
        if value is not MISSING:
            return self.validate_type(value, typ)
        return self._literal_arg(typ, n)

    def _eval_value_node(self, dot: Any, n: P.Node) -> Any:
        if isinstance(n, P.DotNode):
            return dot
        if isinstance(n, P.FieldNode):
            return self.eval_field_chain(dot, dot, n, n.ident, [n], MISSING)
        if isinstance(n, P.VariableNode):
            return self.eval_variable(dot, n, [n], MISSING)
        if isinstance(n, P.PipeNode):
            return self.eval_pipeline(dot, n)
        if isinstance(n, P.IdentifierNode):
            return self.eval_function(dot, n, [n], MISSING)
        if isinstance(n, P.ChainNode):
            return self.eval_chain(dot, n, [n], MISSING)
        return MISSING

    def _literal_arg(self, typ: str, n: P.Node) -> Any:
        if typ in ("any", "reflect"):
            if isinstance(n, P.NumberNode):
                return self.ideal_constant(n)
            if isinstance(n, (P.BoolNode, P.StringNode)):
                return n.value
        if typ == "string" and isinstance(n, P.StringNode) or typ == "bool" and isinstance(n, P.BoolNode):
            return n.value
        if isinstance(n, P.NumberNode) and typ in ("int", "float64", "Duration"):
            if typ == "float64" and n.is_float:
                return n.float_value
            if n.is_int:
                return n.int_value if typ != "Duration" else GoDuration(n.int_value)
        want = {"string": "string", "int": "integer", "float64": "float", "bool": "bool"}.get(typ)
        if want:
            raise self.errorf(f"expected {want}; found {n}")
        raise self.errorf(f"can't handle {n} for arg of type {typ}")

    def validate_type(self, value: Any, typ: str) -> Any:
        if typ in ("reflect",):
            return value
        if value is NO_VALUE or value is MISSING:
            if typ in ("any", "[]string", "map"):
                return None
            raise self.errorf(f"invalid value; expected {_go_type(typ)}")
        if typ == "any":
            return value
        ok = False
        if typ == "string":
            ok = type(value) is str
        elif typ == "int":
            ok = type(value) is int
        elif typ == "float64":
            ok = type(value) is float
        elif typ == "bool":
            ok = type(value) is bool
        elif typ == "[]string":
            ok = value is None or type(value) is list and all(type(x) is str for x in value)
        elif typ == "time.Time":
            ok = type_name(value) == "time.Time"
        elif typ == "Duration":
            ok = type_name(value) == "time.Duration"
        elif typ == "map":
            ok = isinstance(value, dict)
        if not ok:
            raise self.errorf(f"wrong type for value; expected {_go_type(typ)}; got {type_name(value)}")
        return value

    def print_value(self, node: P.Node, v: Any) -> None:
        if isinstance(v, GoFunc):
            self.node = node
            raise self.errorf(f"can't print {node} of type func")
        if self.escaper is not None:
            self.out.append(self.escaper.value(v, node))
            return
        self.out.append("<no value>" if v is NO_VALUE else sprint_one(v))


def _go_type(typ: str) -> str:
    return {"any": "interface {}", "Duration": "time.Duration", "map": "map"}.get(typ, typ)


def _sorted(d: dict) -> list:
    try:
        return sorted(d)
    except TypeError:
        return list(d)


def _node_str(n: P.Node) -> str:
    if isinstance(n, P.ActionNode):
        return str(n.pipe)
    return str(n)
