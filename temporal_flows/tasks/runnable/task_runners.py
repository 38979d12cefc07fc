"""`taskRunner` as the flow declares it (SPEC §4): checked by the dialect, turned into the
`TaskRunner` a runnable's activity request carries. The worker decides in the end
(`activities.task_runners`), so nothing here depends on the machine the workflow runs on.
"""

from __future__ import annotations

from typing import Any, Mapping

from activities.api import DOCKER_RUNNER, PROCESS_RUNNER, TaskRunner
from temporal_flows.model.keys import snake_case

PROCESS_RUNNERS = ("io.kestra.plugin.core.runner.Process", "Process", "process")
DOCKER_RUNNERS = ("io.kestra.plugin.scripts.runner.docker.Docker", "Docker", "docker")
PULL_POLICIES = ("IF_NOT_PRESENT", "ALWAYS", "NEVER")
DOCKER_OPTIONS = {
    "pull_policy": f"one of {', '.join(PULL_POLICIES)}",
    "volumes": "a list of `host:container` mounts",
    "user": "a user name or uid",
    "network_mode": "a Docker network name",
    "entry_point": "a list of strings",
    "host": "a Docker engine address (DOCKER_HOST)",
    "cpu": "a mapping with `cpus`",
    "memory": "a mapping with `memory`",
}
"""The Docker runner's properties (snake_case) and what each accepts."""
LEGACY_DOCKER_KEYS = {"pullPolicy": "pull_policy", "networkMode": "network_mode", "entryPoint": "entry_point"}
"""The camelCase keys of Kestra's older `docker:` property (read when the task starts, in the
workflow, where the dialect is not imported)."""


def docker_option_problems(options: Mapping[str, Any]) -> list[str]:
    """What is wrong with a Docker runner's properties (besides `type`), for the dialect."""
    problems = []
    for key, value in options.items():
        name = snake_case(str(key))
        if name == "type":
            continue
        if name not in DOCKER_OPTIONS:
            problems.append(f"unknown Docker task runner property `{key}` (supported: "
                            f"{', '.join(sorted(DOCKER_OPTIONS))})")
        elif not _valid_option(name, value):
            problems.append(f"Docker task runner property `{key}`: expected {DOCKER_OPTIONS[name]}")
    return problems


def _valid_option(name: str, value: Any) -> bool:
    if isinstance(value, str) and "{{" in value:
        return True  # rendered when the task starts
    if name == "pull_policy":
        return value in PULL_POLICIES
    if name in ("volumes", "entry_point"):
        return isinstance(value, list) and all(isinstance(item, str) for item in value)
    if name in ("cpu", "memory"):
        return isinstance(value, dict) and set(map(snake_case, value)) <= {"cpus", "memory", "memory_swap", "memory_reservation"}
    return isinstance(value, (str, int))


def normalized_runner(value: Mapping[str, Any]) -> dict[str, Any]:
    """A valid `taskRunner` as the task's `task_runner` property: `{type: process}` or
    `{type: docker, <snake_case options>}`."""
    if value.get("type") in PROCESS_RUNNERS:
        return {"type": PROCESS_RUNNER}
    return {"type": DOCKER_RUNNER, **{snake_case(str(key)): option for key, option in value.items() if key != "type"}}


def declared_runner(props: Mapping[str, Any], default_image: str) -> TaskRunner:
    """The runner a task's rendered properties declare: `task_runner` (default Process), its image
    from `containerImage`, else the legacy `docker.image`, else the type's default."""
    declared = dict(props.get("task_runner") or {"type": PROCESS_RUNNER})
    legacy = {LEGACY_DOCKER_KEYS.get(str(key), str(key)): value for key, value in (props.get("docker") or {}).items()}
    if declared.get("type") != DOCKER_RUNNER:
        return TaskRunner()
    options = {**legacy, **declared}
    entry_point = options.get("entry_point")
    return TaskRunner(
        type=DOCKER_RUNNER,
        image=str(props.get("container_image") or options.get("image") or default_image),
        pull_policy=str(options.get("pull_policy") or "IF_NOT_PRESENT"),
        volumes=[str(volume) for volume in options.get("volumes") or []],
        user=_text(options.get("user")),
        network_mode=_text(options.get("network_mode")),
        entry_point=[str(part) for part in entry_point] if entry_point is not None else None,
        host=_text(options.get("host")),
        cpus=_text((options.get("cpu") or {}).get("cpus")),
        memory=_text((options.get("memory") or {}).get("memory")),
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
