"""Finding the flows a run calls as subflows, before it starts.

Workflow code reads no files, so every flow a run may call (and every flow those call) is found
here, among the flow files (`*.yaml`, `*.yml`, recursively) of the given directories, loaded and
checked like the flow itself, and embedded in the run's input (`RunRequest.subflows`). A flow
that is not found, is found twice, does not load, or calls back into its callers is a problem
of the calling file and line, so nothing starts.

`namespace` and `flowId` must be written literally: which flow a templated one names is only known
when the task runs, after the start, when the files can no longer be read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from temporal_flows.expressions.templates import template_strings
from temporal_flows.language.loader import DefaultsFile, LoadedFlow, load_flow
from temporal_flows.language.source import YMap, parse_yaml, read_source
from temporal_flows.language.validate import not_runnable_yet
from temporal_flows.metadata import PAYLOAD_LIMIT_BYTES
from temporal_flows.model.flow import Location, Task
from temporal_flows.model.problems import FlowError, Problem
from temporal_flows.tasks.flowable.subflow import flow_key

SUBFLOW_TYPE = "subflow"
FLOW_FILE_SUFFIXES = (".yaml", ".yml")


def default_flows_dirs(loaded: LoadedFlow) -> list[Path]:
    """Where subflows are looked for when no directory is given: beside the calling flow's file."""
    return [Path(loaded.flow.source_file).resolve().parent]


def calls_subflows(loaded: LoadedFlow) -> bool:
    return any(task.type == SUBFLOW_TYPE for task in loaded.flow.all_tasks())


def resolve_subflows(loaded: LoadedFlow, flows_dirs: Sequence[Path] | None = None,
                     defaults: DefaultsFile | None = None) -> dict[str, dict[str, Any]]:
    """`namespace.flowId` → normalized flow (`Flow.to_input()`) of every flow `loaded` calls,
    directly or through other subflows, found in `flows_dirs` (default: the flow file's directory)
    and loaded with the plugin defaults the caller was loaded with (`defaults`).
    Raises `FlowError` naming the calling file and line of each problem."""
    if not calls_subflows(loaded):
        return {}
    finder = _Finder(FlowIndex([Path(folder) for folder in (flows_dirs or default_flows_dirs(loaded))]), defaults)
    finder.visit(loaded, (flow_key(loaded.flow.namespace, loaded.flow.id),))
    if finder.problems:
        raise FlowError(finder.problems)
    _check_size(loaded, finder.found)
    return finder.found


@dataclass
class FlowIndex:
    """The flow files of some directories by `namespace.id`, read once (only their `id` and
    `namespace`; a file that does not parse as a flow is skipped quietly)."""

    dirs: list[Path]
    _files: dict[str, list[Path]] | None = field(default=None, repr=False)

    def files(self, key: str) -> list[Path]:
        if self._files is None:
            self._files = {}
            for path in _flow_files(self.dirs):
                found = _identity(path)
                if found is not None and path not in self._files.setdefault(found, []):
                    self._files[found].append(path)
        return self._files.get(key, [])

    def describe(self) -> str:
        return ", ".join(str(folder) for folder in self.dirs)


def _flow_files(dirs: Iterable[Path]) -> list[Path]:
    """Every `*.yaml`/`*.yml` under `dirs`, skipping hidden directories (`.git`, `.venv`)."""
    found: list[Path] = []
    for folder in dirs:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder).parts
            if path.suffix in FLOW_FILE_SUFFIXES and path.is_file() and not any(part.startswith(".") for part in relative[:-1]):
                found.append(path.resolve())
    return found


def _identity(path: Path) -> str | None:
    try:
        root = parse_yaml(read_source(path), str(path))
    except FlowError:
        return None
    if not isinstance(root, YMap) or not isinstance(root.get("id"), str) or not isinstance(root.get("namespace"), str):
        return None
    return flow_key(root["namespace"], root["id"])


class _Finder:
    def __init__(self, index: FlowIndex, defaults: DefaultsFile | None = None):
        self.index = index
        self.defaults = defaults
        self.found: dict[str, dict[str, Any]] = {}
        self.problems: list[Problem] = []

    def visit(self, loaded: LoadedFlow, chain: tuple[str, ...]) -> None:
        """Resolve the subflows `loaded` calls; `chain` is the calls that led here (for cycles)."""
        for task in loaded.flow.all_tasks():
            if task.type != SUBFLOW_TYPE:
                continue
            where = _where(loaded, task, "flow_id")
            namespace, flow_id = task.properties.get("namespace"), task.properties.get("flow_id")
            templated = [name for name, value in (("namespace", namespace), ("flowId", flow_id)) if template_strings(value)]
            if templated:
                names = " and ".join(f"`{name}`" for name in templated)
                self._problem(where, f"task `{task.id}`: {names} must be written literally: the subflow is found "
                                     "before the run starts, when a template cannot be rendered yet")
                continue
            key = flow_key(str(namespace), str(flow_id))
            if key in chain:
                cycle = " → ".join(f"`{name}`" for name in (*chain[chain.index(key):], key))
                self._problem(where, f"task `{task.id}`: subflows call each other in a cycle: {cycle}")
                continue
            if key in self.found:
                continue
            child = self._load(task, key, where)
            if child is not None:
                self.found[key] = child.flow.to_input()
                self.visit(child, (*chain, key))

    def _load(self, task: Task, key: str, where: Location) -> LoadedFlow | None:
        files = self.index.files(key)
        if not files:
            self._problem(where, f"task `{task.id}`: subflow `{key}` not found: no flow with that namespace and id "
                                 f"among the *.yaml/*.yml files under {self.index.describe()} (add --flows-dir DIR)")
            return None
        if len(files) > 1:
            listed = ", ".join(str(path) for path in files)
            self._problem(where, f"task `{task.id}`: subflow `{key}` is defined by several files ({listed}); keep one")
            return None
        try:
            child = load_flow(files[0], self.defaults)
        except FlowError as error:
            self._problem(where, f"task `{task.id}`: subflow `{key}` ({files[0]}) is not a valid flow")
            self.problems.extend(error.problems)
            return None
        refused = not_runnable_yet(child)
        if refused:
            self._problem(where, f"task `{task.id}`: subflow `{key}` ({files[0]}) cannot run in this version")
            self.problems.extend(refused)
            return None
        return child

    def _problem(self, where: Location, message: str) -> None:
        self.problems.append(Problem(where.file, where.line, where.column, message))


def _where(loaded: LoadedFlow, task: Task, prop: str) -> Location:
    if task.location is None:
        return Location(loaded.flow.source_file, 1, 1)
    return loaded.source_map.locate(task.location, prop)


def _check_size(loaded: LoadedFlow, found: dict[str, dict[str, Any]]) -> None:
    """The subflows travel in the run's input (and each child's): all of it must fit one payload."""
    size = len(json.dumps([loaded.flow.to_input(), found], separators=(",", ":"), default=str).encode())
    if size > PAYLOAD_LIMIT_BYTES:
        message = (
            f"the flow and the {len(found)} subflow(s) it calls take {size:,} bytes normalized, over Temporal's "
            f"{PAYLOAD_LIMIT_BYTES:,}-byte limit for a workflow input; split them"
        )
        raise FlowError([Problem(loaded.flow.source_file, 1, 1, message)])
