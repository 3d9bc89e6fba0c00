"""Result files written so that nothing is lost or left half-written: atomic writes, output checked up front.

Training checkpoints (:mod:`reformer_lab.train`) and every result file of the experiment runner and the
benchmarks go through :func:`write_atomic`: the data is written to a temporary file beside the target
(``.<name>.<pid>-<random>.tmp``), flushed and fsynced, then renamed over the target with :func:`os.replace`,
and the directory is fsynced. A reader (or a rerun) therefore sees the old file or the new one, never a
truncated one, even when the process is killed mid-write; a killed write may leave its temporary file,
which :func:`remove_stale_temps` clears.

:func:`check_writable` is called before any work starts: a run that cannot write its result fails at
once, not after hours of training or a whole benchmark.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "check_writable",
    "remove_stale_temps",
    "temp_path",
    "write_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
]


def temp_path(path: str | Path) -> Path:
    """A fresh temporary name beside ``path``: ``.<name>.<pid>-<random>.tmp`` (same directory, same file system)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temporary files that killed writes of ``path`` left behind (call it when no write of
    ``path`` is running, e.g. when a run starts); returns what it removed."""
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            stale.unlink()
        except OSError:
            continue
        removed.append(stale)
    return removed


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # Windows cannot open a directory; the rename is atomic there all the same
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then flush, fsync, rename it over ``path`` and
    fsync the directory; on any error the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "xb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    _fsync_directory(path.parent)
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda file: file.write(data))


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 1) -> Path:
    """``json.dumps(data)`` written to ``path`` atomically; the data is encoded before anything is written."""
    return write_bytes_atomic(path, (json.dumps(data, indent=indent) + "\n").encode())


def check_writable(path: str | Path) -> Path:
    """Make sure ``path`` can be written: create its directory and write (and remove) a probe file there.

    Raises ``OSError`` with a message naming the path when it is a directory or its directory cannot be
    created or written.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory (give a file name)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = temp_path(path)
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as error:
        raise OSError(f"cannot write {path}: its directory {path.parent} cannot be created or written "
                      f"({error.strerror or error})") from error
    return path
