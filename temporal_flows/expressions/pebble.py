"""Pebble syntax (Kestra's template language) read by Jinja2: the lexer knows `?`, `??` and `???`,
and the parser turns Pebble's forms into Jinja2 nodes, so every later stage (static analysis, the
sandbox, the compiler) sees one ordinary tree.

The translation works on tokens and nodes, never on the text: a `?` or `:` inside a string literal
is part of the string token and is never touched.

| Pebble                       | becomes                                                         |
|------------------------------|-----------------------------------------------------------------|
| `c ? a : b` (nestable)       | `CondExpr(c, a, b)`; lowest precedence, right-associative        |
| `a ?? b`, `a ?? b ?? c`      | `coalesce`: `a` unless undefined (even deep inside) or null      |
| `a ??? b`                    | `coalesce_defined`: `b` only when `a` is undefined               |
| `x is [not] defined`         | the test on `attempt(x)`: a missing attribute anywhere is "not defined" |
| `x | default(d)`             | the filter on `attempt(x)`, for the same reason                  |
| `a equals b`, `a contains b` | `a == b`, `b in a`                                              |
| `null`                       | the constant None                                                |
| `{% elseif c %}`             | `{% elif c %}`                                                   |

`??` binds tighter than filters and tests, as in Kestra (`a ?? b | upper` is `(a ?? b) | upper`).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Callable, Iterable, Iterator

from jinja2 import nodes
from jinja2.compiler import Frame
from jinja2.exceptions import UndefinedError
from jinja2.lexer import TOKEN_BLOCK_BEGIN, TOKEN_NAME, TOKEN_OPERATOR, TOKEN_WHITESPACE, Lexer, Token, operator_re
from jinja2.parser import Parser
from jinja2.runtime import Undefined

from temporal_flows.expressions.sandbox import BoundedCodeGenerator

PEBBLE_OPERATORS = {"???": "undefined_coalesce", "??": "null_coalesce", "?": "question"}
"""Pebble operators Jinja's lexer does not know, longest first, and the token type each becomes."""

SAFE_TESTS = frozenset({"defined", "undefined"})
"""Tests that ask whether a value exists: their operand may fail to resolve without failing the
expression (Pebble's strict mode makes the same exception for `defined`)."""
SAFE_FILTERS = frozenset({"default", "d"})
"""Filters whose purpose is a missing value: their input is attempted, as for `is defined`."""


LAZY_HELPERS = ("coalesce", "coalesce_defined", "attempt")
"""Jinja2 forbids new node types, so the forms it lacks are calls of these environment methods
(`PebbleSyntax`), which `PebbleCodeGenerator` compiles with their operands as lazy closures."""


def coalesce_node(left: nodes.Expr, right: nodes.Expr, keep_null: bool, lineno: int) -> nodes.Call:
    """`left ?? right`: `left` if it resolves to a value that is not null (or, with `keep_null`,
    that is defined), else `right`, evaluated only then."""
    helper = "coalesce_defined" if keep_null else "coalesce"
    return nodes.Call(nodes.EnvironmentAttribute(helper), [left, right], [], None, None, lineno=lineno)


def attempt_node(node: nodes.Expr) -> nodes.Call:
    """`node`'s value, or an undefined value carrying the reason when it cannot be resolved."""
    return nodes.Call(nodes.EnvironmentAttribute("attempt"), [node], [], None, None, lineno=node.lineno)


def _helper_call(node: nodes.Node) -> str | None:
    """The helper's name when `node` is one of the calls above."""
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.EnvironmentAttribute):
        if node.node.name in LAZY_HELPERS:
            return node.node.name
    return None


