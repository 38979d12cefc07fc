"""Expressions: sandboxed, strict Jinja2 rendered inside the workflow, plus the static analysis
validation needs (syntax, referenced task ids, unknown variables).

Kestra's Pebble forms (`??`, `c ? a : b`, `is defined`, `| jq`, `render()`…) are read by the same
environment: `pebble.py` extends the lexer and parser, `pebble_library.py` adds the filters, tests
and functions.

Rendering is pure (no clock, no I/O), so it is safe in workflow code; `now()` is supplied by the
workflow's own clock through the context.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Callable, Mapping

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes

from temporal_flows.expressions import dates as pebble_dates, library as pebble_library
from temporal_flows.expressions.bounds import BUDGET_KEY, LIMITS, WORKER_LIMITS, Budget, BudgetExceeded, Limits
from temporal_flows.expressions.library import JqNeedsWorker, TemplateFunctionError, check_jq
from temporal_flows.expressions.pebble import PebbleSyntax
from temporal_flows.expressions.references import REF_KEY, REF_MARK, describe
from temporal_flows.expressions.sandbox import BoundedSandbox, bounded_filters, bounded_tests, json_text, undeclared_names

CONTEXT_ROOTS = frozenset(
    {
        "flow", "execution", "task", "taskrun", "parent", "parents", "inputs", "vars", "labels",
        "input", "outputs", "tasks", "flows", "output", "results", "summary", "winner", "error",
        "failed_tasks", "now", "currentEachOutput",
    }
)
"""Top-level names a template may use (SPEC §3.6)."""

PATCH_PEBBLE_TEMPLATES = "pebble-templates"
"""Before it, templates were plain Jinja2: `null`, `render()`, `flows`, `x is defined` on a null or
deeply missing value and `| default` on a deeply missing one rendered otherwise (mostly failed)."""

OUTPUT_ROOTS = ("outputs", "tasks", "flows")
"""Names under which earlier tasks' outputs are addressed by task id (`flows.<step>` for step flows)."""

_GO_STYLE_DOT = re.compile(r"(\{\{-?\s*)\.(?=[A-Za-z_])")


NON_DETERMINISTIC_GLOBALS = ("lipsum",)
"""Jinja2 globals removed from the environment: a replay would render something else (SPEC §3.6)."""
NON_DETERMINISTIC_FILTERS = ("random",)
"""Jinja2 filters removed for the same reason; `now()` is the workflow's clock, supplied per render."""


class ExpressionError(Exception):
    """A template that cannot be parsed or rendered; the message names the expression and why."""

    error_type = "ExpressionError"
    """The type of the task run's error when this fails it."""


class TemplateBudgetExceeded(ExpressionError):
    """A template went past a bound of `temporal_flows.expressions.bounds` (a loop, a size, a depth)."""

    error_type = "TemplateBudgetExceeded"


class WorkerNeeded(ExpressionError):
    """A template only a worker can render: task properties and runIf that need one are rendered by
    the `tflow.render` activity (`activities.render`); elsewhere the task fails saying why."""


class ReferenceTouched(WorkerNeeded):
    """A template read a stored value (a reference, see `temporal_flows.expressions.references`): the workflow
    cannot read storage."""

    def __init__(self, reference: dict[str, Any], template: str | None = None):
        self.reference = reference
        where = f"cannot render `{template.strip()}` here: " if template else ""
        super().__init__(f"{where}it reads the stored value {describe(reference)}, which only a worker can read "
                         "(task properties and runIf are rendered on one; other templates cannot read stored values)")


class JqOnWorker(WorkerNeeded):
    """A template ran `jq` in the workflow of a run that runs jq only on workers (a jq program has no
    bound a workflow could count; a worker runs it in a process it kills past a time limit)."""

    def __init__(self, template: str | None = None):
        where = f"cannot render `{template.strip()}` here: " if template else ""
        super().__init__(f"{where}it runs jq, which runs only on a worker "
                         "(task properties and runIf are rendered on one; other templates cannot use jq)")


