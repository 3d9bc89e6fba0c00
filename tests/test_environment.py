"""The three dependency lists (pyproject, environment.yml, binder/environment.yml) and the lock agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return project["dependencies"] + extras["lab"] + extras["test"]


def _conda_pip_requirements(path: Path) -> tuple[list[str], list[str]]:
    env = yaml.safe_load(path.read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return conda, pip


def _normalise(specs: list[str]) -> dict[str, str]:
    reqs = [Requirement(s) for s in specs]
    return {re.sub(r"[-_.]+", "-", r.name).lower(): str(r.specifier) for r in reqs}


@pytest.mark.parametrize("path", ["environment.yml", "binder/environment.yml"])
def test_conda_environment_matches_pyproject(path: str) -> None:
    conda, pip = _conda_pip_requirements(ROOT / path)
    assert "python=3.11" in conda, f"{path} must pin python=3.11 like pyproject's requires-python"
    assert _normalise(pip) == _normalise(_pyproject_requirements()), (
        f"{path} and pyproject.toml (dependencies + [lab] + [test]) list different packages or ranges"
    )


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
