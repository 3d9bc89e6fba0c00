"""Module-level callables for the subprocess tests of :func:`reformer_lab.measure.memory.peak_rss_bytes`.

A spawned child imports this module by name, so these must stay at module level.
"""

from __future__ import annotations

import numpy as np


def allocate_and_touch(n_bytes: int) -> int:
    """Allocate ``n_bytes`` of float64 and write every page (``np.ones``), so all of it becomes resident."""
    array = np.ones(n_bytes // 8, dtype=np.float64)
    return int(array[-1])


def raise_value_error(message: str) -> None:
    raise ValueError(message)
