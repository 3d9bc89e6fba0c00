"""Where a measurement came from: the git commit of the code that made it, and whether the tree was clean.

Every JSON the runners write under ``results/`` records both, so a committed result can be traced to the
code that produced it. A copy of the tree without its ``.git`` folder (a GPU machine that was sent the
files alone) gives its commit in the environment variable ``REFORMER_LAB_COMMIT``, and the result records
its cleanliness as unknown.
"""

from __future__ import annotations

import os
import subprocess


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> str:
    """The git commit of the working directory, else ``$REFORMER_LAB_COMMIT``, else "unknown"."""
    out = _git("rev-parse", "HEAD")
    return out.strip() if out else os.environ.get("REFORMER_LAB_COMMIT", "unknown")


def git_dirty() -> bool | None:
    """Whether tracked files differ from the commit (None outside a repository)."""
    out = _git("status", "--porcelain", "--untracked-files=no")
    return None if out is None else bool(out.strip())
