"""One task run's secrets: its placeholders resolved just before use, and what it resolved (plus its
request's `masked` values) masked in everything that leaves the activity; URLs in errors redacted."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.secrets.store import NOT_FOUND_ERROR, SecretStore, fail
from activities.secrets.worker import settings
from temporal_flows.expressions.library import SECRET_PLACEHOLDER, secret_nonce
from temporal_flows.expressions.references import REF_KEY

MASK = "****"
MIN_MASKED_CHARS = 4
"""Shorter values are not masked: masking every `ab` of the output would hide text and show the value."""
FOREIGN_ERROR = "SecretRefused"
_MARK = "~tflow-secret~"


class TaskSecrets:
    """Resolves one task run's placeholders and masks what it resolved, and the request's `masked`
    values, in everything that leaves the activity. Costs nothing for a task without either."""

    def __init__(self, masked: Sequence[str] = (), run_nonce: str = "", store: SecretStore | None = None) -> None:
        self._store = store or settings().store
        self._nonce = run_nonce
        self._values: list[str] = []
        self._resolved: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None
        for value in masked:
            self._remember(str(value))

    @classmethod
    def of(cls, request: Any) -> "TaskSecrets":
        """For an activity's request: its run's placeholders (`activity.info()`), its `masked` values."""
        run_id = activity.info().workflow_run_id if activity.in_activity() else ""
        return cls(getattr(request, "masked", None) or (), secret_nonce(run_id or ""))

    @property
    def masking(self) -> bool:
        return bool(self._values)

    # resolving

    def resolve(self, text: str) -> str:
        """`text` with this run's placeholders replaced by their values (SecretNotFound, SecretRefused)."""
        if _MARK not in text:
            return text
        return SECRET_PLACEHOLDER.sub(self._value_of, text)

    def resolve_data(self, value: Any) -> Any:
        """Every string inside `value` (lists, mapping values) resolved."""
        if isinstance(value, str):
            return self.resolve(value)
        if isinstance(value, list):
            return [self.resolve_data(item) for item in value]
        if isinstance(value, dict):
            return {key: self.resolve_data(item) for key, item in value.items()}
        return value

    def _value_of(self, match: re.Match[str]) -> str:
        name, nonce = match.group(1), match.group(2)
        if nonce != self._nonce:
            raise fail(f"secret('{name}'): this placeholder was not rendered by this run's own templates (it came "
                        "through an input, an output, a response or another run, e.g. a subflow's caller), so it is "
                        f"not resolved; call secret('{name}') in this flow's task instead", FOREIGN_ERROR)
        if name in self._resolved:
            return self._resolved[name]
        value = self._store.lookup(name)
        if value is None:
            raise fail(f"secret('{name}') is not set on this worker: looked up in {self._store.places(name)}",
                        NOT_FOUND_ERROR)
        self._remember(value)
        self._resolved[name] = value
        return value

    # masking

    def _remember(self, value: str) -> None:
        variants = {value, json.dumps(value)[1:-1], *value.splitlines()}
        fresh = [variant for variant in variants if len(variant) >= MIN_MASKED_CHARS and variant not in self._values]
        if fresh:
            self._values.extend(fresh)
            self._pattern = None

    def mask(self, text: str) -> str:
        """`text` with every value to mask replaced by `****`."""
        if not self._values or not text:
            return text
        if self._pattern is None:
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(value) for value in ordered))
        return self._pattern.sub(MASK, text)

    def mask_data(self, value: Any) -> Any:
        """Every string inside `value` (lists, mappings, keys too) masked."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, list):
            return [self.mask_data(item) for item in value]
        if isinstance(value, dict):
            if REF_KEY in value:
                return value  # a stored value's reference (signed: masking would break it); its value was masked first
            return {self.mask(key) if isinstance(key, str) else key: self.mask_data(item) for key, item in value.items()}
        return value

    def mask_result(self, result: Any) -> Any:
        """A result dataclass with every field masked (itself when there is nothing to mask)."""
        if not self._values:
            return result
        return dataclasses.replace(result, **{item.name: self.mask_data(getattr(result, item.name))
                                              for item in dataclasses.fields(result) if item.init})

    def masked_error(self, error: ApplicationError) -> ApplicationError:
        """`error` as it may leave the activity: URL query strings cut from its message, values masked
        in message and details, no cause chained (a cause's message would travel too)."""
        message = self.mask(redact_urls(error.message))
        details = [self.mask_data(detail) for detail in error.details]
        return ApplicationError(message, *details, type=error.type, non_retryable=error.non_retryable)

    def final_error(self, error: Exception) -> ApplicationError:
        """Any error as the task's failure, masked: an ApplicationError as it was raised, anything else
        (a NUL byte in `env`, a failing mkdtemp, a broken connection...) as a non-retryable
        `ApplicationError("<Type>: <message>", type="<Type>")`, so a task fails once, never re-runs
        its side effects; only a lost worker is retried."""
        if not isinstance(error, ApplicationError):
            kind = type(error).__name__
            error = ApplicationError(f"{kind}: {error}" if str(error) else kind, type=kind, non_retryable=True)
        return self.masked_error(error)


_URL_QUERY = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s?#'\"<>]*)([?#])[^\s'\"<>]*?(?=[).,;:]*(?:[\s'\"<>]|$))")
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:'\"<>]*:)[^\s/@'\"<>]*@")


def redact_urls(text: str) -> str:
    """URLs in `text` without their query string or fragment (`https://h/p?token=x` → `https://h/p?****`)
    and without a password (`https://u:****@h/`): tokens travel there."""
    if "://" not in text:
        return text
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)
    return _URL_QUERY.sub(rf"\g<1>\g<2>{MASK}", text)
