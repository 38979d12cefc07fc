"""The sandbox's hooks that keep a render within `bounds`: the environment checks operators,
calls, filters, loops, literals and output against the render's `Budget`, and the code generator
compiles every template to go through those hooks.

Nothing is folded at compile time (Jinja's optimizer would run filters and operators on constants
while compiling): compiling and analysing a template never runs any part of it.
"""

from __future__ import annotations

import inspect
import json
import re
from functools import wraps
from typing import Any, Callable, Iterable, Iterator

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, operators
from jinja2.meta import TrackingCodeGenerator
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, pass_context

from temporal_flows.expressions.bounds import BUDGET_KEY, LIMITS, Budget, BudgetExceeded, Limits

LOOP_HOOK = "counted_loop"
"""The environment method every `for` loop's items go through (see `BoundedCodeGenerator`)."""

_ADDRESS = re.compile(r" at 0x[0-9A-Fa-f]+")

CONSTANT_TIME_FILTERS = frozenset({"length", "count", "first", "last", "default", "d", "attr", "int", "float", "abs", "round", "bool"})
"""Filters whose cost does not grow with their input's length (others spend it: `Budget.touched`)."""
CONSTANT_TIME_TESTS = frozenset({
    "defined", "undefined", "none", "null", "number", "string", "mapping", "map", "iterable", "sequence", "callable",
    "sameas", "boolean", "false", "true", "integer", "float", "even", "odd", "divisibleby", "empty", "filter", "test",
})
"""Tests whose cost does not grow with their input's length."""

STRUCTURAL_FILTERS = frozenset({
    "length", "count", "first", "last", "list", "map", "select", "reject", "selectattr", "rejectattr",
    "sort", "rsort", "unique", "reverse", "batch", "slice", "groupby", "dictsort", "items", "attr", "keys",
    "values", "jq", "min", "max", "sum", "default", "d", "join", "abs", "int", "float", "round", "bool",
})
"""Filters that do not turn their input into text: a big input costs them no more than a small one."""


def fixed_text(value: Any) -> str:
    """How a value that is not data prints (a function, a method, an object): a fixed text, never a
    memory address, which would differ on every worker and every replay."""
    if isinstance(value, range):
        return repr(value)
    name = getattr(value, "__name__", None) or type(value).__name__
    if isinstance(value, type):
        return f"<class {name}>"
    if inspect.isroutine(value):
        return f"<function {name}>"
    return _ADDRESS.sub("", f"<{type(value).__name__}>")


def json_text(value: Any, limit: int | None = None) -> str:
    """`value` as compact JSON (objects that are not data as their fixed text); with `limit`, refused
    past that many characters, stopping there (a structure sharing parts can be huge in text)."""
    encoder = json.JSONEncoder(separators=(",", ":"), default=fixed_text)
    if limit is None:
        return encoder.encode(value)
    pieces, size = [], 0
    for piece in encoder.iterencode(value):
        size += len(piece)
        if size > limit:
            raise BudgetExceeded(f"a value printing as more than {limit:,} characters")
        pieces.append(piece)
    return "".join(pieces)


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with every output piece counted, every loop's items counted, every
    list/tuple/dict literal and `~` checked, and no constant folded at compile time."""

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        raise nodes.Impossible()

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        self.write("environment.bounded_output(context, ")
        super()._output_child_pre(node, frame, finalize)

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        super()._output_child_post(node, frame, finalize)
        self.write(")")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        original = node.iter
        node.iter = nodes.Call(nodes.EnvironmentAttribute(LOOP_HOOK), [original], [], None, None, lineno=original.lineno)
        try:
            super().visit_For(node, frame)
        finally:
            node.iter = original

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name == LOOP_HOOK:
            self._hooked(LOOP_HOOK, node.args[0], frame)
            return
        super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        """Each operand's length is spent before it is compared (`in`, `==` on lists and text scan them)."""
        self.write("(")
        self._hooked("touched", node.expr, frame)
        for operand in node.ops:
            self.write(f" {operators[operand.op]} ")
            self._hooked("touched", operand.expr, frame)
        self.write(")")

    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        if isinstance(node.arg, nodes.Slice):  # a slice copies: its length is spent
            self._hooked("touched", node, frame, super().visit_Getitem)
        else:
            super().visit_Getitem(node, frame)

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._hooked("bounded_literal", node, frame, super().visit_List)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._hooked("bounded_literal", node, frame, super().visit_Dict)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":  # an assignment target (`{% for a, b in ... %}`)
            super().visit_Tuple(node, frame)
            return
        self._hooked("bounded_literal", node, frame, super().visit_Tuple)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self._hooked("bounded_literal", node, frame, super().visit_Concat)

    def _hooked(self, hook: str, node: nodes.Node, frame: Frame, visit: Callable[..., None] | None = None) -> None:
        self.write(f"environment.{hook}(context, ")
        (visit or self.visit)(node, frame)
        self.write(")")


