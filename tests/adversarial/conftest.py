"""The adversarial suite's figures: each test records what it threw at the daemon and what came of it.

They are printed in pytest's terminal summary (and written to ``$ADVERSARIAL_FIGURES`` as JSON when set), so a CI log
shows how many datagrams and files were survived and what every injected fault ended as.
"""

from __future__ import annotations

import json
import os

import pytest

FIGURES: dict[str, dict] = {}


@pytest.fixture(scope="session")
def figures() -> dict[str, dict]:
    """Section name -> {figure: value}; tests add to it."""
    return FIGURES


def pytest_terminal_summary(terminalreporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("adversarial figures")
    for section, values in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{section}:")
        for key, value in values.items():
            terminalreporter.write_line(f"    {key}: {value}")
    target = os.environ.get("ADVERSARIAL_FIGURES")
    if target:
        with open(target, "w", encoding="utf-8") as out:
            json.dump(FIGURES, out, indent=2, default=str)
