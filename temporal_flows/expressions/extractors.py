"""Output extractors of runnable tasks (SPEC §4): `output: [{name, type: json|jmespath|text, value}]`.

`text` is the raw text (an http body, a command's stdout), `json` the whole text parsed as JSON,
`jmespath` the JMESPath expression `value` applied to the parsed JSON; each result lands at
`outputs.<task id>.<name>`. Declarations are checked when the flow loads (`extractor_problem`);
workers apply them to what the task produced (`extract`), so the text never travels through
Temporal. Pure: JSON and JMESPath only (jmespath is imported when used, never by the workflow).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

EXTRACTOR_TYPES = ("json", "jmespath", "text")
EXCERPT_CHARS = 300
"""How much of the text a failing extractor shows."""


class ExtractionError(Exception):
    """An extractor did not match what it was applied to; the message names it and shows an excerpt."""


@dataclass(frozen=True)
class Extractor:
    name: str
    type: str
    value: str | None = None


def extractor_problem(value: Any) -> str | None:
    """Why a declared `output` list is invalid, or None when every extractor is well formed."""
    if not isinstance(value, list):
        return "must be a list of {name, type: json | jmespath | text, value}"
    seen: set[str] = set()
    for index, item in enumerate(value):
        where = f"item {index + 1}"
        if not isinstance(item, dict):
            return f"{where} must be a mapping {{name, type, value}}"
        unknown = sorted(set(item) - {"name", "type", "value"})
        if unknown:
            return f"{where}: unknown keys {unknown} (expected name, type, value)"
        name, kind, expression = item.get("name"), item.get("type"), item.get("value")
        if not isinstance(name, str) or not name:
            return f"{where} needs a `name`"
        if name in seen:
            return f"extractor `{name}` is declared twice"
        seen.add(name)
        if kind not in EXTRACTOR_TYPES:
            return f"extractor `{name}`: `type` must be one of json, jmespath, text, got {kind!r}"
        if kind == "jmespath":
            problem = _jmespath_problem(expression)
            if problem:
                return f"extractor `{name}`: {problem}"
        elif expression is not None:
            return f"extractor `{name}`: `value` applies to jmespath only"
    return None


def _jmespath_problem(expression: Any) -> str | None:
    if not isinstance(expression, str) or not expression.strip():
        return "a jmespath extractor needs `value`, the JMESPath expression"
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        jmespath.compile(expression)
    except JMESPathError as error:
        return f"`{expression}` is not a JMESPath expression ({str(error).splitlines()[0]})"
    return None


def parse_extractors(value: Any) -> list[Extractor]:
    """The declared (already checked) extractors as dataclasses; none when absent."""
    return [Extractor(item["name"], item["type"], item.get("value")) for item in value or []]


def extract(extractors: list[Extractor], text: str, source: str, parsed: Any = None) -> dict[str, Any]:
    """Each extractor's value by name, applied to `text` (called `source` in messages); `parsed`
    is the text already parsed as JSON when the caller has it. Raises ExtractionError."""
    found: dict[str, Any] = {}
    for extractor in extractors:
        if extractor.type == "text":
            found[extractor.name] = text
            continue
        if parsed is None:
            parsed = _parse(extractor, text, source)
        if extractor.type == "json":
            found[extractor.name] = parsed
        else:
            found[extractor.name] = _search(extractor, parsed, text, source)
    return found


def _parse(extractor: Extractor, text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise ExtractionError(
            f"Output extractor `{extractor.name}` ({extractor.type}): the {source} is not JSON ({error}): {excerpt(text)}"
        ) from None


def _search(extractor: Extractor, parsed: Any, text: str, source: str) -> Any:
    import jmespath

    value = jmespath.search(extractor.value or "", parsed)
    if value is None:
        raise ExtractionError(
            f"Output extractor `{extractor.name}` (jmespath `{extractor.value}`) matched nothing in the {source}: {excerpt(text)}"
        )
    return value


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The start of `text`, marked when cut, for error messages."""
    shown = text.strip()
    if not shown:
        return "(empty)"
    return shown if len(shown) <= limit else shown[:limit] + f"... ({len(text)} chars)"
