"""Hostile YAML ends quickly, in bounded memory, with exit 2 and `file:line:col: what was expected`
(issue 14 part F): every case runs `tflow validate` (or `tflow run` up to its input check) as a
real process and reads that process's own CPU time and peak RSS from `os.wait4`.

CPU time, not wall time, is compared with a plain `tflow validate` of a small flow measured the
same way: a busy machine stretches wall time, not the work a process does. Before the bounds a
552-byte alias bomb took 54 s and 2.8 GB, deep nesting ended in `RecursionError` (exit 1) and a
50 MB file took 126 s and 3.3 GB.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from temporal_flows.language.source import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES
from tests.support import REPO, cli_env, tflow

EXTRA_CPU_S = 2.0
"""What a hostile file may cost over a plain `tflow validate` (its imports are most of that)."""
MAX_RSS_BYTES = 200 * 1024 * 1024


@dataclass(frozen=True)
class Measured:
    code: int
    stdout: str
    stderr: str
    cpu_s: float
    max_rss: int


def measure(*args: str, **env: str) -> Measured:
    """Run `tflow ARGS` to its end; its exit code, output, CPU seconds and peak RSS (bytes)."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(tflow(*args), cwd=REPO, env=cli_env(**env), stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own usage, where Popen.wait gives none
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        return Measured(code, stdout.read(), stderr.read(), usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Measured:
    flow = tmp_path_factory.mktemp("baseline") / "small.yaml"
    flow.write_text("id: small\nnamespace: tests\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n")
    found = measure("validate", str(flow))
    assert found.code == 0, found.stderr
    return found


def assert_refused(found: Measured, baseline: Measured, message: str) -> None:
    """Exit 2, one problem matching `message` (a regex starting with file:line:col), no traceback,
    and the cost bounds."""
    assert found.code == 2, f"exit {found.code}\n{found.stderr}"
    assert "Traceback" not in found.stderr and "internal error" not in found.stderr, found.stderr
    assert re.search(message, found.stderr), found.stderr
    assert found.cpu_s < baseline.cpu_s + EXTRA_CPU_S, f"{found.cpu_s:.2f} s CPU (baseline {baseline.cpu_s:.2f} s)"
    assert found.max_rss < MAX_RSS_BYTES, f"peak RSS {found.max_rss / 2**20:.0f} MB"
    print(f"\n{found.stderr.strip()[:160]}\n  {found.cpu_s:.2f} s CPU (baseline {baseline.cpu_s:.2f}), "
          f"{found.max_rss / 2**20:.0f} MB peak")


def laughs(levels: int) -> str:
    """The "billion laughs": each level a list of nine aliases of the one before (9**levels nodes)."""
    lines = ['  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "id: bomb\nnamespace: tests\nvars:\n" + "\n".join(lines) + "\ntasks:\n  - id: a\n    type: log\n    message: hi\n"


def test_alias_bomb_is_refused_at_the_alias_that_passes_the_node_budget(tmp_path: Path, baseline: Measured):
    flow = tmp_path / "bomb.yaml"
    flow.write_text(laughs(9))
    assert flow.stat().st_size < 600
    found = measure("validate", str(flow))
    # 9**5 = 59,049 nodes fit; the alias of a4 (66,430 expanded nodes) on line 9 passes 100,000.
    assert_refused(found, baseline, rf"^{re.escape(str(flow))}:9:\d+: the alias `\*a4` \(66,430 nodes\) makes the YAML "
                                    rf"expand to more than {MAX_YAML_NODES:,} nodes \(\$TFLOW_MAX_YAML_NODES\); expected fewer")


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path, baseline: Measured):
    flow = tmp_path / "cycle.yaml"
    flow.write_text("id: cycle\nnamespace: tests\nvars:\n  a: &a [1, [2, *a]]\ntasks: []\n")
    found = measure("validate", str(flow))
    assert_refused(found, baseline, rf"^{re.escape(str(flow))}:4:17: the alias `\*a` stands inside its own anchor "
                                    r"`&a` .*expected data without cycles")


def test_deep_block_nesting_names_the_line_past_the_depth_limit(tmp_path: Path, baseline: Measured):
    flow = tmp_path / "deep.yaml"
    keys = "".join("  " * (level + 1) + f"k{level}:\n" for level in range(400))
    flow.write_text(f"id: deep\nnamespace: tests\nvars:\n{keys}{'  ' * 401}end\ntasks: []\n")
    found = measure("validate", str(flow))
    # Level 1 is the flow's mapping, 2 `vars`' value: the 101st mapping is k99's value, on line 103.
    assert_refused(found, baseline, rf"^{re.escape(str(flow))}:103:\d+: mappings and lists nested more than "
                                    rf"{MAX_YAML_DEPTH} levels deep \(\$TFLOW_MAX_YAML_DEPTH\); expected a shallower structure")


@pytest.mark.parametrize("depth", [150, 100_000])
def test_deep_flow_style_nesting_is_refused_not_a_recursion_error(tmp_path: Path, baseline: Measured, depth: int):
    flow = tmp_path / "brackets.yaml"
    flow.write_text("id: deep\nnamespace: tests\ntasks:\n  - id: a\n    type: log\n    message: " + "[" * depth + "]" * depth + "\n")
    found = measure("validate", str(flow))
    # libyaml's own limit (1000 flow levels) may answer first for the deepest: still exit 2 at line 6.
    assert_refused(found, baseline, rf"^{re.escape(str(flow))}:6:\d+: (mappings and lists nested more than "
                                    rf"{MAX_YAML_DEPTH} levels deep|invalid YAML: .*exceeded maximum nesting depth)")


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path, baseline: Measured):
    flow = tmp_path / "huge.yaml"
    with flow.open("w") as out:
        out.write("id: huge\nnamespace: tests\ntasks:\n")
        for index in range(50 * 1024 * 1024 // 60):
            out.write(f"  - {{id: t{index:09}, type: log, message: 'some text to log'}}\n")
    size = flow.stat().st_size
    assert size > 50 * 1024 * 1024
    found = measure("validate", str(flow))
    assert_refused(found, baseline, rf"^{re.escape(str(flow))}:1:1: {size:,} bytes of YAML, over the "
                                    rf"{MAX_YAML_BYTES:,}-byte limit \(\$TFLOW_MAX_YAML_BYTES\); expected a smaller text")


def test_limits_come_from_the_environment(tmp_path: Path, baseline: Measured):
    flow = tmp_path / "flow.yaml"
    flow.write_text("id: small\nnamespace: tests\nvars:\n  list: [1, 2, 3, 4, 5, 6]\ntasks:\n"
                    "  - id: a\n    type: log\n    message: hi\n")
    found = measure("validate", str(flow), TFLOW_MAX_YAML_BYTES="50")
    assert_refused(found, baseline, r":1:1: \d+ bytes of YAML, over the 50-byte limit")
    found = measure("validate", str(flow), TFLOW_MAX_YAML_NODES="10")
    assert_refused(found, baseline, r":4:\d+: the YAML has more than 10 nodes")
    found = measure("validate", str(flow), TFLOW_MAX_YAML_DEPTH="2")
    assert_refused(found, baseline, r":4:9: mappings and lists nested more than 2 levels deep")


def test_a_subflow_file_that_is_a_bomb_costs_no_more(tmp_path: Path, baseline: Measured):
    (tmp_path / "child.yaml").write_text(laughs(12).replace("id: bomb", "id: child"))
    flow = tmp_path / "parent.yaml"
    flow.write_text("id: parent\nnamespace: tests\ntasks:\n  - id: call\n    type: io.kestra.plugin.core.flow.Subflow\n"
                    "    namespace: tests\n    flowId: child\n")
    found = measure("validate", str(flow), "--flows-dir", str(tmp_path))
    assert_refused(found, baseline, r"parent\.yaml:\d+:\d+: .*child")


def test_inputs_file_and_yaml_input_use_the_same_bounds(tmp_path: Path, baseline: Measured):
    flow = tmp_path / "flow.yaml"
    flow.write_text("id: takes\nnamespace: tests\ninputs:\n  - id: data\n    type: YAML\n    required: false\ntasks:\n"
                    "  - id: a\n    type: log\n    message: hi\n")
    bomb = tmp_path / "inputs.yaml"
    bomb.write_text(laughs(12).replace("id: bomb\nnamespace: tests\n", "").split("tasks:")[0])
    # Refused while the inputs are read, before `tflow run` would start a server.
    found = measure("run", str(flow), "--inputs-file", str(bomb), "--address", "127.0.0.1:1")
    assert_refused(found, baseline, rf"--inputs-file {re.escape(str(bomb))}: .*more than {MAX_YAML_NODES:,} nodes")
    found = measure("run", str(flow), "--input", "data=" + laughs(12), "--address", "127.0.0.1:1")
    assert_refused(found, baseline, r"invalid inputs:\n.*data.*YAML")
