"""The ``gradbench`` command. Thin: one module per verb parses, calls the library, prints.

Exit status (every verb):
  0    success
  1    a finding: a failed gradient check, a regression (compare), a slower method (ab),
       a slowdown (history)
  2    bad usage or bad input: one line on stderr, nothing written
  3    the benchmark suite itself failed: a case raised an error (a bug in gradbench or a
       broken installation, not something you typed), or the report of a run could not be
       built, or its result file could not be written (a full disk: the run stops, the
       file keeps its last good write); the completed cases are saved; ab: a worker
       died or hung (which side and case is said; what completed is saved)
  130  interrupted (Ctrl-C); what completed is saved; 143 and 129: the same, by SIGTERM
       and SIGHUP
"""

from __future__ import annotations

import os
import sys

from .. import __version__, interrupt
from . import ab, check, compare, history, methods, report, run, train
from .common import EXIT_OK, EXIT_USAGE, Parser, UsageError, load_plugins

VERBS = (run, report, compare, ab, history, check, train, methods)
DESCRIPTION = ("What a gradient costs, by finite differences and by backpropagation: run the "
               "benchmark suite, build its report, compare runs and machines, gate a change "
               "(ab), follow trends, check one network's gradient, train a network with any "
               "gradient method.")


def build_parser() -> Parser:
    """The parser of the ``gradbench`` command: one subcommand per verb (``VERBS``), each
    verb's options added by its module's ``add_parser``."""
    parser = Parser(prog="gradbench", description=DESCRIPTION,
                    epilog=__doc__.split("\n\n", 1)[1], formatter_class=_raw())
    parser.add_argument("--version", action="version", version=f"gradbench {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=Parser, metavar="COMMAND")
    for verb in VERBS:
        verb.add_parser(sub)
    return parser


def _raw():
    import argparse

    return argparse.RawDescriptionHelpFormatter


def main(argv: list[str] | None = None) -> int:
    """Run ``gradbench`` with ``argv`` (default: the command line's arguments); returns the
    exit status."""
    # SIGTERM and SIGHUP stop every verb as Ctrl-C does (one line, exit 128 + the signal);
    # a signal an earlier command in this process got is not this one's
    previous = interrupt.install()
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("gradbench: missing command (see gradbench --help)")
        load_plugins(getattr(args, "plugin", []), f"gradbench {args.command}")
        # a Ctrl-C that lands in a Numba compile's callback is swallowed there (see native());
        # a verb that returns has handled the Ctrl-C it got
        with interrupt.native(returns=True):
            return args.func(args)
    except UsageError as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"gradbench: interrupted{interrupt.by()}", file=sys.stderr)
        return interrupt.exit_status()
    except BrokenPipeError:  # output piped into head, say: stop quietly
        # point stdout at devnull so the interpreter's final flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        interrupt.restore(previous)


__all__ = ["main", "build_parser"]
