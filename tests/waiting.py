"""The one polling helper of the tests: wait until a condition holds, or fail after a timeout."""
from __future__ import annotations

import time
from typing import Any, Callable


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "", *,
             ignore: tuple[type[BaseException], ...] = (), interval: float = 0.05) -> Any:
    """Call ``check`` until it returns something true, and return that.

    Exceptions of the types in ``ignore`` count as "not yet" (a server still starting).
    Raises ``TimeoutError`` (naming ``what``) when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except ignore:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what or "condition never held")
        time.sleep(interval)
