"""A task-list flow's own keys (`id`, `namespace`, `labels`, `variables`, the task lists, `retry`,
the declarations) and `normalize_flow`, the dialect's entry point: YAML mapping → `Flow`.

Keys may be camelCase or snake_case; they are normalized to snake_case. Each problem names the
file, line and column of the offending key or value and what was expected.
"""

from __future__ import annotations

from temporal_flows.expressions.templates import as_text
from temporal_flows.language.dialects.tasklist.declarations import declarations
from temporal_flows.language.dialects.tasklist.execution import retry
from temporal_flows.language.dialects.tasklist.report import Report
from temporal_flows.language.dialects.tasklist.tasks import TaskNormalizer
from temporal_flows.language.dialects.tasklist.values import INVALID, identifier, mapping
from temporal_flows.language.source import LoadedFlow, YList, YMap
from temporal_flows.model.flow import Flow
from temporal_flows.model.keys import snake_case
from temporal_flows.model.problems import Problem, did_you_mean

FLOW_KEYS = (
    "id", "namespace", "description", "labels", "variables", "inputs", "outputs", "triggers", "tasks", "errors",
    "finally", "retry", "pluginDefaults", "taskDefaults",
)
"""`pluginDefaults`/`taskDefaults` are merged into the tasks before this dialect reads them (`plugin_defaults`)."""
FLOW_KEYS_NOT_YET_SUPPORTED = ("concurrency",)


def normalize_flow(root: YMap, file: str) -> tuple[LoadedFlow | None, list[Problem]]:
    """Normalize a task-list flow; returns the flow (None if unusable) and the problems found."""
    report = Report(file)
    flow = _flow(report, root)
    loaded = LoadedFlow(flow, report.source_map) if flow is not None else None
    return loaded, report.problems


def _flow(report: Report, root: YMap) -> Flow | None:
    """The flow, every key checked in the order problems are reported; None when id, namespace or
    tasks are unusable."""
    _check_flow_keys(report, root)
    tasks_of = TaskNormalizer(report)
    flow_id = identifier(report, root, "id", "flow")
    namespace = identifier(report, root, "namespace", "flow")
    tasks = tasks_of.task_list(root, "tasks", owner="the flow")
    description = root.get("description")
    if description is not None and not isinstance(description, str):
        report.problem(root.value_location("description"), "`description` must be a string")
    labels = _labels(report, root)
    variables = mapping(report, root, "variables") or {}
    errors = tasks_of.task_list(root, "errors", owner="the flow") if "errors" in root else []
    final = tasks_of.task_list(root, "finally", owner="the flow") if "finally" in root else []
    flow_retry = retry(report, root["retry"], root.value_location("retry")) if "retry" in root else None
    inputs = declarations(report, root, "inputs")
    outputs = declarations(report, root, "outputs")
    triggers = declarations(report, root, "triggers")
    if flow_id is None or namespace is None or tasks is None:
        return None
    return Flow(
        id=flow_id,
        namespace=namespace,
        tasks=tasks,
        description=description if isinstance(description, str) else None,
        labels=dict(labels),
        variables=dict(variables),
        source_file=report.file,
        errors=errors or [],
        finally_tasks=final or [],
        retry=flow_retry if flow_retry is not INVALID else None,
        inputs=inputs,
        outputs=outputs,
        triggers=triggers,
    )


def _check_flow_keys(report: Report, root: YMap) -> None:
    """Every root key is a flow property: an unknown one gets the closest name, a known Kestra one "not yet"."""
    for key in root:
        if key in FLOW_KEYS:
            continue
        if snake_case(key) in FLOW_KEYS_NOT_YET_SUPPORTED or key in FLOW_KEYS_NOT_YET_SUPPORTED:
            report.problem(root.key_location(key), f"flow property `{key}` is not supported yet")
        else:
            hint = did_you_mean(key, list(FLOW_KEYS))
            report.problem(root.key_location(key), f"unknown flow property `{key}`{hint}")


def _labels(report: Report, root: YMap) -> dict[str, str]:
    """`labels` as a mapping, or Kestra's list form `[{key, value}]`; values as text."""
    value = root.get("labels")
    if value is None:
        return {}
    expected = "`labels` must be a mapping of name → text, or a list of `{key, value}`"
    if isinstance(value, YList):
        pairs = []
        for item, location in zip(value, value.item_locations):
            if not isinstance(item, dict) or set(item) != {"key", "value"} or not isinstance(item["key"], str):
                report.problem(location, f"{expected}; this entry is not a `{{key, value}}`")
            else:
                pairs.append((item["key"], item["value"]))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        report.problem(root.value_location("labels"), expected)
        return {}
    labels = {}
    for name, text in pairs:
        if isinstance(text, (dict, list)) or text is None:
            report.problem(root.value_location("labels"), f"label `{name}` must be text, got {type(text).__name__ if text is not None else 'null'}")
        else:
            labels[str(name)] = str(as_text(text))
    return labels
