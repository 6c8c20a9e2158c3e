"""Exceptions that carry the exit code of the shared command contract."""
from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1  # input checked and has errors, or some record failed
EXIT_USAGE = 2
EXIT_RUNTIME = 3  # I/O, network, peer misbehaving


class KbError(Exception):
    """An expected failure: reported as one line on stderr, never as a traceback."""

    exit_code = EXIT_RUNTIME


class UsageError(KbError):
    exit_code = EXIT_USAGE


class RuntimeFailure(KbError):
    exit_code = EXIT_RUNTIME
