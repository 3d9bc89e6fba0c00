"""The paper's claims mapped to the evidence the lessons hold (lesson 10's closing tables).

Every lesson ends with a summary code cell that shows rows of *claim | what we measured | agree?* (a Markdown
table, or printed lines with `` | `` between the columns). This module does not retype those numbers: a
:class:`Evidence` names a notebook, the id of its summary cell and the start of one row's claim, and
:func:`resolve` reads that row from the notebook's stored output. So the closing tables change when a lesson is
re-executed, and a test fails when a mapped notebook, cell or row goes away.

* :data:`CLAIMS`: one or more rows for each of the paper's Tables 1–4 and Figures 1–5 and its main numbered
  claims, each with its evidence, or with why there is none (not reproducible on a CPU, or a lesson not written
  yet).
* :data:`DIFFERENCES`: how ``reformer_lab`` differs from the authors' trax code, HF transformers and
  reformer-pytorch, each with the lesson that runs both ways.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "CLAIMS",
    "DIFFERENCES",
    "NOTEBOOKS",
    "NOT_ON_CPU",
    "ONE_AT_A_TIME",
    "Claim",
    "Difference",
    "Evidence",
    "Resolved",
    "claims_markdown",
    "differences_markdown",
    "resolve",
    "summary_rows",
    "verdict",
]

#: Where the lessons live (the repository's ``notebooks/``).
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

NOT_ON_CPU = "not reproducible on a CPU"
ONE_AT_A_TIME = "not measured as a whole: lesson 09 compares one approximation at a time"


@dataclass(frozen=True)
class Evidence:
    """One row of a lesson's summary: ``notebook`` (file stem), the summary cell's ``cell_id``, and the start of
    the row's first column (``row``); ``nth`` picks among rows that start alike (0 = the first)."""

    notebook: str
    cell_id: str
    row: str
    nth: int = 0

    @property
    def lesson(self) -> str:
        return self.notebook.split("_")[0]


@dataclass(frozen=True)
class Claim:
    """A paper item (``item``: "Table 1", "Figure 5 right", "abstract", …) and its evidence, or, when there is
    none, the ``claim`` in our words and the ``status`` that says why. ``note`` qualifies the verdict in this
    table (shown in brackets after it) where the lesson's row alone would read too broadly."""

    item: str
    evidence: Evidence | None = None
    claim: str = ""
    status: str = ""
    note: str = ""

    def __post_init__(self) -> None:
        if (self.evidence is None) == (not self.status):
            raise ValueError(f"{self.item}: give either evidence or a status, not both or neither")
        if self.evidence is None and not self.claim:
            raise ValueError(f"{self.item}: a claim without evidence must say what it claims")


@dataclass(frozen=True)
class Difference:
    """A way ``reformer_lab`` differs from the peers: the ``topic``, what ``ours`` does, what the ``peers`` do,
    and the lesson row that runs both ways (``evidence``), or ``where`` in words when it is no summary row."""

    topic: str
    ours: str
    peers: str
    evidence: Evidence | None = None
    where: str = ""


@dataclass(frozen=True)
class Resolved:
    """A claim with its row read: the row's ``claim`` and ``measured`` text and the ``verdict`` (agree, disagree,
    the row's own qualified answer, or the claim's status)."""

    item: str
    claim: str
    source: str
    measured: str
    verdict: str


def _split(line: str) -> list[str] | None:
    """The columns of one table line (Markdown ``| a | b |`` or printed ``a | b``), or None for other lines."""
    text = line.strip()
    if " | " not in text:
        return None
    if text.startswith("|"):
        text = text.strip("|")
    columns = [c.strip() for c in text.split(" | ")]
    if all(set(c) <= set("-: ") for c in columns):  # a Markdown separator row
        return None
    return columns


@cache
def _cells(notebook: str, root: Path) -> dict[str, dict]:
    path = root / f"{notebook}.ipynb"
    if not path.exists():
        raise FileNotFoundError(f"{path.name} is not in {root}")
    return {c.get("id"): c for c in json.loads(path.read_text())["cells"]}


