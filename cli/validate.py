"""`tflow validate`: every problem of every flow at once, as `file:line:col: message`; warnings (secrets
this process cannot find, which a worker may have) as `file:line:col: warning: message`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from temporalio.exceptions import ApplicationError

from activities.secrets.store import SECRET_ENV_PREFIX, SECRETS_ENV, SecretStore, check_secrets_path
from cli.common import ExitCode, fail
from cli.options import FlowsDirs, JsonOutput, PluginDefaultsFile
from client.subflows import resolve_subflows
from temporal_flows.language.loader import DefaultsFile, LoadedFlow, load_defaults_file, load_flow
from temporal_flows.language.validate import secret_uses
from temporal_flows.model.problems import FlowError, Problem


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(
    flows: List[Path] = typer.Argument(..., help="Flow files to check."),
    as_json: JsonOutput = False,
    flows_dir: FlowsDirs = [],
    defaults: PluginDefaultsFile = None,
    secrets_path: Optional[Path] = typer.Option(
        None, "--secrets", envvar=SECRETS_ENV, show_envvar=True,
        help="Where to look up the secret('NAME') names the flows use, as `tflow worker --secrets` (besides this "
             "process's SECRET_NAME variables); a name found nowhere is a warning, not a problem.",
    ),
) -> None:
    """Check flows without running anything; exit code 2 if any has a problem. The flows a flow
    calls as subflows are found as `tflow run` finds them (--flows-dir) and checked too, all with the
    plugin defaults of --defaults (a bad defaults file is reported like a flow, alone).

    With --json: [{file, valid, problems, warnings}]."""
    if secrets_path is not None and (problem := check_secrets_path(secrets_path)):
        raise fail(f"--secrets: {problem}", ExitCode.INVALID)
    store = SecretStore(secrets_path.expanduser() if secrets_path else None)
    reports = []
    plugin_defaults, defaults_problems = _defaults(defaults)
    if defaults is not None and defaults_problems:  # the flows are not checked without the defaults they rely on
        reports.append(_report(defaults, defaults_problems, [], as_json))
    for flow in flows if not defaults_problems else []:
        problems: list[Problem] = []
        warnings: list[Problem] = []
        try:
            loaded = load_flow(flow, plugin_defaults)
            resolve_subflows(loaded, flows_dir or None, plugin_defaults)
            warnings = missing_secrets(loaded, store)
        except FlowError as error:
            problems = error.problems
        reports.append(_report(flow, problems, warnings, as_json))
    if as_json:
        typer.echo(json.dumps(reports, indent=2))
    raise typer.Exit(ExitCode.OK if all(report["valid"] for report in reports) else ExitCode.INVALID)


def _defaults(path: Optional[Path]) -> tuple[Optional[DefaultsFile], list[Problem]]:
    """The --defaults file, or its problems."""
    if path is None:
        return None, []
    try:
        return load_defaults_file(path), []
    except FlowError as error:
        return None, error.problems


def _report(flow: Path, problems: list[Problem], warnings: list[Problem], as_json: bool) -> dict[str, object]:
    """One file's entry of the --json list; without --json, its lines printed now."""
    if not as_json:
        for warning in warnings:
            typer.secho(str(warning), err=True, fg=typer.colors.YELLOW)
        if problems:
            for problem in problems:
                typer.secho(str(problem), err=True, fg=typer.colors.RED)
        else:
            typer.echo(f"{flow}: valid")
    return {"file": str(flow), "valid": not problems, "problems": [p.to_dict() for p in problems],
            "warnings": [w.to_dict() for w in warnings]}


def missing_secrets(loaded: LoadedFlow, store: SecretStore) -> list[Problem]:
    """A warning for each secret name the flow uses that `store` does not have (or cannot read)."""
    warnings = []
    for use in secret_uses(loaded):
        try:
            found = store.lookup(use.name) is not None
            variable = SECRET_ENV_PREFIX + use.name
            here = f"not in {store.path}, no {variable} here" if store.path else f"no --secrets given, no {variable} here"
            why = (f"is not set ({here}); a worker looks it up in its --secrets file or directory, then in its "
                   f"environment variable {variable} (base64)")
        except ApplicationError as error:
            found, why = False, f"cannot be read here: {error.message}"
        if not found:
            where = use.where
            warnings.append(Problem(where.file, where.line, where.column,
                                    f"warning: {where.message}: secret `{use.name}` {why}"))
    return warnings
