"""The one finding type shared by every checker.

A finding is ``{code, severity, path, message, hint}`` plus ``line``, ``column`` and ``field`` where
they apply. Codes are stable; each one is documented in ``docs/codes.md``.
"""
from __future__ import annotations

from typing import Any

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES = (ERROR, WARNING, INFO)


class Finding:
    """One checker result. A plain slotted class: ``dataclasses`` costs mda-info's start-up."""

    __slots__ = ("code", "severity", "path", "message", "hint", "line", "column", "field")

    def __init__(
        self,
        code: str,
        severity: str,
        path: str,
        message: str,
        hint: str = "",
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        if severity not in SEVERITIES:
            raise ValueError(f"unknown severity {severity!r}")
        self.code = code
        self.severity = severity
        self.path = path
        self.message = message
        self.hint = hint
        self.line = line
        self.column = column
        self.field = field

    def __repr__(self) -> str:
        return f"Finding({self.code!r}, {self.severity!r}, {self.path!r}, {self.message!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Finding) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity,
            "path": self.path,
            "message": self.message,
            "hint": self.hint,
        }
        for key in ("line", "column", "field"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def has_errors(findings: list[Finding]) -> bool:
    """True when any finding is an error."""
    return any(f.is_error for f in findings)