def summary_rows(notebook: str, cell_id: str, root: Path | None = None) -> list[list[str]]:
    """The table rows a summary cell's stored output shows, header first (columns as text).

    Reads ``root/<notebook>.ipynb`` (default :data:`NOTEBOOKS`); the output is the cell's Markdown display, or
    else its printed text. Raises ``KeyError`` when the cell id is gone, ``ValueError`` when it stored no table.
    """
    cells = _cells(notebook, Path(root or NOTEBOOKS))
    if cell_id not in cells:
        raise KeyError(f"{notebook}.ipynb has no cell with id {cell_id!r}")
    texts = []
    for output in cells[cell_id].get("outputs", []):
        data = output.get("data", {})
        if "text/markdown" in data:
            texts.append("".join(data["text/markdown"]))
        elif output.get("output_type") == "stream":
            texts.append("".join(output.get("text", "")))
    rows = [columns for text in texts for line in text.splitlines() if (columns := _split(line))]
    if len(rows) < 2:
        raise ValueError(f"{notebook}.ipynb cell {cell_id!r} stores no claim | measured | agree table (run it)")
    return rows


def verdict(agree: str) -> str:
    """A summary's *agree?* cell as a verdict: ``yes`` → agree, ``NO`` → disagree, anything else as it is."""
    return {"yes": "agree", "no": "disagree"}.get(agree.strip().lower(), agree.strip())


def _row(evidence: Evidence, root: Path | None) -> list[str]:
    rows = summary_rows(evidence.notebook, evidence.cell_id, root)[1:]
    matches = [r for r in rows if r[0].startswith(evidence.row)]
    if len(matches) <= evidence.nth:
        raise LookupError(f"{evidence.notebook}.ipynb cell {evidence.cell_id!r} has no row starting "
                          f"{evidence.row!r}" + (f" (wanted match {evidence.nth})" if evidence.nth else ""))
    return matches[evidence.nth]


def resolve(claims: Sequence[Claim] = (), root: Path | None = None, *, strict: bool = True) -> list[Resolved]:
    """Each claim (default :data:`CLAIMS`) with its evidence row read from the stored notebooks.

    With ``strict`` a missing notebook, cell or row raises; without, the row says what is missing (for a
    checkout where a lesson is not committed or not executed yet; the tests stay strict).
    """
    resolved = []
    for c in claims or CLAIMS:
        if c.evidence is None:
            resolved.append(Resolved(c.item, c.claim, "–", "–", c.status))
            continue
        try:
            row = _row(c.evidence, root)
        except (FileNotFoundError, KeyError, LookupError, ValueError) as error:
            if strict:
                raise
            resolved.append(Resolved(c.item, c.evidence.row + " …", f"{c.evidence.lesson}, cell `{c.evidence.cell_id}`",
                                     "–", f"no stored row yet ({type(error).__name__})"))
            continue
        source = f"{c.evidence.lesson}, cell `{c.evidence.cell_id}`"
        agree = verdict(row[2]) if len(row) > 2 else "(see the row)"
        if c.note:
            agree = f"{agree} ({c.note})"
        resolved.append(Resolved(c.item, row[0], source, row[1], agree))
    return resolved


def claims_markdown(rows: Sequence[Resolved]) -> str:
    """The claims-to-evidence table as Markdown."""
    lines = ["| paper | claim | lesson, cell | measured there | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {r.item} | {r.claim} | {r.source} | {r.measured} | {r.verdict} |" for r in rows]
    return "\n".join(lines)


def differences_markdown(differences: Sequence[Difference] = (), root: Path | None = None) -> str:
    """The differences table as Markdown, each row's measurement read from the lesson that runs both ways."""
    lines = ["| what | reformer_lab | trax, HF, reformer-pytorch | runs both ways | measured there |",
             "|---|---|---|---|---|"]
    for d in differences or DIFFERENCES:
        if d.evidence is None:
            where, measured = d.where, "–"
        else:
            where, measured = f"{d.evidence.lesson}, cell `{d.evidence.cell_id}`", _row(d.evidence, root)[1]
        lines.append(f"| {d.topic} | {d.ours} | {d.peers} | {where} | {measured} |")
    return "\n".join(lines)


