"""Signals that stop a run as Ctrl-C does.

SIGTERM (``kill``, a batch system's end of job) and SIGHUP (the terminal closed) raise
KeyboardInterrupt in the main thread, so every Ctrl-C path serves them too: completed cases
and epochs saved, the status "interrupted", temporary files removed. The signal is remembered:
the result file names it and the exit status is 128 + its number (143 for SIGTERM, 129 for
SIGHUP; 130 for Ctrl-C, as before).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading

#: The signals handled like Ctrl-C (those this system has).
SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))

_received: int | None = None  # the last signal handled here; None: Ctrl-C or nothing
_count = 0  # signals handled here so far (Ctrl-C too, inside native())


def _raise(signum, frame):
    global _received, _count
    _count += 1
    if signum != signal.SIGINT:
        _received = signum
    raise KeyboardInterrupt


def reset() -> None:
    """Forget a signal received earlier (a new command starts)."""
    global _received
    _received = None


def install(forget: bool = True) -> dict:
    """Handle :data:`SIGNALS` like Ctrl-C; the previous handlers, for :func:`restore`.
    ``forget``: a signal received earlier is forgotten. Outside the main thread: nothing."""
    if forget:
        reset()
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, _raise) for s in SIGNALS}


def restore(previous: dict) -> None:
    """The handlers :func:`install` replaced, back."""
    for s, handler in previous.items():
        signal.signal(s, handler)


def received() -> str | None:
    """The name of the signal that interrupted (``"SIGTERM"``), None for Ctrl-C."""
    return None if _received is None else signal.Signals(_received).name


def signum() -> int:
    """The number of the signal that interrupted (SIGINT for Ctrl-C)."""
    return _received if _received is not None else int(signal.SIGINT)


def exit_status() -> int:
    """The exit status of an interrupted command: 128 + the signal's number."""
    return 128 + signum()


def by() -> str:
    """" by SIGTERM" after a signal, "" after Ctrl-C: for a message."""
    name = received()
    return f" by {name}" if name else ""


@contextlib.contextmanager
def deferred():
    """Ctrl-C and :data:`SIGNALS` ignored for a moment (a last write not to be cut short);
    in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, *SIGNALS)}
    try:
        yield
    finally:
        restore(previous)


@contextlib.contextmanager
def native(returns: bool = False):
    """A stretch of native code that calls back into Python: Numba compiling, through LLVM's
    callbacks. A KeyboardInterrupt raised inside such a callback is swallowed there (ctypes
    prints "Exception ignored ...") and the compile goes on to fail with an unrelated error
    ("no compiled object yet"), or to finish. Here Ctrl-C and :data:`SIGNALS` are counted and
    the stretch ends in KeyboardInterrupt after one, whatever it raised; the swallowed one is
    not printed. Only signals that raise KeyboardInterrupt already are counted (Ctrl-C as
    Python's default handles it, :data:`SIGNALS` after :func:`install`); in the main thread
    only (elsewhere: nothing changes).

    ``returns``: a stretch that ends without an exception has handled what it got (a command
    that caught the Ctrl-C and saved its work), and ends as it does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raising = (signal.default_int_handler, _raise)
    previous = {s: signal.signal(s, _raise) for s in (signal.SIGINT, *SIGNALS)
                if signal.getsignal(s) in raising}
    hook, before = sys.unraisablehook, _count

    def quiet(unraisable):
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            hook(unraisable)

    sys.unraisablehook = quiet
    try:
        yield
    except BaseException:
        if _count != before:
            raise KeyboardInterrupt from None
        raise
    finally:
        sys.unraisablehook = hook
        restore(previous)
    if _count != before and not returns:
        raise KeyboardInterrupt
