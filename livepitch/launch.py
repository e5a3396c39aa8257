"""The ``livepitch`` command's entry point, kept free of imports: a Ctrl-C while the program
loads (about 30 ms of imports before ``livepitch.cli.main`` handles it) ends it with one line
and exit code 130, not a Python traceback."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130
"""As ``livepitch.cli.EXIT_INTERRUPTED`` (the shell's code for a process ended by SIGINT)."""


def main() -> int:
    """Load the command line interface and run it; returns the exit code."""
    try:
        from livepitch.cli import main as cli_main
    except KeyboardInterrupt:
        print("livepitch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return cli_main()
