"""The type names Kestra still accepts besides its current ones, kept as data.

`KESTRA_ALIASES` is Kestra's own list: the `@Plugin(aliases = ...)` annotations of its core plugin
classes (kestra-io/kestra, `io.kestra.plugin.core.*`), each old name → the class's current name.
Kestra 0.17 moved its core tasks from `io.kestra.core.tasks.*` to `io.kestra.plugin.core.*` and
kept the old names as aliases; flows written before still run there, so they run here too. The
list holds the aliases of types this project does not run as well: `tests/unit/test_kestra_aliases.py`
walks it and checks that the alias of every type we support (one whose current name is an alias of
ours) resolves to that type, and that the others stay unknown types, with a did-you-mean.

`RESPELLED` covers Kestra types we run as one of ours although they name a property differently
(the shell `Script`'s `script` is our `commands`' one command).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

_FLOW = "io.kestra.plugin.core.flow."
_OLD_FLOWS = "io.kestra.core.tasks.flows."

KESTRA_ALIASES: dict[str, str] = {
    # tasks: flowables
    _OLD_FLOWS + "AllowFailure": _FLOW + "AllowFailure",
    _OLD_FLOWS + "Dag": _FLOW + "Dag",
    _OLD_FLOWS + "EachParallel": _FLOW + "EachParallel",
    _OLD_FLOWS + "EachSequential": _FLOW + "EachSequential",
    _OLD_FLOWS + "ForEachItem": _FLOW + "ForEachItem",
    _OLD_FLOWS + "If": _FLOW + "If",
    _OLD_FLOWS + "Parallel": _FLOW + "Parallel",
    _OLD_FLOWS + "Pause": _FLOW + "Pause",
    _OLD_FLOWS + "Sequential": _FLOW + "Sequential",
    _OLD_FLOWS + "Subflow": _FLOW + "Subflow",
    _OLD_FLOWS + "Flow": _FLOW + "Subflow",
    _OLD_FLOWS + "Switch": _FLOW + "Switch",
    _OLD_FLOWS + "Template": _FLOW + "Template",
    _OLD_FLOWS + "WorkingDirectory": _FLOW + "WorkingDirectory",
    _OLD_FLOWS + "Worker": _FLOW + "WorkingDirectory",
    _FLOW + "WaitFor": _FLOW + "LoopUntil",  # renamed in 0.21 (kestra-io/kestra#6976)
    # tasks: the rest of core
    "io.kestra.core.tasks.debugs.Return": "io.kestra.plugin.core.debug.Return",
    "io.kestra.core.tasks.debugs.Echo": "io.kestra.plugin.core.debug.Echo",
    "io.kestra.core.tasks.log.Log": "io.kestra.plugin.core.log.Log",
    "io.kestra.core.tasks.log.Fetch": "io.kestra.plugin.core.log.Fetch",
    "io.kestra.core.tasks.executions.Fail": "io.kestra.plugin.core.execution.Fail",
    "io.kestra.core.tasks.executions.Counts": "io.kestra.plugin.core.execution.Count",
    "io.kestra.core.tasks.executions.Labels": "io.kestra.plugin.core.execution.Labels",
    "io.kestra.core.tasks.storages.Concat": "io.kestra.plugin.core.storage.Concat",
    "io.kestra.core.tasks.storages.DeduplicateItems": "io.kestra.plugin.core.storage.DeduplicateItems",
    "io.kestra.core.tasks.storages.Delete": "io.kestra.plugin.core.storage.Delete",
    "io.kestra.core.tasks.storages.FilterItems": "io.kestra.plugin.core.storage.FilterItems",
    "io.kestra.core.tasks.storages.LocalFiles": "io.kestra.plugin.core.storage.LocalFiles",
    "io.kestra.core.tasks.storages.Reverse": "io.kestra.plugin.core.storage.Reverse",
    "io.kestra.core.tasks.storages.Size": "io.kestra.plugin.core.storage.Size",
    "io.kestra.core.tasks.storages.Split": "io.kestra.plugin.core.storage.Split",
    "io.kestra.core.tasks.storages.Write": "io.kestra.plugin.core.storage.Write",
    "io.kestra.core.tasks.storages.Purge": "io.kestra.plugin.core.execution.PurgeExecutions",
    "io.kestra.plugin.core.storage.Purge": "io.kestra.plugin.core.execution.PurgeExecutions",
    "io.kestra.core.tasks.storages.PurgeExecution": "io.kestra.plugin.core.storage.PurgeExecution",
    "io.kestra.core.tasks.states.Delete": "io.kestra.plugin.core.state.Delete",
    "io.kestra.core.tasks.states.Get": "io.kestra.plugin.core.state.Get",
    "io.kestra.core.tasks.states.Set": "io.kestra.plugin.core.state.Set",
    "io.kestra.core.tasks.templating.TemplatedTask": "io.kestra.plugin.core.templating.TemplatedTask",
    "io.kestra.core.tasks.trigger.Toggle": "io.kestra.plugin.core.trigger.Toggle",
    # tasks: HTTP moved from the fs plugin into core (0.18)
    "io.kestra.plugin.fs.http.Request": "io.kestra.plugin.core.http.Request",
    "io.kestra.plugin.fs.http.Download": "io.kestra.plugin.core.http.Download",
    # triggers
    "io.kestra.core.models.triggers.types.Schedule": "io.kestra.plugin.core.trigger.Schedule",
    "io.kestra.core.models.triggers.types.Flow": "io.kestra.plugin.core.trigger.Flow",
    "io.kestra.core.models.triggers.types.Webhook": "io.kestra.plugin.core.trigger.Webhook",
    "io.kestra.plugin.fs.http.Trigger": "io.kestra.plugin.core.http.Trigger",
}
"""Kestra's deprecated type name → the current name of the same class (both still accepted there)."""

PRE_017_WITHOUT_ALIAS: dict[str, str] = {
    "io.kestra.core.tasks.outputs.OutputValues": "io.kestra.plugin.core.output.OutputValues",
}
"""Pre-0.17 names of types we support that Kestra dropped without an alias; accepted here anyway,
so a flow written for Kestra 0.15-0.16 runs unchanged."""


@dataclass(frozen=True)
class Respelling:
    """How a Kestra type run as one of ours writes its properties differently from ours."""

    renamed: Mapping[str, str] = field(default_factory=dict)
    """Kestra's (snake_case) property → ours."""
    listed: tuple[str, ...] = ()
    """Our properties that take a list where Kestra's takes one text: the text becomes a one-item list."""
    implied: Mapping[str, Any] = field(default_factory=dict)
    """Values of our properties the Kestra type has by default, where the task sets none."""


RESPELLED: dict[str, Respelling] = {
    # the shell Script runs its `script` text with /bin/sh: our `commands`, one command that is the whole text
    "io.kestra.plugin.scripts.shell.Script": Respelling(renamed={"script": "commands"}, listed=("commands",)),
    # the scripts plugin's deprecated Bash: `commands` in bash, `exitOnFailed` is `failFast`, `files` are `inputFiles`
    "io.kestra.core.tasks.scripts.Bash": Respelling(
        renamed={"exit_on_failed": "fail_fast", "files": "input_files"},
        implied={"interpreter": ["/bin/bash", "-c"]},
    ),
}
"""Kestra type name (an alias of one of our types) → how its properties map onto that type's."""
