"""`tflow validate` never runs a template (issue 14 A): Jinja's constant folding ran
`'a' * 1000000000` (1 GB) while validating, and a jq program on a constant hung the command (Ctrl-C
did not stop it). Now both validate in about the time of a plain flow, in bounded memory, as
real processes measured by `os.wait4` (CPU time, which a busy machine does not stretch).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_yaml_bounds import Measured, measure

EXTRA_CPU_S = 1.0
"""What validating a hostile template may cost over a plain flow (it should cost nothing)."""
MAX_RSS_BYTES = 200 * 1024 * 1024

FLOW = """id: hostile
namespace: tests
tasks:
  - id: x
    type: return
    format: "{template}"
"""


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Measured:
    flow = tmp_path_factory.mktemp("baseline") / "plain.yaml"
    flow.write_text(FLOW.format(template="{{ 1 + 1 }}"))
    found = measure("validate", str(flow))
    assert found.code == 0, found.stderr
    return found


@pytest.mark.parametrize("template", [
    "{{ 'a' * 1000000000 }}",
    "{{ 0 | jq('last(range(1e12))') }}",
    "{{ (7 ** 30000000) > 1 }}",
    "{{ 'x' | center(1000000000) }}",
    "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}",
])
def test_validate_never_runs_a_template(tmp_path: Path, baseline: Measured, template: str):
    flow = tmp_path / "hostile.yaml"
    flow.write_text(FLOW.format(template=template.replace('"', '\\"')))
    found = measure("validate", str(flow))
    assert found.code in (0, 2), f"exit {found.code}\n{found.stderr}"
    assert "Traceback" not in found.stderr, found.stderr
    assert found.cpu_s < baseline.cpu_s + EXTRA_CPU_S, f"{found.cpu_s:.2f} s CPU (baseline {baseline.cpu_s:.2f} s)"
    assert found.max_rss < MAX_RSS_BYTES, f"peak RSS {found.max_rss / 2**20:.0f} MB"
    print(f"\n{template}: exit {found.code}, {found.cpu_s:.2f} s CPU (baseline {baseline.cpu_s:.2f}), {found.max_rss / 2**20:.0f} MB peak")
