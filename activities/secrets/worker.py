"""This worker's settings for its tasks: where its secrets are, and what of its environment a task gets
(PATH, HOME, LANG, LC_*, TZ, TMPDIR, `--pass-env` names; never TEMPORAL_*, TFLOW_CODEC_KEY, SECRET_*...)."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activities.secrets.store import SECRETS_ENV, SecretStore

PASS_ENV_ENV = "TFLOW_PASS_ENV"
"""Default of `tflow worker --pass-env`: names or globs, separated by commas or spaces."""
TASK_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_*", "TZ", "TMPDIR")
"""What every task gets of the worker's environment (besides its own `env` and `--pass-env`)."""


@dataclass
class WorkerSettings:
    """What `tflow worker --secrets/--pass-env` set for this process's tasks (one per process, like
    the storage root: the last worker created sets it)."""

    store: SecretStore = field(default_factory=SecretStore)
    pass_env: tuple[str, ...] = ()
    _exact: frozenset[str] = field(init=False, repr=False)
    _prefixes: tuple[str, ...] = field(init=False, repr=False)
    _globs: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        patterns = (*TASK_ENV_NAMES, *self.pass_env)
        wild = lambda text: any(char in text for char in "*?[")  # noqa: E731
        self._exact = frozenset(pattern for pattern in patterns if not wild(pattern))
        self._prefixes = tuple(pattern[:-1] for pattern in patterns if pattern.endswith("*") and not wild(pattern[:-1]))
        globs = [pattern for pattern in patterns if wild(pattern) and pattern[:-1] not in self._prefixes]
        self._globs = re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in globs)) if globs else None

    def passes(self, name: str) -> bool:
        """Whether a task gets the worker's variable `name` (TASK_ENV_NAMES, `pass_env`); checked for
        every variable of every task, so plain names and `PREFIX*` globs skip the regex."""
        if name in self._exact or name.startswith(self._prefixes):
            return True
        return self._globs is not None and self._globs.fullmatch(name) is not None


_settings = WorkerSettings()


def split_names(text: str | None) -> list[str]:
    """`--pass-env` values given as one text (`TFLOW_PASS_ENV`): separated by commas or spaces."""
    return [name for name in re.split(r"[\s,]+", text or "") if name]


def configure(secrets_path: str | Path | None = None, pass_env: Iterable[str] | None = None) -> WorkerSettings:
    """Set this process's secrets file or directory and the extra variables tasks get; None takes
    `TFLOW_SECRETS` / `TFLOW_PASS_ENV` from the environment."""
    global _settings
    if secrets_path is None:
        secrets_path = os.environ.get(SECRETS_ENV) or None
    names = list(pass_env) if pass_env is not None else split_names(os.environ.get(PASS_ENV_ENV))
    store = SecretStore(Path(secrets_path).expanduser() if secrets_path else None)
    _settings = WorkerSettings(store, tuple(names))
    return _settings


def settings() -> WorkerSettings:
    return _settings


def task_environment(task_env: Mapping[str, Any] | None = None) -> dict[str, str]:
    """A task process's environment: the allow-listed part of the worker's (TASK_ENV_NAMES and the
    `--pass-env` names or globs) plus the task's own `env` (values as text), which wins."""
    passes, environ = _settings.passes, os.environ
    env = {name: environ[name] for name in environ if passes(name)}  # only the passed values decoded
    if task_env:
        env.update({str(key): str(value) for key, value in task_env.items()})
    return env


