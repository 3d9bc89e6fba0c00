"""Every notebook runs in JupyterLab in a real browser, and every course widget reacts to its controls.

Per notebook: open it in headless Chromium, Run → Run All Cells, wait until every code cell has a
number, fail on any error output, then move the first slider (else dropdown) of each `.rl-widget` and
require its `.rl-widget-output` to change. Screenshots go to tests/browser/screenshots/.

Run:  .venv/bin/pytest tests/browser -q -p no:cacheprovider [--notebook-dir DIR]
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from .conftest import notebook_dir_from, require_browser
from .notebook_page import NotebookCheckError, NotebookPage

pytestmark = pytest.mark.browser

NOTEBOOK_TIMEOUT_S = float(os.environ.get("REFORMER_LAB_NOTEBOOK_TIMEOUT", "300"))


def pytest_generate_tests(metafunc):
    if "notebook_name" not in metafunc.fixturenames:
        return
    nb_dir = notebook_dir_from(metafunc.config)
    names = sorted(p.name for p in nb_dir.glob("*.ipynb")) if nb_dir.is_dir() else []
    if names:
        metafunc.parametrize("notebook_name", names)
    else:
        skip = pytest.mark.skip(reason=f"no notebooks (*.ipynb) in {nb_dir}")
        metafunc.parametrize("notebook_name", [pytest.param(None, marks=skip)], ids=["no-notebooks"])


def run_and_check(nbp: NotebookPage, widgets: list[dict], shot_prefix: Path) -> None:
    """Open, Run All, check for errors, then exercise every `.rl-widget` (appended to `widgets`)."""
    nbp.open()
    nbp.run_all()
    model = nbp.wait_run_finished(NOTEBOOK_TIMEOUT_S)
    errors = nbp.failing_outputs(model)
    if errors:
        raise nbp.fail(f"{len(errors)} cell(s) raised an error:\n\n" + "\n\n".join(errors))
    nbp.wait_widgets_rendered(model)
    widgets.extend(nbp.tag_rl_widgets())
    for info in widgets:
        print(nbp.move_control_and_check(info))
        nbp.widget(info["index"]).screenshot(path=f"{shot_prefix}--widget-{info['index'] + 1}.png")


def test_notebook_runs_clean_and_widgets_respond(notebook_name, request, screenshot_dir, record_property):
    # Checked before any fixture starts a browser or server, so REQUIRE_BROWSER=1 reports a FAILED test.
    require_browser()
    served_notebook_dir = request.getfixturevalue("served_notebook_dir")
    lab_server = request.getfixturevalue("lab_server")
    lab_page = request.getfixturevalue("lab_page")
    served = served_notebook_dir / notebook_name
    rel_path = f"{served_notebook_dir.name}/{notebook_name}"
    stem = Path(notebook_name).stem
    shot = screenshot_dir / f"{stem}.png"
    for old in screenshot_dir.glob(f"{stem}--widget-*.png"):
        old.unlink()

    nbp = NotebookPage(
        lab_page, lab_server.lab_url(rel_path), rel_path, json.loads(served.read_text(encoding="utf-8"))
    )
    start = time.monotonic()
    widgets: list[dict] = []
    failure = None
    try:
        run_and_check(nbp, widgets, screenshot_dir / stem)
    except NotebookCheckError as exc:
        failure = str(exc)
    finally:
        try:
            nbp.screenshot(shot, focus_widget=0 if widgets else None)
        except Exception as exc:  # a screenshot must never hide the real failure
            print(f"screenshot failed: {exc}")
        lab_page.close()
        try:  # one kernel per notebook would otherwise stay alive until the session ends
            lab_server.shutdown_sessions(rel_path)
        except OSError as exc:
            print(f"could not shut the kernel of {rel_path} down: {exc}")
        seconds = time.monotonic() - start
        record_property("seconds", round(seconds, 1))
        print(f"{notebook_name}: {len(widgets)} rl-widget(s), {seconds:.1f} s in the browser")
    if failure:
        pytest.fail(f"{failure}\nserver log: {lab_server.log_path}\nscreenshot: {shot}", pytrace=False)
