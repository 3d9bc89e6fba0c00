"""reformer_lab: the Reformer (Kitaev, Kaiser, Levskaya, ICLR 2020) rebuilt piece by piece.

Each module holds one part of the paper; the lessons in ``notebooks/`` import from here.
"""

from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch

__version__ = "0.1.0"

__all__ = ["__version__", "seed_everything", "setup_notebook"]


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch, and return a fresh ``torch.Generator`` seeded the same way.

    Library functions that draw random numbers take a ``generator`` (or ``seed``) argument and fall
    back to torch's global generator only when given none; seeding it here makes that fallback, and a
    reader's own experiments, repeatable too.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def setup_notebook(seed: int = 0, *, threads: int | None = None, show_versions: bool = True) -> torch.Generator:
    """First call of every lesson: inline figures, seeds, stable printing, CPU threads, versions.

    ``threads`` sets torch's CPU threads; the default is two (or the CPUs there are, if fewer), the
    budget the lessons are written for. Lessons whose tensors are tiny pass ``threads=1``: there a
    second thread only adds waiting, most of all on a CPU shared with other work.
    Returns the seeded generator from :func:`seed_everything`.
    """
    if threads is None:
        threads = min(2, os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int (or None for the default), got {threads!r}")
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # plain Python: nothing to configure
        shell = None
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")
        shell.run_line_magic("config", "InlineBackend.figure_formats = ['png']")
    import matplotlib

    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "figure.figsize": (7.0, 3.6)})
    torch.set_printoptions(precision=4, sci_mode=False)
    np.set_printoptions(precision=4, suppress=True)
    torch.set_num_threads(threads)
    generator = seed_everything(seed)
    if show_versions:
        print(
            f"reformer_lab {__version__} | torch {torch.__version__} | numpy {np.__version__} | "
            f"matplotlib {matplotlib.__version__} | python {platform.python_version()}"
        )
    return generator