def budget_of(context: Context) -> Budget:
    """The render's budget (a render started without one gets its own, with its environment's limits)."""
    budget = context.parent.get(BUDGET_KEY)
    if not isinstance(budget, Budget):
        budget = context.parent[BUDGET_KEY] = Budget(getattr(context.environment, "limits", LIMITS))
    return budget


@pass_context
def bounded_range(context: Context, *args: int) -> range:
    """`range()` of a bounded length."""
    return budget_of(context).check_range(range(*args))


bounded_range.__name__ = "range"  # as it prints: `{{ range }}`


class _NameTracker(TrackingCodeGenerator):
    """Jinja's introspection, with nothing folded: finding names never runs the template."""

    def __init__(self, environment: Any) -> None:
        CodeGenerator.__init__(self, environment, "<introspection>", "<introspection>", optimized=False)
        self.undeclared_identifiers: set[str] = set()

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        raise nodes.Impossible()


def undeclared_names(tree: nodes.Template) -> set[str]:
    """The names a parsed template reads from its context (Jinja's `meta.find_undeclared_variables`,
    which would evaluate constant parts, filters included, while it looks)."""
    tracker = _NameTracker(tree.environment)  # type: ignore[attr-defined]
    tracker.visit(tree)
    return tracker.undeclared_identifiers


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, within the bounds: its generated code calls the hooks below."""

    code_generator_class = BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})
    limits: Limits = LIMITS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, optimized=False, **kwargs)
        self.globals["range"] = bounded_range

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = budget_of(context)
        if operator == "**":
            budget.check_power(left, right)
        elif operator == "*":
            budget.check_multiply(left, right)
        elif operator == "%" and isinstance(left, str):
            budget.check_format(left, right)
        result = self.binop_table[operator](left, right)
        if isinstance(result, (list, tuple)) and operator in "+*":
            _remember_weight(budget, operator, left, right, result)
        return budget.built(result, f"`{operator}`")

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        budget = budget_of(__context)
        budget.step()
        if isinstance(__obj, LoopContext) and args:  # `loop(children)` in a recursive loop
            args = (__self.counted_loop(__context, args[0]), *args[1:])
        budget.touched(getattr(__obj, "__self__", None))  # a method of text or a list scans it, or may
        args = _checked_method_call(budget, __obj, args, kwargs)
        return budget.built(super().call(__context, __obj, *args, **kwargs), f"`{_name(__obj)}()`")

    def format_string(self, s: str, args: tuple[Any, ...], kwargs: dict[str, Any], format_func: Any = None) -> str:
        Budget(self.limits).check_format(s, (*args, *kwargs.values()))
        return super().format_string(s, args, kwargs, format_func)

    def counted_loop(self, context: Context, items: Iterable[Any]) -> Iterator[Any]:
        """A `for` loop's items, each one a step of the render's budget."""
        budget = budget_of(context)
        if isinstance(items, Undefined):
            yield from items  # fails as Jinja's loop would
            return
        for item in items:
            budget.step()
            yield item

    def bounded_literal(self, context: Context, value: Any) -> Any:
        """A list, tuple or mapping written in the template, or a `~` concatenation."""
        return budget_of(context).built(value, "a literal" if not isinstance(value, str) else "`~`")

    def touched(self, context: Context, value: Any) -> Any:
        """`value`, about to be compared or just sliced: its length spent (`Budget.touched`)."""
        return budget_of(context).touched(value)

    def bounded_output(self, context: Context, text: str) -> str:
        budget_of(context).spend_output(len(text))
        return text

    def printed(self, value: Any) -> Any:
        """How a `{{ }}` value prints: data as Kestra shows it (lists and mappings as JSON, booleans
        as `true`/`false`, null as nothing), anything else as a fixed text (`fixed_text`)."""
        if isinstance(value, (str, int, float, Undefined)) and not isinstance(value, bool):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return ""
        if isinstance(value, (list, dict, tuple)):
            return json_text(value, self.limits.output)
        if isinstance(value, PrintedAsText):
            return str(value)
        return fixed_text(value)


class PrintedAsText:
    """A context value whose text is its printed form (`now` printed without the call)."""


def bounded_filters(filters: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Every filter wrapped by `bounded_filter`."""
    return {name: bounded_filter(name, function) for name, function in filters.items()}


def bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` with its size arguments checked before it runs and its result after, against the
    render's budget (so the wrapper takes the context; the filter gets what it asked for)."""
    passes = _PassArg.from_obj(function)
    check = _FILTER_CHECKS.get(name)

    @wraps(function)
    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = budget_of(context)
        if name not in CONSTANT_TIME_FILTERS:
            budget.touched(value)
        if name not in STRUCTURAL_FILTERS and isinstance(value, (list, tuple, dict)):
            budget.stringified(value)
        if check is not None:
            value = check(budget, value, *args, **kwargs)
        first = {_PassArg.context: (context,), _PassArg.eval_context: (context.eval_ctx,),
                 _PassArg.environment: (context.environment,)}.get(passes, ()) if passes else ()
        return budget.built(function(*first, value, *args, **kwargs), f"`| {name}`")

    bounded.__dict__.pop("jinja_pass_arg", None)
    return pass_context(bounded)


def bounded_tests(tests: dict[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Every test whose cost grows with its input spending that input's length first."""
    return {name: test if name in CONSTANT_TIME_TESTS else _bounded_test(test) for name, test in tests.items()}


def _bounded_test(test: Callable[..., Any]) -> Callable[..., Any]:
    passes = _PassArg.from_obj(test)

    @wraps(test)
    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget_of(context).touched(value)
        first = {_PassArg.context: (context,), _PassArg.eval_context: (context.eval_ctx,),
                 _PassArg.environment: (context.environment,)}.get(passes, ()) if passes else ()
        return test(*first, value, *args, **kwargs)

    bounded.__dict__.pop("jinja_pass_arg", None)
    return pass_context(bounded)


def _join(budget: Budget, value: Any, separator: Any = "", attribute: Any = None) -> Any:
    items = value if isinstance(value, (Undefined, str)) else list(value)
    if isinstance(items, list):
        budget.check_join(items, separator)
    return items


def _indent(budget: Budget, value: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
    text = str(value)
    per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    budget.check_width(len(text) + per_line * (text.count("\n") + 1), "indent making a text")
    return value


def _wordwrap(budget: Budget, value: Any, width: Any = 79, break_long_words: bool = True, wrapstring: Any = None,
              *args: Any, **kwargs: Any) -> Any:
    text = str(value)
    breaks = len(text) // max(width, 1) + 1 if isinstance(width, int) else len(text)
    budget.check_width(len(text) + breaks * len(str(wrapstring or "\n")), "wordwrap making a text")
    return value


def _groups(budget: Budget, value: Any, count: Any = 1, *args: Any, **kwargs: Any) -> Any:
    budget.check_count(count, "groups or items per group")
    return value


def _center(budget: Budget, value: Any, width: Any = 80, *args: Any, **kwargs: Any) -> Any:
    budget.check_width(width, "center width")
    return value


def _replace(budget: Budget, value: Any, old: Any = "", new: Any = "", count: Any = None, *args: Any, **kwargs: Any) -> Any:
    budget.check_replace(str(value), old, new, -1 if count is None else count)
    return value


def _format(budget: Budget, value: Any, *args: Any, **kwargs: Any) -> Any:
    budget.check_format(str(value), (*args, *kwargs.values()))
    return value


_FILTER_CHECKS: dict[str, Callable[..., Any]] = {
    "join": _join, "indent": _indent, "wordwrap": _wordwrap, "batch": _groups, "slice": _groups,
    "center": _center, "replace": _replace, "format": _format,
}
"""Checks of filters whose result can be far bigger than their input; each returns the input to use."""


_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _checked_method_call(budget: Budget, method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Methods of text and numbers that take a size: checked before they run (`join`'s items are
    read once, here, and passed on as a list)."""
    method = getattr(method, "__wrapped__", method)  # the sandbox wraps `str.format` in its own formatter
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    if isinstance(owner, (str, bytes)):
        if name in ("format", "format_map") and isinstance(owner, str):
            values = list(args[0].values()) if name == "format_map" and args and isinstance(args[0], dict) else list(args)
            budget.check_format(owner, (*values, *kwargs.values()))
        elif name in _WIDTH_METHODS and args:
            budget.check_width(args[0], f"`{name}` width")
        elif name == "expandtabs":
            tab = args[0] if args else kwargs.get("tabsize", 8)
            tabs = owner.count("\t" if isinstance(owner, str) else b"\t")
            budget.check_width(len(owner) + tabs * tab if isinstance(tab, int) else 0, "expandtabs making a text")
        elif name == "replace" and len(args) >= 2 and isinstance(owner, str):
            budget.check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1))
        elif name == "join" and args:
            items = list(args[0])
            budget.check_join(items, owner)
            return (items, *args[1:])
        elif name == "translate" and args and isinstance(args[0], dict):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            budget.check_width(len(owner) * longest, "translate making a text")
    elif isinstance(owner, int) and not isinstance(owner, bool) and name == "to_bytes":
        budget.check_width(args[0] if args else kwargs.get("length", 1), "to_bytes length")
    return args


def _remember_weight(budget: Budget, operator: str, left: Any, right: Any, result: Any) -> None:
    """The weight of `a + b` or `a * n` from its operands' (without walking the new sequence)."""
    if operator == "+":
        weight = budget.weight(left) + budget.weight(right) - 1
    else:
        sequence, count = (left, right) if isinstance(left, (list, tuple)) else (right, left)
        weight = 1 + max(count, 0) * (budget.weight(sequence) - 1)
    budget.weights[id(result)] = (result, weight)


def _name(value: Any) -> str:
    return getattr(value, "__name__", None) or type(value).__name__
