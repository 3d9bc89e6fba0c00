"""The three dependency lists (pyproject, environment.yml, binder/environment.yml) and the lock agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements(*extras: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + [r for extra in extras for r in project["optional-dependencies"][extra]]


def _conda_pip_requirements(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(conda packages, pip requirements, pip option lines such as --extra-index-url)."""
    env = yaml.safe_load(path.read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return conda, [r for r in pip if not r.startswith("-")], [r for r in pip if r.startswith("-")]


def _normalise(specs: list[str]) -> dict[str, str]:
    """name → specifier, with a local version label (2.13.0+cpu) compared as its public version."""
    reqs = [Requirement(s) for s in specs]
    return {re.sub(r"[-_.]+", "-", r.name).lower(): re.sub(r"\+\w+$", "", str(r.specifier)) for r in reqs}


@pytest.mark.parametrize(
    ("path", "extras"), [("environment.yml", ("lab", "test")), ("binder/environment.yml", ("lab",))]
)
def test_conda_environment_matches_pyproject(path: str, extras: tuple[str, ...]) -> None:
    conda, pip, _ = _conda_pip_requirements(ROOT / path)
    assert "python=3.11" in conda, f"{path} must pin python=3.11 like pyproject's requires-python"
    assert _normalise(pip) == _normalise(_pyproject_requirements(*extras)), (
        f"{path} and pyproject.toml (dependencies + {extras}) list different packages or ranges"
    )


def test_binder_installs_the_cpu_build_of_torch_and_no_test_tooling() -> None:
    _, pip, options = _conda_pip_requirements(ROOT / "binder/environment.yml")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in options
    assert [r for r in pip if r.startswith("torch")] == ["torch==2.13.0+cpu"], "a plain pin would take the CUDA build"
    assert not {"playwright", "pytest", "nbval"} & set(_normalise(pip))


def test_make_installs_the_cpu_build_of_torch_by_default_and_never_hangs_on_its_index() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH ?= cpu" in makefile and "TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu" in makefile
    assert '--index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)"' in makefile
    assert "timeout=3" in makefile, "the CPU index is probed with a short timeout before pip is pointed at it"


def test_lock_pins_cpu_torch_and_satisfies_ranges() -> None:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    assert pins["torch"] == "2.13.0", "torch must stay 2.13.0: newer releases pull a multi-GB CUDA build here"
    assert not any(name.startswith(("nvidia-", "triton")) for name in pins), "the lock must hold no CUDA packages"
    for name, spec in _normalise(_pyproject_requirements()).items():
        assert name in pins, f"requirements.lock has no pin for {name}"
        assert Requirement(f"{name}{spec}").specifier.contains(pins[name]), f"{name}=={pins[name]} violates {spec}"


def test_postbuild_is_strict_and_installs_without_deps() -> None:
    text = (ROOT / "binder" / "postBuild").read_text()
    assert "set -euo pipefail" in text
    assert "pip install --no-deps -e ." in text
    assert "import reformer_lab" in text
