"""YAML text → plain values that remember where they stand (file, line, column), so every
problem found later (shape, types, references) can name its place.

Every YAML this project reads (flows, subflow files, `--inputs-file`, YAML/JSON input values)
goes through `FlowYamlLoader`, which bounds what a hostile text can cost: its size, its nesting
depth and the number of nodes it expands to (aliases included), so a "billion laughs" file or a
deeply nested one is refused in milliseconds, naming its line, instead of eating memory or the stack.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from temporalio import workflow
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, ScalarEvent
from yaml.parser import Parser
from yaml.reader import Reader, ReaderError
from yaml.scanner import Scanner
from yaml.resolver import Resolver

from temporal_flows.model.flow import Flow, Location
from temporal_flows.model.problems import FlowError, Problem

MAX_YAML_BYTES = 10 * 1024 * 1024
"""Default size limit of one YAML text or file (`$TFLOW_MAX_YAML_BYTES` overrides it); a file
is refused from its first MAX + 1 bytes, before it is parsed."""
MAX_YAML_NODES = 100_000
"""Default limit on the nodes one YAML text expands to, every alias counted at its anchor's full
size (`$TFLOW_MAX_YAML_NODES` overrides it): a few thousand tasks' worth, parsed in about a second."""
MAX_YAML_DEPTH = 100
"""Mappings and lists inside each other, at most (`$TFLOW_MAX_YAML_DEPTH` overrides it): far more
than a flow needs, far less than Python's stack allows the code that walks the data."""
MAX_BYTES_ENV, MAX_NODES_ENV, MAX_DEPTH_ENV = "TFLOW_MAX_YAML_BYTES", "TFLOW_MAX_YAML_NODES", "TFLOW_MAX_YAML_DEPTH"


@dataclass(frozen=True)
class YamlLimits:
    """The bounds in force: the defaults above unless the environment sets a positive number."""

    max_bytes: int = MAX_YAML_BYTES
    max_nodes: int = MAX_YAML_NODES
    max_depth: int = MAX_YAML_DEPTH

    @classmethod
    def from_environment(cls) -> "YamlLimits":
        """Inside a workflow the defaults, always: the sandbox refuses `os.environ`, and a bound that
        differed between workers would make a replay decide differently."""
        if workflow.in_workflow():
            return cls()
        return cls(_env_int(MAX_BYTES_ENV, MAX_YAML_BYTES), _env_int(MAX_NODES_ENV, MAX_YAML_NODES),
                   _env_int(MAX_DEPTH_ENV, MAX_YAML_DEPTH))


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip().replace("_", "")
    return int(text) if text.isdigit() and int(text) > 0 else default


class YamlLimitError(yaml.MarkedYAMLError):
    """A YAML text past one of the `YamlLimits` (a `YAMLError`, so every caller that refuses bad
    YAML refuses this too); `problem` says what was found and what was expected."""

    def __init__(self, problem: str, mark: yaml.Mark | None = None):
        super().__init__(problem=problem, problem_mark=mark)


def too_big(size: str, limit: int, what: str = "YAML") -> str:
    return f"{size} bytes of {what}, over the {limit:,}-byte limit (${MAX_BYTES_ENV}); expected a smaller text"


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


class _BoundedComposer(Composer):
    """PyYAML's composer, counting: nesting depth, and nodes as they would be once aliases are
    expanded (an alias counts its anchor's whole size; one inside its own anchor is refused)."""

    def _start_bounds(self, stream: Any) -> None:
        self.limits = YamlLimits.from_environment()
        if isinstance(stream, (str, bytes)) and len(stream) * (4 if isinstance(stream, str) else 1) > self.limits.max_bytes:
            size = len(stream.encode("utf-8", "surrogatepass") if isinstance(stream, str) else stream)
            if size > self.limits.max_bytes:
                raise YamlLimitError(too_big(f"{size:,}", self.limits.max_bytes))
        self._depth = 0
        self._nodes = 0
        self._anchor_sizes: dict[str, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self.check_event(AliasEvent):
            if event.anchor in self.anchors:
                size = self._anchor_sizes.get(event.anchor)
                if size is None:
                    raise YamlLimitError(f"the alias `*{event.anchor}` stands inside its own anchor `&{event.anchor}` "
                                         "(a structure that contains itself); expected data without cycles",
                                         event.start_mark)
                self._count(size, event, f"the alias `*{event.anchor}` ({size:,} nodes) makes the YAML expand to ")
            return super().compose_node(parent, index)
        if self._depth >= self.limits.max_depth and not self.check_event(ScalarEvent):
            raise YamlLimitError(f"mappings and lists nested more than {self.limits.max_depth} levels deep "
                                 f"(${MAX_DEPTH_ENV}); expected a shallower structure", event.start_mark)
        self._count(1, event, "the YAML has ")
        before, anchor = self._nodes, event.anchor
        self._depth += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        if anchor is not None:
            self._anchor_sizes[anchor] = self._nodes - before + 1
        return node

    def _count(self, nodes: int, event: Any, what: str) -> None:
        self._nodes += nodes
        if self._nodes > self.limits.max_nodes:
            raise YamlLimitError(f"{what}more than {self.limits.max_nodes:,} nodes (${MAX_NODES_ENV}); "
                                 "expected fewer (write fewer aliases or split the data)", event.start_mark)


class PurePythonLoader(_BoundedComposer, Reader, Scanner, Parser, SafeConstructor, Resolver):
    """The bounded loader on PyYAML's own scanner and parser (where PyYAML has no libyaml)."""

    def __init__(self, stream: Any):
        self._start_bounds(stream)
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)


