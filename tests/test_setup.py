"""seed_everything and setup_notebook: the first call of every lesson."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import reformer_lab
from reformer_lab.lessons import setup_notebook


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_seed_everything_repeats_every_stream_and_returns_a_seeded_generator() -> None:
    draws = []
    for _ in range(2):
        generator = reformer_lab.seed_everything(3)
        draws.append((torch.rand(3).tolist(), np.random.rand(3).tolist(), torch.rand(3, generator=generator).tolist()))
    assert draws[0] == draws[1]
    reformer_lab.seed_everything(4)
    assert torch.rand(3).tolist() != draws[0][0]


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_seed_everything_rejects_bad_seeds(seed) -> None:
    with pytest.raises(ValueError, match=r"seed must be an int >= 0, got "):
        reformer_lab.seed_everything(seed)


@pytest.mark.usefixtures("restore_threads")
def test_setup_notebook_threads_default_and_override(capsys) -> None:
    setup_notebook(0)
    assert torch.get_num_threads() == min(2, os.cpu_count() or 1)
    printed = capsys.readouterr().out
    assert "reformer_lab" in printed
    assert f"{min(2, os.cpu_count() or 1)} CPU thread" in printed
    assert ("CUDA" in printed) and (("CPU only" in printed) != torch.cuda.is_available())
    setup_notebook(0, threads=1, show_versions=False)
    assert torch.get_num_threads() == 1
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("threads", [0, -2, 1.0, True])
@pytest.mark.usefixtures("restore_threads")
def test_setup_notebook_rejects_bad_thread_counts(threads) -> None:
    with pytest.raises(ValueError, match=r"threads must be an int >= 1, got "):
        setup_notebook(0, threads=threads, show_versions=False)
