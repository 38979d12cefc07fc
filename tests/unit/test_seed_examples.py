"""Every YAML example of the seed documents loads without a problem (SPEC: "every YAML example in
them must validate").

The seeds live read-only in ../shared/seeds beside this project. The ```yaml blocks of seeds 000,
001 and 003 are extracted from the files when the tests are collected, one test per block. Seed 003
has no ```yaml block (it is prose and a table of task properties), so it contributes no test; none is
made up for it. Seed 002 is plain text whose YAML lost its indentation: its two example `parallel`
tasks are reconstructed below as literal YAML, each wrapped in a flow, and a test checks that every
line of a reconstruction that is not marked `# added` is, in order, a line of the seed.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from temporal_flows.language.loader import load_flow_text
from temporal_flows.model.problems import FlowError
from tests.support import REPO

SEEDS = REPO.parent / "shared" / "seeds"  # SHARED / "seeds" (tests/conftest.py)
FENCED_SEEDS = ("000", "001", "003")
MUST_HAVE_BLOCKS = ("000", "001")
FENCE = re.compile(r"^```ya?ml[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


@dataclass(frozen=True)
class Block:
    seed: Path
    index: int
    line: int
    """Line of the seed where the block's YAML starts."""
    text: str

    @property
    def id(self) -> str:
        return f"seed{self.seed.name[:3]}-block{self.index}"


def seed_file(number: str) -> Path | None:
    found = sorted(SEEDS.glob(f"{number}_*.txt"))
    return found[0] if found else None


def fenced_blocks(seed: Path) -> list[Block]:
    text = seed.read_text(encoding="utf-8")
    return [
        Block(seed, index, text.count("\n", 0, match.start(1)) + 1, match.group(1))
        for index, match in enumerate(FENCE.finditer(text), start=1)
    ]


def collect() -> list[Block]:
    blocks: list[Block] = []
    for number in FENCED_SEEDS:
        seed = seed_file(number)
        if seed is not None:
            blocks += fenced_blocks(seed)
    return blocks


SEEDS_ABSENT = f"the seed documents are not there ({SEEDS} is missing)"
BLOCKS = collect() if SEEDS.is_dir() else []
BLOCK_PARAMS = (
    [pytest.param(block, id=block.id) for block in BLOCKS]
    if SEEDS.is_dir()
    else [pytest.param(None, id="seeds-absent", marks=pytest.mark.skip(reason=SEEDS_ABSENT))]
)


def assert_loads(text: str, file: str, what: str) -> None:
    problems = None
    try:
        loaded = load_flow_text(text, file)
    except FlowError as error:
        problems = error
    if problems is not None:
        pytest.fail(f"{what} does not load ({len(problems.problems)} problems):\n{problems}", pytrace=False)
    assert loaded.flow.tasks, f"{what}: the flow loaded without tasks"


@pytest.mark.parametrize("block", BLOCK_PARAMS)
def test_seed_yaml_block_loads(block: Block):
    # Blank lines in front of the block, so the problems name the seed's own lines.
    padded = "\n" * (block.line - 1) + block.text
    assert_loads(padded, str(block.seed), f"```yaml block {block.index} of {block.seed.name} (line {block.line})")


@pytest.mark.skipif(not SEEDS.is_dir(), reason=SEEDS_ABSENT)
def test_blocks_are_found_in_seeds_000_and_001():
    """The extraction cannot silently find nothing."""
    for number in MUST_HAVE_BLOCKS:
        seed = seed_file(number)
        assert seed is not None, f"no seed {number}_*.txt in {SEEDS}"
        blocks = fenced_blocks(seed)
        assert blocks, f"no ```yaml block found in {seed}"
        assert all(block.text.strip() for block in blocks), f"an empty ```yaml block in {seed}"
    assert len(fenced_blocks(seed_file("001"))) >= 2, "seed 001 has a parallel and a sequential example"  # type: ignore[arg-type]


