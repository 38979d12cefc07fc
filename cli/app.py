"""The `tflow` typer application: one module per command group registers its commands here."""

from __future__ import annotations

import os
import sys
import traceback

import typer

from activities.storage import STORAGE_ENV
from activities.storage.backends import StorageLocationError
from client.codec import CodecDecodeError
from client.connection import ConnectionConfigError

app = typer.Typer(
    name="tflow",
    help="Declarative YAML workflows that run durably on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    from cli import codec_server, graph, replay, resume, run, runs, schedules, schema, server, validate, webui, worker

    for module in (run, validate, worker, server, runs, schema, resume, schedules, webui, graph, codec_server, replay):
        module.register(app)


def main() -> None:
    """Run the app, then leave without interpreter teardown.

    The Temporal SDK's native threads can abort CPython's finalization (sdk-python#300), which
    would turn a clean exit into a crash; so flush and `os._exit` with the command's code.
    """
    _register_commands()
    try:
        app()
        code = 0
    except SystemExit as exit_request:
        code = exit_request.code if isinstance(exit_request.code, int) else (0 if exit_request.code is None else 1)
        if isinstance(exit_request.code, str):
            sys.stderr.write(exit_request.code + "\n")
    except ConnectionConfigError as error:  # a wrong config file, profile or TLS file: usage error
        sys.stderr.write(f"{error}\n")
        code = 2
    except CodecDecodeError as error:  # a payload sealed with a key this process lacks: configuration
        sys.stderr.write(f"tflow: {error}\n")
        code = 2
    except StorageLocationError as error:  # $TFLOW_STORAGE of an in-process worker (`tflow run`, `webui`)
        sys.stderr.write(f"tflow: the storage (${STORAGE_ENV}): {error}\n")
        code = 2
    except Exception as error:  # noqa: BLE001 - a bug must still end with a message and a code
        if os.environ.get("TFLOW_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"tflow: internal error: {type(error).__name__}: {error} (set TFLOW_DEBUG=1 for a traceback)\n")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
