"""Failures of the client, each with the exit code of the shared command contract."""
from __future__ import annotations

from kbtools.errors import EXIT_FINDINGS, EXIT_RUNTIME, KbError, UsageError


class ClientError(KbError):
    """A download or resolution failed because of the network or a peer (exit 3)."""

    exit_code = EXIT_RUNTIME


class BadUrl(ClientError):
    """The URL given is not one the client understands (the input has an error: exit 1)."""

    exit_code = EXIT_FINDINGS


class NotFound(ClientError):
    """The hub answered: no such node, file or directory (exit 1)."""

    exit_code = EXIT_FINDINGS


class PeerError(ClientError):
    """A hub or share is unreachable, answered something unusable, or served wrong bytes."""


class VerificationError(PeerError):
    """The bytes received do not have the expected SHA-1 or size."""


class BadHubUrl(UsageError, ClientError):
    """The hub URL given (``--hub``, ``KBUCKET_URL``) is not an http(s) URL: a usage error (exit 2)."""


def failure_code(exc: KbError) -> str | None:
    """The stable ``code`` of a record that failed with ``exc`` (kb-url, kb-get), when it has one."""
    if isinstance(exc, BadUrl):
        return "bad-url"
    if isinstance(exc, NotFound):
        return "not-found"
    if isinstance(exc, VerificationError):
        return "wrong-content"
    if isinstance(exc, PeerError):
        return "untrusted-certificate" if "TLS certificate" in str(exc) else "unreachable"
    return None