class FlowEnvironment(BoundedSandbox):
    """`a.b` on a mapping reads its key first, as Kestra's Pebble does: `outputs.x.values` is the
    output named `values`, not the dictionary's `values` method."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return self._unwrap(obj[attribute])
        return self._unwrap(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        return self._unwrap(super().getitem(obj, argument))

    def _unwrap(self, value: Any) -> Any:
        return self.stored_value(value) if type(value) is dict and REF_KEY in value else value

    def stored_value(self, reference: dict[str, Any]) -> Any:
        """A reference a template reads: in the workflow it cannot be read (a worker renders it)."""
        raise ReferenceTouched(reference)

    def printable(self, value: Any) -> Any:
        """`finalize`: a printed container holding a reference prints the stored value."""
        text = self.printed(value)
        if isinstance(value, (list, dict)) and REF_MARK in text:
            return self.printed(self.with_stored_values(value))
        return text

    def with_stored_values(self, value: Any) -> Any:
        """`value` with every reference inside replaced by its stored value."""
        if type(value) is dict:
            if REF_KEY in value:
                return self.stored_value(value)
            return {key: self.with_stored_values(item) for key, item in value.items()}
        if type(value) is list:
            return [self.with_stored_values(item) for item in value]
        return value


class PebbleFlowEnvironment(PebbleSyntax, FlowEnvironment):
    """Pebble's syntax, tests, filters and functions too: what every flow renders with now."""


def as_text(value: Any) -> Any:
    """How a value prints, as in Kestra: lists and mappings as JSON, booleans as `true`/`false`,
    null as nothing (Jinja would print Python's `['a']`, `True`, `None`); objects that are not data
    inside a structure as a fixed text (`sandbox.fixed_text`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json_text(value)
    return value


@lru_cache(maxsize=2)
def environment(pebble: bool = True) -> FlowEnvironment:
    """Sandboxed, strict, deterministic and bounded: templates render inside the workflow, so every
    replay must render the same text (no randomness, no wall clock, no I/O), and no render may run
    away (`temporal_flows.expressions.bounds`).

    `pebble=False` is the environment runs started before Pebble forms were read (no
    `PATCH_PEBBLE_TEMPLATES` marker in their history) keep rendering with, so they replay the same.
    """
    return _configured(PebbleFlowEnvironment if pebble else FlowEnvironment, pebble)


def reading_environment(pebble: bool, read: Callable[[dict[str, Any]], Any]) -> FlowEnvironment:
    """The same environment for a worker, where a template reading a reference gets `read(reference)`
    and sizes are a worker's (`WORKER_LIMITS`)."""
    base = PebbleFlowEnvironment if pebble else FlowEnvironment

    class Reading(base):  # type: ignore[valid-type,misc]
        limits = WORKER_LIMITS

        def stored_value(self, reference: dict[str, Any]) -> Any:
            return read(reference)

    return _configured(Reading, pebble)


