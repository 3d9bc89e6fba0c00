"""Build a static HTML site of the lessons that works offline: ``python -m reformer_lab.lessons.site --out build/site``.

Each ``notebooks/NN_name.ipynb`` becomes ``NN_name.html`` through nbconvert's "lab" template (our
``site_template/`` drops what that template loads from a CDN), with its stored outputs and its widgets
rendered from the saved widget state. Everything a page loads is copied under ``_static/``: the widget
manager (``@jupyter-widgets/html-manager``'s ``embed.js``, fetched once with ``npm pack`` and checked
against its published integrity hash) and MathJax 2.7 from the ``jupyter-server-mathjax`` package.
``index.html`` holds the lesson table from README.md.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = Path(__file__).resolve().parent / "site_template"
NOTEBOOKS = REPO_ROOT / "notebooks"
README = REPO_ROOT / "README.md"
NPM_CACHE = REPO_ROOT / "build" / "npm-cache"
HTML_MANAGER = "@jupyter-widgets/html-manager@1.0.15"
HTML_MANAGER_TARBALL = "jupyter-widgets-html-manager-1.0.15.tgz"
# `npm view @jupyter-widgets/html-manager@1.0.15 dist.integrity`
HTML_MANAGER_INTEGRITY = (
    "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
)
HTML_MANAGER_FILES = re.compile(r"package/dist/(embed\.js|embed\.js\.LICENSE\.txt|[0-9a-f]+\.(woff2?|ttf|eot|svg))")
# jupyter-server-mathjax ships MathJax 2.7 with this combined configuration (HTML-CSS output, STIX-Web fonts).
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
LESSON_LINK = re.compile(r"\]\((?:notebooks/)?(\d\d[a-z]?_[\w-]+)\.ipynb(#[^)\s]*)?\)")
# Anything but an <a> that names another host: <script src>, <link href>, <img src>, import(), url(), @import.
EXTERNAL = re.compile(
    r"<(?!a\s)\w+[^>]*\s(?:src|href)=[\"']?((?:https?:)?//[^\"'\s>]+)"
    r"|(?:import\(|url\(|@import\s)\s*[\"']?((?:https?:)?//[^\"')\s]+)",
    re.IGNORECASE,
)


class SiteError(RuntimeError):
    """The site cannot be built; the message says why and what to do."""


@dataclass(frozen=True)
class Lesson:
    """One row of README.md's lesson table; ``page`` is the site's ``NN_name.html``, or None (not linked)."""

    number: str
    title: str
    paper: str
    status: str
    page: str | None


@dataclass(frozen=True)
class Page:
    """One built page and what it shows."""

    path: Path
    figures: int
    widgets: int


def check_integrity(tarball: Path, expected: str = HTML_MANAGER_INTEGRITY) -> None:
    """Raise SiteError unless ``tarball``'s sha512 matches ``expected`` (npm's ``sha512-<base64>`` form)."""
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if f"sha512-{digest}" != expected:
        raise SiteError(
            f"{tarball} does not match the integrity hash of {HTML_MANAGER} (expected {expected}, "
            f"got sha512-{digest}); it was deleted, run the build again to fetch it anew"
        )


def fetch_html_manager(cache: Path) -> Path:
    """The widget manager's npm tarball in ``cache`` (``npm pack`` on first use), checked against its hash."""
    tarball = cache / HTML_MANAGER_TARBALL
    if not tarball.is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise SiteError(
                f"npm is needed once to fetch {HTML_MANAGER} (the widget manager the pages bundle): "
                "install Node.js with npm (e.g. `apt-get install nodejs npm`, or from https://nodejs.org)"
            )
        cache.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "pack", HTML_MANAGER, "--pack-destination", str(cache), "--silent"],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not tarball.is_file():
            raise SiteError(f"`npm pack {HTML_MANAGER}` failed:\n{done.stderr.strip() or done.stdout.strip()}")
    try:
        check_integrity(tarball)
    except SiteError:
        tarball.unlink()
        raise
    return tarball


def install_html_manager(tarball: Path, dest: Path) -> None:
    """Copy ``dist/embed.js``, its licence and the font files next to it from ``tarball`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            if member.isfile() and HTML_MANAGER_FILES.fullmatch(member.name):
                (dest / Path(member.name).name).write_bytes(tar.extractfile(member).read())


def install_mathjax(dest: Path) -> None:
    """Copy MathJax 2.7 from the ``jupyter-server-mathjax`` package into ``dest``."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        raise SiteError(
            "jupyter-server-mathjax is missing: `pip install -e '.[site]'` (or `make site`, which installs it)"
        ) from None
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", dest, dirs_exist_ok=True)


