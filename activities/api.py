"""The contract between the interpreter workflow and the workers: activity names and payloads.

Frozen dataclasses only (no behaviour), so the workflow can import this module inside Temporal's
sandbox and both sides agree on the wire format. Annotations are real types, not postponed strings:
the SDK resolves a payload dataclass's type hints on every conversion, and strings cost a compile
and an eval each time (a third of a millisecond per `commands` task).
"""

from dataclasses import dataclass, field
from typing import Any

COMMANDS_ACTIVITY = "tflow.commands"
"""Activity type name of the shell `commands` runnable (see :mod:`activities.commands`)."""
SCRIPT_ACTIVITY = "tflow.script"
"""Activity type name of the Python `script` runnable (see :mod:`activities.script`)."""

PROCESS_RUNNER = "process"
DOCKER_RUNNER = "docker"
DOCKER_UNAVAILABLE_ERROR = "DockerUnavailable"
"""Error type of a Docker task on a worker that reaches no engine: trying again cannot help."""
OUTPUT_TOO_DEEP_ERROR = "OutputTooDeep"
"""Error type of a task whose output nests lists/objects past the worker's bound (`activities.bounds`)."""
RESULT_TOO_LARGE_ERROR = "ResultTooLarge"
"""Error type of a task whose output passes a size bound (items, vars, metrics, the whole result)."""
TOO_MANY_OUTPUT_FILES_ERROR = "TooManyOutputFiles"
"""Error type of `outputFiles` globs matching more paths than the worker collects."""
OUTPUT_FILES_ERROR = "OutputFilesError"
"""Error type of an `outputFiles` glob that is absolute or climbs out of the working directory (`..`)."""
NOT_RETRIED_ERRORS = frozenset({DOCKER_UNAVAILABLE_ERROR})
"""Error types a task's `retry` does not retry: the run fails at once instead of after its retries."""


@dataclass(frozen=True)
class TaskRunner:
    """Where a task's process runs, as the flow declared it (`taskRunner`, `containerImage`); the
    worker decides in the end (`tflow worker --task-runner process` runs Docker tasks as processes)."""

    type: str = PROCESS_RUNNER
    """`process` (on the worker) or `docker` (in `image`, through the docker CLI)."""
    image: str | None = None
    pull_policy: str = "IF_NOT_PRESENT"
    """IF_NOT_PRESENT | ALWAYS | NEVER (Kestra's names)."""
    volumes: list[str] = field(default_factory=list)
    """Extra `host:container[:mode]` mounts besides the working directory."""
    user: str | None = None
    network_mode: str | None = None
    entry_point: list[str] | None = None
    host: str | None = None
    """The Docker engine to use (DOCKER_HOST), else the docker CLI's default."""
    cpus: str | None = None
    """`docker run --cpus` (Kestra's `cpu.cpus`)."""
    memory: str | None = None
    """`docker run --memory` (Kestra's `memory.memory`, e.g. `512Mb`)."""


@dataclass(frozen=True)
class CommandsRequest:
    """Run shell `commands` in one shell, `set -e` style, in a working directory."""

    run_id: str
    task_id: str
    task_run_id: str
    commands: list[str]
    env: dict[str, str] = field(default_factory=dict)
    interpreter: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])
    working_directory: str | None = None
    """None: a fresh temporary directory, removed after the task."""
    fail_fast: bool = True
    """Prefix the script with `set -e`, so the first failing command fails the task (Kestra)."""
    timeout_s: float | None = None
    """The task's own `timeout`: past it the process is killed and the task fails (type `Timeout`)."""
    before_commands: list[str] = field(default_factory=list)
    """Run first, in the same shell (Kestra's `beforeCommands`)."""
    task_runner: TaskRunner = field(default_factory=TaskRunner)
    output: list[dict[str, Any]] = field(default_factory=list)
    """Output extractors ({name, type, value}) applied to stdout (its non-protocol lines)."""
    input_files: dict[str, Any] = field(default_factory=dict)
    """`inputFiles`: name → text, or a stored value's reference, written into the working directory first."""
    output_files: list[str] = field(default_factory=list)
    """`outputFiles`: globs (relative to the working directory) whose matches are kept in the run's storage."""
    root_run_id: str = ""
    """The run at the top of this run's subflow calls ("" = `run_id`): stored values are bound to it."""
    masked: list[str] = field(default_factory=list)
    """Values the worker masks (`****`) in the task's output, result and errors: the run's SECRET input
    values this request holds (`activities.secrets`)."""


@dataclass(frozen=True)
class CommandsResult:
    """What a finished `commands` task produced (also carried as details of its failure)."""

    exit_code: int
    vars: dict[str, Any] = field(default_factory=dict)
    """`outputs` merged from `::{json}::` lines."""
    metrics: list[dict[str, Any]] = field(default_factory=list)
    """`metrics` from `::{json}::` lines: {name, type, value, tags}."""
    logs: list[dict[str, Any]] = field(default_factory=list)
    """`logs` from `::{json}::` lines: {level, message}."""
    stdout_tail: str = ""
    stderr_tail: str = ""
    """The last lines of each stream (bounded), for error messages and `tflow status`."""
    log_lines: list[dict[str, Any]] = field(default_factory=list)
    """The task run's log: stdout (INFO), stderr (WARN) and protocol logs in order, each
    {timestamp, level, message}; bounded (see :mod:`activities.task_log`). Read back from the run's
    history by `tflow status --logs` and `tflow run --logs`."""
    extracted: dict[str, Any] = field(default_factory=dict)
    """What the output extractors found, by name."""
    output_files: dict[str, Any] | None = None
    """`outputFiles` matches: relative path → reference to the stored copy (None: none asked for)."""


