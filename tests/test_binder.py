from __future__ import annotations

import pytest

from reformer_lab.lessons.binder import binder_url


@pytest.mark.parametrize(
    "remote",
    [
        "https://github.com/acme/reformer-lab",
        "https://github.com/acme/reformer-lab.git",
        "git@github.com:acme/reformer-lab.git",
    ],
)
def test_binder_url_from_github_remotes(remote: str) -> None:
    assert binder_url(remote) == "https://mybinder.org/v2/gh/acme/reformer-lab/main?urlpath=lab%2Ftree%2Fnotebooks"


def test_binder_url_opens_one_notebook_at_a_ref() -> None:
    url = binder_url("https://github.com/acme/reformer-lab", "v1", "notebooks/00_the_memory_problem.ipynb")
    assert url.endswith("/acme/reformer-lab/v1?urlpath=lab%2Ftree%2Fnotebooks%2F00_the_memory_problem.ipynb")


def test_binder_url_rejects_non_github_remote() -> None:
    with pytest.raises(ValueError, match="GitHub URL"):
        binder_url("/srv/git/reformer-lab")


def test_binder_module_runs_as_a_plain_script_with_the_standard_library_only() -> None:
    import ast
    from pathlib import Path

    import reformer_lab.lessons.binder as module

    tree = ast.parse(Path(module.__file__).read_text())
    nodes = list(ast.walk(tree))
    imported = {alias.name.split(".")[0] for node in nodes if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in nodes if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "argparse", "re", "subprocess", "urllib", "sys", "pathlib"}, imported
