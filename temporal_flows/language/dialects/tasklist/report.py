"""What normalizing one task-list flow file collects, shared by every module of the dialect: the
problems in the order they are found, and the source map of where each part was written."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporal_flows.language.source import SourceMap
from temporal_flows.model.flow import Location
from temporal_flows.model.problems import Problem


@dataclass
class Report:
    """One file's problems and source map, passed to every check so each adds where it finds; a
    problem stands in the file its location names (a plugin default's value may come from another)."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    source_map: SourceMap = field(default_factory=SourceMap)

    def problem(self, location: Location, message: str) -> None:
        self.problems.append(Problem(location.file, location.line, location.column, message))
