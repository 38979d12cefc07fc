"""Kestra's template filters, tests and functions that flows use and that map cleanly onto Python,
registered on the expression environment beside Jinja2's own.

All of them are pure: they run inside the workflow, so no clock, randomness, environment or I/O
(jq programs get the non-deterministic builtins replaced by errors).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import unicodedata
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, Callable

import jq
from jinja2 import pass_context
from jinja2.runtime import Context, Undefined
from temporalio import workflow

from temporal_flows.expressions.bounds import BUDGET_KEY, BudgetExceeded
from temporal_flows.expressions.sandbox import budget_of, json_text

MAX_RENDER_PASSES = 10
"""`render()` renders the result again while it is still a template, at most this many times."""

PATCH_JQ_ON_WORKER = "jq-on-worker"
"""Before it, `| jq` ran inside the workflow; since, a template using jq is rendered on a worker, in
a process killed past a time limit (`activities.render`), and jq never runs in the workflow."""

JQ_NOT_DETERMINISTIC = ("now", "localtime", "strflocaltime", "env", "input", "inputs", "input_filename", "get_search_list")
"""jq builtins that read the clock, the machine or the input stream: a replay could see another value."""
_JQ_PRELUDE = "".join(f'def {name}: error("`{name}` is not available in flows (not deterministic)"); ' for name in JQ_NOT_DETERMINISTIC)
_JQ_PRELUDE += "def debug: .; def debug(m): .; def stderr: .; null as $ENV | "  # no output to the worker's stderr, no environment


class TemplateFunctionError(Exception):
    """A filter, test or function refused its input; the render fails naming the expression."""


class JqNeedsWorker(TemplateFunctionError):
    """`jq` called in the workflow of a run that runs jq only on workers."""


def jq_runs_here() -> bool:
    """False inside the workflow of a run started since `PATCH_JQ_ON_WORKER`: jq has no bound the
    workflow could count (a run started before keeps running it here, so that it replays)."""
    return not (workflow.in_workflow() and workflow.patched(PATCH_JQ_ON_WORKER))


def _strict(value: Any) -> Any:
    """A strict undefined fails here, as any other use of it does."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


def plain(value: Any) -> Any:
    """The value as JSON data (tuples as lists, other objects as their text), as Kestra's Jackson sees it."""
    return json.loads(json.dumps(value, default=str))


# -- tests -------------------------------------------------------------------------------------

def is_defined(value: Any) -> bool:
    """Pebble's `defined`: a value that resolves and is not null."""
    return not isinstance(value, Undefined) and value is not None


def is_null(value: Any) -> bool:
    return _strict(value) is None


def is_empty(value: Any) -> bool:
    """Pebble's `empty`: null, or an empty string, list or mapping."""
    value = _strict(value)
    return value is None or (isinstance(value, (str, list, tuple, dict)) and len(value) == 0)


def is_json(value: Any) -> bool:
    """Kestra's `json` test: a mapping or list, or text that parses as JSON."""
    value = _strict(value)
    if isinstance(value, (dict, list)):
        return True
    if not isinstance(value, str):
        return False
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


# -- jq ----------------------------------------------------------------------------------------

@lru_cache(maxsize=512)
def _jq_program(expression: str) -> Any:
    """Compiled once per program text; the program alone first, so a syntax error quotes the user's text."""
    try:
        jq.compile(expression)
    except ValueError as error:
        raise TemplateFunctionError(f"invalid jq program `{expression}`: {_jq_message(error)}") from None
    try:
        return jq.compile(_JQ_PRELUDE + "(" + expression + "\n)")
    except ValueError as error:  # valid alone, not inside the prelude: an `import`/`include` (reads files)
        raise TemplateFunctionError(f"jq program `{expression}` cannot run in flows (modules are not available): {_jq_message(error)}") from None


