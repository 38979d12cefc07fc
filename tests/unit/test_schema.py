"""The JSON Schema of `tflow schema` agrees with the loader: every flow the loader accepts (the
examples, the seeds' YAML, Kestra's corpus) validates, and broken flows are rejected by both.

Documents are read with the loader's own YAML reader (YAML 1.2 booleans, as yaml-language-server
reads them), so both sides see the same values.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import typer
from jsonschema import Draft7Validator
from jsonschema.exceptions import best_match
from typer.testing import CliRunner

from cli import schema as schema_command
from temporal_flows.language.loader import load_flow_text
from temporal_flows.language.schema import DURATION_PATTERN, flow_schema
from temporal_flows.language.source import parse_yaml
from temporal_flows.model.durations import parse_duration
from temporal_flows.model.problems import FlowError
from tests.support import REPO, cli_env, tflow
from tests.unit.test_seed_examples import FENCE, SEED_002_FRAGMENTS, SEEDS, as_flow

KESTRA_FLOWS = REPO.parent / "shared" / "kestra-flows"
VALIDATOR = Draft7Validator(flow_schema())


def schema_problem(text: str) -> str | None:
    """The schema's most relevant complaint about a flow's text, or None when it validates."""
    error = best_match(VALIDATOR.iter_errors(parse_yaml(text, "flow.yaml")))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path) or "<root>"
    return f"{where}: {error.message[:300]}"


def loader_accepts(text: str, file: str = "flow.yaml") -> bool:
    try:
        load_flow_text(text, file)
    except FlowError:
        return False
    return True


def assert_all_validate(flows: dict[str, str]) -> None:
    """Every flow validates; all failures are reported together."""
    failures = {name: problem for name, text in flows.items() if (problem := schema_problem(text)) is not None}
    assert not failures, f"{len(failures)} of {len(flows)} loader-accepted flows fail the schema:\n" + "\n".join(
        f"  {name}: {problem}" for name, problem in failures.items()
    )


# -- the schema itself -------------------------------------------------------------------------------


def test_schema_is_a_valid_draft_07_schema_built_in_milliseconds():
    Draft7Validator.check_schema(flow_schema())
    started = time.perf_counter()
    for _ in range(20):
        flow_schema()
    per_build = (time.perf_counter() - started) / 20
    assert per_build < 0.05, f"building the schema takes {per_build * 1000:.1f} ms"  # ~2 ms on an idle core
    assert len(json.dumps(flow_schema())) < 200_000


DURATIONS = [
    "PT5M", "pt5m", "P1DT2H", "P2W", "PT0.5S", "P1D", "P1DT", " PT1H ", "P", "PT", "PT5", "P5M", "5m", "30s",
    "1h30m", "1H30M", "250ms", "1.5h", "1 h 30 m", "2d", "3w", "5", "m", "5 minutes", "5m5", "1.5.5m", ".5m",
    "1.m", "", " ", "PT5M junk", "5m\t3s", "-5m", "5mm", "5ms", "1m s",
]


@pytest.mark.parametrize("text", DURATIONS, ids=[repr(text) for text in DURATIONS])
def test_duration_pattern_accepts_what_parse_duration_accepts(text: str):
    try:
        parse_duration(text)
        parses = True
    except ValueError:
        parses = False
    assert bool(re.search(DURATION_PATTERN, text)) is parses


# -- loader-accepted flows validate ------------------------------------------------------------------


def test_examples_validate():
    examples = {path.name: path.read_text(encoding="utf-8") for path in sorted((REPO / "examples").glob("*.y*ml"))}
    assert examples, "no examples found"
    assert_all_validate(examples)


@pytest.mark.skipif(not SEEDS.is_dir(), reason=f"the seed documents are not there ({SEEDS} is missing)")
def test_seed_examples_the_loader_accepts_validate():
    flows = {}
    for seed in sorted(SEEDS.glob("*.txt")):
        for index, match in enumerate(FENCE.finditer(seed.read_text(encoding="utf-8")), start=1):
            if loader_accepts(match.group(1)):
                flows[f"{seed.name} block {index}"] = match.group(1)
    flows.update({f"seed 002 {name}": as_flow(name, *parts) for name, parts in SEED_002_FRAGMENTS.items()})
    assert len(flows) >= 5, f"only {sorted(flows)} of the seeds' examples load"
    assert_all_validate(flows)


def test_step_flows_are_checked_by_their_own_schema():
    step_flow = "sources:\n  api: {type: rest}\nflow:\n  - name: fetch\n    source: api\n    input: {url: https://example.com}\n"
    assert schema_problem(step_flow) is None
    assert schema_problem("sources:\n  api: {type: rest}\nflow: {}\n") is not None
    assert schema_problem("description: neither tasks nor steps\n") is not None
    assert schema_problem(step_flow.replace("type: rest", "type: soap")) is not None  # unknown source type
    assert schema_problem(step_flow.replace("{url:", "{uri:")) is not None  # an input no source takes
    assert schema_problem(step_flow + "    on_error: ignore\n") is not None
    assert schema_problem(step_flow + "    on_error: skip\n    depends_on: [other]\n") is None


def corpus() -> dict[str, str]:
    """Kestra's flows the loader accepts, by path relative to the corpus."""
    flows = {}
    for path in sorted(KESTRA_FLOWS.rglob("*.y*ml")):
        text = path.read_text(encoding="utf-8")
        if path.name != "expected.yaml" and loader_accepts(text, str(path)):
            flows[str(path.relative_to(KESTRA_FLOWS))] = text
    return flows


