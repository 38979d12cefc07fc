"""Checks over a normalized flow: unique ids, expression syntax, references to tasks and names.

Shape and type checks happen while normalizing (they need the YAML); these need the whole flow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError, nodes

from temporal_flows.expressions.library import SECRET_NAME
from temporal_flows.expressions.templates import (NON_DETERMINISTIC_GLOBALS, ExpressionError, analyze, environment,
                                                  normalize, template_strings)
from temporal_flows.language.source import LoadedFlow
from temporal_flows.metadata import PAYLOAD_LIMIT_BYTES
from temporal_flows.model.flow import Location, Task
from temporal_flows.model.problems import Problem, did_you_mean
from temporal_flows.tasks import task_type


def validate(loaded: LoadedFlow) -> list[Problem]:
    flow = loaded.flow
    problems: list[Problem] = []
    first_seen: dict[str, Location] = {}
    for task_id, location in loaded.source_map.declared:
        if task_id in first_seen:
            message = f"duplicate task id `{task_id}` (first defined at line {first_seen[task_id].line})"
            problems.append(_at(location, flow.source_file, message))
        else:
            first_seen[task_id] = location
    known_ids = sorted(first_seen)
    for task in flow.all_tasks():
        problems.extend(_check_templates(task, loaded, known_ids))
    problems.extend(_check_size(loaded))
    return problems


def _check_size(loaded: LoadedFlow) -> list[Problem]:
    """The normalized flow is the workflow's input: Temporal refuses a payload over its limit."""
    flow = loaded.flow
    size = len(json.dumps(flow.to_input(), separators=(",", ":"), default=str).encode())
    if size <= PAYLOAD_LIMIT_BYTES:
        return []
    message = (
        f"the flow is too big to run: normalized it takes {size:,} bytes, over Temporal's "
        f"{PAYLOAD_LIMIT_BYTES:,}-byte limit for a workflow input ({len(flow.all_tasks()):,} tasks); "
        "split it into smaller flows"
    )
    return [Problem(flow.source_file, 1, 1, message)]


def _check_templates(task: Task, loaded: LoadedFlow, known_ids: list[str]) -> list[Problem]:
    problems = []
    noun = "step" if loaded.flow.dialect == "steps" else "task"
    fields = dict(task.properties)
    if task.run_if is not None:
        fields["run_if"] = task.run_if
    for prop, value in fields.items():
        task_location = task.location or Location(loaded.flow.source_file, 1, 1)
        location = loaded.source_map.locate(task_location, prop)
        for template in template_strings(value):
            try:
                referenced, unknown = analyze(template)
            except ExpressionError as error:
                problems.append(_at(location, loaded.flow.source_file, f"task `{task.id}`, `{prop}`: {error}"))
                continue
            if _foreign(task, prop):
                continue  # rendered against another run (a subflow's child): its tasks are not ours
            for task_id in sorted(referenced - set(known_ids)):
                hint = did_you_mean(task_id, known_ids)
                problems.append(_at(location, loaded.flow.source_file, f"{noun} `{task.id}`, `{prop}`: unknown {noun} `{task_id}` in `{template.strip()}`{hint}"))
            if task.id in referenced and not _late(task, prop):
                problems.append(_at(location, loaded.flow.source_file, f"{noun} `{task.id}`, `{prop}`: a {noun} cannot use its own outputs"))
            # Other unknown names fail their task when it renders (SPEC §3.6, Kestra's failed-first):
            # only what could never render the same twice is refused before the start.
            for name in sorted(unknown & set(NON_DETERMINISTIC_GLOBALS)):
                why = " (not deterministic, so not available in flows)"
                problems.append(_at(location, loaded.flow.source_file, f"task `{task.id}`, `{prop}`: unknown variable `{name}`{why} in `{template.strip()}`"))
            for name in secret_names(template):
                if not SECRET_NAME.fullmatch(name):
                    problems.append(_at(location, loaded.flow.source_file, f"{noun} `{task.id}`, `{prop}`: invalid secret name "
                                        f"{name!r} in `{template.strip()}`: expected letters, digits and '_' (at most 128, "
                                        "not starting with a digit), as in secret('API_TOKEN')"))
    return problems


@dataclass(frozen=True)
class SecretUse:
    """A `secret('NAME')` with a literal name in a task's template, where it is written."""

    name: str
    where: Problem
    """The task, property and place (its message names them), for a warning about the secret."""


def secret_names(template: str) -> list[str]:
    """The literal names of the `secret('NAME')` calls in `template` (none if it does not parse)."""
    if "secret" not in template:
        return []
    try:
        tree = environment().parse(normalize(template))
    except TemplateSyntaxError:
        return []
    return [call.args[0].value for call in tree.find_all(nodes.Call)
            if isinstance(call.node, nodes.Name) and call.node.name == "secret" and call.args
            and isinstance(call.args[0], nodes.Const) and isinstance(call.args[0].value, str)]


def secret_uses(loaded: LoadedFlow) -> list[SecretUse]:
    """Every valid secret name the flow's tasks use, once per task property, for `tflow validate`
    to say which of them the validating process could not find (a worker may still have them)."""
    uses = []
    for task in loaded.flow.all_tasks():
        fields = dict(task.properties) | ({"run_if": task.run_if} if task.run_if is not None else {})
        for prop, value in fields.items():
            names = dict.fromkeys(name for template in template_strings(value) for name in secret_names(template))
            location = loaded.source_map.locate(task.location or Location(loaded.flow.source_file, 1, 1), prop)
            for name in names:
                if SECRET_NAME.fullmatch(name):
                    uses.append(SecretUse(name, _at(location, loaded.flow.source_file, f"task `{task.id}`, `{prop}`")))
    return uses


def _foreign(task: Task, prop: str) -> bool:
    spec = task_type(task.type).properties.get(prop)
    return spec is not None and spec.foreign


def _late(task: Task, prop: str) -> bool:
    """Rendered after the task's children ran (a loop's `condition`): it may read the task's own outputs."""
    spec = task_type(task.type).properties.get(prop)
    return spec is not None and spec.late


def _at(location: Location | None, file: str, message: str) -> Problem:
    if location is None:
        return Problem(file, 1, 1, message)
    return Problem(location.file, location.line, location.column, message)


def not_runnable_yet(loaded: LoadedFlow) -> list[Problem]:
    """Tasks of a valid flow whose type cannot run in this version (see `TaskType.runs_yet`):
    `tflow run` refuses the flow with these rather than start it and fail half-way."""
    problems = []
    for task in loaded.flow.all_tasks():
        if not task_type(task.type).runs_yet:
            message = f"task `{task.id}`: `{task.type}` tasks are valid but cannot run in this version of tflow yet"
            problems.append(_at(task.location, loaded.flow.source_file, message))
    return problems
