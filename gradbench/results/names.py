"""Result file names, claimed exclusively.

Two runs (or trainings) started in the same second with the same label and folder would choose
the same name, ``LABEL-PROFILE-YYYYmmdd-HHMMSS.json``, and write each other's cases into one
file. So a command claims its name before it writes anything: it creates the hidden lock
``.NAME.lock`` beside it with ``O_CREAT | O_EXCL`` (atomic: exactly one creator succeeds, on
every local file system), taking the first of ``STEM.json``, ``STEM-2.json``, ``STEM-3.json``
... whose lock it could create and whose file does not exist yet (a finished run's). The lock
holds the claimer's host and process id, is hidden (readers skip hidden files, so it is never
taken for a result) and is removed when the command ends; one left by a killed process only
makes the next run take the next suffix.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

#: Suffixes tried before giving up (a folder full of stale locks is a bug to report).
MAX_TRIES = 1000


def lock_of(path: Path) -> Path:
    """The hidden lock that claims ``path``."""
    return path.with_name(f".{path.name}.lock")


def claim(folder, stem: str, suffix: str = ".json") -> tuple[Path, Path]:
    """The first free name of ``STEM[-n]SUFFIX`` in ``folder`` (which exists), claimed:
    (the path to write, its lock, to :func:`release` when the command ends)."""
    folder = Path(folder)
    for n in range(1, MAX_TRIES + 1):
        path = folder / f"{stem}{'' if n == 1 else f'-{n}'}{suffix}"
        lock = lock_of(path)
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue  # another command holds it
        if path.exists() or path.is_symlink():  # a finished command's file (or a dangling
            # link: never written through): not ours to write
            os.close(fd)
            lock.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"host": socket.gethostname(), "pid": os.getpid()}, f)
        return path, lock
    raise OSError(f"{folder}: no free name for {stem}{suffix} after {MAX_TRIES} tries; "
                  f"remove the stale .{stem}*.lock files there")


def release(*locks: Path) -> None:
    """Remove the locks given (those already gone are ignored)."""
    for lock in locks:
        Path(lock).unlink(missing_ok=True)
