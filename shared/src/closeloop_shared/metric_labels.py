"""Bounded label values for metrics built from customer-supplied fields.

A touchpoint or a declared language comes from the client, so using it as a label
as-is would let one client create unbounded series. :class:`BoundedLabel` keeps
the first ``limit`` distinct values (or only an operator's allow-list, from an
environment variable) and folds everything else into ``other``.
"""

from __future__ import annotations

import os
import re
import threading

OTHER = "other"
NONE = "none"
_LANGUAGE = re.compile(r"[a-z]{2,3}")


class BoundedLabel:
    """Maps values to themselves while fewer than ``limit`` distinct ones were seen."""

    def __init__(self, limit: int = 50, allowed: frozenset[str] | None = None) -> None:
        self._limit = limit
        self._allowed = allowed
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, variable: str, limit: int = 50) -> BoundedLabel:
        """``variable`` may list the allowed values, comma-separated; unset: first ``limit``."""
        raw = os.environ.get(variable, "").strip()
        if not raw:
            return cls(limit)
        return cls(limit, frozenset(v.strip() for v in raw.split(",") if v.strip()))

    def __call__(self, value: str | None) -> str:
        if value is None or value == "":
            return NONE
        if self._allowed is not None:
            return value if value in self._allowed else OTHER
        if value in self._seen:
            return value
        with self._lock:
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
        return OTHER


def language_label(tag: str | None) -> str:
    """The primary subtag of a language tag (``"en-US"`` → ``"en"``), ``und`` if not one."""
    if not tag:
        return "und"
    primary = tag.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if _LANGUAGE.fullmatch(primary) else "und"


# Touchpoints are free-form names (``checkout``, ``billing``): set
# CLOSELOOP_METRICS_TOUCHPOINTS=checkout,billing,... to choose which get their own series.
TOUCHPOINTS = BoundedLabel.from_env("CLOSELOOP_METRICS_TOUCHPOINTS", limit=50)
# ISO 639 has hundreds of codes; 40 distinct ones cover any real deployment.
LANGUAGES = BoundedLabel(limit=40)
