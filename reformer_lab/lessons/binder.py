"""Build the mybinder.org launch link for a clone of this repository.

No URL is hard-coded: the link is derived from the clone's ``origin`` remote, so forks get their own.
Run ``make binder-url`` (or ``python reformer_lab/lessons/binder.py``) to print it: this module uses only the
standard library, so it runs before the environment is installed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from urllib.parse import quote

_GITHUB = re.compile(
    r"^(?:https://github\.com/|git@github\.com:|ssh://git@github\.com/)(?P<slug>[^/]+/[^/]+?)(?:\.git)?/?$"
)


def binder_url(remote: str, ref: str = "main", notebook: str | None = None) -> str:
    """The mybinder.org URL that opens ``notebook`` (or the lesson folder) of a GitHub ``remote`` in JupyterLab."""
    match = _GITHUB.match(remote.strip())
    if match is None:
        raise ValueError(
            f"cannot build a Binder link from remote {remote!r}: Binder's 'gh' provider needs a GitHub URL "
            "such as https://github.com/OWNER/REPO(.git) or git@github.com:OWNER/REPO.git"
        )
    target = f"lab/tree/{notebook}" if notebook else "lab/tree/notebooks"
    return f"https://mybinder.org/v2/gh/{match['slug']}/{quote(ref, safe='')}?urlpath={quote(target, safe='')}"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--remote", help="git remote URL (default: this clone's origin)")
    parser.add_argument("--ref", default="main", help="branch, tag or commit to launch (default: main)")
    parser.add_argument("--notebook", help="path of the notebook to open, e.g. notebooks/00_the_memory_problem.ipynb")
    args = parser.parse_args(argv)
    remote = args.remote
    if remote is None:
        try:
            remote = _git("remote", "get-url", "origin")
        except (subprocess.CalledProcessError, FileNotFoundError):
            parser.exit(1, "this clone has no 'origin' remote; pass --remote https://github.com/OWNER/REPO\n")
    try:
        print(binder_url(remote, args.ref, args.notebook))
    except ValueError as error:
        parser.exit(1, f"{error}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