# -- seed 002, reconstructed ---------------------------------------------------------------------
# The seed's lines, in its order, indented again. Lines marked `# added` are not in the seed: the
# `commands` that complete the `basic` children's "# ... task configuration" placeholders (a
# `basic` task is a runnable decided by its fields, SPEC §3.2).

SEED_002_TASK_STRUCTURE = """\
id: parallel-task-example
type: parallel
# Strategy (Required): Determines how task execution and failures are handled
strategy: wait_all # wait_all | fail_fast | best_effort | race
# Worker Pool (Optional): Control concurrent execution
max_workers: 4 # Maximum concurrent tasks (0 = unlimited)
timeout: 5m # Overall timeout for all tasks
# Task Definitions (Required): Array of tasks to execute in parallel
tasks:
  - id: task-1
    type: basic
    # ... task configuration
    commands: ["echo task-1"] # added
  - id: task-2
    type: basic
    # ... task configuration
    commands: ["echo task-2"] # added
# Success Handler (Optional): Execute when parallel task completes
on_success:
  next: downstream-task
  with:
    results: "{{ .output }}"
    execution_time: "{{ .execution.duration }}"
# Error Handler (Optional): Handle failures based on strategy
on_error:
  next: error-handler
  with:
    failed_tasks: "{{ .failed_tasks }}"
    error: "{{ .error }}"
"""

SEED_002_DEFAULT_STRATEGY = """\
id: comprehensive-data-gathering
type: parallel
strategy: wait_all
max_workers: 3
timeout: 10m
tasks:
  - id: task-1
    type: basic
    # ... task configuration
    commands: ["echo task-1"] # added
  - id: task-2
    type: basic
    # ... task configuration
    commands: ["echo task-2"] # added
"""

# The tasks `on_success.next` / `on_error.next` name, after the group in the same list (SPEC §3.4).
JUMP_TARGETS = """\
- id: downstream-task
  type: basic
  commands: ["echo downstream"]
- id: error-handler
  type: basic
  commands: ["echo handled"]
"""

SEED_002_FRAGMENTS = {
    "task-structure": (SEED_002_TASK_STRUCTURE, JUMP_TARGETS),
    "default-strategy": (SEED_002_DEFAULT_STRATEGY, ""),
}


def as_flow(name: str, task: str, after: str) -> str:
    """The fragment as the first task of a flow, followed by the tasks it jumps to."""
    listed = "- " + textwrap.indent(task, "  ")[2:]
    return f"id: seed-002-{name}\nnamespace: seeds\ntasks:\n" + textwrap.indent(listed + after, "  ")


@pytest.mark.parametrize("name", list(SEED_002_FRAGMENTS), ids=[f"seed002-{name}" for name in SEED_002_FRAGMENTS])
def test_seed_002_fragment_loads(name: str):
    task, after = SEED_002_FRAGMENTS[name]
    assert_loads(as_flow(name, task, after), f"seed-002-{name}.yaml", f"seed 002's {name} example (reconstructed)")


@pytest.mark.skipif(not SEEDS.is_dir(), reason=SEEDS_ABSENT)
@pytest.mark.parametrize("name", list(SEED_002_FRAGMENTS), ids=[f"seed002-{name}" for name in SEED_002_FRAGMENTS])
def test_seed_002_fragment_is_the_seeds_text(name: str):
    seed = seed_file("002")
    assert seed is not None, f"no seed 002_*.txt in {SEEDS}"
    seed_lines = [line.strip() for line in seed.read_text(encoding="utf-8").splitlines()]
    task, _ = SEED_002_FRAGMENTS[name]
    ours = [line.strip() for line in task.splitlines() if line.strip() and not line.rstrip().endswith("# added")]
    starts = [at for at in range(len(seed_lines)) if seed_lines[at : at + len(ours)] == ours]
    assert starts, f"the reconstruction of {name} is not a run of lines of {seed}:\n" + "\n".join(ours)
