"""`tflow codec-server`: serve Temporal's remote codec protocol with this project's key, so the
Temporal Web UI (and `temporal workflow show --codec-endpoint`) shows encrypted payloads decrypted."""

from __future__ import annotations

from typing import List

import typer

from cli.common import ExitCode, fail, log_to_console, run_async, until_interrupted
from client.codec import KEY_ENV, KEY_FILE_ENV, CodecKeyError, EncryptionCodec, load_key_ring
from client.codec_server import DEFAULT_ORIGINS, serve

DEFAULT_PORT = 8081


def register(app: typer.Typer) -> None:
    app.command("codec-server")(codec_server)


def codec_server(
    port: int = typer.Option(DEFAULT_PORT, "--port", min=0, max=65535, help="Port to listen on (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on; anyone who reaches it can decrypt."),
    cors_origin: List[str] = typer.Option(
        list(DEFAULT_ORIGINS), "--cors-origin",
        help="Origin of a Temporal Web UI allowed to call from the browser (repeatable; default: the dev server's UI)."),
) -> None:
    """Decrypt (and encrypt) payloads over HTTP for the Temporal Web UI, with TFLOW_CODEC_KEY(_FILE)'s keys."""
    try:
        ring = load_key_ring()
    except CodecKeyError as error:
        raise fail(str(error), ExitCode.INVALID) from None
    if ring is None:
        raise fail(f"tflow codec-server needs the key the workers use: set {KEY_ENV} or {KEY_FILE_ENV}", ExitCode.INVALID)
    log_to_console()

    async def main() -> None:
        try:
            runner, bound = await serve(EncryptionCodec(ring), host, port, cors_origin)
        except OSError as error:
            raise fail(f"cannot listen on {host}:{port}: {error.strerror or error}", ExitCode.INVALID) from None
        try:
            where = f"http://{f'[{host}]' if ':' in host else host}:{bound}"
            keys = ", ".join(f"{key_id} (encrypting)" if index == 0 else key_id for index, key_id in enumerate(ring.key_ids))
            typer.echo(f"Codec server at {where} (keys from {ring.origin}: {keys}); Ctrl-C to stop")
            typer.echo(f"  Web UI origins allowed: {', '.join(cors_origin)}")
            typer.echo(f"  In the Web UI: the data encoder (codec server) setting → {where}")
            await until_interrupted()
        finally:
            await runner.cleanup()

    run_async(main())
