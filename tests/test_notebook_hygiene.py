"""Committed notebooks are in a state where nbval's comparison means something.

nbval silently skips code cells without an execution count, and a stored error output would be
compared as if it were the expected result; both would let a broken lesson pass.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]*_*.ipynb"))


def _code_cells(path: Path) -> list[dict]:
    cells = json.loads(path.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_lesson_00_exists() -> None:
    assert any(p.name.startswith("00_") for p in NOTEBOOKS), "notebooks/00_*.ipynb is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_ran_in_order_without_error(path: Path) -> None:
    cells = _code_cells(path)
    counts = [c["execution_count"] for c in cells]
    missing = [i for i, n in enumerate(counts) if n is None]
    assert not missing, f"{path.name}: code cells {missing} have no execution count (run `make notebooks`)"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: not one fresh top-to-bottom run: {counts}"
    for i, cell in enumerate(cells):
        errors = [o for o in cell["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{path.name}: code cell {i} stored an error: {errors[0].get('ename')}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_sets_up_and_figures_are_png(path: Path) -> None:
    cells = _code_cells(path)
    first = "".join(cells[0]["source"])
    assert "setup_notebook(" in first and "NBVAL_IGNORE_OUTPUT" in first, (
        f"{path.name}: the first code cell must call setup_notebook() (reformer_lab.lessons) and ignore its output"
    )
    for i, cell in enumerate(cells):
        for output in cell["outputs"]:
            assert "image/svg+xml" not in output.get("data", {}), f"{path.name}: cell {i} stores SVG; use PNG"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_says_how_to_install_when_the_package_is_missing(path) -> None:
    cells = json.loads(path.read_text())["cells"]
    first = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
    guard = first.find("except ModuleNotFoundError")
    assert 0 <= guard < first.find("from reformer_lab"), f"{path.name}: the install hint must come first"
    assert "make lab" in first