def rewrite_lesson_links(markdown: str) -> str:
    """Point Markdown links to ``[notebooks/]NN_name.ipynb`` at the site's ``NN_name.html``."""
    return LESSON_LINK.sub(lambda m: f"]({m[1]}.html{m[2] or ''})", markdown)


def parse_lessons(readme: str) -> list[Lesson]:
    """The rows of the table under README's ``## Lessons``; lessons marked "coming" get no page."""
    section = re.search(r"^## Lessons\n(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    if section is None:
        raise SiteError("README.md has no '## Lessons' section")
    lessons = []
    for line in section[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 4 or not re.fullmatch(r"\d\d[a-z]?", cells[0]):
            continue  # prose, the header row or the |---| row
        number, lesson, paper, status = cells
        link = re.fullmatch(r"\[(.*)\]\(([^)]*)\)", lesson)
        title = link[1] if link else lesson
        page = None
        if link and status.lower() != "coming":
            page = rewrite_lesson_links(f"]({link[2]})")[2:-1]
        lessons.append(Lesson(number, title, paper, status, page))
    return lessons


def index_markdown(readme: str) -> str:
    """The index page: README's title and first paragraph, then the lesson table linking to the pages."""
    title = re.search(r"^# (.+)$", readme, re.MULTILINE)[1]
    intro = readme.split("\n\n")[1].strip()
    rows = [
        f"| {x.number} | {f'[{x.title}]({x.page})' if x.page else x.title} | {x.paper} | {x.status} |"
        for x in parse_lessons(readme)
    ]
    return (
        f"# {title}\n\n{intro} These pages show each lesson as it was last run: its figures, and its widgets "
        "in their saved state (moving them needs a running kernel: `make lab`).\n\n"
        "| # | lesson | paper | status |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def make_exporter(static: str = "_static") -> HTMLExporter:
    """nbconvert's HTMLExporter with ``site_template`` and every script URL pointing under ``static``."""
    return HTMLExporter(
        template_name=TEMPLATE_DIR.name,
        extra_template_basedirs=[str(TEMPLATE_DIR.parent)],
        mathjax_url=f"{static}/mathjax/MathJax.js?config={MATHJAX_CONFIG}",
        widget_renderer_url=f"{static}/html-manager/embed.js",
    )


def render(exporter: HTMLExporter, nb: nbformat.NotebookNode, name: str) -> str:
    """``nb`` as one HTML page, its links to other lessons rewritten and titled by its first heading."""
    nb = nbformat.from_dict(nb)  # a copy: the caller's notebook is not changed
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = rewrite_lesson_links(cell.source)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    nb.metadata["title"] = next((m[1] for s in markdown if (m := re.search(r"^# (.+)$", s, re.MULTILINE))), name)
    html, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    return html


def external_resources(html: str) -> list[str]:
    """URLs on other hosts that ``html`` would load (scripts, styles, images, fonts); plain <a> links are fine."""
    return [a or b for a, b in EXTERNAL.findall(html)]


def count_shown(html: str) -> tuple[int, int]:
    """(PNG figures, widget views) that a built page shows."""
    return len(re.findall(r'<img\b[^>]*\ssrc="data:image/png', html)), html.count(f'<script type="{WIDGET_VIEW}">')


def build_site(out: Path, notebooks: Path = NOTEBOOKS, readme: Path = README, cache: Path = NPM_CACHE) -> list[Page]:
    """Write the site to ``out`` (lesson pages, index.html, _static/) and return the pages it wrote."""
    readme_text = readme.read_text(encoding="utf-8")
    tarball = fetch_html_manager(cache)
    out.mkdir(parents=True, exist_ok=True)
    install_html_manager(tarball, out / "_static" / "html-manager")
    install_mathjax(out / "_static" / "mathjax")
    exporter = make_exporter()
    pages = []
    documents = [(p.stem, nbformat.read(p, as_version=4)) for p in sorted(notebooks.glob("[0-9][0-9]*_*.ipynb"))]
    index = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(index_markdown(readme_text))])
    for name, nb in [*documents, ("index", index)]:
        html = render(exporter, nb, name)
        if external := external_resources(html):
            raise SiteError(f"{name}.html would load from other hosts: {', '.join(sorted(set(external)))}")
        path = out / f"{name}.html"
        path.write_text(html, encoding="utf-8")
        pages.append(Page(path, *count_shown(html)))
    return pages


def main(argv: list[str] | None = None) -> int:
    """Command line: build the site and print each page with its figures and widgets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "site", help="folder to write")
    args = parser.parse_args(argv)
    try:
        pages = build_site(args.out)
    except SiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for page in pages:
        print(f"{page.path}  {page.figures} figure(s), {page.widgets} widget(s)")
    print(f"open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
