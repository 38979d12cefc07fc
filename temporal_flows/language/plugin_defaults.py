"""Kestra's plugin defaults: `pluginDefaults` (older: `taskDefaults`) of a flow and of a defaults
file (`tflow ... --defaults FILE`), merged into the flow's tasks before they are checked.

As Kestra does (PluginDefaultService): every mapping of the flow with a `type`, at any depth (tasks
in flowables, `errors`, `finally`, triggers), takes the values of each default whose `type` names
its type or is the start of it (a prefix such as `io.kestra.plugin.scripts`). Values are merged
deeply (maps key by key, lists joined, a null never overrides): under the task's own (the task
wins) unless the default is `forced` (the default wins). Here a type also matches under any of its
names (`log`, `io.kestra.plugin.core.log.Log`, `io.kestra.core.tasks.log.Log`), and a prefix brings
a task only the properties its type has (Kestra drops the others when it reads the task).

Precedence: the task's own values win over every default that is not forced, the flow's defaults
over the file's, and within one list the first listed; forced values win over the task, the file's
over the flow's (as a parent namespace's forced defaults win in Kestra), the first listed first.
Merged values keep their place, so a problem in one points at the default's line in its file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from temporal_flows.language.source import YamlLimits, YList, YMap, parse_yaml, read_source
from temporal_flows.language.ynodes import new_list, new_map, node_count, put
from temporal_flows.model.flow import Location
from temporal_flows.model.keys import snake_case
from temporal_flows.model.problems import FlowError, Problem, did_you_mean
from temporal_flows.tasks import COMMON_PROPERTIES, TaskType, resolve_type
from temporal_flows.tasks.kestra_aliases import KESTRA_ALIASES, RESPELLED

DEFAULTS_KEYS = ("pluginDefaults", "taskDefaults")
"""A flow's (and a defaults file's) lists of defaults; `taskDefaults` is Kestra's name before 0.17."""
ENTRY_KEYS = ("type", "values", "forced")
NOT_DEFAULTED = ("id", "type")
"""What a default cannot set: a task's identity and what its defaults are matched against."""


@dataclass(frozen=True)
class PluginDefault:
    """One entry of a `pluginDefaults` list."""

    type: str
    values: YMap
    forced: bool
    size: int
    """Nodes of `values`: what merging it into one task costs."""


@dataclass(frozen=True)
class DefaultsFile:
    """The defaults of a `--defaults` file, already checked."""

    path: str
    defaults: tuple[PluginDefault, ...]


def read_entries(owner: YMap, problems: list[Problem]) -> list[PluginDefault]:
    """The defaults `owner` lists under `pluginDefaults` then `taskDefaults`; each problem in `problems`."""
    found: list[PluginDefault] = []
    for key in DEFAULTS_KEYS:
        if key not in owner or owner[key] is None:
            continue
        items = owner[key]
        if not isinstance(items, YList):
            problems.append(_at(owner.value_location(key), f"`{key}` must be a list of `{{type, values, forced}}`"))
            continue
        for item, location in zip(items, items.item_locations):
            entry = _entry(item, location, key, problems)
            if entry is not None:
                found.append(entry)
    return found


def _entry(item: Any, location: Location, key: str, problems: list[Problem]) -> PluginDefault | None:
    """One `{type, values, forced}`, checked; None (reported) when it cannot apply."""
    if not isinstance(item, YMap):
        problems.append(_at(location, f"an entry of `{key}` must be a mapping with `type` and `values`"))
        return None
    for name in item:
        if name not in ENTRY_KEYS:
            problems.append(_at(item.key_location(name), f"unknown property `{name}` of a plugin default"
                                f"{did_you_mean(name, list(ENTRY_KEYS))} (expected `type`, `values`, `forced`)"))
    kind, values, forced = item.get("type"), item.get("values"), item.get("forced", False)
    ok = True
    if not isinstance(kind, str) or not kind.strip():
        problems.append(_at(item.value_location("type") if "type" in item else item.location,
                            "a plugin default needs `type`: a task type, or the start of type names (e.g. `io.kestra.plugin.scripts`)"))
        ok = False
    if not isinstance(values, YMap):
        problems.append(_at(item.value_location("values") if "values" in item else item.location,
                            "a plugin default needs `values`: a mapping of property → value"))
        ok = False
    if not isinstance(forced, bool):
        problems.append(_at(item.value_location("forced"), f"`forced` must be true or false, got {forced!r}"))
        ok = False
    if not ok:
        return None
    for name in values:
        if snake_case(name) in NOT_DEFAULTED:
            problems.append(_at(values.key_location(name), f"a plugin default cannot set `{name}`"))
            ok = False
    task_type = resolve_type(kind)
    if task_type is not None:
        for name in values:
            if snake_case(name) not in NOT_DEFAULTED and not _known(task_type, kind, name):
                problems.append(_at(values.key_location(name), f"unknown property `{name}` for a `{task_type.name}` "
                                    f"task in the plugin default of `{kind}`{did_you_mean(snake_case(name), _names(task_type, kind))}"))
                ok = False
    return PluginDefault(kind, values, forced, node_count(values)) if ok else None


