"""The `tflow` typer application: one module per command group registers its commands here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="tflow",
    help="Declarative YAML workflows that run durably on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    from cli import runs, server, validate, worker, run  # noqa: F401  (each registers on `app`)

    for module in (run, validate, worker, server, runs):
        module.register(app)


def main() -> None:
    _register_commands()
    app()


if __name__ == "__main__":
    main()
