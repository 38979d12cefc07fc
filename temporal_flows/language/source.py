"""YAML text → plain values that remember where they stand (file, line, column), so every
problem found later (shape, types, references) can name its place."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from temporal_flows.model.flow import Flow, Location
from temporal_flows.model.problems import FlowError, Problem


class YMap(dict):
    """A YAML mapping that remembers where it, its keys and its values stand."""

    location: Location
    key_locations: dict[str, Location]
    value_locations: dict[str, Location]

    def key_location(self, key: str) -> Location:
        return self.key_locations.get(key, self.location)

    def value_location(self, key: str) -> Location:
        return self.value_locations.get(key, self.location)


class YList(list):
    """A YAML sequence that remembers where it and each item stand."""

    location: Location
    item_locations: list[Location]


@dataclass
class SourceMap:
    """Locations of task properties, for problems found after normalization (e.g. in templates)."""

    properties: dict[tuple[Location, str], Location] = field(default_factory=dict)
    """(location of the task, property) → location of its value; keyed by place, not id, so
    two tasks that share an id by mistake are still told apart."""
    declared: list[tuple[str, Location]] = field(default_factory=list)
    """Every task id written in the file with its location, including tasks that did not
    normalize, so duplicate and reference checks still run on a flow with other problems."""
    declarations: dict[tuple[str, str], Location] = field(default_factory=dict)
    """(`inputs`/`outputs`/`triggers`, id) → where that entry stands, for problems found later
    (e.g. `tflow deploy` refusing a trigger type)."""

    def locate(self, task_location: Location, prop: str) -> Location:
        return self.properties.get((task_location, prop), task_location)


@dataclass
class LoadedFlow:
    flow: Flow
    source_map: SourceMap


class FlowYamlLoader(yaml.SafeLoader):
    """YAML 1.2 booleans, as Kestra (Jackson) reads flows: only true/false are booleans, so
    `id: off` or `value: yes` stay strings instead of YAML 1.1's surprising False/True."""


FlowYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
FlowYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _location(mark: yaml.Mark, file: str) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


class _Converter:
    """Turns a composed YAML node tree into YMap/YList/scalars, noting duplicate keys."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []
        self._constructor = FlowYamlLoader("")

    def convert(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node)
        if isinstance(node, yaml.SequenceNode):
            items = YList(self.convert(item) for item in node.value)
            items.location = _location(node.start_mark, self.file)
            items.item_locations = [_location(item.start_mark, self.file) for item in node.value]
            return items
        return self._constructor.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode) -> YMap:
        mapping = YMap()
        mapping.location = _location(node.start_mark, self.file)
        mapping.key_locations, mapping.value_locations = {}, {}
        for key_node, value_node in node.value:
            key = self.convert(key_node)
            key_location = _location(key_node.start_mark, self.file)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                self._problem(key_location, "mapping keys must be plain scalars")
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in mapping:
                first = mapping.key_locations[key]
                self._problem(key_location, f"duplicate key `{key}` (first defined at line {first.line})")
                continue
            mapping[key] = self.convert(value_node)
            mapping.key_locations[key] = key_location
            mapping.value_locations[key] = _location(value_node.start_mark, self.file)
        return mapping

    def _problem(self, location: Location, message: str) -> None:
        self.problems.append(Problem(location.file, location.line, location.column, message))


def parse_yaml(text: str, file: str) -> Any:
    """Parse YAML keeping locations; raise `FlowError` on syntax errors or duplicate keys."""
    try:
        node = yaml.compose(text, Loader=FlowYamlLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        reason = " ".join(part for part in (error.context, error.problem) if part)
        raise FlowError([Problem(file, line, column, f"invalid YAML: {reason}")]) from None
    except yaml.YAMLError as error:
        raise FlowError([Problem(file, 1, 1, f"invalid YAML: {error}")]) from None
    if node is None:
        raise FlowError([Problem(file, 1, 1, "the file is empty: expected a flow (a mapping with `tasks`)")])
    converter = _Converter(file)
    root = converter.convert(node)
    if converter.problems:
        raise FlowError(converter.problems)
    return root
