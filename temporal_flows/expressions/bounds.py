"""What one render of a template may cost, counted, never timed: templates render inside the
workflow, where a replay must stop at the same place and a render that runs away stalls every run
on the worker. Past a bound the render raises `BudgetExceeded` (the task fails with
`TemplateBudgetExceeded`, naming the expression).

Counted per render (`Budget`, shared by the `render()` calls inside it): loop iterations and
calls, characters output, characters built, and items walked or turned into text. Capped per
operation: `**` and `*` on integers, `*`/`+`/`~`/`%` on text and lists, `range`, sizes passed to
`center`, `indent`, `ljust`, `zfill`, `to_bytes`..., `replace` and `join`, and the size of any
value a template builds (its parts counted each time they are reached, so a list holding another
twice per level cannot grow unseen). `sandbox.py` applies them.

A worker renders templates that read stored values (big by definition) or run jq, in a child
process it kills past a time limit: there sizes are `WORKER_LIMITS` (100 times larger).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Any

BUDGET_KEY = "tflow budget"
"""Where a render's `Budget` travels in its context: not a name, so no template can read or set it."""

_FORMAT_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Limits:
    steps: int = 100_000
    """Loop iterations plus calls (functions, macros, methods) in one render."""
    output: int = 1_000_000
    """Characters one render outputs, counting text captured by `{% set %}` blocks and macros."""
    chars: int = 100_000_000
    """Characters one render builds or scans in all (operators, filters, methods, comparisons)."""
    work: int = 2_000_000
    """Items one render builds, walks, compares or turns into text (filters, methods, `in`, `==`, slices...)."""
    text: int = 1_000_000
    """Characters of one string a template builds (`*`, `+`, `~`, `%`, `replace`, `join`, widths)."""
    items: int = 100_000
    """Items of a list built by `*`, of a `range`, of `batch`/`slice` groups."""
    weight: int = 4_000_000
    """Size of one value a template builds: items plus characters, shared parts counted each time."""
    int_bits: int = 10_000
    """Bits of an integer `**` or `*` produces (about 3,000 decimal digits)."""
    render_depth: int = 10
    """`render()` inside a template that `render()` renders, at most this deep."""
    template: int = 100_000
    """Characters of a text `render()` compiles (compiling is not counted as it goes)."""


LIMITS = Limits()
"""The workflow's."""
WORKER_LIMITS = replace(LIMITS, output=100 * LIMITS.output, chars=100 * LIMITS.chars, work=100 * LIMITS.work,
                        text=100 * LIMITS.text, weight=100 * LIMITS.weight)
"""A worker's render (stored values are big; the process rendering is killed past its time limit)."""


class BudgetExceeded(Exception):
    """A template went past one of the bounds; the message says which."""


