"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors run fastest on one thread: a second one only waits, most of all on a shared 2-core CPU.

    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``; the previous thread count
    is restored after the module.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