needs_corpus = pytest.mark.skipif(not KESTRA_FLOWS.is_dir(), reason=f"Kestra's flows are not there ({KESTRA_FLOWS})")


@needs_corpus
def test_kestra_flows_the_loader_accepts_validate():
    flows = corpus()
    assert len(flows) >= 30, f"only {len(flows)} of Kestra's flows load"
    assert_all_validate(flows)


@needs_corpus
def test_kestra_flows_broken_are_rejected_by_both():
    """Each accepted flow with its first task broken: an unknown property, an unknown type."""
    breakages = {
        "unknown property": lambda task: task.update(notAProperty=1),
        "unknown type": lambda task: task.update(type="io.kestra.plugin.core.NoSuchTask"),
        "no id": lambda task: task.pop("id"),
    }
    disagreements = []
    for name, text in corpus().items():
        for breakage, apply in breakages.items():
            document = json.loads(json.dumps(parse_yaml(text, name), default=str))  # a YAML date as text
            apply(document["tasks"][0])
            broken = json.dumps(document)  # JSON is YAML
            if schema_problem(broken) is None or loader_accepts(broken):
                disagreements.append(f"{name} with {breakage}: schema {schema_problem(broken)!r}, loader accepts: {loader_accepts(broken)}")
    assert not disagreements, "\n".join(disagreements)


# -- small flows: the schema and the loader give the same verdict ------------------------------------

HEADER = "id: sample\nnamespace: tests\n"
LOG = "  - id: say\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n"

