"""The fault table of `make chaos`: every fault test adds one row; the table is printed at the end.

The same table is in the README ("What breaks, and what the loop does"): copy it from the output of
`make chaos` after a change to the loop's failure handling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

COLUMNS = ("fault", "topology", "runs", "lost", "outcome")


@dataclass
class ChaosTable:
    """Rows of (fault, topology, runs, lost, outcome), in the order the faults ran."""

    rows: list[dict[str, str]] = field(default_factory=list)

    def add(self, *, fault: str, topology: str, runs: object, lost: object, outcome: str) -> None:
        self.rows.append({"fault": fault, "topology": topology, "runs": str(runs), "lost": str(lost),
                          "outcome": outcome})

    def markdown(self) -> str:
        lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        lines += ["| " + " | ".join(row[column] for column in COLUMNS) + " |" for row in self.rows]
        return "\n".join(lines)


_TABLE = ChaosTable()


@pytest.fixture(scope="session")
def chaos_table() -> ChaosTable:
    """Where a fault test records what the fault cost and how the loop came out of it."""
    return _TABLE


def pytest_terminal_summary(terminalreporter) -> None:
    if _TABLE.rows:
        terminalreporter.section("fault injection (make chaos)")
        terminalreporter.write_line(_TABLE.markdown())
