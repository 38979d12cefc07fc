"""Test session fixtures: one real Temporal dev server for the session (never a mock of Temporal),
and one real S3-compatible server for the tests of S3 storage.

Set TFLOW_TEST_ADDRESS to run the integration tests against an existing server instead.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.client import Client

from client.devserver import DevServer
from client.s3server import S3Server, S3ServerNotFound, find_weed
from client.worker import create_worker

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    existing = os.environ.get("TFLOW_TEST_ADDRESS")
    if existing:
        yield existing
        return
    folder = tmp_path_factory.mktemp("temporal")
    server = DevServer(port=0, ui_port=0, db_filename=folder / "temporal.db", log_file=folder / "server.log")
    server.start()
    try:
        yield server.address
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (SeaweedFS's `weed server -s3`) for the session, with one bucket;
    the tests that use it skip, saying why, when `weed` is missing (`make s3server` builds it)."""
    try:
        weed = find_weed(obtain=False)
    except S3ServerNotFound as error:
        pytest.skip(str(error))
    server = S3Server(data_dir=tmp_path_factory.mktemp("s3"), weed=weed)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address)


@pytest.fixture
def task_queue() -> str:
    """A queue of the test's own, so no other test's worker picks up its runs."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest_asyncio.fixture(loop_scope="session")
async def worker(client: Client, task_queue: str) -> AsyncIterator[str]:
    """An in-process worker on the test's task queue; yields the queue name."""
    async with create_worker(client, task_queue, graceful_shutdown_s=5):
        yield task_queue
