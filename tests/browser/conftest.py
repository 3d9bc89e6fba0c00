"""Fixtures for the browser tests: Chromium (via Playwright) and a throw-away JupyterLab server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .lab_server import prepare_served_tree, start_lab_server

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = Path(os.environ.get("REFORMER_LAB_CHROMIUM", "/usr/bin/chromium"))
INSTALL_HINT = (
    "install Debian's Chromium with `apt-get update && apt-get install -y chromium` "
    "(never `playwright install`)"
)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}


def pytest_addoption(parser):
    parser.addoption(
        "--notebook-dir",
        default=None,
        help="folder whose *.ipynb the browser tests run "
        "(default: $REFORMER_LAB_NOTEBOOK_DIR, else <repo>/notebooks)",
    )


def notebook_dir_from(config) -> Path:
    """--notebook-dir, else $REFORMER_LAB_NOTEBOOK_DIR, else <repo>/notebooks."""
    option = config.getoption("--notebook-dir", default=None)
    chosen = option or os.environ.get("REFORMER_LAB_NOTEBOOK_DIR") or REPO_ROOT / "notebooks"
    return Path(chosen).expanduser().resolve()


def _missing_browser(reason: str) -> None:
    """Skip, or fail when REQUIRE_BROWSER=1 (CI that must not silently skip the browser tests)."""
    message = f"browser tests need Chromium and Playwright: {reason}; {INSTALL_HINT}"
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (REQUIRE_BROWSER=1, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(message)


def require_browser() -> Path:
    """Chromium's path, after checking it and Playwright are there (else skip or fail, see above)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        _missing_browser(f"{CHROMIUM} not found")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        _missing_browser(f"cannot import playwright ({exc}); `pip install -e .[test]`")
    return CHROMIUM


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    return require_browser()


@pytest.fixture(scope="session")
def browser(chromium_executable, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    # Chromium writes crash-report and dconf folders under XDG dirs; keep them out of the home directory.
    home = tmp_path_factory.mktemp("chromium-home")
    env = {**os.environ, "XDG_CONFIG_HOME": str(home / "config"), "XDG_CACHE_HOME": str(home / "cache")}
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=str(chromium_executable),
            headless=True,
            args=CHROMIUM_ARGS,
            env=env,
            timeout=60_000,
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def notebook_dir(request) -> Path:
    return notebook_dir_from(request.config)


@pytest.fixture(scope="session")
def lab_workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jupyterlab")


@pytest.fixture(scope="session")
def served_notebook_dir(notebook_dir, lab_workdir) -> Path:
    """Stripped copies of the notebooks; JupyterLab serves these, never the repository's files."""
    return prepare_served_tree(notebook_dir, lab_workdir / "root")


@pytest.fixture(scope="session")
def lab_server(chromium_executable, served_notebook_dir, lab_workdir):
    server = start_lab_server(lab_workdir / "root", lab_workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def lab_page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        yield page
    finally:
        page.close()
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    return SCREENSHOT_DIR
