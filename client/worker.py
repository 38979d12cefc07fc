"""Assembles a Temporal worker for flows: the interpreter workflow plus every activity.

Third-party modules the workflow uses are passed through the sandbox deliberately: Jinja2 (pure
template rendering) and MarkupSafe, PyYAML (pure parsing, for YAML inputs resolved in the workflow),
jq (a C extension, pure: templates' `| jq`, its clock/environment builtins disabled in
`pebble_library`), plus `activities.api` (frozen dataclasses only) and `activities.wire` (their JSON
form; its only state is a per-class cache of field nesting).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import storage
from activities.secrets import worker as task_settings
from client.codec import with_environment_codec
from client.temporal_cli import default_data_dir
from client.worker_log import TaskRunLog
from temporal_flows.engine.workflow import FlowWorkflow
from temporal_flows.metadata import CANCEL_GRACE, HEARTBEAT_THROTTLE

SANDBOX_PASSTHROUGH = ("jinja2", "markupsafe", "yaml", "jq", "activities.api", "activities.wire")
SANDBOX_UNRESTRICTED_MEMBERS = ("zoneinfo",)
"""Modules whose members the sandbox would proxy, unproxied: templates' `| date(timeZone=...)` needs
a real `ZoneInfo(key)` (a proxied one is no tzinfo for `datetime`); workflow code never calls the
members the default restricts (`ZoneInfo.clear_cache`, `from_file`, `reset_tzpath`)."""


def workflow_runner() -> SandboxedWorkflowRunner:
    restrictions = SandboxRestrictions.default.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
    members = restrictions.invalid_module_members
    for module in SANDBOX_UNRESTRICTED_MEMBERS:
        members = members.with_child_unrestricted(module)
    return SandboxedWorkflowRunner(restrictions=dataclasses.replace(restrictions, invalid_module_members=members))


def all_activities(task_runner: str = "auto") -> list[Any]:
    """Every activity; `task_runner` is the worker's setting for Docker tasks (auto | process)."""
    from activities.download import run_download
    from activities.http import run_http
    from activities.ledger import record_ledger_page
    from activities.render import render_stored
    from activities.task_activities import ProcessActivities

    return [*ProcessActivities(task_runner).activities(), run_http, run_download, record_ledger_page, render_stored]


def storage_root(given: str | Path | None = None) -> str | Path:
    """Where this worker keeps the runs' big values and files: `given` (`tflow worker --storage`),
    else `$TFLOW_STORAGE`, else `<data dir>/storage`: a directory (workers on several machines share
    one mount) or `s3://bucket/prefix` (`activities.storage.backends`), kept as written."""
    if given:
        return given
    if os.environ.get(storage.STORAGE_ENV):
        return os.environ[storage.STORAGE_ENV]
    return default_data_dir() / "storage"


def create_worker(
    client: Client,
    task_queue: str,
    *,
    max_concurrent_activities: int | None = None,
    activities: Sequence[Any] | None = None,
    graceful_shutdown_s: float = 30.0,
    task_runner: str = "auto",
    storage_dir: str | Path | None = None,
    secrets_path: str | Path | None = None,
    pass_env: Sequence[str] | None = None,
) -> Worker:
    """A worker that runs flows (the workflow) and their tasks (the activities) on `task_queue`,
    logging one line per task run (client.worker_log.TaskRunLog); its storage (one per process:
    the last worker created sets it) is `storage_root(storage_dir)`;
    its payloads encrypted with `client`'s codec, else with `TFLOW_CODEC_KEY(_FILE)`'s key if set.
    Its tasks' secrets come from `secrets_path` (`tflow worker --secrets`, else `TFLOW_SECRETS`) and
    `SECRET_<NAME>`; they get the worker's PATH, HOME, LANG, LC_*, TZ, TMPDIR and the variables
    `pass_env` names (globs; else `TFLOW_PASS_ENV`), nothing else of its environment (`activities.secrets`)."""
    from datetime import timedelta

    storage.configure(storage_root(storage_dir))
    task_settings.configure(secrets_path, pass_env)

    return Worker(
        with_environment_codec(client),
        task_queue=task_queue,
        workflows=[FlowWorkflow],
        activities=list(activities if activities is not None else all_activities(task_runner)),
        workflow_runner=workflow_runner(),
        interceptors=[TaskRunLog()],
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=max(timedelta(seconds=graceful_shutdown_s), CANCEL_GRACE),
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )
