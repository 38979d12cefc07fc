"""Storage any worker can read (issue 15 part 6): with `--storage s3://bucket/prefix`, workers that
share no disk keep big values and `outputFiles` in a bucket and read each other's, through templates
(the worker render) and `inputFiles`; a forged or tampered reference is still plain data; a missing
object fails the task naming its key.

A real S3-compatible server (SeaweedFS, the session's `s3_server`), the session's real Temporal dev
server, and real `tflow worker` processes: each its own process (its S3 client, its render children
and its environment are its own, as on separate machines) with its own data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from temporalio.client import Client

from client.s3server import S3Server
from tests.support import PYTHON, REPO, activity_workers, cli_env, fill, run_flow, run_with_history, task_run, tflow, write_flow

pytestmark = pytest.mark.asyncio(loop_scope="session")

BIG = 1_000_000
"""A value over the 128 KiB threshold: it travels as a reference."""
RANDOM_BYTES = 7_000_000
"""Base64 of this many random bytes is a text file over boto3's multipart threshold (8 MiB): it is
stored in parts, streamed. (Templates read output files as text, so a later task gets it as text.)"""


def print_outputs(outputs: str, imports: str = "json") -> str:
    """A shell command printing `::{"outputs": <python expression>}::` (`imports` imported), as YAML text."""
    return json.dumps(f'{PYTHON} -c "import {imports}; print(\'::\' + json.dumps({{\'outputs\': {outputs}}}) + \'::\')"')


@contextlib.contextmanager
def s3_workers(temporal_address: str, s3: S3Server, storage: str, queues: list[str], folder: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """One `tflow worker --storage <storage>` process per queue, each with its own data directory
    (no shared disk), the S3 server's endpoint and credentials in its environment."""
    workers = []
    try:
        for queue in queues:
            with open(folder / f"{queue}.log", "ab") as sink:
                workers.append(subprocess.Popen(
                    tflow("worker", "--address", temporal_address, "--task-queue", queue, "--storage", storage,
                          "--drain-timeout", "1"),
                    cwd=REPO, env=cli_env(TFLOW_HOME=str(folder / f"home-{queue}"), **s3.environment()),
                    stdout=sink, stderr=subprocess.STDOUT))
        yield workers
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(timeout=30)


def objects(s3: S3Server, prefix: str) -> dict[str, int]:
    """Every object under `prefix/` in the bucket: key → size."""
    pages = s3.client().get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix + "/")
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


@pytest.fixture
def prefix() -> str:
    return f"runs-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def s3_worker(temporal_address: str, s3_server: S3Server, prefix: str, tmp_path: Path) -> Iterator[str]:
    """One worker process whose storage is `s3://<bucket>/<prefix>`; yields its task queue."""
    queue = f"s3-{uuid.uuid4().hex[:10]}"
    with s3_workers(temporal_address, s3_server, f"s3://{s3_server.bucket}/{prefix}", [queue], tmp_path):
        yield queue


TWO_WORKERS = """
id: s3-shared
namespace: tests.s3
tasks:
  - id: produce
    type: io.kestra.plugin.scripts.shell.Commands
    workerGroup: {key: <<producer>>}
    outputFiles: ["table.csv", "blobs/big.txt"]
    commands:
      - printf 'k,v\\n1,2\\n' > table.csv
      - mkdir -p blobs && head -c <<random_bytes>> /dev/urandom | base64 > blobs/big.txt
      - <<print_big>>
      - <<print_digest>>
  - id: measure
    type: io.kestra.plugin.core.debug.Return
    format: "{{ outputs.produce.vars.data | length }} {{ outputs.produce.outputFiles['table.csv'] | trim }}"
  - id: consume
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      in/copy.csv: "{{ outputs.produce.outputFiles['table.csv'] }}"
      in/big.txt: "{{ outputs.produce.outputFiles['blobs/big.txt'] }}"
      in/data.txt: "{{ outputs.produce.vars.data }}"
    commands:
      - <<print_read>>
"""


