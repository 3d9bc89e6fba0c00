"""A result names the commit that made it: from git here, from the environment on a copy of the tree."""

from __future__ import annotations

import pytest

from reformer_lab.measure.provenance import git_commit, git_dirty


def test_in_this_repository_the_commit_is_a_git_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REFORMER_LAB_COMMIT", raising=False)
    commit = git_commit()
    assert commit == "unknown" or (len(commit) == 40 and int(commit, 16) >= 0)
    assert git_dirty() in (True, False, None)


def test_a_named_copy_records_its_commit_and_unknown_cleanliness(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFORMER_LAB_COMMIT", "0123abcd")
    assert git_commit() == "0123abcd"
    assert git_dirty() is None


def test_outside_a_repository_both_are_unknown(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("REFORMER_LAB_COMMIT", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_commit() == "unknown"
    assert git_dirty() is None


def test_a_changed_result_file_does_not_make_the_code_dirty(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import subprocess

    monkeypatch.delenv("REFORMER_LAB_COMMIT", raising=False)
    monkeypatch.chdir(tmp_path)
    run = lambda *args: subprocess.run(["git", *args], check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    run("add", ".")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    (tmp_path / "results" / "r.json").write_text('{"a": 1}')
    assert git_dirty() is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_dirty() is True