HTTP_ACTIVITY = "tflow.http"
"""Activity type name of the `http` runnable (see :mod:`activities.http`)."""


@dataclass(frozen=True)
class HttpCall:
    """What any HTTP request a task sends is made of (the `http` and `download` tasks); the body is
    one of `body` (text), `json_body` (when `send_json`) or `form` (url-encoded, or multipart when
    `content_type` says so)."""

    run_id: str
    task_id: str
    task_run_id: str
    uri: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    send_json: bool = False
    json_body: Any = None
    form: dict[str, str] | None = None
    content_type: str | None = None
    follow_redirects: bool = True
    auth: dict[str, str] | None = None
    """{type: basic, username, password} or {type: bearer, token}."""
    connect_timeout_s: float | None = None
    read_timeout_s: float | None = None
    timeout_s: float | None = None
    """The task's own `timeout`, for the whole exchange (type `Timeout`)."""
    root_run_id: str = ""
    """The run at the top of this run's subflow calls ("" = `run_id`): stored values are bound to it."""
    masked: list[str] = field(default_factory=list)
    """Values the worker masks (`****`) in the task's output, result and errors: the run's SECRET input
    values this request holds (`activities.secrets`)."""


@dataclass(frozen=True)
class HttpRequest(HttpCall):
    """One HTTP request of an `http` task, its response read into the task's outputs."""

    allowed_status: list[list[int]] = field(default_factory=lambda: [[200, 299]])
    """Inclusive [low, high] ranges; a status outside every range fails the task."""
    max_body_bytes: int | None = None
    """A smaller cap than the worker's own on the response body."""
    output: list[dict[str, Any]] = field(default_factory=list)
    """Output extractors ({name, type, value}) applied to the response body."""


@dataclass(frozen=True)
class HttpResult:
    """A response (also carried as details of a failure on its status)."""

    status: int
    uri: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    """Lower-case name → every value (Kestra's form)."""
    body: Any = None
    """Parsed JSON when the response is JSON, else the text."""
    extracted: dict[str, Any] = field(default_factory=dict)


DOWNLOAD_ACTIVITY = "tflow.download"
"""Activity type name of the `download` runnable (see :mod:`activities.download`)."""
DOWNLOAD_MAX_SIZE = 1024 ** 3
"""Default bound of a downloaded body (1 GiB): past it the task fails (`ResponseTooLarge`)."""


@dataclass(frozen=True)
class DownloadRequest(HttpCall):
    """One HTTP request whose response body is streamed into the run's storage (a `download` task)."""

    max_size: int = DOWNLOAD_MAX_SIZE
    """Bytes the body may hold; past them the task fails and nothing is kept."""
    fail_on_empty: bool = True
    """An empty body fails the task (`EmptyResponse`), as Kestra's `failOnEmptyResponse`."""


@dataclass(frozen=True)
class DownloadResult:
    """A downloaded response: `file` is the stored body's reference (as an `outputFiles` match's)."""

    code: int
    file: dict[str, Any]
    length: int
    uri: str
    """The URL answered (after redirects), its query redacted."""
    headers: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ScriptRequest:
    """Run a Python `script` (written to a file in the working directory) or shell `commands`
    with Python at hand (Kestra's python Script and Commands); `before_commands` run first."""

    run_id: str
    task_id: str
    task_run_id: str
    script: str | None = None
    commands: list[str] = field(default_factory=list)
    before_commands: list[str] = field(default_factory=list)
    python: list[str] | None = None
    """The Python that runs `script`; None: the worker's own interpreter (`python` in a container)."""
    interpreter: list[str] = field(default_factory=lambda: ["/bin/sh", "-c"])
    env: dict[str, str] = field(default_factory=dict)
    task_runner: TaskRunner = field(default_factory=TaskRunner)
    timeout_s: float | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    """Output extractors, as for `commands` (applied to stdout)."""
    input_files: dict[str, Any] = field(default_factory=dict)
    """`inputFiles`, as for `commands`: written into the working directory first."""
    output_files: list[str] = field(default_factory=list)
    """`outputFiles`, as for `commands`: matches kept in the run's storage."""
    root_run_id: str = ""
    """The run at the top of this run's subflow calls ("" = `run_id`): stored values are bound to it."""
    masked: list[str] = field(default_factory=list)
    """Values the worker masks (`****`) in the task's output, result and errors: the run's SECRET input
    values this request holds (`activities.secrets`)."""


RENDER_ACTIVITY = "tflow.render"
"""Activity type name of rendering templates that read stored values (see :mod:`activities.render`)."""


@dataclass(frozen=True)
class RenderRequest:
    """Templates of one task run that read stored values, rendered on a worker (which can read them)."""

    run_id: str
    task_run_id: str
    templates: list[str]
    context: dict[str, Any]
    """The task's template context as data (`temporal_flows.expressions.references.context_for_worker`)."""
    pebble: bool = True
    root_run_id: str = ""
    """The run at the top of this run's subflow calls ("" = `run_id`): stored values are bound to it."""