# The summary cells of lessons 00–09 ----------------------------------------------------------------------------

_L00 = ("00_the_memory_problem", "7f322539")
_L01 = ("01_angular_lsh", "9f24405f")
_L02 = ("02_bucketing_and_chunking", "4087f0de")
_L03 = ("03_lsh_attention", "bd79fd84")
_L03B = ("03b_lsh_attention_peers", "5a2bbb50")
_L04 = ("04_reversible_layers", "7bb3395d")
_L05 = ("05_chunked_feed_forward", "eca587cb")
_L06 = ("06_the_reformer", "ef6fcf04")
_L07 = ("07_duplication_task", "06ddf217")
_L08 = ("08_speed_and_memory", "summary")
_L09 = ("09_what_the_approximations_cost", "summary")


def _at(lesson: tuple[str, str], row: str, nth: int = 0) -> Evidence:
    return Evidence(*lesson, row, nth)


#: The paper's tables, figures and main claims, in the paper's order, each with the lesson row that measures it.
CLAIMS: tuple[Claim, ...] = (
    Claim("abstract, §1", _at(_L00, "attention memory is O(L²)")),
    Claim("abstract, §3", _at(_L04, "Table 3: Reversible Transformer memory independent of n_l")),
    Claim("abstract, §5", claim="the Reformer performs on par with Transformer models", status=ONE_AT_A_TIME),
    Claim("§1", _at(_L05, "chunking the FF is numerically identical")),
    Claim("§2", _at(_L00, "QKᵀ at 64K tokens")),
    Claim("§2", _at(_L02, "shared QK: k_j = q_j/‖q_j‖")),
    Claim("Figure 1", _at(_L01, "nearby vectors get the same hash with high probability")),
    Claim("Figure 1", _at(_L01, "more rounds reduce the chance of missing a neighbour")),
    Claim("Figure 2", _at(_L02, "sorted shared-QK buckets become blocks on the diagonal")),
    Claim("Figure 2, eq. 5", _at(_L02, "no bucket larger than m means no pair lost")),
    Claim("eq. 16", _at(_L03, "finite self mask")),
    Claim("App. A", _at(_L03, "eqs. 12–16 give attention over the union")),
    Claim("Table 1", _at(_L03, "Table 1: dot-product memory ∝ l²")),
    Claim("Table 1", _at(_L03, "Table 1: memory-efficient memory ∝ l² (as printed)")),
    Claim("Table 1", _at(_L03, "Table 1: LSH memory"),
          note="the measured growth, linear in l and n_r, matches; the printed (4l/n_c)² factor overcounts"),
    Claim("Table 1", _at(_L08, "Table 1: dot-product memory grows with l at fixed tokens")),
    Claim("Table 1", _at(_L08, "Table 1: LSH memory does not grow with l at fixed tokens")),
    Claim("§2.1", _at(_L07, "§2.1: attention with a limited span cannot solve the task")),
    Claim("Table 2", _at(_L07, "Table 2: LSH-4 training, LSH-8 evaluation 100%")),
    Claim("Table 2", _at(_L07, "Table 2: even LSH-1 training is almost perfect")),
    Claim("Table 2", _at(_L07, "Table 2: a full-attention model works with LSH"),
          note="the direction; the size of the loss differs at our scale"),
    Claim("Table 2", _at(_L07, "Table 2: more training hashes help at LSH-1 evaluation"),
          note="w of 63 symbols and 600 steps, not the paper's 511 and 150K"),
    Claim("Table 2", _at(_L07, "Table 2: LSH-trained models evaluated with full attention"),
          note="our full attention keeps the self mask and unit keys; lesson 07 shows their role"),
    Claim("§3, eq. 8", _at(_L04, "layers can be reversed one by one during backprop")),
    Claim("§3", _at(_L06, "reversible layers add no parameters")),
    Claim("Table 3", _at(_L04, "Table 3: Transformer memory × n_l")),
    Claim("Table 3", _at(_L05, "Table 3: chunked reversible ≤ reversible ≤ Transformer")),
    Claim("Table 3", _at(_L05, "Table 3 LSH rows with the paper's c")),
    Claim("Table 3", _at(_L05, "Table 3 time: reversible rows have an extra n_h")),
    Claim("Table 3", _at(_L00, "Table 3: the Reformer's memory is far below the Transformer's")),
    Claim("Table 4", claim="a reversible Transformer matches BLEU on WMT14 En–De (27.6 base, 29.1 big)",
          status=NOT_ON_CPU),
    Claim("Figure 3", _at(_L09, "Figure 3 left: shared-QK attention does not perform worse"),
          note="300 steps of a 2-layer model on our repeated-text task, 3 seeds"),
    Claim("Figure 3", _at(_L09, "Figure 3 right: reversible and regular Transformers learn alike"),
          note="300 steps of a 2-layer model on our repeated-text task, 3 seeds"),
    Claim("Figure 4", _at(_L03, "more rounds bring LSH closer to full attention"),
          note="toy inputs, not trained models"),
    Claim("Figure 4", _at(_L09, "Figure 4: more hash rounds, lower loss")),
    Claim("Figure 4", _at(_L09, "Figure 4: at 8 rounds LSH almost matches full attention")),
    Claim("Figure 5 left", _at(_L09, "Figure 5 left: deeper Reformers improve with the number of layers"),
          note="1 and 2 layers, full attention, our scale"),
    Claim("Figure 5 left", _at(_L09, "Figure 5 left: deeper Reformers improve with the number of layers", 1),
          note="2 and 4 layers, full attention, our scale"),
    Claim("Figure 5 right", _at(_L08, "§5, Fig. 5 right: full attention becomes slower")),
    Claim("Figure 5 right", _at(_L08, "§5, Fig. 5 right: LSH attention speed remains flat")),
    Claim("Figure 5 right", _at(_L08, "more hash rounds cost more time")),
    Claim("§5", claim="12-layer enwik8 model: 1.19 bits/dim after 20K steps, 1.05 tuned", status=NOT_ON_CPU),
)