async def test_two_workers_sharing_no_disk_read_each_others_values_and_files_through_s3(
    client: Client, temporal_address: str, s3_server: S3Server, prefix: str, tmp_path: Path
):
    suffix = uuid.uuid4().hex[:8]
    reader, producer = f"reader-{suffix}", f"producer-{suffix}"
    digest = "hashlib.sha256(open('blobs/big.txt', 'rb').read()).hexdigest()"
    read = ("{'sha': hashlib.sha256(open('in/big.txt', 'rb').read()).hexdigest(), 'csv': open('in/copy.csv').read(), "
            "'length': len(open('in/data.txt').read())}")
    flow = write_flow(tmp_path, fill(
        TWO_WORKERS, producer=producer, random_bytes=RANDOM_BYTES, print_big=print_outputs(f"{{'data': 'x' * {BIG}}}"),
        print_digest=print_outputs(f"{{'sha': {digest}}}", "json, hashlib"), print_read=print_outputs(read, "json, hashlib")))
    with s3_workers(temporal_address, s3_server, f"s3://{s3_server.bucket}/{prefix}", [reader, producer], tmp_path) as workers:
        result, events = await run_with_history(client, flow, reader)
    assert result["state"] == "SUCCESS", result

    produced = task_run(result, "produce")["outputs"]
    big_file = produced["outputFiles"]["blobs/big.txt"]
    assert produced["vars"]["data"]["size"] >= BIG and big_file["size"] > 8 << 20
    assert task_run(result, "measure")["outputs"]["value"] == f"{BIG} k,v\n1,2"
    assert task_run(result, "consume")["outputs"]["vars"] == {"sha": produced["vars"]["sha"], "csv": "k,v\n1,2\n", "length": BIG}
    ran_on = activity_workers(events)
    assert ran_on["produce"].startswith(f"{workers[1].pid}@"), ran_on
    assert ran_on["render measure (stored values)"].startswith(f"{workers[0].pid}@"), ran_on
    assert ran_on["consume"].startswith(f"{workers[0].pid}@"), ran_on

    stored = objects(s3_server, prefix)  # everything is in the bucket, under the prefix, nothing on a disk
    assert stored[f"{prefix}/{big_file['$tflowRef']}"] == big_file["size"]
    assert stored[f"{prefix}/{produced['vars']['data']['$tflowRef']}"] >= BIG
    assert f"{prefix}/.tflow-storage-key" in stored  # the signing key every worker of the storage shares
    assert not any((tmp_path / f"home-{queue}" / "storage").exists() for queue in (reader, producer))


VICTIM = """
id: victim
namespace: tests.s3
tasks:
  - id: produce
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - <<print_secret>>
"""

ATTACKER = """
id: attacker
namespace: tests.s3
inputs:
  - id: given
    type: JSON
tasks:
  - id: forger
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - <<forge>>
  - id: lengths
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.given | length }} {{ outputs.forger.vars.tampered | length }} {{ outputs.forger.vars.copied['$tflowRef'] }}"
  - id: files
    type: io.kestra.plugin.scripts.shell.Commands
    inputFiles:
      given.json: "{{ inputs.given }}"
      tampered.json: "{{ outputs.forger.vars.tampered }}"
      copied.json: "{{ outputs.forger.vars.copied }}"
    commands:
      - <<read_files>>
"""


async def test_a_forged_or_tampered_reference_to_an_s3_object_is_plain_data(
    client: Client, s3_worker: str, s3_server: S3Server, prefix: str, tmp_path: Path
):
    victim = write_flow(tmp_path, fill(VICTIM, print_secret=print_outputs(f"{{'secret': 'SECRET-' + 's' * {BIG}}}")), "victim.yaml")
    stolen = await run_flow(client, victim, s3_worker)
    assert stolen["state"] == "SUCCESS", stolen
    reference = task_run(stolen, "produce")["outputs"]["vars"]["secret"]
    assert objects(s3_server, prefix)[f"{prefix}/{reference['$tflowRef']}"] == BIG + 9  # there, and readable to its run

    attacker_id = f"attacker-{uuid.uuid4().hex[:8]}"
    tampered = {**reference, "run": attacker_id}  # rebound to the attacker's run: the signature no longer holds
    forge = json.dumps("echo '::" + json.dumps({"outputs": {"copied": reference, "tampered": tampered}}) + "::'")
    read_files = print_outputs("{name: json.load(open(name + '.json')) for name in ('given', 'tampered', 'copied')}")
    attacker = write_flow(tmp_path, fill(ATTACKER, forge=forge, read_files=read_files), "attacker.yaml")
    result = await run_flow(client, attacker, s3_worker, run_id=attacker_id, inputs={"given": reference})

    assert result["state"] == "SUCCESS", result
    assert "SECRET" not in json.dumps(result), "another run's stored value leaked"
    fields = len(reference)
    assert task_run(result, "lengths")["outputs"]["value"] == f"{fields} {fields} {reference['$tflowRef']}"
    assert task_run(result, "files")["outputs"]["vars"] == {"given": reference, "tampered": tampered, "copied": reference}