def load_defaults_file(path: str | Path) -> DefaultsFile:
    """A `--defaults` file: a mapping with `pluginDefaults` (or `taskDefaults`), or Kestra's global
    configuration (`kestra: {plugins: {defaults: [...]}}`); `FlowError` with every problem."""
    file = str(path)
    root = parse_yaml(read_source(path), file)
    problems: list[Problem] = []
    if not isinstance(root, YMap):
        raise FlowError([Problem(file, 1, 1, "a defaults file must be a mapping with `pluginDefaults`: a list of `{type, values, forced}`")])
    owner = _kestra_configuration(root) if "kestra" in root and not any(key in root for key in DEFAULTS_KEYS) else root
    for key in root:
        if key not in (*DEFAULTS_KEYS, "kestra"):
            problems.append(_at(root.key_location(key), f"unknown key `{key}` of a defaults file{did_you_mean(key, list(DEFAULTS_KEYS))} "
                                "(expected `pluginDefaults`)"))
    if owner is None or not any(key in owner for key in DEFAULTS_KEYS):
        problems.append(Problem(file, 1, 1, "a defaults file needs `pluginDefaults`: a list of `{type, values, forced}`"))
        raise FlowError(problems)
    defaults = read_entries(owner, problems)
    if problems:
        raise FlowError(problems)
    return DefaultsFile(file, tuple(defaults))


def _kestra_configuration(root: YMap) -> YMap | None:
    """`kestra.plugins.defaults` (older: `kestra.tasks.defaults`) as if written `pluginDefaults`."""
    kestra = root.get("kestra")
    for section in ("plugins", "tasks"):
        part = kestra.get(section) if isinstance(kestra, YMap) else None
        if isinstance(part, YMap) and "defaults" in part:
            owner = new_map(part.location)
            put(owner, DEFAULTS_KEYS[0], part["defaults"], part.key_location("defaults"), part.value_location("defaults"))
            return owner
    return None


def apply_defaults(root: YMap, file_defaults: DefaultsFile | None = None) -> tuple[YMap, list[Problem]]:
    """The flow `root` with its own defaults and the file's merged into every typed mapping; the
    problems of the flow's `pluginDefaults` (each at its place) and of a flow grown past the YAML
    bounds. Without defaults, `root` itself."""
    problems: list[Problem] = []
    own = read_entries(root, problems)
    layers = [own, list(file_defaults.defaults) if file_defaults else []]
    if not any(layers):
        return root, problems
    plan = _Plan(layers, YamlLimits.from_environment().max_nodes - node_count(root))
    merged = new_map(root.location)
    for key in root:
        value = root[key] if key in DEFAULTS_KEYS else plan.walk(root[key])
        put(merged, key, value, root.key_location(key), root.value_location(key))
    if plan.over:
        problems.append(_at(root.location, f"the plugin defaults make the flow more than {YamlLimits.from_environment().max_nodes:,} "
                                           "nodes ($TFLOW_MAX_YAML_NODES); expected fewer defaulted tasks or smaller defaults"))
    return merged, problems


