"""`--defaults FILE` through real `tflow` processes: `validate` and `graph` see the tasks with the
file's plugin defaults merged in, a problem in a default is reported at its line in the file, and a
bad file exits 2 saying why."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

from tests.support import REPO, cli_env, tflow, write_flow

FLOW = """
id: uses_defaults
namespace: company.team
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: hello
        type: io.kestra.core.tasks.log.Log
      - id: shell
        type: io.kestra.plugin.scripts.shell.Script
        script: echo hi
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(tflow(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)


def write_defaults(folder: Path, text: str) -> Path:
    path = folder / "defaults.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


GOOD = """
pluginDefaults:
  - type: io.kestra.plugin.core.log.Log
    values:
      message: "{{ flow.id }} says hello"
  - type: io.kestra.plugin.core.flow.Parallel
    values:
      strategy: wait_all
"""


def test_validate_with_defaults_sees_the_merged_tasks(tmp_path: Path):
    flow = write_flow(tmp_path, FLOW)
    alone = run_cli("validate", str(flow))
    assert alone.returncode == 2, alone.stderr
    assert f"{flow}:7:9: task `hello` (log) is missing `message`" in alone.stderr

    defaults = write_defaults(tmp_path, GOOD)
    proc = run_cli("validate", str(flow), "--defaults", str(defaults))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{flow}: valid"


def test_validate_points_at_the_defaults_line_of_a_bad_value(tmp_path: Path):
    flow = write_flow(tmp_path, FLOW)
    defaults = write_defaults(tmp_path, GOOD.replace("strategy: wait_all", "strategy: sometimes"))
    proc = run_cli("validate", str(flow), "--defaults", str(defaults), "--json")
    assert proc.returncode == 2, proc.stderr
    [report] = json.loads(proc.stdout)
    assert report["file"] == str(flow) and not report["valid"]
    [problem] = report["problems"]
    assert (problem["file"], problem["line"], problem["column"]) == (str(defaults), 7, 17)
    assert problem["message"].startswith("`strategy` must be one of `wait_all`, `fail_fast`")
    assert "Traceback" not in proc.stderr


def test_a_bad_defaults_file_is_reported_alone_with_exit_2(tmp_path: Path):
    flow = write_flow(tmp_path, FLOW)
    defaults = write_defaults(tmp_path, "pluginDefaults:\n  - type: log\n    values: [message]\n")
    proc = run_cli("validate", str(flow), "--defaults", str(defaults))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"{defaults}:3:13: a plugin default needs `values`: a mapping of property → value"
    graph = run_cli("graph", str(flow), "--defaults", str(defaults))
    assert graph.returncode == 2 and graph.stderr.strip() == proc.stderr.strip(), graph.stderr


def test_graph_with_defaults_draws_the_merged_tasks(tmp_path: Path):
    flow = write_flow(tmp_path, FLOW)
    assert run_cli("graph", str(flow)).returncode == 2
    proc = run_cli("graph", str(flow), "--defaults", str(write_defaults(tmp_path, GOOD)))
    assert proc.returncode == 0, proc.stderr
    assert "[fan (parallel, wait_all)]" in proc.stdout
    assert "hello  log" in proc.stdout and "shell  commands" in proc.stdout


def test_run_and_deploy_refuse_a_bad_defaults_file_before_anything_starts(tmp_path: Path):
    flow = write_flow(tmp_path, FLOW)
    defaults = write_defaults(tmp_path, "pluginDefaults: nope\n")
    for command in (("run", str(flow)), ("deploy", str(flow), "--address", "127.0.0.1:1")):
        proc = run_cli(*command, "--defaults", str(defaults))
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr.strip() == f"{defaults}:1:17: `pluginDefaults` must be a list of `{{type, values, forced}}`", proc.stderr