MISSING = """
id: s3-missing
namespace: tests.s3
tasks:
  - id: produce
    type: io.kestra.plugin.scripts.shell.Commands
    outputFiles: ["report.txt"]
    commands:
      - echo rows > report.txt
      - <<print_big>>
  - id: remove
    type: io.kestra.plugin.scripts.shell.Commands
    env: <<s3_env>>
    commands:
      - <<remove>>
  - id: measure
    type: io.kestra.plugin.core.debug.Return
    allowFailure: true
    format: "{{ outputs.produce.vars.data | length }}"
  - id: stage
    type: io.kestra.plugin.scripts.shell.Commands
    allowFailure: true
    inputFiles:
      report.txt: "{{ outputs.produce.outputFiles['report.txt'] }}"
    commands:
      - cat report.txt
"""


async def test_a_missing_s3_object_fails_the_task_naming_its_key(
    client: Client, s3_worker: str, s3_server: S3Server, prefix: str, tmp_path: Path
):
    remove = (f"import boto3; s3 = boto3.client('s3'); pages = s3.get_paginator('list_objects_v2').paginate("
              f"Bucket='{s3_server.bucket}', Prefix='{prefix}/'); [s3.delete_object(Bucket='{s3_server.bucket}', "
              f"Key=item['Key']) for page in pages for item in page.get('Contents', []) if '/outputs/' in item['Key'] "
              f"or '/files/' in item['Key']]")
    flow = write_flow(tmp_path, fill(MISSING, print_big=print_outputs(f"{{'data': 'x' * {BIG}}}"),
                                     s3_env=json.dumps(s3_server.environment()), remove=json.dumps(f'{PYTHON} -c "{remove}"')))
    result = await run_flow(client, flow, s3_worker)
    produced = task_run(result, "produce")["outputs"]
    assert task_run(result, "remove")["state"] == "SUCCESS", task_run(result, "remove")
    for task_id, reference in (("measure", produced["vars"]["data"]), ("stage", produced["outputFiles"]["report.txt"])):
        failed = task_run(result, task_id)
        assert failed["state"] in ("FAILED", "WARNING") and failed["error"]["type"] == "StoredValueError", failed
        key = f"s3://{s3_server.bucket}/{prefix}/{reference['$tflowRef']}"
        assert key in failed["error"]["message"] and "no such object" in failed["error"]["message"], failed["error"]


async def test_with_tflow_storage_key_no_key_object_is_made_and_every_process_signs_alike(
    client: Client, temporal_address: str, s3_server: S3Server, prefix: str, tmp_path: Path
):
    """`$TFLOW_STORAGE_KEY` instead of the key object: the worker takes it out of its environment on
    first use, and its render children (started later) still sign and check with it."""
    queue = f"s3-key-{uuid.uuid4().hex[:8]}"
    flow = write_flow(tmp_path, fill("""
        id: s3-env-key
        namespace: tests.s3
        tasks:
          - id: produce
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - <<print_big>>
          - id: measure
            type: io.kestra.plugin.core.debug.Return
            format: "{{ outputs.produce.vars.data | length }}"
    """, print_big=print_outputs(f"{{'data': 'x' * {BIG}}}")))
    environment = {**s3_server.environment(), "TFLOW_STORAGE_KEY": "k" * 40}
    with open(tmp_path / "worker.log", "ab") as sink:
        worker = subprocess.Popen(
            tflow("worker", "--address", temporal_address, "--task-queue", queue, "--storage",
                  f"s3://{s3_server.bucket}/{prefix}", "--drain-timeout", "1"),
            cwd=REPO, env=cli_env(TFLOW_HOME=str(tmp_path / "home"), **environment), stdout=sink, stderr=subprocess.STDOUT)
    try:
        result = await run_flow(client, flow, queue)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert result["state"] == "SUCCESS", result
    assert task_run(result, "measure")["outputs"]["value"] == str(BIG)  # the render child read it: same key
    stored = objects(s3_server, prefix)
    assert f"{prefix}/.tflow-storage-key" not in stored and len(stored) == 1, stored