def _configured(kind: type[FlowEnvironment], pebble: bool) -> FlowEnvironment:
    env = kind(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.finalize = env.printable
    env.filters["json"] = pebble_library.to_json
    if pebble:
        env.filters.update(pebble_library.FILTERS)
        env.filters.update(pebble_dates.FILTERS)
        env.tests.update(pebble_library.TESTS)
        env.globals.update(pebble_library.FUNCTIONS)
        env.globals["render"] = pebble_library.render_function(render_string)
    for name in NON_DETERMINISTIC_GLOBALS:
        env.globals.pop(name, None)
    for name in NON_DETERMINISTIC_FILTERS:
        env.filters.pop(name, None)
    env.filters = bounded_filters(env.filters)
    env.tests = bounded_tests(env.tests)
    return env


def normalize(template: str) -> str:
    """Accept Go-template style `{{ .output }}` as `{{ output }}` (the `parallel` spec's form)."""
    return _GO_STYLE_DOT.sub(r"\1", template)


def is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


@lru_cache(maxsize=4096)
def _compiled(template: str, pebble: bool = True) -> Template:
    """Compiling is most of a render's cost; a for-each renders the same text once per item."""
    return environment(pebble).from_string(normalize(template))


def render_string(template: str, context: dict[str, Any], pebble: bool = True, env: FlowEnvironment | None = None) -> str:
    """Render one template string; raise `ExpressionError` naming the expression and the reason
    (`ReferenceTouched`/`JqOnWorker` when only a worker can render it, `TemplateBudgetExceeded`
    past a bound). `env`: another environment than the workflow's (a worker's `reading_environment`).
    The render spends the budget found in `context` (a `render()` inside it, or the rest of a
    value being rendered), else its own."""
    if not is_template(template):
        return template
    limits: Limits = env.limits if env is not None else LIMITS
    budget = context.get(BUDGET_KEY) if isinstance(context.get(BUDGET_KEY), Budget) else Budget(limits)
    try:
        compiled = _compiled(template, pebble) if env is None else env.from_string(normalize(template))
        return _bounded_render(compiled, context, budget)
    except ReferenceTouched as touched:
        raise ReferenceTouched(touched.reference, template) from None
    except (JqNeedsWorker, JqOnWorker):
        raise JqOnWorker(template) from None
    except (BudgetExceeded, TemplateBudgetExceeded, RecursionError, MemoryError) as error:
        raise TemplateBudgetExceeded(f"cannot render `{template.strip()}`: {_reason(error)}") from None
    except TemplateError as error:
        raise ExpressionError(f"cannot render `{template.strip()}`: {error.message or error}") from None
    except (TemplateFunctionError, ExpressionError) as error:  # ExpressionError: from a nested render()
        raise ExpressionError(f"cannot render `{template.strip()}`: {error}") from None
    except Exception as error:  # noqa: BLE001 - any error inside a template fails its task, never the worker
        raise ExpressionError(f"cannot render `{template.strip()}`: {type(error).__name__}: {error}") from None


def _bounded_render(compiled: Template, context: dict[str, Any], budget: Budget) -> str:
    """`compiled.render(context)`, spending `budget` (output pieces are counted as they are made)."""
    variables = dict(context)
    variables[BUDGET_KEY] = budget
    return compiled.environment.concat(compiled.root_render_func(compiled.new_context(variables)))  # type: ignore[attr-defined]


def _reason(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "nested too deep (recursion)"
    if isinstance(error, MemoryError):
        return "out of memory"
    return str(error)


def render(
    value: Any, context: dict[str, Any], pebble: bool = True, known: Mapping[str, Any] | None = None,
    budget: Budget | None = None,
) -> Any:
    """Render every string inside `value` (recursing into lists and mappings) with one budget; a
    string in `known` is already rendered (by a worker: it read stored values or ran jq)."""
    if budget is None:
        budget = Budget()
        context = {**context, BUDGET_KEY: budget}
    if isinstance(value, str):
        if known and value in known:
            return known[value]
        return render_string(value, context, pebble)
    if isinstance(value, list):
        return [render(item, context, pebble, known, budget) for item in value]
    if isinstance(value, dict):
        return {key: render(item, context, pebble, known, budget) for key, item in value.items()}
    return value


def template_strings(value: Any) -> list[str]:
    """Every template string inside `value`."""
    if isinstance(value, str):
        return [value] if is_template(value) else []
    if isinstance(value, list):
        return [found for item in value for found in template_strings(item)]
    if isinstance(value, dict):
        return [found for item in value.values() for found in template_strings(item)]
    return []


def analyze(template: str) -> tuple[set[str], set[str]]:
    """(task ids referenced through `outputs.<id>`/`tasks.<id>`, unknown top-level names).

    Raises `ExpressionError` on a syntax error.
    """
    env = environment()
    try:
        tree = env.parse(normalize(template))
    except TemplateSyntaxError as error:
        raise ExpressionError(f"invalid expression `{template.strip()}`: {error.message}") from None
    _check_filters_and_tests(tree, template)
    _check_jq_programs(tree, template)
    unknown = {name for name in undeclared_names(tree) if name not in CONTEXT_ROOTS and name not in env.globals}
    return _referenced_task_ids(tree), unknown


def _check_filters_and_tests(tree: nodes.Template, template: str) -> None:
    """Unknown filters and tests fail at validation, not when the task starts; a removed
    non-deterministic one says why it is gone."""
    env = environment()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        known = env.filters if isinstance(node, nodes.Filter) else env.tests
        if node.name in known:
            continue
        kind = "filter" if isinstance(node, nodes.Filter) else "test"
        why = " (not deterministic, so not available in flows)" if node.name in NON_DETERMINISTIC_FILTERS else ""
        raise ExpressionError(f"unknown {kind} `{node.name}`{why} in `{template.strip()}`")


def _check_jq_programs(tree: nodes.Template, template: str) -> None:
    """A jq program written as a literal (`| jq('.a')`, `jq(x, '.a')`) is compiled before the start."""
    programs = [
        node.args[0] for node in tree.find_all(nodes.Filter) if node.name == "jq" and node.args
    ] + [
        node.args[1] for node in tree.find_all(nodes.Call)
        if isinstance(node.node, nodes.Name) and node.node.name == "jq" and len(node.args) > 1
    ]
    for program in programs:
        if isinstance(program, nodes.Const) and isinstance(program.value, str):
            try:
                check_jq(program.value)
            except TemplateFunctionError as error:
                raise ExpressionError(f"{error} in `{template.strip()}`") from None


@lru_cache(maxsize=4096)
def calls_function(template: str, name: str) -> bool:
    """True when the template uses `name` as a filter or calls it (`| jq(...)`, `jq(...)`, `render(...)`);
    False for one that does not parse (it fails when rendered)."""
    try:
        tree = environment().parse(normalize(template))
    except TemplateSyntaxError:
        return False
    return any(node.name == name for node in tree.find_all(nodes.Filter)) or any(
        isinstance(node.node, nodes.Name) and node.node.name == name for node in tree.find_all(nodes.Call)
    )


def _referenced_task_ids(tree: nodes.Template) -> set[str]:
    found: set[str] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not (isinstance(target, nodes.Name) and target.name in OUTPUT_ROOTS):
            continue
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            found.add(node.arg.value)
    return found


def referenced_outputs(template: str, root: str = "flows") -> set[tuple[str, str | None]]:
    """(task id, output name) for every `<root>.<id>.<name>` (or `<root>['id']['name']`) the
    template reads, from its AST; the name is None where only `<root>.<id>` is read. A step flow's
    dependencies are inferred from these (SPEC §3.1). Raises `ExpressionError` on a syntax error."""
    try:
        tree = environment().parse(normalize(template))
    except TemplateSyntaxError as error:
        raise ExpressionError(f"invalid expression `{template.strip()}`: {error.message}") from None
    found: set[tuple[str, str | None]] = set()
    named: set[int] = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        inner = node.node
        if isinstance(inner, (nodes.Getattr, nodes.Getitem)) and _is_root(inner.node, root):
            task_id, name = _key_of(inner), _key_of(node)
            if task_id is not None:
                found.add((task_id, name))
                named.add(id(inner))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        if _is_root(node.node, root) and id(node) not in named and (task_id := _key_of(node)) is not None:
            found.add((task_id, None))
    return found


def _is_root(node: nodes.Node, root: str) -> bool:
    return isinstance(node, nodes.Name) and node.name == root


def _key_of(node: nodes.Getattr | nodes.Getitem) -> str | None:
    """The constant name a `.attr` or `['key']` reads, or None for a computed key."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
        return node.arg.value
    return None
