"""The static site (`make site`) in headless Chromium, with every request to another host blocked.

The site is built once into a temporary folder and served from 127.0.0.1. Each lesson page must show
its title, every stored PNG figure, and one rendered widget per widget output of the notebook (drawn
by the bundled html-manager from the saved widget state, pictures included), typeset its math, and
load nothing from anywhere but that server. The index must link every lesson. Screenshots go to
tests/browser/screenshots/site/.

Run:  .venv/bin/pytest tests/browser/test_site.py -q -p no:cacheprovider
"""

from __future__ import annotations

import functools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reformer_lab.lessons.site import build_site, parse_lessons

from .conftest import REPO_ROOT, require_browser
from .notebook_page import WIDGET_VIEW_MIME

pytestmark = pytest.mark.browser

LESSONS = sorted(p.stem for p in (REPO_ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"
MATH = re.compile(r"\$[^$\s][^$]*\$")

# Per widget output: is a rendered view (.jupyter-widgets in the html-manager's .widget-subarea) visible?
_WIDGETS_JS = """
(mime) => [...document.querySelectorAll(`script[type="${mime}"]`)].map((s) => {
  const area = s.parentElement.querySelector('.widget-subarea');
  const views = area ? [...area.querySelectorAll('.jupyter-widgets')] : [];
  return views.some((v) => v.offsetWidth > 0 && v.offsetHeight > 0);
})
"""
# Figures (data: PNG outputs) and widget pictures: [src prefix, loaded with a width].
_IMAGES_JS = """
(sel) => [...document.querySelectorAll(sel)].map((i) => [i.src.slice(0, 22), i.complete && i.naturalWidth > 0])
"""


@dataclass
class Expected:
    """What a lesson page must show, read from the notebook."""

    title: str
    figures: int
    widgets: int
    widget_images: int
    math: bool


def expected_from(path: Path) -> Expected:
    nb = json.loads(path.read_text(encoding="utf-8"))
    source = ["".join(c["source"]) for c in nb["cells"]]
    title = next(m[1] for s in source if (m := re.search(r"^# (.+)$", s, re.MULTILINE)))
    outputs = [o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", [])]
    views = [d[WIDGET_VIEW_MIME]["model_id"] for d in outputs if WIDGET_VIEW_MIME in d]
    state = nb["metadata"].get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})
    missing = [v for v in views if v not in state]
    assert not missing, f"{path.name}: widget outputs {missing} have no saved state (save it when executing)"
    # Models the displayed views reach (children, layouts, ...); their PNG images are drawn on the page.
    reached, todo = set(), list(views)
    while todo:
        if (mid := todo.pop()) in state and mid not in reached:
            reached.add(mid)
            todo += re.findall(r"IPY_MODEL_([0-9a-f]+)", json.dumps(state[mid]["state"]))
    images = sum(state[m]["model_name"] == "ImageModel" and state[m]["state"].get("format") == "png" for m in reached)
    math = any(MATH.search(s) for s, c in zip(source, nb["cells"], strict=True) if c["cell_type"] == "markdown")
    # A widget's output also carries its first picture as image/png, for viewers without a widget manager;
    # the site renders the widget itself, so only plain figures count here.
    figures = sum("image/png" in d and WIDGET_VIEW_MIME not in d for d in outputs)
    return Expected(re.sub(r"[*_`]", "", title), figures, len(views), images, math)


@dataclass
class OfflinePage:
    """A Playwright page that may load only from `origin`; what it tried to load elsewhere is recorded."""

    page: object
    origin: str
    blocked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda exc: self.problems.append(f"pageerror: {exc}"))
        self.page.on(
            "response",
            lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"),
        )

    def _route(self, route) -> None:
        url = route.request.url
        if url.startswith(self.origin + "/"):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def open(self, name: str) -> None:
        self.page.goto(f"{self.origin}/{name}.html", wait_until="load")

    def check_offline(self) -> None:
        assert not self.blocked, f"the page tried to load from other hosts: {self.blocked}"
        assert not self.problems, "\n".join(self.problems)

    def check_local_links(self) -> list[str]:
        """Every relative <a href> on the page answers 200; returns the links."""
        hrefs = self.page.eval_on_selector_all("a[href]", "(as) => as.map((a) => a.getAttribute('href'))")
        local = sorted({h.split("#")[0] for h in hrefs if not re.match(r"^([a-z]+:|#|//)", h)} - {""})
        broken = [h for h in local if self.page.request.get(f"{self.origin}/{h}").status != 200]
        assert not broken, f"links to missing pages: {broken}"
        return local


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for this module (the widget manager's npm tarball is cached under build/)."""
    require_browser()  # no build without a browser to look at it
    out = tmp_path_factory.mktemp("site")
    for page in build_site(out):
        print(f"{page.path.name}: {page.figures} figure(s), {page.widgets} widget(s)")
    return out


@pytest.fixture(scope="module")
def site_origin(site):
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def offline_page(site_origin, lab_page) -> OfflinePage:
    return OfflinePage(lab_page, site_origin)


@pytest.fixture(scope="module")
def site_screenshots(screenshot_dir) -> Path:
    folder = screenshot_dir / "site"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.mark.parametrize("name", LESSONS)
def test_lesson_page_shows_its_outputs_offline(name, offline_page, site_screenshots):
    want = expected_from(REPO_ROOT / "notebooks" / f"{name}.ipynb")
    p = offline_page
    p.open(name)
    page = p.page
    try:
        page.locator("h1", has_text=want.title).first.wait_for(state="visible", timeout=10_000)
        page.wait_for_function(
            "([mime, n]) => document.querySelectorAll(`script[type='${mime}']`).length === n && "
            "document.querySelectorAll('.widget-subarea .jupyter-widgets').length >= n",
            arg=[WIDGET_VIEW_MIME, want.widgets],
            timeout=30_000,
        )
        if want.math:
            page.wait_for_function(
                "() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 && "
                "document.querySelectorAll('.MathJax, .MathJax_Display').length > 0",
                timeout=30_000,
            )
        page.wait_for_function(  # every picture has finished loading (or failed)
            "() => [...document.images].every((i) => i.complete)", timeout=15_000
        )
    finally:
        page.screenshot(path=str(site_screenshots / f"{name}.png"), full_page=True)

    figures = page.evaluate(_IMAGES_JS, ".jp-OutputArea-output > img")
    assert [ok for src, ok in figures if src.startswith("data:image/png")] == [True] * want.figures, figures
    assert page.evaluate(_WIDGETS_JS, WIDGET_VIEW_MIME) == [True] * want.widgets, "a widget is not shown"
    pictures = page.evaluate(_IMAGES_JS, ".widget-subarea img")
    assert [ok for _, ok in pictures] == [True] * want.widget_images, f"widget pictures: {pictures}"
    text = page.inner_text("body")
    assert "Error displaying widget" not in text and "Math Processing Error" not in text
    p.check_local_links()
    p.check_offline()


def test_index_links_every_lesson(offline_page, site_screenshots):
    p = offline_page
    p.open("index")
    p.page.screenshot(path=str(site_screenshots / "index.png"), full_page=True)
    lessons = parse_lessons((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    table = p.page.locator("table")
    for lesson in lessons:
        number = p.page.locator("td:first-child", has_text=re.compile(rf"^\s*{lesson.number}\s*$"))
        row = table.locator("tr", has=number).filter(has_text=lesson.title)
        assert row.count() == 1, f"index: no single row for lesson {lesson.number} ({lesson.title})"
        links = row.locator("a")
        if lesson.page is None:
            assert links.count() == 0, f"index: lesson {lesson.number} is {lesson.status} but linked"
        else:
            assert links.first.get_attribute("href") == lesson.page and links.first.is_visible()
    linked = {lesson.page for lesson in lessons if lesson.page}
    assert linked == {f"{name}.html" for name in LESSONS}, "the index and notebooks/ list different lessons"
    assert set(p.check_local_links()) == linked
    p.check_offline()
