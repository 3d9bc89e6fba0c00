"""Start and stop a throw-away JupyterLab server for the browser tests.

The server runs from the same Python as pytest, binds to 127.0.0.1 with a random token on a free port,
and keeps every Jupyter directory (runtime, config, data, workspaces, user settings, IPython) inside a
temporary folder, so nothing lands in the home directory. It serves a *copy* of the notebooks and of the
project around them (see `prepare_served_tree`), so neither JupyterLab (autosave) nor the notebooks
(figures they save) can write into the repository.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

# Settings the browser receives as defaults: no news or update-check toasts, no autosave (the copy is
# throw-away anyway), and every cell attached to the DOM (no windowing), so prompts, outputs and widgets
# of all cells can be inspected without scrolling them into view first.
LAB_SETTING_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"checkForUpdates": False, "fetchNews": "false"},
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

# Server-side: no news feed, never ask PyPI for updates, and expose `window.jupyterapp` so the tests can
# read the notebook model (outputs as nbformat JSON) instead of guessing errors from rendered text.
SERVER_CONFIG = {
    "LabApp": {
        "news_url": None,
        "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "expose_app_in_browser": True,
    },
    "ServerApp": {"open_browser": False},
}

# Never copied into the served tree.
_SKIP = {
    ".git",
    ".venv",
    "venv",
    "node_modules",
    ".ipynb_checkpoints",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    "build",
    "dist",
}
# Files above this size are symlinked instead of copied (large artefacts a notebook only reads).
_LINK_ABOVE_BYTES = 20 * 2**20
_PROJECT_MARKERS = ("pyproject.toml", "setup.cfg", "setup.py", ".git")


def _ignore(directory: str, names: list[str]) -> set[str]:
    skipped = {n for n in names if n in _SKIP or n.endswith(".egg-info")}
    if Path(directory).name == "browser" and Path(directory).parent.name == "tests":
        skipped.add("screenshots")
    return skipped


def _copy_or_link(src: str, dst: str) -> str:
    if os.path.getsize(src) > _LINK_ABOVE_BYTES:
        os.symlink(os.path.abspath(src), dst)
        return dst
    return shutil.copy2(src, dst)


def _copy_entry(src: Path, dst: Path) -> None:
    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, ignore=_ignore, copy_function=_copy_or_link)
    elif src.is_symlink():
        dst.symlink_to(src.readlink(), target_is_directory=src.is_dir())
    else:
        _copy_or_link(str(src), str(dst))


def strip_notebook(src: Path, dst: Path) -> None:
    """Copy a notebook without outputs, execution counts or saved widget state.

    The committed notebooks carry outputs: if they stayed, prompts like ``[1]:`` and saved widgets would
    be on the page before anything ran. Stripped, everything on the page after Run All comes from this run.
    """
    nb = json.loads(src.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb.get("metadata", {}).pop("widgets", None)
    dst.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def prepare_served_tree(notebook_dir: Path, served_root: Path) -> Path:
    """Build the tree the server serves and return the served copy of `notebook_dir`.

    ``served_root/<notebook_dir.name>/`` holds stripped copies of the ``*.ipynb`` files and copies of the
    other files there. When `notebook_dir`'s parent is a project root (e.g. the repository), its other
    entries (``results/``, ``docs/`` ...) are copied beside it, so relative paths such as
    ``../results/x.json`` work from the copies as from the originals, and whatever a notebook writes
    (``../docs/figure.png``) lands in the copy, never in the repository. Files over 20 MiB are symlinked
    instead. Notebooks are served at ``/lab/tree/<notebook_dir.name>/<name>.ipynb``.
    """
    notebook_dir = notebook_dir.resolve()
    served_root.mkdir(parents=True, exist_ok=True)
    served_nb_dir = served_root / notebook_dir.name
    served_nb_dir.mkdir()
    parent = notebook_dir.parent
    if any((parent / marker).exists() for marker in _PROJECT_MARKERS):
        skipped = _ignore(str(parent), [e.name for e in parent.iterdir()])
        for entry in sorted(parent.iterdir()):
            if entry.name not in skipped and entry != notebook_dir:
                _copy_entry(entry, served_root / entry.name)
    skipped = _ignore(str(notebook_dir), [e.name for e in notebook_dir.iterdir()])
    for entry in sorted(notebook_dir.iterdir()):
        if entry.name in skipped:
            continue
        if entry.suffix == ".ipynb" and entry.is_file():
            strip_notebook(entry, served_nb_dir / entry.name)
        else:
            _copy_entry(entry, served_nb_dir / entry.name)
    return served_nb_dir


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    root: Path
    workdir: Path
    port: int
    token: str = field(repr=False)
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"jupyterlab-{self.port}.log"

    def log_tail(self, n_chars: int = 4000) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"<no server log: {exc}>"
        return text[-n_chars:]

    def lab_url(self, rel_path: str) -> str:
        """URL that opens `rel_path` (relative to the served root) in a fresh JupyterLab workspace."""
        quoted = urllib.parse.quote(rel_path)
        return f"{self.url}/lab/tree/{quoted}?reset&token={self.token}"

    def api(self, method: str, path: str, timeout: float = 5.0):
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_sessions(self, path: str) -> int:
        """Shut down the sessions (and so the kernels) opened for `path`; returns how many."""
        count = 0
        for session in self.api("GET", "/api/sessions") or []:
            if session.get("path") == path:
                self.api("DELETE", f"/api/sessions/{session['id']}", timeout=30.0)
                count += 1
        return count

    # -- lifecycle --------------------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        jupyter_home = self.workdir / "jupyter"
        for name in ("runtime", "config", "data"):
            (jupyter_home / name).mkdir(parents=True, exist_ok=True)
        env["JUPYTER_RUNTIME_DIR"] = str(jupyter_home / "runtime")
        env["JUPYTER_CONFIG_DIR"] = str(jupyter_home / "config")
        env["JUPYTER_DATA_DIR"] = str(jupyter_home / "data")
        env["IPYTHONDIR"] = str(jupyter_home / "ipython")
        # jupyter-lsp runs `npm prefix -g` at start-up; keep npm's log out of ~/.npm.
        env["npm_config_cache"] = str(self.workdir / "npm-cache")
        env.pop("JUPYTER_PATH", None)
        env.pop("JUPYTER_CONFIG_PATH", None)
        env["PYTHONUNBUFFERED"] = "1"
        # Kernel and notebooks behave as for a learner: no inherited non-interactive matplotlib backend.
        env.pop("MPLBACKEND", None)
        return env

    def _write_config(self) -> list[str]:
        config_dir = self.workdir / "jupyter" / "config"
        (config_dir / "labconfig").mkdir(parents=True, exist_ok=True)
        # Read by jupyterlab_server as defaults layered under the user's settings.
        (config_dir / "labconfig" / "default_setting_overrides.json").write_text(
            json.dumps(LAB_SETTING_OVERRIDES, indent=1), encoding="utf-8"
        )
        (config_dir / "jupyter_server_config.json").write_text(
            json.dumps(SERVER_CONFIG, indent=1), encoding="utf-8"
        )
        workspaces = self.workdir / "jupyter" / "workspaces"
        user_settings = self.workdir / "jupyter" / "user-settings"
        workspaces.mkdir(parents=True, exist_ok=True)
        user_settings.mkdir(parents=True, exist_ok=True)
        return [f"--LabApp.workspaces_dir={workspaces}", f"--LabApp.user_settings_dir={user_settings}"]

    def start(self, ready_timeout: float = 90.0) -> None:
        extra = self._write_config()
        cmd = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.root}",
            *extra,
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        log = open(self.log_path, "wb")  # noqa: SIM115 - the child keeps writing to it
        try:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.root,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + ready_timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"JupyterLab exited with code {code} before it was ready "
                    f"(port {self.port}).\nCommand: {' '.join(cmd)}\n--- server log ---\n{self.log_tail()}"
                )
            try:
                status = self.api("GET", "/api/status", timeout=2.0)
                if isinstance(status, dict):
                    return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last_error = repr(exc)
            time.sleep(0.25)
        self.stop()
        raise ServerStartError(
            f"JupyterLab did not answer /api/status within {ready_timeout:.0f} s "
            f"(last error: {last_error}).\n--- server log ---\n{self.log_tail()}"
        )

    def stop(self, grace: float = 15.0) -> None:
        """Shut the kernels down, then stop the server by its own PID (TERM, wait, KILL if needed)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            # Kernels run in their own sessions: shut them down through the server, so none is orphaned
            # even if the server itself has to be killed.
            for kernel in self.api("GET", "/api/kernels") or []:
                self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=10.0)
        except (urllib.error.URLError, OSError, ValueError):
            pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class ServerStartError(RuntimeError):
    pass


def start_lab_server(root: Path, workdir: Path, attempts: int = 3) -> LabServer:
    """Start JupyterLab serving `root`; retry on a fresh port if the chosen one was taken meanwhile."""
    error: ServerStartError | None = None
    for _ in range(attempts):
        server = LabServer(root=root, workdir=workdir, port=free_port(), token=secrets.token_hex(24))
        try:
            server.start()
            return server
        except ServerStartError as exc:
            error = exc
            if "already in use" not in str(exc).lower():
                break
    assert error is not None
    raise error