def _jq_message(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def check_jq(expression: str) -> None:
    """Raise `TemplateFunctionError` when `expression` is not a jq program (used before the start)."""
    _jq_program(expression)


def jq_filter(value: Any, expression: Any) -> list[Any] | None:
    """Kestra's `| jq(expr)`: every result of the jq program on the value (text is parsed as JSON
    first), as a list; null stays null."""
    value = _strict(value)
    if value is None:
        return None
    if not isinstance(expression, str):
        raise TemplateFunctionError(f"jq expects a program as text, got {type(expression).__name__}")
    program = _jq_program(expression)
    if not jq_runs_here():
        raise JqNeedsWorker(f"jq `{expression}` runs only on a worker")
    if isinstance(value, str):
        try:
            data = json.loads(value)
        except ValueError as error:
            raise TemplateFunctionError(f"jq `{expression}`: the value {value[:200]!r} is not JSON ({error})") from None
    else:
        data = plain(value)
    try:
        return program.input_value(data).all()
    except ValueError as error:
        raise TemplateFunctionError(f"jq `{expression}` failed on {json.dumps(data)[:200]}: {_jq_message(error)}") from None


def jq_function(value: Any, expression: Any) -> list[Any] | None:
    """`jq(value, expr)`: the filter as a function."""
    return jq_filter(value, expression)


# -- JSON and text -----------------------------------------------------------------------------

def to_json(value: Any) -> str:
    """Kestra's `| json` / `| toJson`: the value as JSON text (objects that are not data as a fixed text)."""
    return json_text(_strict(value))


def from_json(text: Any) -> Any:
    """Kestra's `fromJson(text)`: JSON text parsed (null stays null)."""
    text = _strict(text)
    if text is None or not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError as error:
        raise TemplateFunctionError(f"fromJson: {text[:200]!r} is not JSON ({error})") from None


def keys(value: Any) -> list[Any]:
    """Kestra's `| keys`: a mapping's keys, or a list's indexes."""
    value = _strict(value)
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, (list, tuple)):
        return list(range(len(value)))
    raise TemplateFunctionError(f"keys expects a mapping or a list, got {type(value).__name__}")


def values(value: Any) -> list[Any]:
    """Kestra's `| values`: a mapping's values."""
    value = _strict(value)
    if isinstance(value, dict):
        return list(value.values())
    raise TemplateFunctionError(f"values expects a mapping, got {type(value).__name__}")


def slugify(value: Any) -> str:
    """Kestra's `| slugify`: lower-case ASCII words joined by `-`."""
    text = unicodedata.normalize("NFKD", str(_strict(value))).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def substring_before(value: Any, separator: str) -> str:
    text = str(_strict(value))
    return text.split(separator, 1)[0] if separator in text else text


def substring_before_last(value: Any, separator: str) -> str:
    text = str(_strict(value))
    return text.rsplit(separator, 1)[0] if separator in text else text


def substring_after(value: Any, separator: str) -> str:
    text = str(_strict(value))
    return text.split(separator, 1)[1] if separator in text else ""


def substring_after_last(value: Any, separator: str) -> str:
    text = str(_strict(value))
    return text.rsplit(separator, 1)[1] if separator in text else ""


def split(value: Any, delimiter: str, limit: int | None = None) -> list[str]:
    """Pebble's `| split(delimiter, limit)` (the delimiter is plain text here, not a regex)."""
    text = str(_strict(value))
    if limit is None or limit <= 0:
        return text.split(delimiter)
    return text.split(delimiter, limit - 1)


def base64_encode(value: Any) -> str:
    return base64.b64encode(str(_strict(value)).encode()).decode()


def base64_decode(value: Any) -> str:
    return base64.b64decode(str(_strict(value))).decode()


def sha256(value: Any) -> str:
    return hashlib.sha256(str(_strict(value)).encode()).hexdigest()


# -- render() ----------------------------------------------------------------------------------

def render_function(render_string: Callable[[str, dict[str, Any]], str]) -> Callable[..., Any]:
    """Kestra's `render(text)`: a value that itself holds a template, rendered with the same
    context, again while the result is still a template (at most MAX_RENDER_PASSES times)."""

    @pass_context
    def render(context: Context, template: Any, recursive: bool = True) -> Any:
        template = _strict(template)
        if not isinstance(template, str):
            return template
        budget = budget_of(context)
        if budget.depth >= budget.limits.render_depth:
            raise BudgetExceeded(f"render: nested more than {budget.limits.render_depth} deep (a value that renders itself?)")
        variables = {**context.get_all(), BUDGET_KEY: budget}
        budget.depth += 1
        try:
            for _ in range(MAX_RENDER_PASSES if recursive else 1):
                budget.check_template(template)
                rendered = render_string(template, variables)
                if rendered == template:
                    return rendered
                template = rendered
                if "{{" not in template and "{%" not in template:
                    return template
        finally:
            budget.depth -= 1
        if recursive:
            raise TemplateFunctionError(f"render: still a template after {MAX_RENDER_PASSES} passes: {template[:200]!r}")
        return template

    return render