_BoundedLoader: type = PurePythonLoader
if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class LibyamlLoader(_BoundedComposer, CParser, SafeConstructor, Resolver):  # type: ignore[misc,valid-type]
        """The bounded loader on libyaml's scanner and parser: about 3x faster; the same nodes."""

        def __init__(self, stream: Any):
            self._start_bounds(stream)
            try:
                CParser.__init__(self, stream)
            except UnicodeEncodeError as error:  # a lone surrogate: refused as PyYAML's own reader does
                raise ReaderError("<unicode string>", error.start, ord(stream[error.start]), "unicode",
                                  "special characters are not allowed") from None
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    _BoundedLoader = LibyamlLoader


class FlowYamlLoader(_BoundedLoader):  # type: ignore[valid-type,misc]
    """Safe YAML, bounded (`YamlLimits`), with YAML 1.2 booleans as Kestra (Jackson) reads flows:
    only true/false are booleans, so `id: off` or `value: yes` stay strings instead of YAML 1.1's
    surprising False/True."""


FlowYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
FlowYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_source(path: str | Path) -> str:
    """A YAML file's text, refused (`FlowError` at line 1) when it cannot be read or is over the
    size limit: at most limit + 1 bytes are read, so a huge file or a device costs nothing."""
    file, limit = str(path), YamlLimits.from_environment().max_bytes
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            size = os.stat(path).st_size
            shown = f"{size:,}" if size > limit else f"more than {limit:,}"  # a device or a pipe: no size
            raise FlowError([Problem(file, 1, 1, too_big(shown, limit))])
        return data.decode("utf-8")
    except OSError as error:
        raise FlowError([Problem(file, 1, 1, f"cannot read the file: {error.strerror or error}")]) from None
    except UnicodeDecodeError as error:
        raise FlowError([Problem(file, 1, 1, f"cannot read the file: {error}")]) from None


def parse_json_text(text: str) -> Any:
    """JSON text → data, within the same `YamlLimits` as YAML (size, depth, values), so a JSON
    input costs no more than a YAML one; `ValueError` saying which bound it passed."""
    limits = YamlLimits.from_environment()
    if len(text) > limits.max_bytes:
        raise ValueError(too_big(f"{len(text.encode('utf-8', 'surrogatepass')):,}", limits.max_bytes, "JSON"))
    try:
        data = json.loads(text)
    except RecursionError:  # json's own bound (the interpreter's stack) comes first for the deepest
        raise ValueError(f"JSON nested more than {limits.max_depth} levels deep (${MAX_DEPTH_ENV})") from None
    pending, values = [(data, 1)], 0
    while pending:  # no recursion: the walk itself must not meet the stack's bound
        value, depth = pending.pop()
        values += 1
        if values > limits.max_nodes:
            raise ValueError(f"JSON with more than {limits.max_nodes:,} values (${MAX_NODES_ENV})")
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        if items is None:
            continue
        if depth > limits.max_depth:
            raise ValueError(f"JSON nested more than {limits.max_depth} levels deep (${MAX_DEPTH_ENV})")
        pending.extend((item, depth + 1) for item in items)
    return data


def _location(mark: yaml.Mark, file: str) -> Location:
    return Location(file, mark.line + 1, mark.column + 1)


MERGE_TAG = "tag:yaml.org,2002:merge"


class _Converter:
    """Turns a composed YAML node tree into YMap/YList/scalars, noting duplicate keys, merging
    `<<: *anchor` entries (keys written in the mapping win) and noting scalars no constructor takes."""

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
        try:
            return self._constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as error:  # e.g. an unknown `!tag`, `!!int abc`
            self._problem(_location(node.start_mark, self.file), f"invalid YAML: {error.problem}")
            return None
        except (ValueError, OverflowError) as error:  # e.g. an integer past Python's 4,300 digits
            self._problem(_location(node.start_mark, self.file), f"invalid YAML: a scalar no value can hold ({error})")
            return None

    def _mapping(self, node: yaml.MappingNode) -> YMap:
        mapping = YMap()
        mapping.location = _location(node.start_mark, self.file)
        mapping.key_locations, mapping.value_locations = {}, {}
        merges = [value_node for key_node, value_node in node.value if key_node.tag == MERGE_TAG]
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
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
        for merged in merges:
            self._merge(mapping, merged)
        return mapping

    def _merge(self, mapping: YMap, merged: yaml.Node) -> None:
        """`<<: *a` or `<<: [*a, *b]`: the keys of a (then b) the mapping does not have yet."""
        sources = merged.value if isinstance(merged, yaml.SequenceNode) else [merged]
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                self._problem(_location(source.start_mark, self.file), "`<<` merges a mapping or a list of mappings")
                continue
            converted = self._mapping(source)
            for key, value in converted.items():
                if key not in mapping:
                    mapping[key] = value
                    mapping.key_locations[key] = converted.key_locations[key]
                    mapping.value_locations[key] = converted.value_locations[key]

    def _problem(self, location: Location, message: str) -> None:
        self.problems.append(Problem(location.file, location.line, location.column, message))


def parse_yaml(text: str, file: str) -> Any:
    """Parse YAML keeping locations; raise `FlowError` on syntax errors, duplicate keys or a
    text past the `YamlLimits`."""
    try:
        node = yaml.compose(text, Loader=FlowYamlLoader)
    except YamlLimitError as error:
        mark = error.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise FlowError([Problem(file, line, column, str(error.problem))]) from None
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
