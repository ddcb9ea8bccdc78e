"""The clock: injected wherever time matters, so tests can move it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from closeloop_shared.events import utcnow

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return utcnow()
