"""Where a measurement came from: the git commit of the code that made it, and whether the tree was clean.

Every JSON the runners write under ``results/`` records both, so a committed result can be traced to the
code that produced it. A copy of the tree made elsewhere (a GPU machine sent the working tree, whose
``.git`` may be missing or stale) names the commit it was copied from in the environment variable
``REFORMER_LAB_COMMIT``: that name wins, and the tree's cleanliness is recorded as unknown.
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
    """``$REFORMER_LAB_COMMIT`` if set, else the working directory's git commit, else "unknown"."""
    if os.environ.get("REFORMER_LAB_COMMIT"):
        return os.environ["REFORMER_LAB_COMMIT"]
    out = _git("rev-parse", "HEAD")
    return out.strip() if out else "unknown"


def git_dirty() -> bool | None:
    """Whether tracked files outside ``results/`` differ from the commit (None outside a repository or for a named
    copy). Results are left out: a run that follows another's writes its JSON there, and that changes no code."""
    if os.environ.get("REFORMER_LAB_COMMIT"):
        return None
    out = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return None if out is None else bool(out.strip())
