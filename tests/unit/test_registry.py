"""The registry of task types: every type declares the one hook its kind needs, every module of
`temporal_flows/tasks/` is registered, aliases are unique, and the language's modules import in
any order (no loader ↔ dialect ↔ validate circle)."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import temporal_flows.tasks as registry
from temporal_flows.model.flow import TaskKind
from temporal_flows.tasks import TASK_TYPES, TYPES, known_type_names, resolve_type
from temporal_flows.tasks.base import TaskType
from tests.support import REPO


@pytest.mark.parametrize("task_type", TYPES, ids=[task_type.name for task_type in TYPES])
def test_each_type_declares_the_hook_of_its_kind(task_type: TaskType):
    hooks = {
        "plan": task_type.plan is not None,
        "evaluate": task_type.evaluate is not None,
        "runnable": task_type.runnable is not None,
        "delegate": task_type.delegate is not None,
    }
    if not task_type.runs_yet:
        assert not any(hooks.values()), f"{task_type.name} cannot run yet but declares {hooks}"
        return
    expected = {TaskKind.FLOWABLE: "plan", TaskKind.PURE: "evaluate", TaskKind.RUNNABLE: "runnable"}[task_type.kind]
    if task_type.delegate is not None:
        expected = "delegate"
    assert [name for name, present in hooks.items() if present] == [expected]
    if task_type.kind is TaskKind.FLOWABLE:
        assert {"errors", "finally"} <= set(task_type.properties)


def test_every_module_of_the_package_is_registered():
    """Every TaskType declared anywhere in the package (kind subpackages included) is in the registry."""
    declared = set()
    for module_info in pkgutil.walk_packages(registry.__path__, "temporal_flows.tasks."):
        module = importlib.import_module(module_info.name)
        declared |= {value.name for value in vars(module).values() if isinstance(value, TaskType)}
    assert declared == set(TASK_TYPES)
    assert len(declared) > 15


def test_names_and_aliases_resolve_to_one_type_each():
    names = [name for task_type in TYPES for name in (task_type.name, *task_type.aliases)]
    assert len(names) == len(set(names)) == len(known_type_names())
    assert resolve_type("io.kestra.plugin.core.flow.EachSequential") is TASK_TYPES["foreach"]
    assert resolve_type("Parallel") is None


@pytest.mark.parametrize("module", ["temporal_flows.language.validate", "temporal_flows.language.dialects.tasklist.flow", "temporal_flows.language.loader",
                                    "temporal_flows.tasks", "temporal_flows.engine.workflow"])
def test_modules_import_first_without_a_circle(module: str):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