@dataclass
class Budget:
    """What one render (and the `render()` calls inside it) has spent so far, and its limits."""

    limits: Limits = LIMITS
    steps: int = 0
    output: int = 0
    chars: int = 0
    work: int = 0
    depth: int = 0
    weights: dict[int, tuple[Any, int]] = field(default_factory=dict)
    """Weight of each container seen, by id (the container is kept so that its id is not reused)."""

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.steps:
            raise BudgetExceeded(f"more than {self.limits.steps:,} loop iterations and calls in one render")

    def spend_output(self, size: int) -> None:
        self.output += size
        if self.output > self.limits.output:
            raise BudgetExceeded(f"output over {self.limits.output:,} characters in one render")

    def spend_work(self, items: int) -> None:
        self.work += items
        if self.work > self.limits.work:
            raise BudgetExceeded(f"more than {self.limits.work:,} items walked or turned into text in one render")

    def spend_chars(self, count: int) -> None:
        self.chars += count
        if self.chars > self.limits.chars:
            raise BudgetExceeded(f"more than {self.limits.chars:,} characters built or scanned in one render")

    def touched(self, value: Any) -> Any:
        """`value` is about to be scanned, copied or compared whole: its length is spent."""
        if isinstance(value, (str, bytes)):
            self.spend_chars(len(value))
        elif isinstance(value, (list, tuple, dict, set, frozenset)):
            self.spend_work(1 + len(value))
        return value

    def weight(self, value: Any, limit: int | None = None) -> int:
        """Items plus characters of `value`, shared parts counted each time; stops counting past `limit`."""
        if isinstance(value, (str, bytes)):
            return 1 + len(value)
        if not isinstance(value, (list, tuple, dict)):
            return 1
        known = self.weights.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        limit = self.limits.weight if limit is None else limit
        self.spend_work(1 + len(value))
        total = 1 + len(value)
        for part in chain(value.keys(), value.values()) if isinstance(value, dict) else value:
            kind = type(part)
            if kind is str:
                total += len(part)
            elif kind is list or kind is tuple or kind is dict or isinstance(part, (str, list, tuple, dict)):
                total += self.weight(part, limit - total) - 1
            if total > limit:
                return total  # not remembered: counted only as far as the limit
        self.weights[id(value)] = (value, total)
        return total

    def built(self, value: Any, what: str = "a value") -> Any:
        """`value`, which a template just made: refused when too big, its size spent."""
        if isinstance(value, (str, bytes)):
            if len(value) > self.limits.text:
                raise BudgetExceeded(f"{what} made {len(value):,} characters (at most {self.limits.text:,})")
            self.spend_chars(len(value))
        elif isinstance(value, (list, tuple, dict)):
            if self.weight(value) > self.limits.weight:
                raise BudgetExceeded(f"{what} made a value of more than {self.limits.weight:,} items and characters")
            self.spend_work(len(value))
        elif _is_int(value) and value.bit_length() > self.limits.int_bits:
            raise BudgetExceeded(f"{what} made an integer of {value.bit_length():,} bits (at most {self.limits.int_bits:,})")
        return value

    def stringified(self, value: Any) -> None:
        """`value` is about to become text: refused when that text would be too long; its size spent."""
        weight = self.weight(value)
        if weight > self.limits.text:
            raise BudgetExceeded(f"cannot turn a value of more than {self.limits.text:,} items and characters into text")
        self.spend_work(weight)

    # -- checks before an operation whose result can be far bigger than its operands ----------

    def check_range(self, numbers: range) -> range:
        if len(numbers) > self.limits.items:
            raise BudgetExceeded(f"range of {len(numbers):,} numbers (at most {self.limits.items:,})")
        return numbers

    def check_multiply(self, left: Any, right: Any) -> None:
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, (str, bytes, list, tuple)) and _is_int(count):
                size = len(sequence) * max(count, 0)
                text = isinstance(sequence, (str, bytes))
                limit = self.limits.text if text else self.limits.items
                if size > limit:
                    raise BudgetExceeded(f"`*` repeating into {size:,} {'characters' if text else 'items'} (at most {limit:,})")
                return
        if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > self.limits.int_bits + 1:
            raise BudgetExceeded(f"`*` making an integer of about {left.bit_length() + right.bit_length():,} bits (at most {self.limits.int_bits:,})")

    def check_power(self, base: Any, exponent: Any) -> None:
        if _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1:
            bits = (abs(base).bit_length() - 1) * exponent
            if bits > self.limits.int_bits:
                raise BudgetExceeded(f"`{_short(base)} ** {_short(exponent)}` has over {self.limits.int_bits:,} bits")

    def check_format(self, template: str, arguments: Any) -> None:
        """`text % arguments`, `'...'.format()`, `| format`: widths and precisions, written or
        passed, counted with the arguments' own size before formatting."""
        values = list(arguments.values()) if isinstance(arguments, dict) else list(arguments) if isinstance(arguments, tuple) else [arguments]
        numbers = _FORMAT_NUMBER.findall(template)
        if any(len(number) > 9 for number in numbers):
            raise BudgetExceeded("a format width of more than 9 digits")
        size = len(template) + sum(int(number) for number in numbers)
        size += sum(value if _is_int(value) and 0 < value < 2**40 else len(value) if isinstance(value, str) else 1 for value in values)
        if size > self.limits.text:
            raise BudgetExceeded(f"formatting that can make {size:,} characters (at most {self.limits.text:,})")

    def check_template(self, text: str) -> None:
        if len(text) > self.limits.template:
            raise BudgetExceeded(f"render() of a text of {len(text):,} characters (at most {self.limits.template:,})")

    def check_width(self, width: Any, what: str) -> None:
        if _is_int(width) and width > self.limits.text:
            raise BudgetExceeded(f"{what} of {_short(width)} (at most {self.limits.text:,})")

    def check_count(self, count: Any, what: str) -> None:
        if _is_int(count) and count > self.limits.items:
            raise BudgetExceeded(f"{what} of {_short(count)} (at most {self.limits.items:,})")

    def check_replace(self, text: Any, old: Any, new: Any, count: Any = -1) -> None:
        if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
            found = text.count(old) if old else len(text) + 1
            if _is_int(count) and count >= 0:
                found = min(found, count)
            self.check_width(len(text) + found * (len(new) - len(old)), "replace making a text")

    def check_join(self, items: list[Any], separator: Any) -> None:
        size = self.weight(items, self.limits.text + 1) + len(str(separator)) * len(items)
        self.check_width(size, "join making a text")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(number: int) -> str:
    return str(number) if number.bit_length() < 64 else f"a {number.bit_length():,}-bit number"
