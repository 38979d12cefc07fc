"""The Temporal Web UI itself, in headless Chromium, shows an encrypted run's SECRET input through
the codec server, and only when the codec server lets the UI's origin in (else the UI shows the
ciphertext). A dev server of the test's own, started with `--ui-codec-endpoint`, as a user would
point their UI at `tflow codec-server`."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from temporalio.client import Client

from client.codec import CodecKey, EncryptionCodec, KeyRing, data_converter
from client.codec_server import serve
from client.devserver import DevServer, free_port
from client.runs import start_run, wait_result
from client.worker import create_worker
from temporal_flows.language.loader import load_flow
from tests.browser import Chromium, find_chromium
from tests.support import write_flow

SECRET = "ui-secret-" + uuid.uuid4().hex[:10]
ENCRYPTED_B64 = "YmluYXJ5L2VuY3J5cHRlZA=="
"""`binary/encrypted` as the UI prints an undecoded payload's metadata."""
PAGE_SECONDS = 30.0
FLOW = """\
id: codec-ui
namespace: e2e.codec
inputs:
  - id: password
    type: SECRET
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: "hello"
"""


@dataclass(kw_only=True)
class CodecUiServer(DevServer):
    """The dev server whose Web UI calls a codec server (`temporal server start-dev --ui-codec-endpoint`)."""

    codec_endpoint: str = ""

    def command(self) -> list[str]:
        return [*super().command(), "--ui-codec-endpoint", self.codec_endpoint]


@pytest.fixture
def chromium_path() -> str:
    found = find_chromium()
    if not found:
        pytest.skip("no Chromium on PATH: `make test` installs Debian's `chromium` where apt-get runs as root")
    return found


@pytest.fixture
def codec_port() -> int:
    return free_port()


@pytest.fixture
def ui_server(tmp_path: Path, codec_port: int) -> Iterator[DevServer]:
    server = CodecUiServer(port=0, ui_port=0, db_filename=None, log_file=tmp_path / "server.log",
                           codec_endpoint=f"http://127.0.0.1:{codec_port}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_the_temporal_ui_shows_the_secret_only_through_an_allowing_codec_server(
        chromium_path: str, ui_server: DevServer, codec_port: int, tmp_path: Path):
    keys = KeyRing((CodecKey("ui", os.urandom(32)),))
    secure = await Client.connect(ui_server.address, data_converter=data_converter(keys))
    async with create_worker(secure, "codec-ui", graceful_shutdown_s=5):
        handle = await start_run(secure, load_flow(write_flow(tmp_path, FLOW, "ui.yaml")), task_queue="codec-ui",
                                 inputs={"password": SECRET})
        assert (await wait_result(handle))["state"] == "SUCCESS"
    page_url = f"{ui_server.ui_url}/namespaces/default/workflows/{handle.id}/{handle.result_run_id}/history"
    ui_origin = ui_server.ui_url

    browser = Chromium(chromium_path, tmp_path / "profile")
    try:
        page = await browser.open_page()
        # A codec server that does not let the UI's origin in: the UI can only show the ciphertext.
        runner, _ = await serve(EncryptionCodec(keys), "127.0.0.1", codec_port, ["http://elsewhere.example"])
        try:
            await page.navigate(page_url)
            await page.wait_for(f"!!document.body && document.body.innerText.includes({ENCRYPTED_B64!r})", PAGE_SECONDS)
            assert SECRET not in await page.evaluate("document.body.innerText")
        finally:
            await runner.cleanup()
        # The same endpoint letting the UI in: the input shows decrypted.
        runner, _ = await serve(EncryptionCodec(keys), "127.0.0.1", codec_port, [ui_origin])
        try:
            await page.navigate(page_url)
            await page.wait_for(f"!!document.body && document.body.innerText.includes({SECRET!r})", PAGE_SECONDS)
            assert ENCRYPTED_B64 not in await page.evaluate("document.body.innerText")
            await page.screenshot(tmp_path / "codec-ui.png")
        finally:
            await runner.cleanup()
    finally:
        await browser.close()
