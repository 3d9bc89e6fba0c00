"""The closing tables of lesson 10 read every mapped row from a committed notebook: a renamed cell, a dropped
row or a missing notebook fails here, not silently in the lesson."""

from __future__ import annotations

import json

import pytest

from reformer_lab.lessons import claims

MAPPED = sorted({c.evidence for c in claims.CLAIMS if c.evidence} | {d.evidence for d in claims.DIFFERENCES
                                                                        if d.evidence}, key=str)


@pytest.mark.parametrize("evidence", MAPPED, ids=lambda e: f"{e.lesson}:{e.row[:40]}")
def test_every_mapped_row_exists_in_its_notebooks_summary_cell(evidence) -> None:
    path = claims.NOTEBOOKS / f"{evidence.notebook}.ipynb"
    assert path.exists(), f"{path.name} is mapped but missing"
    ids = [c.get("id") for c in json.loads(path.read_text())["cells"]]
    assert evidence.cell_id in ids, f"{path.name} has no cell {evidence.cell_id!r}"
    row = claims._row(evidence, None)
    assert row[0].startswith(evidence.row) and row[1]


def test_the_claims_cover_every_table_and_figure() -> None:
    items = {c.item.split(",")[0] for c in claims.CLAIMS}
    assert {f"Table {n}" for n in (1, 2, 3, 4)} <= items
    assert {"Figure 1", "Figure 2", "Figure 3", "Figure 4", "Figure 5 left", "Figure 5 right"} <= items


def test_resolve_reads_rows_and_verdicts(tmp_path) -> None:
    notebook = {"cells": [{"id": "s", "cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {"text/markdown": "| claim | got | agree? |\n|---|---|---|\n"
                                                  "| a claim | 1.0 | yes |\n| b claim | 2.0 | NO |"}}]},
        {"id": "p", "cell_type": "code", "outputs": [
            {"output_type": "stream", "name": "stdout",
             "text": "claim | measured | agree?\nc claim   | 3 | partly\n"}]}]}
    (tmp_path / "99_fake.ipynb").write_text(json.dumps(notebook))
    rows = claims.resolve([claims.Claim("T", claims.Evidence("99_fake", "s", "b")),
                           claims.Claim("U", claims.Evidence("99_fake", "p", "c claim")),
                           claims.Claim("V", claim="x", status=claims.NOT_ON_CPU)], root=tmp_path)
    assert [(r.claim, r.measured, r.verdict) for r in rows] == [
        ("b claim", "2.0", "disagree"), ("c claim", "3", "partly"), ("x", "–", claims.NOT_ON_CPU)]
    assert "| T | b claim | 99, cell `s` | 2.0 | disagree |" in claims.claims_markdown(rows)
    noted = claims.resolve([claims.Claim("T", claims.Evidence("99_fake", "s", "b"), note="at our scale")],
                           root=tmp_path)
    assert noted[0].verdict == "disagree (at our scale)"
    with pytest.raises(LookupError, match="no row starting"):
        claims.resolve([claims.Claim("T", claims.Evidence("99_fake", "s", "zzz"))], root=tmp_path)
    with pytest.raises(KeyError, match="no cell"):
        claims.resolve([claims.Claim("T", claims.Evidence("99_fake", "gone", "a"))], root=tmp_path)
    lenient = claims.resolve([claims.Claim("T", claims.Evidence("99_fake", "gone", "a"))], root=tmp_path,
                             strict=False)
    assert lenient[0].verdict.startswith("no stored row yet")


def test_a_claim_needs_evidence_or_a_status() -> None:
    with pytest.raises(ValueError):
        claims.Claim("Table 9")
    with pytest.raises(ValueError):
        claims.Claim("Table 9", claims.Evidence("x", "y", "z"), status="both")
