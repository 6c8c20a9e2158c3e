"""The one finding type shared by every checker.

A finding is ``{code, severity, path, message, hint}`` plus ``line``, ``column`` and ``field`` where
they apply. Codes are stable; each one is documented in ``docs/codes.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES = (ERROR, WARNING, INFO)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    path: str
    message: str
    hint: str = ""
    line: int | None = None
    column: int | None = None
    field: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

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
