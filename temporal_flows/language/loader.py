"""YAML text → typed flow: parsing with line/column for every node, then dialect detection.

`load_flow` is the single entry point; it raises `FlowError` with every problem found (syntax,
shape, references) so nothing starts from a flow that cannot run. A task-list flow's plugin defaults
(its own `pluginDefaults` and a `--defaults` file's) are merged into its tasks first, so every
check sees the tasks as they run.
"""

from __future__ import annotations

from pathlib import Path

from temporal_flows.language.dialects import steps
from temporal_flows.language.dialects.tasklist import flow as tasklist_flow
from temporal_flows.language.plugin_defaults import DefaultsFile, apply_defaults, load_defaults_file
from temporal_flows.language.source import LoadedFlow, SourceMap, YList, YMap, parse_yaml, read_source
from temporal_flows.language.validate import validate
from temporal_flows.model.problems import FlowError, Problem

__all__ = ["DefaultsFile", "LoadedFlow", "SourceMap", "YList", "YMap", "load_defaults_file", "load_flow", "load_flow_text",
           "parse_yaml"]


def load_flow_text(text: str, file: str, defaults: DefaultsFile | None = None) -> LoadedFlow:
    """Parse, normalize and validate flow source text, with the plugin defaults of `defaults` (a
    task-list flow's own win over them); raise `FlowError` with every problem."""
    root = parse_yaml(text, file)
    if not isinstance(root, YMap):
        raise FlowError([Problem(file, 1, 1, "a flow must be a mapping with `id`, `namespace` and `tasks`")])
    problems: list[Problem] = []
    if steps.is_step_flow(root):
        loaded, problems = steps.normalize_flow(root, file)
    else:
        root, problems = apply_defaults(root, defaults)
        loaded, found = tasklist_flow.normalize_flow(root, file)
        problems.extend(found)
    if loaded is not None:
        problems.extend(validate(loaded))
    if problems:
        raise FlowError(problems)
    assert loaded is not None
    return loaded


def load_flow(path: str | Path, defaults: DefaultsFile | None = None) -> LoadedFlow:
    """Read and load a flow file (see `load_flow_text`; `read_source` bounds its size)."""
    return load_flow_text(read_source(path), str(path), defaults)