#: How reformer_lab differs from trax, HF transformers and reformer-pytorch (each peer as read in its source).
DIFFERENCES: tuple[Difference, ...] = (
    Difference("look-back across hash rounds",
               "within each round: a round's first chunk looks back at nothing (eq. 11)",
               "the first chunk of round r looks back at the last chunk of round r − 1 (all three)",
               _at(_L03B, "look-back within each round")),
    Difference("pairs seen in several rounds (N_ij)",
               "counted once, App. A's −log N_ij",
               "counted once per visit (trax today, HF); reformer-pytorch's option misses cross-round pairs",
               _at(_L03B, "duplicates counted once")),
    Difference("keys in another bucket of the window",
               "masked (eq. 4); `attend_across_buckets=True` is the option",
               "attended (trax since Nov. 2019, HF); reformer-pytorch's default too",
               _at(_L03B, "same bucket only")),
    Difference("rotation distribution",
               "Gaussian R, as the authors' code; orthogonal R is an option",
               "Gaussian, never orthogonalised (all three)",
               _at(_L01, "hash buckets are of similar size")),
    Difference("axial position embeddings",
               "an option (`positional=\"axial\"`), per-axis tables concatenated; the lessons train with learned "
               "absolute positions (the paper does not say which it used)",
               "trax and HF concatenate (HF: the grid must equal the training length); reformer-pytorch sums by "
               "default and uses rotary positions unless told otherwise",
               where="10, cell `axial` (parameters both ways)"),
    Difference("chunked feed-forward in the backward pass",
               "the recomputation is chunked too, so d_ff activations never exist for the whole sequence",
               "trax rematerialises each chunk; HF and reformer-pytorch recompute the chunks under autograd, "
               "which keeps every chunk's d_ff activations until the backward (our reading of their code)",
               _at(_L05, "chunking removes the d_ff factor")),
)