VERDICTS: dict[str, tuple[bool, str]] = {
    # accepted
    "camelCase property": (True, HEADER + "tasks:\n" + LOG + "    allowFailure: true\n"),
    "snake_case property": (True, HEADER + "tasks:\n" + LOG + "    allow_failure: true\n    log_level: WARN\n"),
    "alias in both spellings": (True, HEADER + "tasks:\n  - id: p\n    type: parallel\n    maxWorkers: 2\n    tasks:\n      - {id: a, type: log, message: a}\n  - id: q\n    type: each_parallel\n    max_workers: 2\n    value: [1, 2]\n    tasks:\n      - {id: b, type: log, message: b}\n"),
    "durations": (True, HEADER + "tasks:\n" + LOG + "    timeout: 1h30m\n    retry: {type: constant, maxAttempt: 3, interval: PT1S}\n"),
    "templated dynamic duration": (True, HEADER + "variables: {wait: PT1S}\ntasks:\n  - id: nap\n    type: sleep\n    duration: \"{{ vars.wait }}\"\n"),
    "basic by commands": (True, HEADER + "tasks:\n  - id: b\n    type: basic\n    commands: [\"echo hi\"]\n"),
    "basic by url": (True, HEADER + "tasks:\n  - id: b\n    type: basic\n    url: https://example.com\n    method: GET\n"),
    "basic by return": (True, HEADER + "tasks:\n  - id: b\n    type: basic\n    return: \"{{ flow.id }}\"\n"),
    "dag": (True, HEADER + "tasks:\n  - id: d\n    type: dag\n    tasks:\n      - task: {id: a, type: log, message: a}\n      - task: {id: b, type: log, message: b}\n        dependsOn: [a]\n"),
    "switch cases": (True, HEADER + "tasks:\n  - id: s\n    type: switch\n    value: x\n    cases:\n      x:\n        - {id: a, type: log, message: a}\n"),
    "docker runner on commands": (True, HEADER + "tasks:\n  - id: c\n    type: commands\n    commands: [\"true\"]\n    containerImage: ubuntu\n    taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker, networkMode: host}\n"),
    "docker runner on script": (True, HEADER + "tasks:\n  - id: py\n    type: script\n    script: print(1)\n    taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker, pullPolicy: IF_NOT_PRESENT}\n"),
    "flow-level everything": (True, HEADER + "description: d\nlabels: {team: a}\ninputs:\n  - id: name\n    type: STRING\noutputs:\n  - id: out\n    type: STRING\n    value: x\nerrors:\n" + LOG + "finally:\n" + LOG.replace("say", "bye") + "retry: {type: constant, maxDuration: PT1M}\ntasks:\n" + LOG.replace("say", "main")),
    "schedule trigger": (True, HEADER + "triggers:\n  - id: hourly\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: \"0 * * * *\"\n    timezone: UTC\n    inputs: {name: x}\n    disabled: true\n    lateMaximumDelay: PT1M\ntasks:\n" + LOG),
    "another trigger type, open": (True, HEADER + "triggers:\n  - id: hook\n    type: io.kestra.plugin.core.trigger.Webhook\n    key: abc\ntasks:\n" + LOG),
    "labels as a list": (True, HEADER + "labels:\n  - {key: team, value: data}\ntasks:\n" + LOG),
    "input named the older way": (True, HEADER + "inputs:\n  - name: size\n    type: INT\n    min: 1\n    defaults: 2\ntasks:\n" + LOG),
    # rejected
    "unknown task type": (False, HEADER + "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Logg\n    message: hi\n"),
    "unknown property": (False, HEADER + "tasks:\n" + LOG + "    mesage: hi\n"),
    "wrong property type": (False, HEADER + "tasks:\n" + LOG + "    allowFailure: \"yes\"\n"),
    "string for a list of strings": (False, HEADER + "tasks:\n  - id: c\n    type: commands\n    commands: echo hi\n"),
    "integer below its minimum": (False, HEADER + "tasks:\n  - id: p\n    type: parallel\n    concurrent: -1\n    tasks:\n      - {id: a, type: log, message: a}\n"),
    "choice not among the choices": (False, HEADER + "tasks:\n  - id: p\n    type: parallel\n    strategy: all\n    tasks:\n      - {id: a, type: log, message: a}\n"),
    "missing task id": (False, HEADER + "tasks:\n  - type: log\n    message: hi\n"),
    "missing flow id": (False, "namespace: tests\ntasks:\n" + LOG),
    "missing namespace": (False, "id: sample\ntasks:\n" + LOG),
    "bad flow id": (False, "id: my flow\nnamespace: tests\ntasks:\n" + LOG),
    "empty tasks": (False, HEADER + "tasks: []\n"),
    "unknown flow key": (False, HEADER + "task: []\ntasks:\n" + LOG),
    "bad duration": (False, HEADER + "tasks:\n" + LOG + "    timeout: 5 minutes\n"),
    "template where no template is allowed": (False, HEADER + "tasks:\n" + LOG + "    timeout: \"{{ vars.t }}\"\n"),
    "missing required property": (False, HEADER + "tasks:\n  - id: nap\n    type: sleep\n"),
    "retry that never stops": (False, HEADER + "tasks:\n" + LOG + "    retry: {type: constant, interval: PT1S}\n"),
    "unknown retry property": (False, HEADER + "tasks:\n" + LOG + "    retry: {maxAttempt: 2, maxAttempts: 3}\n"),
    "basic without a deciding field": (False, HEADER + "tasks:\n  - id: b\n    type: basic\n    description: nothing\n"),
    "handler with an unknown key": (False, HEADER + "tasks:\n  - id: p\n    type: parallel\n    onError: {goto: x}\n    tasks:\n      - {id: a, type: log, message: a}\n"),
    "dag entry without a task": (False, HEADER + "tasks:\n  - id: d\n    type: dag\n    tasks:\n      - dependsOn: [a]\n"),
    "worker group without a key": (False, HEADER + "tasks:\n" + LOG + "    workerGroup: {name: q}\n"),
    "unknown docker runner property": (False, HEADER + "tasks:\n  - id: c\n    type: commands\n    commands: [\"true\"]\n    taskRunner: {type: io.kestra.plugin.scripts.runner.docker.Docker, pullPolicy: SOMETIMES}\n"),
    "input without an id": (False, HEADER + "inputs:\n  - type: STRING\ntasks:\n" + LOG),
    "input of an unknown type": (False, HEADER + "inputs:\n  - id: x\n    type: STRANG\ntasks:\n" + LOG),
    "schedule without cron": (False, HEADER + "triggers:\n  - id: hourly\n    type: io.kestra.plugin.core.trigger.Schedule\ntasks:\n" + LOG),
    "schedule with an unknown property": (False, HEADER + "triggers:\n  - id: hourly\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: \"@hourly\"\n    expression: \"@hourly\"\ntasks:\n" + LOG),
    "trigger without a type": (False, HEADER + "triggers:\n  - id: hourly\n    cron: \"@hourly\"\ntasks:\n" + LOG),
    "label without a value": (False, HEADER + "labels:\n  team: null\ntasks:\n" + LOG),
    "output without a value": (False, HEADER + "outputs:\n  - id: out\n    type: STRING\ntasks:\n" + LOG),
    "output with an unknown key": (False, HEADER + "outputs:\n  - id: out\n    type: STRING\n    value: x\n    format: y\ntasks:\n" + LOG),
}


