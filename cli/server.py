"""`tflow server`: the Temporal dev server in the foreground, with the project's search attributes."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Optional

import typer

from client.devserver import DevServer, DevServerError, default_db_filename
from client.temporal_cli import TemporalCliNotFound
from temporal_flows.metadata import DEFAULT_NAMESPACE, DEFAULT_UI_PORT

EXIT_NO_CLI = 3


def register(app: typer.Typer) -> None:
    """Add the `server` command to the `tflow` app."""
    app.command("server")(server)


def server(
    port: int = typer.Option(7233, "--port", help="gRPC port of the Temporal frontend."),
    ui_port: int = typer.Option(DEFAULT_UI_PORT, "--ui-port", help="Port of the Temporal Web UI."),
    db_filename: Optional[Path] = typer.Option(
        None, "--db-filename", help="SQLite file that keeps the server's state.",
        show_default="$TFLOW_HOME/temporal.db, else ~/.local/share/temporal-flows/temporal.db"),
    ip: str = typer.Option("127.0.0.1", "--ip", help="IP address to bind (0.0.0.0 for all interfaces)."),
    namespace: str = typer.Option(DEFAULT_NAMESPACE, "--namespace", help="Namespace to create and serve."),
) -> None:
    """Run the Temporal dev server (SQLite file, Web UI, tflow search attributes) until Ctrl-C."""
    db = db_filename or default_db_filename()
    dev = DevServer(port=port, ui_port=ui_port, db_filename=db, ip=ip, namespace=namespace,
                    log_file=db.parent / f"{db.name}.server.log")
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)  # before start(), so an early Ctrl-C still stops the child cleanly
    try:
        dev.start()
    except TemporalCliNotFound as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(EXIT_NO_CLI) from None
    except DevServerError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"Temporal dev server (pid {dev.pid}), data in {db}")
    typer.echo(f"  gRPC address: {dev.address}    (export TEMPORAL_ADDRESS={dev.address})")
    typer.echo(f"  Web UI:       {dev.ui_url}")
    typer.echo(f"  namespace:    {namespace}    log: {dev.log_file}")
    typer.echo("Press Ctrl-C to stop.")
    while not stopping.wait(0.5):
        if not dev.running:
            typer.echo(f"error: the Temporal dev server exited unexpectedly:\n{dev.log_tail()}", err=True)
            dev.stop()
            raise typer.Exit(1)
    typer.echo("Stopping the Temporal dev server...")
    code = dev.stop()
    typer.echo(f"Stopped (exit code {code}).")
