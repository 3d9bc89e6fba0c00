"""The static site builder (reformer_lab/lessons/site.py), without a browser or the network."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import nbformat
import pytest
from nbconvert import HTMLExporter

from reformer_lab.lessons import site

ROOT = Path(__file__).resolve().parents[1]

README = """# series

Intro.

## Lessons

Some prose | with a bar.

| # | lesson | paper | status |
|---|---|---|---|
| 00 | [first](notebooks/00_first.ipynb) | §1 | ready |
| 01 | [second](notebooks/01_second.ipynb#part-2) | §2, Fig. 1 | ready |
| 02 | [third](notebooks/02_third.ipynb) | §3 | coming |
| 03 | fourth | §4 | coming |

## Next

| 99 | [not a lesson](notebooks/99_x.ipynb) | §9 | ready |
"""


def test_lesson_table_links_point_at_the_pages_and_coming_lessons_are_unlinked() -> None:
    lessons = site.parse_lessons(README)
    assert [(x.number, x.title, x.paper, x.status, x.page) for x in lessons] == [
        ("00", "first", "§1", "ready", "00_first.html"),
        ("01", "second", "§2, Fig. 1", "ready", "01_second.html#part-2"),
        ("02", "third", "§3", "coming", None),
        ("03", "fourth", "§4", "coming", None),
    ]
    index = site.index_markdown(README)
    assert "| 00 | [first](00_first.html) | §1 | ready |" in index
    assert "| 02 | third | §3 | coming |" in index and ".ipynb" not in index


def test_the_readme_table_links_every_notebook() -> None:
    lessons = site.parse_lessons((ROOT / "README.md").read_text(encoding="utf-8"))
    pages = {x.page for x in lessons if x.page}
    assert pages == {f"{p.stem}.html" for p in (ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb")}


def test_links_between_lessons_are_rewritten() -> None:
    text = "see [lesson 01](01_angular_lsh.ipynb) and [§2](notebooks/02_b.ipynb#sec), not [x](data.ipynb.txt)"
    assert site.rewrite_lesson_links(text) == (
        "see [lesson 01](01_angular_lsh.html) and [§2](02_b.html#sec), not [x](data.ipynb.txt)"
    )
    optional = "[peers](03b_lsh_attention_peers.ipynb)"
    assert site.rewrite_lesson_links(optional) == "[peers](03b_lsh_attention_peers.html)"


def test_integrity_check_refuses_a_wrong_hash(tmp_path: Path) -> None:
    tarball = tmp_path / "package.tgz"
    tarball.write_bytes(b"not the widget manager")
    good = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    site.check_integrity(tarball, good)
    with pytest.raises(site.SiteError, match="does not match the integrity hash"):
        site.check_integrity(tarball, site.HTML_MANAGER_INTEGRITY)


def test_a_tampered_cached_tarball_is_refused_and_deleted(tmp_path: Path) -> None:
    cached = tmp_path / site.HTML_MANAGER_TARBALL
    cached.write_bytes(b"tampered")
    with pytest.raises(site.SiteError, match="integrity"):
        site.fetch_html_manager(tmp_path)
    assert not cached.exists(), "the next build must fetch it anew"


def test_missing_npm_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(site.shutil, "which", lambda name: None)
    with pytest.raises(site.SiteError, match="install Node.js with npm"):
        site.fetch_html_manager(tmp_path)


def _tiny_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Tiny\n\n$x^2$")])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"version_major": 2, "state": {}}}
    return nb


def test_template_override_drops_require_js_and_loads_everything_locally() -> None:
    stock, _ = HTMLExporter(template_name="lab").from_notebook_node(_tiny_notebook())
    assert "require.min.js" in stock and site.external_resources(stock), "the stock template would load a CDN"
    html = site.render(site.make_exporter(), _tiny_notebook(), "tiny")
    assert "require.min.js" not in html and "cdnjs" not in html
    assert site.external_resources(html) == []
    assert '<script src="_static/mathjax/MathJax.js?config=' in html
    assert "'_static/html-manager/embed.js'" in html
    assert "<title>Tiny</title>" in html


def test_external_resources_ignores_plain_links() -> None:
    html = '<a href="https://arxiv.org/abs/2001.04451">paper</a><script src="https://cdn.example/x.js"></script>'
    html += '<link rel="stylesheet" href="//cdn.example/x.css"><style>@import url("https://f.example/a.css");</style>'
    assert site.external_resources(html) == [
        "https://cdn.example/x.js",
        "//cdn.example/x.css",
        "https://f.example/a.css",
    ]
