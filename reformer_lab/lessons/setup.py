"""The first call of every lesson: inline PNG figures, seeds, stable printing, CPU threads, what runs where."""

from __future__ import annotations

import os
import platform

import matplotlib
import numpy as np
import torch

from reformer_lab import __version__, seed_everything
from reformer_lab.validation import positive_int

__all__ = ["setup_notebook"]


def _device_line(threads: int) -> str:
    if torch.cuda.is_available():
        where = f"CUDA ({torch.cuda.get_device_name(0)}) available; lessons run on the CPU unless a cell says otherwise"
    else:
        where = "CPU only (no CUDA device)"
    return f"{where} | {threads} CPU thread{'s' if threads > 1 else ''}"


def setup_notebook(seed: int = 0, *, threads: int | None = None, show_versions: bool = True) -> torch.Generator:
    """Inline PNG figures, seeds, stable printing, CPU threads; prints the versions and the device.

    ``threads`` sets torch's CPU threads; the default is two (or the CPUs there are, if fewer), the
    budget the lessons are written for. Lessons whose tensors are tiny pass ``threads=1``: there a
    second thread only adds waiting, most of all on a CPU shared with other work.
    Returns the seeded generator from :func:`reformer_lab.seed_everything`.
    """
    threads = min(2, os.cpu_count() or 1) if threads is None else positive_int("threads", threads)
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # plain Python: nothing to configure
        shell = None
    if shell is not None:
        shell.run_line_magic("matplotlib", "inline")
        shell.run_line_magic("config", "InlineBackend.figure_formats = ['png']")
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
        print(_device_line(threads))
    return generator
