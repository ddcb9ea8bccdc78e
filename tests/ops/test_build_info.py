"""closeloop_build_info names the running version whether a service calls itself x or closeloop-x."""

from __future__ import annotations

from importlib import metadata

from closeloop_shared.http.observability import _version


def test_version_is_found_with_or_without_the_prefix() -> None:
    expected = metadata.version("closeloop-gateway")
    assert _version("gateway") == expected
    assert _version("closeloop-gateway") == expected
    assert _version("no-such-service") == "unknown"
