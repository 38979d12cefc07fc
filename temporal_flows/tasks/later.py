"""Task types of the language whose execution arrives in a later version (SPEC §3.2, §4): flows
using them validate, so editors and `tflow validate` accept them, but `tflow run` refuses to start
a flow containing one, naming the task, instead of running half of it."""

from __future__ import annotations

from temporal_flows.model import TaskKind
from temporal_flows.tasks.base import PropertySpec, TaskType

SCRIPT = TaskType(
    "script",
    TaskKind.RUNNABLE,
    ("io.kestra.plugin.scripts.python.Script", "io.kestra.plugin.scripts.python.Commands"),
    {
        "script": PropertySpec("string"),
        "commands": PropertySpec("string_list"),
        "before_commands": PropertySpec("string_list"),
        "interpreter": PropertySpec("string_list"),
        "python": PropertySpec("string"),
        "env": PropertySpec("mapping"),
        "task_runner": PropertySpec("task_runner"),
        "container_image": PropertySpec("string"),
        "docker": PropertySpec("mapping"),
        "input_files": PropertySpec("mapping"),
        "output_files": PropertySpec("string_list"),
        "warning_on_std_err": PropertySpec("boolean"),
    },
    "a Python script or commands",
    runs_yet=False,
)