class _Plan:
    """The defaults in the order they apply, and what merging them may still add (the YAML bound)."""

    def __init__(self, layers: list[list[PluginDefault]], budget: int):
        self.unforced = [entry for layer in layers for entry in layer if not entry.forced]
        self.forced = [entry for layer in layers for entry in reversed(layer) if entry.forced]  # the last applied wins
        self.budget = budget
        self.over = False

    def walk(self, value: Any) -> Any:
        """`value` with every typed mapping inside it defaulted, children first (as Kestra does)."""
        if isinstance(value, YList):
            return new_list(((self.walk(item), where) for item, where in zip(value, value.item_locations)), value.location)
        if not isinstance(value, YMap):
            return value
        walked = new_map(value.location)
        for key in value:
            put(walked, key, self.walk(value[key]), value.key_location(key), value.value_location(key))
        kind = walked.get("type")
        return self._defaulted(walked, kind) if isinstance(kind, str) and kind else walked

    def _defaulted(self, node: YMap, kind: str) -> YMap:
        task_type = resolve_type(kind)
        for entry in (*self.unforced, *self.forced):
            node = self._merge(node, entry, kind, task_type)
        return node

    def _merge(self, node: YMap, entry: PluginDefault, kind: str, task_type: TaskType | None) -> YMap:
        exact = _same_type(entry.type, kind)
        if self.over or not (exact or (task_type is not None and kind.startswith(entry.type))):
            return node
        self.budget -= entry.size
        if self.budget < 0:
            self.over = True
            return node
        keep = (lambda name: True) if task_type is None or exact else (lambda name: _known(task_type, kind, name))
        return _merged_task(node, entry, keep)  # values are copied in: no two tasks share a mapping


def _merged_task(node: YMap, entry: PluginDefault, keep: Callable[[str], bool]) -> YMap:
    """A task's mapping with a default's values merged in (under its own, or over them when the
    default is forced), keys matched in either spelling (`beforeCommands`, `before_commands`)."""
    values = copy.deepcopy(entry.values)
    result = new_map(node.location)
    for key in node:
        put(result, key, node[key], node.key_location(key), node.value_location(key))
    for name in values:
        if not keep(name):
            continue
        written = next((key for key in node if snake_case(key) == snake_case(name)), None)
        default_entry = _Entry(values[name], values.key_location(name), values.value_location(name))
        if written is None:
            put(result, name, default_entry.value, default_entry.key_location, default_entry.value_location)
            continue
        own_entry = _Entry(node[written], node.key_location(written), node.value_location(written))
        low, high = (own_entry, default_entry) if entry.forced else (default_entry, own_entry)
        value = merge_values(low.value, high.value)
        place = high if high.value is not None else low
        put(result, written, value, own_entry.key_location, place.value_location)
    return result


@dataclass(frozen=True)
class _Entry:
    value: Any
    key_location: Location
    value_location: Location


def merge_values(low: Any, high: Any) -> Any:
    """Kestra's deep merge (`MapUtils.deepMerge(low, high)`): `high` wins, a null never overrides,
    mappings merge key by key, lists join (`low`'s items, then `high`'s that `low` lacks)."""
    if high is None:
        return low
    if low is None:
        return high
    if isinstance(low, YMap) and isinstance(high, YMap):
        merged = new_map(high.location)
        for key in low:
            put(merged, key, low[key], low.key_location(key), low.value_location(key))
        for key in high:
            if key in low:
                winner = high if high[key] is not None else low
                put(merged, key, merge_values(low[key], high[key]), low.key_location(key), winner.value_location(key))
            else:
                put(merged, key, high[key], high.key_location(key), high.value_location(key))
        return merged
    if isinstance(low, YList) and isinstance(high, YList):
        extra = [(item, where) for item, where in zip(high, high.item_locations) if item not in low]
        return new_list([*zip(low, low.item_locations), *extra], low.location)
    return high


def _same_type(default_type: str, kind: str) -> bool:
    """The default names the mapping's type, under any of its names."""
    if default_type == kind:
        return True
    ours, theirs = resolve_type(default_type), resolve_type(kind)
    if ours is not None or theirs is not None:
        return ours is theirs and default_type not in RESPELLED and kind not in RESPELLED
    return KESTRA_ALIASES.get(default_type, default_type) == KESTRA_ALIASES.get(kind, kind)


def _known(task_type: TaskType, written_type: str, name: str) -> bool:
    return snake_case(name) in _names(task_type, written_type)


def _names(task_type: TaskType, written_type: str) -> list[str]:
    """The (snake_case) properties a task of `task_type`, written as `written_type`, may set."""
    names = [name for table in (COMMON_PROPERTIES, task_type.properties) for canonical, spec in table.items()
             for name in (canonical, *spec.aliases)]
    spelling = RESPELLED.get(written_type)
    if spelling is not None:
        names = [name for name in names if name not in spelling.renamed.values()] + list(spelling.renamed)
    return names


def _at(location: Location, message: str) -> Problem:
    return Problem(location.file, location.line, location.column, message)