@pytest.mark.parametrize("name", list(VERDICTS))
def test_schema_and_loader_agree(name: str):
    valid, text = VERDICTS[name]
    assert loader_accepts(text) is valid, f"the loader {'rejects' if valid else 'accepts'} the sample itself:\n{text}"
    problem = schema_problem(text)
    if valid:
        assert problem is None, problem
    else:
        assert problem is not None, f"the schema accepts:\n{text}"


# -- the command -------------------------------------------------------------------------------------


def test_tflow_schema_prints_the_schema(tmp_path: Path):
    printed = subprocess.run(tflow("schema"), capture_output=True, text=True, env=cli_env(), cwd=REPO, timeout=60)
    assert printed.returncode == 0, printed.stderr
    schema = json.loads(printed.stdout)
    Draft7Validator.check_schema(schema)
    assert schema == flow_schema()


def test_tflow_schema_output_writes_a_file_or_says_why_not(tmp_path: Path):
    app = typer.Typer()
    schema_command.register(app)
    target = tmp_path / "flow.schema.json"
    written = CliRunner().invoke(app, ["--output", str(target)])
    assert written.exit_code == 0, written.output
    assert json.loads(target.read_text(encoding="utf-8")) == flow_schema()
    refused = CliRunner().invoke(app, ["--output", str(tmp_path / "missing" / "flow.schema.json")])
    assert refused.exit_code == 2
    assert "cannot write the schema" in refused.output and "Traceback" not in refused.output
