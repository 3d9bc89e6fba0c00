"""The package's layout: the paper index resolves, the three layers import only downwards, modules stay small."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import reformer_lab

PACKAGE = Path(reformer_lab.__file__).parent
#: Top-level modules that are command-line entry points, not part of the core: they only forward to measure.
ENTRY_POINTS = {"bench", "experiments"}
PLOTTING = {"matplotlib", "ipywidgets", "IPython"}
MAX_LINES = 700

INDEX_ROW = re.compile(r"^\s{4}(§\d|Eq\. \d+|Fig\. \d|Table \d|App\. A)\s.*?\s(reformer_lab(?:\.\w+)+)\s*$", re.M)


def _index() -> list[tuple[str, str]]:
    return INDEX_ROW.findall(reformer_lab.__doc__)


def _resolve(dotted: str) -> tuple[object, object]:
    """(module, object) for a dotted name: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        obj = module
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return module, obj
    raise ModuleNotFoundError(dotted)


def _cited(key: str, text: str) -> bool:
    """Does ``text`` cite ``key`` ("Eq. 11" also matches "eqs. 7–12"; "Fig. 2" matches "Figure 2")?"""
    kind, _, number = key.partition(" ")
    if kind == "Eq.":
        for first, last in re.findall(r"\beqs?\.\s*(\d+)(?:\s*[–-]\s*(\d+))?", text, re.I):
            if int(first) <= int(number) <= int(last or first):
                return True
        return False
    if kind == "Fig.":
        return re.search(rf"\b(Fig\.|Figure)\s*{number}\b", text) is not None
    if kind == "App.":
        return "Appendix A" in text or "App. A" in text
    return re.search(rf"{re.escape(kind)}\s*{number}\b" if number else re.escape(kind), text) is not None


def test_the_index_covers_the_paper() -> None:
    keys = {key for key, _ in _index()}
    assert {f"Eq. {n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)} <= keys
    assert {"Fig. 1", "Fig. 2", "Fig. 5", "Table 1", "Table 2", "Table 3", "App. A"} <= keys


@pytest.mark.parametrize(("key", "dotted"), _index())
def test_every_index_row_names_a_real_object_whose_file_cites_it(key: str, dotted: str) -> None:
    module, obj = _resolve(dotted)
    texts = [module.__doc__ or "", getattr(obj, "__doc__", None) or ""]
    assert any(_cited(key, text) for text in texts), f"neither {module.__name__} nor {dotted} cites {key}"


def _layer(path: Path, root: Path) -> str:
    relative = path.relative_to(root)
    if relative.parts[0] in ("measure", "lessons"):
        return relative.parts[0]
    return "entry" if path.stem in ENTRY_POINTS else "core"


def _imports(path: Path, root: Path) -> set[str]:
    """Every module name ``path`` imports, at any depth of the file (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = ".".join(("reformer_lab", *path.relative_to(root).parts[:-1])).split(".")
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def layering_violations(root: Path = PACKAGE) -> list[str]:
    """Imports that break the layering: core → measure/lessons, measure → lessons, core/measure → plotting."""
    allowed = {"core": set(), "measure": {"measure"}, "lessons": {"measure", "lessons"}, "entry": {"measure"}}
    problems = []
    for path in sorted(root.rglob("*.py")):
        layer = _layer(path, root)
        for name in sorted(_imports(path, root)):
            parts = name.split(".")
            if parts[0] in PLOTTING and layer != "lessons":
                problems.append(f"{path.relative_to(root)} ({layer}) imports {name}")
            if parts[0] == "reformer_lab" and len(parts) > 1 and parts[1] in ("measure", "lessons"):
                if parts[1] not in allowed[layer]:
                    problems.append(f"{path.relative_to(root)} ({layer}) imports {name}")
    return problems


def test_layers_import_only_downwards() -> None:
    assert layering_violations() == []


def test_the_layering_check_sees_a_core_module_importing_measurement(tmp_path: Path) -> None:
    (tmp_path / "measure").mkdir()
    (tmp_path / "measure" / "memory.py").write_text("")
    (tmp_path / "model.py").write_text("def f():\n    from reformer_lab.measure.memory import format_bytes\n")
    (tmp_path / "measure" / "plots.py").write_text("import matplotlib.pyplot as plt\n")
    assert layering_violations(tmp_path) == [
        "measure/plots.py (measure) imports matplotlib.pyplot",
        "model.py (core) imports reformer_lab.measure.memory",
        "model.py (core) imports reformer_lab.measure.memory.format_bytes",
    ]


def test_no_module_imports_another_modules_private_names() -> None:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reformer_lab"):
                problems += [f"{path.relative_to(PACKAGE)}: {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_") and not a.name.startswith("__")]
    assert problems == []


def test_modules_stay_small() -> None:
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