# -- secret() ----------------------------------------------------------------------------------

SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
"""What `secret('NAME')` accepts: an environment variable's name (the worker reads `SECRET_<NAME>`)."""
SECRET_PLACEHOLDER = re.compile(r"~tflow-secret~([A-Za-z_][A-Za-z0-9_]{0,127})~([0-9a-f]{0,16})~")
"""`secret('NAME')` as workflow code renders it: `~tflow-secret~NAME~<run nonce>~`. Only a worker puts the
value in its place, just before the task uses it (`activities.secrets`). URL-safe characters only, so a
placeholder in a URL survives as it is."""


def secret_nonce(run_id: str) -> str:
    """The placeholder's tag for a Temporal run (its run id, which no input giver knows before the start):
    a worker resolves only its own run's placeholders, so text shaped like one in an input, an HTTP body
    or another run's output is never replaced by a secret's value. Empty outside any run."""
    return hashlib.sha256(f"tflow-secret:{run_id}".encode()).hexdigest()[:16] if run_id else ""


RENDERING_RUN: ContextVar[str] = ContextVar("tflow_rendering_run", default="")
"""The Temporal run id a render outside workflow and activity is for (a worker's render child process
sets it), so its `secret()` placeholders are the run's own."""


def current_run_id() -> str:
    """The Temporal run id of the workflow rendering (or of the activity's workflow, or RENDERING_RUN)."""
    from temporalio import activity, workflow

    if workflow.in_workflow():
        return workflow.info().run_id
    if activity.in_activity():
        return activity.info().workflow_run_id or ""
    return RENDERING_RUN.get()


def secret(name: Any) -> str:
    """Kestra's `secret('NAME')`: a placeholder naming the secret, never its value (values exist only
    on workers, see `activities.secrets`)."""
    name = _strict(name)
    if not isinstance(name, str) or not SECRET_NAME.fullmatch(name):
        raise TemplateFunctionError(f"secret: invalid secret name {name!r}: expected letters, digits and '_' "
                                    "(at most 128, not starting with a digit), as in secret('API_TOKEN')")
    return f"~tflow-secret~{name}~{secret_nonce(current_run_id())}~"


FILTERS: dict[str, Callable[..., Any]] = {
    "json": to_json, "toJson": to_json, "jsonEncode": to_json,
    "jq": jq_filter, "keys": keys, "values": values, "slugify": slugify,
    "substringBefore": substring_before, "substringBeforeLast": substring_before_last,
    "substringAfter": substring_after, "substringAfterLast": substring_after_last,
    "startsWith": lambda value, prefix: str(_strict(value)).startswith(prefix),
    "endsWith": lambda value, suffix: str(_strict(value)).endswith(suffix),
    "split": split, "rsort": lambda value: sorted(_strict(value), reverse=True),
    "base64encode": base64_encode, "base64decode": base64_decode, "sha256": sha256,
}
"""Kestra/Pebble filters, by the name flows use (Jinja2's own: first, last, length, upper, lower, join…)."""

TESTS: dict[str, Callable[..., bool]] = {
    "defined": is_defined, "undefined": lambda value: not is_defined(value),
    "null": is_null, "empty": is_empty, "json": is_json, "map": lambda value: isinstance(_strict(value), dict),
}
"""Pebble tests (`defined` replaces Jinja's: null counts as not defined, as in Pebble)."""

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "fromJson": from_json, "jsonDecode": from_json, "json": from_json, "jq": jq_function, "secret": secret,
}
"""Kestra functions without context; `render()` is added by the environment, `now()` and
`currentEachOutput()` come with each run's context."""
