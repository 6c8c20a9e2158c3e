"""Fixtures of the hub tests: an asyncio loop in a thread, stopped (with everything on it) at the end."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.hub.children import LoopThread


@pytest.fixture
def lt() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()
