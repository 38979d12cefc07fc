"""Flowable task types on a real server (SPEC §3.2, §3.5, §3.6, §6): for-each and each_parallel,
dag, switch, if, allow_failure, fail, sleep, output_values, errors/finally; Kestra's ledger
counting (one task run per task per item value, parents linked), values, iterations, outputs
keyed by item, timing and overlap; and the validation of DAGs."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from temporal_flows.language.loader import load_flow_text
from temporal_flows.model.problems import FlowError
from tests.support import (
    REPO,
    cli_env,
    duration,
    fill,
    peak_concurrency,
    pid_alive,
    run_flows,
    run_with_history,
    runs_of,
    span,
    task_ids,
    task_run,
    tflow,
    wait_until,
    write_flow,
)



def by_value(result: dict[str, Any], task_id: str) -> dict[str, dict[str, Any]]:
    """The task runs of `task_id` keyed by their item value (asserting one per value)."""
    runs = runs_of(result, task_id)
    keyed = {run["value"]: run for run in runs}
    assert len(keyed) == len(runs), f"{task_id}: more than one task run for one value: {[run['value'] for run in runs]}"
    return keyed


def children(result: dict[str, Any], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return [run for run in result["task_runs"] if run["parent_id"] == parent["id"]]


def starts_after(later: dict[str, Any], *earlier: dict[str, Any]) -> bool:
    """Ledger timestamps share one ISO format (UTC, milliseconds, `Z`), so text order is time order."""
    return all(later["started_at"] >= run["ended_at"] for run in earlier)


def overlap(first: dict[str, Any], second: dict[str, Any]) -> bool:
    return first["started_at"] < second["ended_at"] and second["started_at"] < first["ended_at"]


# -- for-each ---------------------------------------------------------------------------------


async def test_foreach_values_iterations_outputs_and_counting(client: Client, worker: str, tmp_path: Path):
    results = await run_flows(client, worker, tmp_path, {
        "each": """
            id: each
            namespace: tests.flowables
            tasks:
              - id: each
                type: io.kestra.plugin.core.flow.ForEach
                values: '["a", "b", "a", {"k": 1}, 7]'
                tasks:
                  - {id: r, type: return, format: "{{ taskrun.value }}-{{ taskrun.iteration }}"}
                  - {id: off, type: fail, disabled: true}
                  - {id: r2, type: return, format: "{{ outputs.r[taskrun.value].value }}+{{ parent.task.id }}"}
              - id: after
                type: return
                format: "{{ outputs.r['a'].value }} {{ outputs.r['b'].value }} {{ outputs.r2['7'].value }}"
            """,
        "list": """
            id: eachlist
            namespace: tests.flowables
            tasks:
              - id: each
                type: foreach
                values: [x, 2, x]
                tasks:
                  - {id: r, type: return, format: "{{ taskrun.value }}"}
            """,
        "empty": """
            id: empty
            namespace: tests.flowables
            tasks:
              - id: e1
                type: foreach
                values: []
                tasks:
                  - {id: body1, type: fail}
              - id: e2
                type: io.kestra.plugin.core.flow.EachSequential
                values: '[]'
                tasks:
                  - {id: body2, type: fail}
              - id: after
                type: return
                format: done
            """,
        "nulls": """
            id: nulls
            namespace: tests.flowables
            tasks:
              - id: each
                type: foreach
                values: '["a", null, "b", null]'
                tasks:
                  - {id: r, type: return, format: "{{ taskrun.value }}"}
              - id: after
                type: return
                format: never
            """,
    })

    each = results["each"]
    assert each["state"] == "SUCCESS", each["error"]
    assert task_ids(each) == ["each", "r", "r2", "r", "r2", "r", "r2", "r", "r2", "after"]
    parent = task_run(each, "each")
    assert parent["value"] is None and parent["iteration"] is None and parent["parent_id"] is None
    assert [(run["task_id"], run["value"], run["iteration"]) for run in children(each, parent)] == [
        ("r", "a", 0), ("r2", "a", 0),
        ("r", "b", 1), ("r2", "b", 1),
        ("r", '{"k":1}', 2), ("r2", '{"k":1}', 2),
        ("r", "7", 3), ("r2", "7", 3),
    ]
    assert [run["outputs"]["value"] for run in runs_of(each, "r")] == ["a-0", "b-1", '{"k":1}-2', "7-3"]
    assert [run["outputs"]["value"] for run in runs_of(each, "r2")] == ["a-0+each", "b-1+each", '{"k":1}-2+each', "7-3+each"]
    assert task_run(each, "after")["outputs"]["value"] == "a-0 b-1 7-3+each"
    assert task_run(each, "after")["parent_id"] is None

    listed = results["list"]
    assert listed["state"] == "SUCCESS", listed["error"]
    assert [(run["value"], run["iteration"], run["outputs"]["value"]) for run in runs_of(listed, "r")] == [
        ("x", 0, "x"), ("2", 1, "2"),
    ]

    empty = results["empty"]
    assert empty["state"] == "SUCCESS", empty["error"]
    assert task_ids(empty) == ["e1", "e2", "after"]
    assert task_run(empty, "e1")["state"] == "SUCCESS" and task_run(empty, "e2")["state"] == "SUCCESS"

    nulls = results["nulls"]
    assert nulls["state"] == "FAILED"
    assert task_ids(nulls) == ["each"], "no item may run when the values hold nulls"
    failed = task_run(nulls, "each")
    assert failed["state"] == "FAILED"
    assert failed["error"]["message"].startswith("Found '2' null values on Each"), failed["error"]
    assert nulls["error"]["task_id"] == "each"


async def test_foreach_starts_no_new_item_after_a_failure(client: Client, worker: str, tmp_path: Path):
    results = await run_flows(client, worker, tmp_path, {
        "sequential": """
            id: stops
            namespace: tests.flowables
            tasks:
              - id: each
                type: foreach
                values: ["1", "2", "3"]
                tasks:
                  - id: f
                    type: fail
                    condition: "{{ taskrun.value == '2' }}"
                    errorMessage: "item {{ taskrun.value }}"
                  - {id: r, type: return, format: "{{ taskrun.value }}"}
              - id: after
                type: return
                format: never
            """,
        "limited": """
            id: stopslimited
            namespace: tests.flowables
            tasks:
              - id: each
                type: foreach
                values: [1, 2, 3, 4]
                concurrencyLimit: 2
                tasks:
                  - id: c
                    type: commands
                    commands: ["if [ {{ taskrun.value }} = 1 ]; then exit 3; fi", "sleep 1"]
            """,
    })
    stops = results["sequential"]
    assert stops["state"] == "FAILED"
    assert [(run["task_id"], run["value"], run["state"]) for run in stops["task_runs"]] == [
        ("each", None, "FAILED"),
        ("f", "1", "SUCCESS"), ("r", "1", "SUCCESS"),
        ("f", "2", "FAILED"),
    ]
    assert stops["error"]["task_id"] == "f"
    assert stops["error"]["message"] == "item 2"

    limited = results["limited"]
    assert limited["state"] == "FAILED"
    assert sorted(run["value"] for run in runs_of(limited, "c")) == ["1", "2"], "items 3 and 4 must never start"
    assert by_value(limited, "c")["1"]["state"] == "FAILED"
    assert task_run(limited, "each")["state"] == "FAILED"


HANDOFF_S = 1.0
"""Between a task run's end and the start of the one it lets go: a workflow task and a dispatch (a few
hundred ms; up to a second beside a CPU-bound process on 2 cores)."""


def critical_path(runs: list[dict[str, Any]], deep: int) -> float:
    """The most a group whose critical path is `deep` of these task runs in a row may take: their
    typical (median) duration as measured — which absorbs how slowly processes start on a loaded
    machine — plus a hand-off for each. The exact checks are the peak concurrencies read from the
    tasks' own logs; this bound says that nothing waited for nothing."""
    durations = sorted(duration(run) for run in runs)
    return deep * (durations[len(durations) // 2] + HANDOFF_S)


async def test_foreach_and_each_parallel_concurrency(client: Client, worker: str, tmp_path: Path):
    logs = {name: tmp_path / f"{name}.log" for name in ("one", "two", "all", "ep", "ep2")}
    half = {name: span(log, 0.5) for name, log in logs.items()}
    whole = {name: span(log, 1) for name, log in logs.items()}
    started = time.monotonic()
    results = await run_flows(client, worker, tmp_path, {
        "one": fill("""
            id: one
            namespace: tests.flowables
            tasks:
              - id: each
                type: foreach
                values: [1, 2, 3, 4]
                tasks:
                  - {id: s, type: commands, commands: <<cmd>>}
            """, cmd=whole["one"]),
        "two": fill("""
            id: two
            namespace: tests.flowables
            tasks:
              - id: each
                type: io.kestra.plugin.core.flow.ForEach
                values: [1, 2, 3, 4]
                concurrencyLimit: 2
                tasks:
                  - {id: s1, type: commands, commands: <<cmd>>}
                  - {id: s2, type: commands, commands: <<cmd>>}
            """, cmd=half["two"]),
        "all": fill("""
            id: all
            namespace: tests.flowables
            tasks:
              - id: each
                type: foreach
                values: '[1, 2, 3, 4]'
                concurrency_limit: 0
                tasks:
                  - {id: s, type: commands, commands: <<cmd>>}
            """, cmd=whole["all"]),
        "ep": fill("""
            id: ep
            namespace: tests.flowables
            tasks:
              - id: par
                type: io.kestra.plugin.core.flow.EachParallel
                value: [1, 2, 3]
                tasks:
                  - {id: a, type: commands, commands: <<cmd>>}
                  - {id: b, type: commands, commands: <<cmd>>}
              - id: after
                type: return
                format: "{{ outputs.a['2'].exitCode }}"
            """, cmd=whole["ep"]),
        "ep2": fill("""
            id: ep2
            namespace: tests.flowables
            tasks:
              - id: par
                type: each_parallel
                values: [1, 2, 3, 4]
                concurrent: 2
                tasks:
                  - {id: a, type: commands, commands: <<cmd>>}
            """, cmd=half["ep2"]),
    })
    elapsed = time.monotonic() - started
    for name, result in results.items():
        assert result["state"] == "SUCCESS", (name, result["error"])

    one = task_run(results["one"], "each")
    assert peak_concurrency(logs["one"]) == 1, "concurrencyLimit defaults to one item at a time"
    assert 4.0 <= duration(one) < critical_path(runs_of(results["one"], "s"), 4), duration(one)
    assert [run["value"] for run in runs_of(results["one"], "s")] == ["1", "2", "3", "4"]

    two = results["two"]
    assert peak_concurrency(logs["two"]) == 2
    two_runs = runs_of(two, "s1") + runs_of(two, "s2")
    assert 1.9 <= duration(task_run(two, "each")) < critical_path(two_runs, 4), duration(task_run(two, "each"))
    first, second = by_value(two, "s1"), by_value(two, "s2")
    for value in ("1", "2", "3", "4"):
        assert starts_after(second[value], first[value]), "tasks inside one item run in order"
    assert overlap(first["1"], first["2"]), "two items run at once"

    assert peak_concurrency(logs["all"]) == 4, "concurrencyLimit 0 runs every item at once"
    assert duration(task_run(results["all"], "each")) < critical_path(runs_of(results["all"], "s"), 1)

    ep = results["ep"]
    assert peak_concurrency(logs["ep"]) == 6, "each_parallel runs every (item × task) at once"
    assert duration(task_run(ep, "par")) < critical_path(runs_of(ep, "a") + runs_of(ep, "b"), 1)
    par = task_run(ep, "par")
    assert sorted((run["task_id"], run["value"], run["iteration"]) for run in children(ep, par)) == [
        ("a", "1", 0), ("a", "2", 1), ("a", "3", 2), ("b", "1", 0), ("b", "2", 1), ("b", "3", 2),
    ]
    assert len(ep["task_runs"]) == 8
    assert task_run(ep, "after")["outputs"]["value"] == "0"

    assert peak_concurrency(logs["ep2"]) == 2, "each_parallel's `concurrent` limits it"
    assert 1.0 <= duration(task_run(results["ep2"], "par")) < critical_path(runs_of(results["ep2"], "a"), 2)
    assert elapsed < max(result["duration_s"] for result in results.values()) + 5 * HANDOFF_S + 5  # + starting and reading five runs


async def test_parallel_inside_foreach_and_foreach_inside_parallel(client: Client, worker: str, tmp_path: Path):
    pif_log, fip_log = tmp_path / "pif.log", tmp_path / "fip.log"
    results = await run_flows(client, worker, tmp_path, {
        "pif": fill("""
            id: pif
            namespace: tests.flowables
            tasks:
              - id: each
                type: foreach
                values: [a, b]
                tasks:
                  - id: par
                    type: parallel
                    tasks:
                      - {id: p1, type: commands, commands: <<cmd>>}
                      - {id: p2, type: commands, commands: <<cmd>>}
                      - {id: p3, type: return, format: "{{ taskrun.value }}-{{ parents[1].task.id }}"}
              - id: after
                type: return
                format: "{{ outputs.p3['a'].value }} {{ outputs.p3['b'].value }}"
            """, cmd=span(pif_log, 1)),
        "fip": fill("""
            id: fip
            namespace: tests.flowables
            tasks:
              - id: par
                type: parallel
                tasks:
                  - id: loop
                    type: foreach
                    values: [1, 2]
                    tasks:
                      - {id: s, type: commands, commands: <<cmd>>}
                  - {id: other, type: commands, commands: <<cmd2>>}
            """, cmd=span(fip_log, 1), cmd2=span(fip_log, 1.5)),
    })
    pif = results["pif"]
    assert pif["state"] == "SUCCESS", pif["error"]
    assert task_ids(pif) == ["each", "par", "p1", "p2", "p3", "par", "p1", "p2", "p3", "after"]
    each = task_run(pif, "each")
    pars = by_value(pif, "par")
    assert set(pars) == {"a", "b"}
    for value, par in pars.items():
        assert par["parent_id"] == each["id"]
        for task_id in ("p1", "p2", "p3"):
            run = by_value(pif, task_id)[value]
            assert run["parent_id"] == par["id"], f"{task_id}[{value}] must be a child of par[{value}]"
    assert overlap(by_value(pif, "p1")["a"], by_value(pif, "p2")["a"]), "the parallel inside an item runs its children at once"
    assert starts_after(pars["b"], pars["a"]), "items run one after the other"
    assert peak_concurrency(pif_log) == 2
    assert 1.9 <= duration(each) < 3.5, duration(each)
    assert task_run(pif, "after")["outputs"]["value"] == "a-each b-each"

    fip = results["fip"]
    assert fip["state"] == "SUCCESS", fip["error"]
    loop = task_run(fip, "loop")
    assert loop["parent_id"] == task_run(fip, "par")["id"]
    s = by_value(fip, "s")
    assert s["1"]["parent_id"] == s["2"]["parent_id"] == loop["id"]
    assert starts_after(s["2"], s["1"]), "a for-each inside a parallel still runs its items in order"
    assert overlap(task_run(fip, "other"), s["1"]), "the for-each runs beside its parallel sibling"
    assert peak_concurrency(fip_log) == 2
    assert 1.9 <= duration(task_run(fip, "par")) < 3.5


async def test_nested_foreach_parents_and_outputs_by_value(client: Client, worker: str, tmp_path: Path):
    [result] = (await run_flows(client, worker, tmp_path, {"nested": """
        id: nested
        namespace: tests.flowables
        tasks:
          - id: l1
            type: foreach
            values: ["x", "y"]
            tasks:
              - id: l2
                type: foreach
                values: ["1", "2"]
                tasks:
                  - id: mid
                    type: return
                    format: "{{ parent.taskrun.value }}/{{ taskrun.value }}"
                  - id: l3
                    type: foreach
                    values: '["p"]'
                    tasks:
                      - id: leaf
                        type: return
                        format: "{{ parents[1].taskrun.value }}-{{ parents[0].taskrun.value }}-{{ taskrun.value }}-{{ parents[2].task.id }}"
                  - id: use
                    type: return
                    format: "{{ outputs.mid[parent.taskrun.value][taskrun.value].value }}|{{ currentEachOutput(outputs.mid).value }}|{{ outputs.leaf[parent.taskrun.value][taskrun.value]['p'].value }}"
          - id: after
            type: return
            format: "{{ outputs.mid['y']['2'].value }} {{ outputs.leaf['x']['1']['p'].value }}"
        """})).values()
    assert result["state"] == "SUCCESS", result["error"]
    assert len(result["task_runs"]) == 1 + 2 + 4 + 4 + 4 + 4 + 1
    l1 = task_run(result, "l1")
    l2 = by_value(result, "l2")
    assert {value: (run["parent_id"], run["iteration"]) for value, run in l2.items()} == {"x": (l1["id"], 0), "y": (l1["id"], 1)}

    def run_for(task_id: str, outer: str, inner: str) -> dict[str, Any]:
        [match] = [run for run in runs_of(result, task_id) if run["value"] == inner and run["parent_id"] == l2[outer]["id"]]
        return match

    for outer in ("x", "y"):
        for index, inner in enumerate(("1", "2")):
            mid = run_for("mid", outer, inner)
            assert mid["iteration"] == index
            assert mid["outputs"]["value"] == f"{outer}/{inner}"
            l3 = run_for("l3", outer, inner)
            [leaf] = [run for run in runs_of(result, "leaf") if run["parent_id"] == l3["id"]]
            assert (leaf["value"], leaf["iteration"]) == ("p", 0)
            assert leaf["outputs"]["value"] == f"{outer}-{inner}-p-l1"
            use = run_for("use", outer, inner)
            assert use["outputs"]["value"] == f"{outer}/{inner}|{outer}/{inner}|{outer}-{inner}-p-l1"
    assert task_run(result, "after")["outputs"]["value"] == "y/2 x-1-p-l1"


async def test_flowables_inside_iterations(client: Client, worker: str, tmp_path: Path):
    results = await run_flows(client, worker, tmp_path, {
        "ifeach": """
            id: ifeach
            namespace: tests.flowables
            tasks:
              - id: each
                type: foreach
                values: [1, 2, 3]
                tasks:
                  - id: check
                    type: if
                    condition: "{{ taskrun.value | int > 1 }}"
                    then: [{id: big, type: return, format: "big {{ taskrun.value }}"}]
                    else: [{id: small, type: return, format: "small {{ taskrun.value }}"}]
                  - id: sw
                    type: switch
                    value: "{{ taskrun.value }}"
                    cases:
                      "3": [{id: three, type: return, format: "{{ outputs.big[taskrun.value].value }}!"}]
                    defaults: [{id: other, type: return, format: "{{ taskrun.value }}"}]
            """,
        "epseq": """
            id: epseq
            namespace: tests.flowables
            tasks:
              - id: ep
                type: each_parallel
                values: [p, q]
                tasks:
                  - id: seq
                    type: sequential
                    tasks:
                      - {id: s1, type: return, format: "{{ taskrun.value }}"}
                      - {id: s2, type: return, format: "{{ outputs.s1[taskrun.value].value }}{{ taskrun.iteration }}"}
                  - {id: lone, type: return, format: "{{ parent.task.id }}"}
            """,
        "epfail": """
            id: epfail
            namespace: tests.flowables
            tasks:
              - id: ep
                type: io.kestra.plugin.core.flow.EachParallel
                values: [1, 2]
                tasks:
                  - {id: b, type: fail, condition: "{{ taskrun.value == '1' }}"}
              - {id: never, type: return, format: never}
            """,
    })
    ifeach = results["ifeach"]
    assert ifeach["state"] == "SUCCESS", ifeach["error"]
    checks = by_value(ifeach, "check")
    assert set(checks) == {"1", "2", "3"}
    assert {run["value"]: run["outputs"]["value"] for run in runs_of(ifeach, "big")} == {"2": "big 2", "3": "big 3"}
    assert [(run["value"], run["outputs"]["value"]) for run in runs_of(ifeach, "small")] == [("1", "small 1")]
    for run in runs_of(ifeach, "big") + runs_of(ifeach, "small"):
        assert run["parent_id"] == checks[run["value"]]["id"]
    assert {value: run["outputs"] for value, run in by_value(ifeach, "sw").items()} == {
        "1": {"value": "1", "defaults": True}, "2": {"value": "2", "defaults": True}, "3": {"value": "3", "defaults": False},
    }
    assert [(run["value"], run["outputs"]["value"]) for run in runs_of(ifeach, "three")] == [("3", "big 3!")]
    assert {run["value"]: run["outputs"]["value"] for run in runs_of(ifeach, "other")} == {"1": "1", "2": "2"}
    assert len(ifeach["task_runs"]) == 1 + 3 * 2 + 3 + 3

    epseq = results["epseq"]
    assert epseq["state"] == "SUCCESS", epseq["error"]
    seqs = by_value(epseq, "seq")
    assert {value: run["iteration"] for value, run in seqs.items()} == {"p": 0, "q": 1}
    for value in ("p", "q"):
        s1, s2 = by_value(epseq, "s1")[value], by_value(epseq, "s2")[value]
        assert s1["parent_id"] == s2["parent_id"] == seqs[value]["id"]
        assert starts_after(s2, s1)
    assert {run["value"]: run["outputs"]["value"] for run in runs_of(epseq, "s2")} == {"p": "p0", "q": "q1"}
    assert {run["value"]: run["outputs"]["value"] for run in runs_of(epseq, "lone")} == {"p": "ep", "q": "ep"}
    assert len(epseq["task_runs"]) == 1 + 2 * 4

    epfail = results["epfail"]
    assert epfail["state"] == "FAILED"
    assert task_run(epfail, "ep")["state"] == "FAILED"
    assert {run["value"]: run["state"] for run in runs_of(epfail, "b")} == {"1": "FAILED", "2": "SUCCESS"}
    assert "never" not in task_ids(epfail)


async def test_foreach_over_an_earlier_output(client: Client, worker: str, tmp_path: Path):
    flow = """
        id: <<id>>
        namespace: tests.flowables
        tasks:
          - id: gen
            type: output_values
            values: {items: [m, n, m]}
          - id: each
            type: foreach
            values: "<<values>>"
            tasks:
              - {id: r, type: return, format: "{{ taskrun.value }}"}
        """
    forms = {
        "tojson": "{{ outputs.gen['values']['items'] | tojson }}",  # Jinja's filter
        "json": "{{ outputs.gen['values']['items'] | json }}",  # the Pebble form SPEC §3.6 accepts
    }
    wrong = []
    for name, values in forms.items():
        text = fill(flow, id=name, values=values)
        try:
            load_flow_text(text, f"{name}.yaml")
        except FlowError as error:
            wrong.append(f"{values}: refused by validation: {error}")
            continue
        [result] = (await run_flows(client, worker, tmp_path, {name: text})).values()
        got = [(run["value"], run["iteration"]) for run in runs_of(result, "r")]
        if result["state"] != "SUCCESS" or got != [("m", 0), ("n", 1)]:
            wrong.append(f"{values}: state {result['state']}, items {got}, error {result['error']}")
    assert not wrong, wrong


# -- dag --------------------------------------------------------------------------------------


async def test_dag_waits_for_dependencies_and_overlaps_branches(client: Client, worker: str, tmp_path: Path):
    log = tmp_path / "dag.log"
    results = await run_flows(client, worker, tmp_path, {
        "dag": fill("""
            id: dag
            namespace: tests.flowables
            tasks:
              - id: d
                type: io.kestra.plugin.core.flow.Dag
                tasks:
                  - task: {id: join, type: commands, commands: <<half>>}
                    dependsOn: [left, right]
                  - task: {id: left, type: commands, commands: <<whole>>}
                    dependsOn: [root]
                  - task: {id: right, type: commands, commands: <<whole>>}
                    depends_on: [root]
                  - task: {id: root, type: commands, commands: <<half>>}
                  - task: {id: lone, type: return, format: lone}
              - id: after
                type: return
                format: "{{ outputs.lone.value }} {{ outputs.join.exitCode }}"
            """, half=span(log, 0.5), whole=span(log, 1)),
        "dagfail": """
            id: dagfail
            namespace: tests.flowables
            tasks:
              - id: d
                type: dag
                tasks:
                  - task: {id: root, type: return, format: r}
                  - task: {id: bad, type: fail, errorMessage: broken}
                    dependsOn: [root]
                  - task: {id: slow, type: commands, commands: ["sleep 1"]}
                    dependsOn: [root]
                  - task: {id: after_bad, type: return, format: x}
                    dependsOn: [bad]
                  - task: {id: after_slow, type: return, format: y}
                    dependsOn: [slow]
              - id: never
                type: return
                format: never
            """,
    })
    dag = results["dag"]
    assert dag["state"] == "SUCCESS", dag["error"]
    assert task_ids(dag) == ["d", "root", "lone", "left", "right", "join", "after"]
    d = task_run(dag, "d")
    root, left, right, join = (task_run(dag, task_id) for task_id in ("root", "left", "right", "join"))
    assert all(run["parent_id"] == d["id"] for run in (root, left, right, join, task_run(dag, "lone")))
    assert starts_after(left, root) and starts_after(right, root)
    assert starts_after(join, left, right), "a task starts only after every task it depends on ended"
    assert overlap(left, right), "independent branches run at once"
    assert peak_concurrency(log) == 2
    assert 1.9 <= duration(d) < 3.5, duration(d)
    assert task_run(dag, "after")["outputs"]["value"] == "lone 0"

    failed = results["dagfail"]
    assert failed["state"] == "FAILED"
    assert task_run(failed, "d")["state"] == "FAILED"
    assert task_run(failed, "bad")["state"] == "FAILED"
    assert task_run(failed, "slow")["state"] == "SUCCESS", "a dag is not fail-fast: running branches finish"
    assert set(task_ids(failed)) == {"d", "root", "bad", "slow"}, "nothing new starts after a failure in the dag"
    assert failed["error"]["task_id"] == "bad"


DAG_FLOW = """
id: v
namespace: tests.flowables
tasks:
  - id: d
    type: dag
    tasks:
      - task: {id: a, type: return, format: a}
        dependsOn: [c]
      - task: {id: b, type: return, format: b}
        dependsOn: [a]
      - task: {id: c, type: return, format: c}
        dependsOn: [b]
      - task: {id: root, type: return, format: r}
      - task: {id: free, type: return, format: f}
        dependsOn: [rot]
"""


def test_dag_validation_names_cycle_members_and_unknown_dependencies():
    with pytest.raises(FlowError) as raised:
        load_flow_text(DAG_FLOW, "dag.yaml")
    problems = raised.value.problems
    cycles = [problem for problem in problems if "cycle" in problem.message]
    assert len(cycles) == 1, [str(problem) for problem in problems]
    cycle = cycles[0].message
    for member in ("`a`", "`b`", "`c`"):
        assert member in cycle, cycle
    assert "`free`" not in cycle and "`root`" not in cycle
    assert cycles[0].line in (8, 10, 12), "the cycle is reported at one of its members"
    unknown = [problem for problem in problems if "`rot`" in problem.message]
    assert len(unknown) == 1, [str(problem) for problem in problems]
    assert "not a task of dag `d`" in unknown[0].message and "`root`" in unknown[0].message  # did you mean
    assert unknown[0].line == 15
    assert len(problems) == 2, [str(problem) for problem in problems]

    self_loop = DAG_FLOW.replace("dependsOn: [rot]", "dependsOn: [free]")
    with pytest.raises(FlowError) as raised:
        load_flow_text(self_loop, "dag.yaml")
    assert any("cycle" in problem.message and "`free`" in problem.message for problem in raised.value.problems)


def test_tflow_validate_exits_2_on_a_dag_cycle(tmp_path: Path):
    path = write_flow(tmp_path, DAG_FLOW, "cycle.yaml")
    done = subprocess.run(tflow("validate", str(path)), cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    output = done.stdout + done.stderr
    assert f"{path}:" in output and "cycle" in output and "`rot`" in output


# -- switch, if, fail, allow_failure, output_values ------------------------------------------


async def test_switch_by_value_defaults_and_no_match(client: Client, worker: str, tmp_path: Path):
    switch = """
        id: <<id>>
        namespace: tests.flowables
        tasks:
          - {id: x, type: return, format: "<<value>>"}
          - id: sw
            type: io.kestra.plugin.core.flow.Switch
            value: "{{ outputs.x.value }}"
            cases:
              xy:
                - {id: hit, type: return, format: hit}
                - {id: hit2, type: return, format: "{{ outputs.hit.value }}2"}
              other:
                - {id: other, type: return, format: other}
            <<defaults>>
          - id: after
            type: return
            format: "{{ outputs.sw.value }}"
        """
    defaults = "defaults: [{id: miss, type: return, format: miss}]"
    results = await run_flows(client, worker, tmp_path, {
        "case": fill(switch, id="case", value="xy", defaults=defaults),
        "default": fill(switch, id="default", value="zz", defaults=defaults),
        "nomatch": fill(switch, id="nomatch", value="zz", defaults=""),
        "number": """
            id: number
            namespace: tests.flowables
            tasks:
              - id: sw
                type: switch
                value: "{{ 1 + 1 }}"
                cases:
                  1: [{id: one, type: return, format: one}]
                  2: [{id: two, type: return, format: two}]
            """,
    })
    case = results["case"]
    assert case["state"] == "SUCCESS", case["error"]
    assert task_ids(case) == ["x", "sw", "hit", "hit2", "after"]
    sw = task_run(case, "sw")
    assert sw["outputs"] == {"value": "xy", "defaults": False}
    assert task_run(case, "hit")["parent_id"] == task_run(case, "hit2")["parent_id"] == sw["id"]
    assert task_run(case, "hit2")["outputs"]["value"] == "hit2"
    assert task_run(case, "after")["outputs"]["value"] == "xy"

    default = results["default"]
    assert default["state"] == "SUCCESS", default["error"]
    assert task_ids(default) == ["x", "sw", "miss", "after"]
    assert task_run(default, "sw")["outputs"] == {"value": "zz", "defaults": True}
    assert task_run(default, "miss")["parent_id"] == task_run(default, "sw")["id"]

    nomatch = results["nomatch"]
    assert nomatch["state"] == "FAILED"
    assert task_ids(nomatch) == ["x", "sw"]
    assert task_run(nomatch, "sw")["state"] == "FAILED"
    assert "zz" in task_run(nomatch, "sw")["error"]["message"]
    assert nomatch["error"]["task_id"] == "sw"

    number = results["number"]
    assert number["state"] == "SUCCESS", number["error"]
    assert task_ids(number) == ["sw", "two"]


IF_CASES: list[tuple[str, bool]] = [
    ('"{{ outputs.x.value == \'xy\' }}"', True),
    ('"{{ outputs.x.value == \'no\' }}"', False),
    ("\"{{ 'false' }}\"", False),
    ('"false"', False),
    ("false", False),
    ('"0"', False),
    ("0", False),
    ('"-0"', False),
    ('""', False),
    ('"{{ none }}"', False),
    ("true", True),
    ('"yes"', True),
    ('"no"', True),
    ('"0.0"', True),
    ('"1"', True),
    ('"{{ 2 }}"', True),
    ('"{{ outputs.x.value }}"', True),
]


async def test_if_takes_then_or_else_by_truthiness(client: Client, worker: str, tmp_path: Path):
    branch = """
          - id: if<<index>>
            type: <<type>>
            condition: <<condition>>
            then: [{id: then<<index>>, type: return, format: "then {{ task.id }}"}]
            else: [{id: else<<index>>, type: return, format: else}]"""
    ifs = "".join(
        fill(branch, index=index, condition=condition, type="if" if index % 2 else "io.kestra.plugin.core.flow.If")
        for index, (condition, _) in enumerate(IF_CASES)
    )
    flow = fill("""
        id: ifs
        namespace: tests.flowables
        tasks:
          - {id: x, type: return, format: xy}<<ifs>>
          - id: only_then
            type: if
            condition: "{{ outputs.x.value == 'nope' }}"
            then: [{id: unreached, type: fail}]
          - id: after
            type: return
            format: "{{ outputs.then0.value }}"
        """, ifs=ifs)
    [result] = (await run_flows(client, worker, tmp_path, {"ifs": flow})).values()
    assert result["state"] == "SUCCESS", result["error"]
    ran = set(task_ids(result))
    wrong = []
    for index, (condition, truthy) in enumerate(IF_CASES):
        chosen, other = (f"then{index}", f"else{index}") if truthy else (f"else{index}", f"then{index}")
        if chosen not in ran or other in ran:
            wrong.append(f"condition {condition} should take {'then' if truthy else 'else'}")
        else:
            assert task_run(result, chosen)["parent_id"] == task_run(result, f"if{index}")["id"]
    assert not wrong, wrong
    assert task_run(result, "only_then")["state"] == "SUCCESS"
    assert "unreached" not in ran, "a false `if` without `else` runs nothing"
    assert task_run(result, "after")["outputs"]["value"] == "then then0"
    assert len(result["task_runs"]) == 1 + 2 * len(IF_CASES) + 1 + 1


async def test_fail_allow_failure_and_output_values(client: Client, worker: str, tmp_path: Path):
    results = await run_flows(client, worker, tmp_path, {
        "fail": """
            id: failing
            namespace: tests.flowables
            tasks:
              - {id: x, type: return, format: go}
              - id: f1
                type: fail
                condition: "{{ outputs.x.value == 'stop' }}"
                errorMessage: "not this one"
              - id: f2
                type: io.kestra.plugin.core.execution.Fail
                condition: "{{ outputs.x.value == 'go' }}"
                errorMessage: "stopped at {{ outputs.x.value }}"
              - {id: never, type: return, format: never}
            """,
        "plain": """
            id: plainfail
            namespace: tests.flowables
            tasks:
              - {id: f, type: fail}
            """,
        "guard": """
            id: guard
            namespace: tests.flowables
            tasks:
              - id: guard
                type: io.kestra.plugin.core.flow.AllowFailure
                tasks:
                  - {id: ok, type: return, format: ok}
                  - {id: f1, type: fail, errorMessage: tolerated}
                  - {id: f2, type: return, format: never}
              - id: next
                type: return
                format: "{{ outputs.ok.value }}"
            errors:
              - {id: flow_errors, type: return, format: must not run}
            """,
    })
    failing = results["fail"]
    assert failing["state"] == "FAILED"
    assert [(run["task_id"], run["state"]) for run in failing["task_runs"]] == [
        ("x", "SUCCESS"), ("f1", "SUCCESS"), ("f2", "FAILED"),
    ]
    assert task_run(failing, "f2")["error"]["message"] == "stopped at go"
    assert failing["error"]["task_id"] == "f2"

    plain = results["plain"]
    assert plain["state"] == "FAILED"
    assert task_run(plain, "f")["error"]["message"] == "Task failure"

    guard = results["guard"]
    assert guard["state"] == "WARNING", guard["error"]
    assert [(run["task_id"], run["state"]) for run in guard["task_runs"]] == [
        ("guard", "WARNING"), ("ok", "SUCCESS"), ("f1", "FAILED"), ("next", "SUCCESS"),
    ], "a failure inside allow_failure is WARNING, stops its scope, and is no failure of the flow"
    assert task_run(guard, "f1")["parent_id"] == task_run(guard, "guard")["id"]


async def test_output_values_are_outputs_id_values(client: Client, worker: str, tmp_path: Path):
    [result] = (await run_flows(client, worker, tmp_path, {"ov": """
        id: ov
        namespace: tests.flowables
        tasks:
          - {id: x, type: return, format: xy}
          - id: ov
            type: io.kestra.plugin.core.output.OutputValues
            values:
              k: "{{ outputs.x.value }}"
              n: 3
              nested: {a: "{{ 1 + 1 }}"}
              list: ["{{ outputs.x.value }}", b]
          - id: by_key
            type: return
            format: "{{ outputs.ov['values']['k'] }}-{{ outputs.ov['values']['nested']['a'] }}"
          - id: by_dot
            type: return
            format: "{{ outputs.ov.values.k }}-{{ outputs.ov.values.nested.a }}"
        """})).values()
    ov = task_run(result, "ov")
    assert ov["state"] == "SUCCESS"
    assert ov["outputs"] == {"values": {"k": "xy", "n": 3, "nested": {"a": "2"}, "list": ["xy", "b"]}}
    assert task_run(result, "by_key")["outputs"]["value"] == "xy-2"
    by_dot = task_run(result, "by_dot")
    assert by_dot["state"] == "SUCCESS", f"`outputs.ov.values.k` (Kestra's form) must read the output: {by_dot['error']}"
    assert by_dot["outputs"]["value"] == "xy-2"
    assert result["state"] == "SUCCESS"


# -- sleep -----------------------------------------------------------------------------------


async def test_sleep_is_a_durable_timer_and_is_cancelled_promptly_in_a_race(client: Client, worker: str, tmp_path: Path):
    nap = write_flow(tmp_path, """
        id: nap
        namespace: tests.flowables
        tasks:
          - id: nap
            type: io.kestra.plugin.core.flow.Sleep
            duration: PT1S
          - {id: after, type: return, format: awake}
        """, "nap.yaml")
    race = write_flow(tmp_path, """
        id: sleeprace
        namespace: tests.flowables
        tasks:
          - id: group
            type: parallel
            strategy: race
            tasks:
              - {id: long, type: sleep, duration: PT60S}
              - {id: short, type: sleep, duration: 500ms}
        """, "race.yaml")
    naps = write_flow(tmp_path, """
        id: naps
        namespace: tests.flowables
        tasks:
          - id: each
            type: foreach
            values: [1, 2, 3]
            concurrencyLimit: 0
            tasks:
              - {id: nap, type: sleep, duration: PT1S}
        """, "naps.yaml")
    started = time.monotonic()
    (napped, nap_events), (raced, race_events), (napping, naps_events) = await asyncio.gather(
        run_with_history(client, nap, worker), run_with_history(client, race, worker), run_with_history(client, naps, worker)
    )
    assert time.monotonic() - started < 8, "a sleep that lost a race must not hold the run"

    assert napped["state"] == "SUCCESS", napped["error"]
    assert task_ids(napped) == ["nap", "after"]
    assert 1.0 <= duration(task_run(napped, "nap")) < 2.5
    timers = [event for event in nap_events if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert [event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds() for event in timers] == [1.0]
    assert any(event.event_type == EventType.EVENT_TYPE_TIMER_FIRED for event in nap_events)
    scheduled = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in nap_events if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert all(name == "tflow.ledger" for name in scheduled), f"a sleep must not be an activity: {scheduled}"

    assert raced["state"] == "SUCCESS", raced["error"]
    assert task_run(raced, "short")["state"] == "SUCCESS"
    assert task_run(raced, "long")["state"] == "CANCELLED"
    assert task_run(raced, "group")["outputs"].get("winner") == "short"
    assert duration(task_run(raced, "group")) < 3
    assert any(event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED for event in race_events), "the loser's timer is cancelled"

    assert napping["state"] == "SUCCESS", napping["error"]
    naps_by_value = by_value(napping, "nap")
    assert all(overlap(naps_by_value["1"], other) for other in (naps_by_value["2"], naps_by_value["3"])), "sleeps of items run at once"
    assert 1.0 <= duration(task_run(napping, "each")) < 2.5
    timers = [event for event in naps_events if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert [event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds() for event in timers] == [1.0] * 3


# -- errors and finally -------------------------------------------------------------------------


async def test_errors_then_finally_on_a_flowable_and_on_the_flow(client: Client, worker: str, tmp_path: Path):
    results = await run_flows(client, worker, tmp_path, {
        "failing": """
            id: errfail
            namespace: tests.flowables
            tasks:
              - id: grp
                type: sequential
                tasks:
                  - {id: ok, type: return, format: ok}
                  - {id: bad, type: fail, errorMessage: "bad {{ task.id }}"}
                  - {id: skipped, type: return, format: never}
                errors:
                  - {id: g_err1, type: log, message: "{{ task.id }}"}
                  - {id: g_err2, type: return, format: e2}
                finally:
                  - {id: g_fin, type: return, format: fin}
              - {id: never, type: return, format: never}
            errors:
              - {id: f_err, type: return, format: "flow error"}
            finally:
              - {id: f_fin, type: return, format: "flow finally"}
            """,
        "succeeding": """
            id: errok
            namespace: tests.flowables
            tasks:
              - id: grp
                type: sequential
                tasks:
                  - {id: ok, type: return, format: ok}
                errors:
                  - {id: g_err, type: return, format: no}
                finally:
                  - {id: g_fin, type: return, format: fin}
              - {id: next, type: return, format: next}
            errors:
              - {id: f_err, type: return, format: no}
            finally:
              - {id: f_fin, type: return, format: fin}
            """,
        "finally_fails": """
            id: finfail
            namespace: tests.flowables
            tasks:
              - {id: ok, type: return, format: ok}
            finally:
              - {id: fin_bad, type: fail, errorMessage: "finally broke"}
            """,
        "group_finally_fails": """
            id: grpfinfail
            namespace: tests.flowables
            tasks:
              - id: grp
                type: sequential
                tasks:
                  - {id: ok, type: return, format: ok}
                finally:
                  - {id: g_fin_bad, type: fail}
              - {id: never, type: return, format: never}
            finally:
              - {id: f_fin, type: return, format: fin}
            """,
        "errors_fail": """
            id: errbroken
            namespace: tests.flowables
            tasks:
              - {id: bad, type: fail}
            errors:
              - {id: e_bad, type: fail, errorMessage: "errors broke"}
            finally:
              - {id: f_fin, type: return, format: fin}
            """,
        "foreach_errors": """
            id: eacherr
            namespace: tests.flowables
            tasks:
              - id: each
                type: foreach
                values: [a, b, c]
                concurrencyLimit: 0
                tasks:
                  - {id: f, type: fail, condition: "{{ taskrun.value != 'b' }}"}
                errors:
                  - {id: each_err, type: return, format: "{{ task.id }}"}
                finally:
                  - {id: each_fin, type: return, format: fin}
            """,
    })
    failing = results["failing"]
    assert failing["state"] == "FAILED"
    assert task_ids(failing) == ["grp", "ok", "bad", "g_err1", "g_err2", "g_fin", "f_err", "f_fin"]
    grp = task_run(failing, "grp")
    assert grp["state"] == "FAILED", "errors never turn a failure into success"
    for task_id in ("g_err1", "g_err2", "g_fin"):
        run = task_run(failing, task_id)
        assert run["parent_id"] == grp["id"] and run["state"] == "SUCCESS"
        assert starts_after(run, task_run(failing, "bad"))
    assert starts_after(task_run(failing, "g_fin"), task_run(failing, "g_err2"))
    assert task_run(failing, "f_err")["parent_id"] is None
    assert starts_after(task_run(failing, "f_fin"), task_run(failing, "f_err"))
    assert failing["error"]["task_id"] == "bad"

    succeeding = results["succeeding"]
    assert succeeding["state"] == "SUCCESS", succeeding["error"]
    assert task_ids(succeeding) == ["grp", "ok", "g_fin", "next", "f_fin"], "errors run only after a failure"

    finally_fails = results["finally_fails"]
    assert finally_fails["state"] == "FAILED", "a failure in finally fails the run"
    assert task_run(finally_fails, "fin_bad")["state"] == "FAILED"
    assert "finally broke" in finally_fails["error"]["message"]

    group_finally = results["group_finally_fails"]
    assert group_finally["state"] == "FAILED"
    assert task_run(group_finally, "grp")["state"] == "FAILED", "a failure in a flowable's finally fails the flowable"
    assert task_ids(group_finally) == ["grp", "ok", "g_fin_bad", "f_fin"]

    errors_fail = results["errors_fail"]
    assert errors_fail["state"] == "FAILED"
    assert task_ids(errors_fail) == ["bad", "e_bad", "f_fin"], "finally runs even when errors failed"

    each_errors = results["foreach_errors"]
    assert each_errors["state"] == "FAILED"
    each = task_run(each_errors, "each")
    assert each["state"] == "FAILED"
    [each_err] = runs_of(each_errors, "each_err")
    assert each_err["parent_id"] == each["id"] and each_err["outputs"]["value"] == "each_err"
    assert len(runs_of(each_errors, "each_fin")) == 1
    assert task_ids(each_errors)[-2:] == ["each_err", "each_fin"]
    assert all(starts_after(each_err, run) for run in runs_of(each_errors, "f"))


async def test_errors_run_only_after_the_failing_scope_stopped(client: Client, worker: str, tmp_path: Path):
    pid_file = tmp_path / "slow.pid"
    results = await run_flows(client, worker, tmp_path, {
        "fail_fast": fill("""
            id: errfailfast
            namespace: tests.flowables
            tasks:
              - id: grp
                type: io.kestra.plugin.core.flow.Parallel
                tasks:
                  - id: slow
                    type: commands
                    commands: ["sleep 30 & echo $! > <<pid>>; wait $!"]
                  - {id: bad, type: commands, commands: ["sleep 0.5", "exit 3"]}
                errors:
                  - {id: g_err, type: return, format: "{{ task.id }}"}
                finally:
                  - {id: g_fin, type: return, format: fin}
            errors:
              - {id: f_err, type: return, format: flow}
            """, pid=pid_file),
        "wait_all": """
            id: errwaitall
            namespace: tests.flowables
            tasks:
              - id: grp
                type: parallel
                tasks:
                  - {id: slow, type: commands, commands: ["sleep 1.5"]}
                  - {id: bad, type: fail}
                errors:
                  - {id: g_err, type: return, format: "{{ task.id }}"}
            errors:
              - {id: f_err, type: return, format: flow}
            """,
    })
    fail_fast = results["fail_fast"]
    assert fail_fast["state"] == "FAILED"
    slow = task_run(fail_fast, "slow")
    assert slow["state"] == "CANCELLED"
    assert not pid_alive(int(pid_file.read_text())) or await asyncio.to_thread(
        wait_until, lambda: not pid_alive(int(pid_file.read_text())), 5
    )
    assert starts_after(task_run(fail_fast, "g_err"), slow), "errors start only after the cancelled sibling ended"
    assert starts_after(task_run(fail_fast, "g_fin"), task_run(fail_fast, "g_err"))
    assert starts_after(task_run(fail_fast, "f_err"), task_run(fail_fast, "grp"))
    assert task_ids(fail_fast)[-3:] == ["g_err", "g_fin", "f_err"]

    wait_all = results["wait_all"]
    assert wait_all["state"] == "FAILED"
    slow = task_run(wait_all, "slow")
    assert slow["state"] == "SUCCESS"
    assert starts_after(task_run(wait_all, "g_err"), slow), "errors wait for the siblings still running"
    assert task_ids(wait_all)[-2:] == ["g_err", "f_err"]


async def test_finally_runs_even_when_its_flowable_is_cancelled(client: Client, worker: str, tmp_path: Path):
    # SPEC §3.5: `finally` always runs. Here the sequential is cancelled by its fail-fast sibling.
    [result] = (await run_flows(client, worker, tmp_path, {"cancelfinally": """
        id: cancelfinally
        namespace: tests.flowables
        tasks:
          - id: par
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: seq
                type: sequential
                tasks:
                  - {id: long, type: sleep, duration: PT30S}
                finally:
                  - {id: seq_fin, type: return, format: fin}
              - id: bad
                type: commands
                commands: ["sleep 0.5", "exit 1"]
        finally:
          - {id: f_fin, type: return, format: fin}
        """})).values()
    assert result["state"] == "FAILED"
    assert task_run(result, "long")["state"] == "CANCELLED"
    assert task_run(result, "seq")["state"] in ("CANCELLED", "FAILED")
    assert "seq_fin" in task_ids(result), f"the cancelled flowable's finally did not run: {task_ids(result)}"
    seq_fin = task_run(result, "seq_fin")
    assert seq_fin["parent_id"] == task_run(result, "seq")["id"]
    assert starts_after(seq_fin, task_run(result, "long"))
    assert task_ids(result)[-1] == "f_fin"