class PebbleLexer(Lexer):
    """Jinja's lexer, with `???`, `??` and `?` as operators inside `{{ }}` and `{% %}`, and Pebble's
    `elseif` tag read as Jinja's `elif`."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        extra = "|".join(re.escape(operator) for operator in PEBBLE_OPERATORS)
        pattern = re.compile(f"{extra}|{operator_re.pattern}")
        replaced = 0
        for state, rules in self.rules.items():
            replaced += sum(rule.pattern is operator_re for rule in rules)
            self.rules[state] = [
                rule._replace(pattern=pattern) if rule.pattern is operator_re else rule for rule in rules
            ]
        if not replaced:  # a Jinja2 release that lexes operators otherwise: fail loudly, not silently
            raise RuntimeError("cannot extend this Jinja2 version's lexer with Pebble's operators")

    def wrap(self, stream: Iterable[tuple[int, str, str]], name: str | None = None, filename: str | None = None) -> Iterator[Token]:
        def typed() -> Iterator[tuple[int, str, str]]:
            previous = None
            for lineno, token, value in stream:
                if token == TOKEN_OPERATOR and value in PEBBLE_OPERATORS:
                    token = PEBBLE_OPERATORS[value]
                elif token == TOKEN_NAME and value == "elseif" and previous == TOKEN_BLOCK_BEGIN:
                    value = "elif"
                if token != TOKEN_WHITESPACE:
                    previous = token
                yield lineno, token, value

        return super().wrap(typed(), name, filename)


class PebbleParser(Parser):
    """Jinja's parser, reading Pebble's operators, literals and tests too (see the module's table)."""

    def parse_condexpr(self) -> nodes.Expr:
        lineno = self.stream.current.lineno
        node = super().parse_condexpr()
        if self.stream.skip_if("question"):
            when_true = self.parse_condexpr()
            self.stream.expect("colon")
            when_false = self.parse_condexpr()
            node = nodes.CondExpr(node, when_true, when_false, lineno=lineno)
        return node

    def parse_compare(self) -> nodes.Expr:
        node = super().parse_compare()
        while self.stream.current.test_any("name:equals", "name:contains"):
            token = next(self.stream)
            if token.value == "equals":
                node = nodes.Compare(node, [nodes.Operand("eq", self.parse_math1())], lineno=token.lineno)
            else:  # lower than `==` in Pebble: `a contains b == c` is `a contains (b == c)`
                node = nodes.Compare(super().parse_compare(), [nodes.Operand("in", node)], lineno=token.lineno)
        return node

    def parse_primary(self, with_namespace: bool = False) -> nodes.Expr:
        token = self.stream.current
        if token.test("name:null"):
            next(self.stream)
            return nodes.Const(None, lineno=token.lineno)
        return super().parse_primary(with_namespace)

    def parse_postfix(self, node: nodes.Expr) -> nodes.Expr:
        node = super().parse_postfix(node)
        while self.stream.current.type in ("null_coalesce", "undefined_coalesce"):
            token = next(self.stream)
            right = self.parse_unary(with_filter=False)  # takes the rest of a chain: a ?? (b ?? c)
            node = coalesce_node(node, right, token.type == "undefined_coalesce", token.lineno)
        return node

    def parse_test(self, node: nodes.Expr) -> nodes.Expr:
        parsed = super().parse_test(node)
        test = parsed.node if isinstance(parsed, nodes.Not) else parsed
        if isinstance(test, nodes.Test) and test.name in SAFE_TESTS:
            test.node = attempt_node(test.node)
        return parsed

    def parse_filter(self, node: nodes.Expr | None, start_inline: bool = False) -> nodes.Expr | None:
        parsed = super().parse_filter(node, start_inline)
        current = parsed
        while isinstance(current, nodes.Filter):
            if current.name in SAFE_FILTERS and current.node is not None:
                current.node = attempt_node(current.node)
                current = current.node.args[0]
            else:
                current = current.node
        return parsed


class PebbleCodeGenerator(BoundedCodeGenerator):
    """Compiles the `coalesce`/`attempt` calls with each operand as a closure, so that it is
    evaluated lazily and its failure can be caught; every other call as Jinja does."""

    def visit_Call(self, node: nodes.Call, frame: Frame, **kwargs: Any) -> None:
        helper = _helper_call(node)
        if helper is None:
            super().visit_Call(node, frame, **kwargs)
            return
        self.write(f"environment.{helper}(")
        for operand in node.args:
            self.write("(lambda: ")
            self.visit(operand, frame)
            self.write("), ")
        self.write(")")


class PebbleSyntax:
    """Mixin for a Jinja2 environment: Pebble's lexer, parser and code generator, and the run-time
    helpers the generated code calls."""

    code_generator_class = PebbleCodeGenerator

    @cached_property
    def lexer(self) -> Lexer:  # type: ignore[override] - Jinja's shared lexer cache would mix dialects
        return PebbleLexer(self)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return PebbleParser(self, source, name, filename).parse()  # type: ignore[arg-type]

    def attempt(self, evaluate: Callable[[], Any]) -> Any:
        try:
            return evaluate()
        except UndefinedError as error:
            return self.undefined(hint=error.message)  # type: ignore[attr-defined]

    def coalesce(self, left: Callable[[], Any], right: Callable[[], Any]) -> Any:
        value = self.attempt(left)
        return right() if value is None or isinstance(value, Undefined) else value

    def coalesce_defined(self, left: Callable[[], Any], right: Callable[[], Any]) -> Any:
        value = self.attempt(left)
        return right() if isinstance(value, Undefined) else value
