"""What every verb shares: exit statuses, the one-line usage error, option checks."""

from __future__ import annotations

import argparse
import math
import pathlib
import re

from ..config import CLASSIC_SIZES

EXIT_OK, EXIT_FINDING, EXIT_USAGE, EXIT_CRASH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_STATUSES = """exit status:
  0    success
  1    a finding (a failed check, a regression, a slowdown in history)
  2    bad usage or bad input: one line on stderr, nothing written
  3    the suite itself failed (a case raised an error), the report of a run could not
       be built, or its result file could not be written (a full disk: the run stops,
       the file keeps its last good write); completed cases are saved
  130  interrupted (Ctrl-C); what completed is saved; 143 and 129: the same, by SIGTERM
       and SIGHUP"""

#: Machine labels name result files and appear in reports: a plain, short name.
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
#: The classic network's sizes as the command line writes them (784,50,10).
CLASSIC_ARG = ",".join(map(str, CLASSIC_SIZES))
#: Longest budget accepted: 30 days.
MAX_BUDGET = 30 * 24 * 3600.0


class UsageError(Exception):
    """Bad usage or bad input: one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message} (see --help)")


def add_verb(sub, name: str, help: str, description: str):
    """A verb's parser, its help ending with the exit statuses."""
    import textwrap

    return sub.add_parser(name, help=help, description=textwrap.fill(description, 79),
                          epilog=EXIT_STATUSES,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_plugin_option(p) -> None:
    """``--plugin MODULE`` (repeatable): a method plugin that is not installed as a package."""
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="load the method plugin MODULE (a module importable from here, or a "
                        ".py file) beside the installed ones (entry points "
                        "gradbench.methods); repeatable")


def load_plugins(specs, prog: str) -> None:
    """Load the ``--plugin`` modules into the registry (and every process the verb starts);
    a UsageError with the plugin's one line when one cannot be used."""
    if not specs:
        return
    from .. import methods

    for plugin in methods.use_plugins(specs):
        if plugin.error is not None:
            raise UsageError(f"{prog}: {plugin.error}")


def shown(text: str, limit: int = 40) -> str:
    """A user's string for an error message: quoted, escaped (undecodable bytes too) and
    cut to ``limit`` characters."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    return ascii(cut)


def check_label(label: str, prog: str) -> str:
    if not LABEL.fullmatch(label):
        raise UsageError(f"{prog}: --label {shown(label)} must be 1 to 64 ASCII letters "
                         "(A-Z, a-z), digits, '.', '_', '+' or '-', starting with a letter or "
                         "digit (no path separators, spaces, accented letters or other "
                         "characters)")
    return label


def default_label() -> str:
    """The host name, made a valid label."""
    import socket

    name = re.sub(r"[^A-Za-z0-9._+-]", "-", socket.gethostname()).lstrip("._+-")[:64]
    return name or "machine"


def check_threads(threads: int | None, prog: str) -> int | None:
    """``--threads`` checked by the one rule (:func:`gradbench.blas.check_threads`), its
    error as the verb's one line; None stays None (the verb's default)."""
    if threads is None:
        return None
    from ..blas import check_threads as check

    try:
        return check(threads)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{prog}: --{exc}") from None


def check_budget(budget: float | None, prog: str) -> float | None:
    return check_seconds(budget, "--budget", prog)


def check_seconds(seconds: float | None, option: str, prog: str) -> float | None:
    """A number of seconds an option gives: positive, at most 30 days (None stays None)."""
    if seconds is None:
        return None
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_BUDGET):
        raise UsageError(f"{prog}: {option} must be a positive number of seconds up to "
                         f"{MAX_BUDGET:.0f} (30 days), got {seconds!r}")
    return seconds


def writable_folder(folder: str, prog: str) -> pathlib.Path:
    """The folder as a Path, if it is one that can be written or can be created; a
    UsageError if not (a dangling symbolic link on the way among the reasons: making the
    folder would fail only after the work). Nothing is created: bad options leave no trace."""
    import os

    path = pathlib.Path(folder)
    for p in [path, *path.parents]:
        if p.is_symlink() and not p.exists():
            raise UsageError(f"{prog}: cannot write to {path}: {p} is a symbolic link to "
                             f"{shown(os.readlink(p), 80)}, which does not exist: remove the "
                             "link or create what it points to")
    existing = next((p for p in [path, *path.parents] if p.exists()), pathlib.Path("."))
    if not existing.is_dir():
        raise UsageError(f"{prog}: cannot write to {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{prog}: cannot write to {path}: {existing} is not writable")
    return path


def created_folders(path: pathlib.Path) -> pathlib.Path | None:
    """The topmost of ``path`` and its parents that does not exist yet (what making ``path``
    would create, to be removed if the command then fails), or None."""
    missing = [p for p in [path, *path.parents] if not p.exists()]
    return missing[-1] if missing else None


def int_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated whole numbers such as {CLASSIC_ARG}, got {shown(text)}"
        ) from None
