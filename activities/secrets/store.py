"""Where a worker's secret values are: its `--secrets` file or directory, then `SECRET_NAME` (base64)."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from temporalio.exceptions import ApplicationError

SECRET_ENV_PREFIX = "SECRET_"
"""The worker's environment variable of secret NAME is SECRET_NAME, its value base64 (Kestra OSS)."""
SECRETS_ENV = "TFLOW_SECRETS"
"""Default of `tflow worker --secrets` (and `tflow validate --secrets`)."""
YAML_SUFFIXES = (".yaml", ".yml", ".json")
NOT_FOUND_ERROR = "SecretNotFound"
INVALID_ERROR = "SecretInvalid"


def fail(message: str, kind: str) -> ApplicationError:
    """A non-retryable failure of the task run (a secret is missing or unreadable)."""
    return ApplicationError(message, type=kind, non_retryable=True)


@dataclass
class SecretStore:
    """The worker's secrets: `path` (a directory of files named NAME, a YAML/JSON mapping file, or a
    `NAME=value` env file; plain values) first, then `SECRET_NAME` (base64) in `environ`."""

    path: Path | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    _parsed: tuple[tuple[int, int], dict[str, str]] | None = field(default=None, repr=False)

    def lookup(self, name: str) -> str | None:
        """The value of secret `name`, or None where it is set nowhere; a value that cannot be read
        (bad base64, a list in the YAML file) is SecretInvalid."""
        if self.path is not None:
            found = self._from_path(name)
            if found is not None:
                return found
        encoded = self.environ.get(SECRET_ENV_PREFIX + name)
        if encoded is None:
            return None
        try:
            return base64.b64decode("".join(encoded.split()), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise fail(f"the environment variable {SECRET_ENV_PREFIX}{name} is not valid base64 of UTF-8 text "
                        f"(Kestra's form: `export {SECRET_ENV_PREFIX}{name}=$(printf %s VALUE | base64 -w0)`)",
                        INVALID_ERROR) from None

    def places(self, name: str) -> str:
        """Where `lookup(name)` looks, for messages."""
        env = f"the environment variable {SECRET_ENV_PREFIX}{name} (base64)"
        if self.path is None:
            return f"{env}; no secrets file or directory was given (--secrets, {SECRETS_ENV})"
        where = f"the file {self.path / name}" if self.path.is_dir() else f"the key {name} of {self.path}"
        return f"{where}, then {env}"

    def _from_path(self, name: str) -> str | None:
        path = self.path
        assert path is not None
        if path.is_dir():
            try:
                text = (path / name).read_text(encoding="utf-8")
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return None
            except (OSError, UnicodeDecodeError) as error:
                raise fail(f"cannot read secret {name} from {path / name}: {error}", INVALID_ERROR) from None
            return text.removesuffix("\n").removesuffix("\r")
        return self._file_values().get(name)

    def _file_values(self) -> dict[str, str]:
        """The secrets file's values, parsed again only when it changed."""
        path = self.path
        assert path is not None
        try:
            stat = path.stat()
            if self._parsed is not None and self._parsed[0] == (stat.st_mtime_ns, stat.st_size):
                return self._parsed[1]
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise fail(f"cannot read the secrets file {path}: {error}", INVALID_ERROR) from None
        values = _yaml_values(text, path) if path.suffix.lower() in YAML_SUFFIXES else _env_file_values(text)
        self._parsed = ((stat.st_mtime_ns, stat.st_size), values)
        return values


def _yaml_values(text: str, path: Path) -> dict[str, str]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise fail(f"the secrets file {path} is not valid YAML: {error}", INVALID_ERROR) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise fail(f"the secrets file {path} must be a mapping of NAME: value", INVALID_ERROR)
    values = {}
    for name, value in data.items():
        if isinstance(value, (dict, list)):
            raise fail(f"the secrets file {path}: the value of {name} must be text, not a {type(value).__name__}",
                        INVALID_ERROR)
        if value is not None:
            values[str(name)] = json.dumps(value) if isinstance(value, bool) else str(value)
    return values


def _env_file_values(text: str) -> dict[str, str]:
    """`NAME=value` lines (`export ` allowed, `#` comments, one pair of quotes around a value removed)."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def check_secrets_path(path: str | Path) -> str | None:
    """Why `path` cannot be a secrets file or directory, or None."""
    path = Path(path).expanduser()
    if not path.exists():
        return f"{path} does not exist"
    if not (path.is_dir() or path.is_file()):
        return f"{path} is neither a file nor a directory"
    if not os.access(path, os.R_OK):
        return f"{path} is not readable"
    return None
