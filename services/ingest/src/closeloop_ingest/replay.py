"""A bounded, in-memory set of recently seen tokens: the replay defence for signed timestamps.

A Mailgun signature stays valid while its timestamp is within the tolerance
of now, so a captured webhook could be replayed inside that window; remembering
each token until its window closes refuses the replay. The set is per process
and bounded: under a flood the oldest tokens are forgotten first (a replay of
those would then pass the check but still map to the same feedback id, so
consumers deduplicate it).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class SeenTokens:
    def __init__(self, max_entries: int, clock: Callable[[], float] = time.time) -> None:
        self._max_entries = max_entries
        self._clock = clock
        # token -> wall-clock second after which it can no longer be replayed.
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def claim(self, token: str, expires_at: float) -> bool:
        """Remember ``token`` until ``expires_at``; False if it is already remembered (a replay)."""
        self._forget_expired()
        if token in self._expiry:
            return False
        self._expiry[token] = expires_at
        while len(self._expiry) > self._max_entries:
            self._expiry.popitem(last=False)
        return True

    def release(self, token: str) -> None:
        """Forget ``token``: its webhook was not accepted, so the provider's retry must pass."""
        self._expiry.pop(token, None)

    def _forget_expired(self) -> None:
        # Insertion order is close to expiry order (timestamps are near "now"),
        # so expired tokens sit at the front; stop at the first live one.
        now = self._clock()
        while self._expiry:
            token, expires_at = next(iter(self._expiry.items()))
            if expires_at > now:
                break
            del self._expiry[token]
