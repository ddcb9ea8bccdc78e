"""Unit tests: settings from the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from closeloop_gateway.config import GatewaySettings


def test_defaults() -> None:
    settings = GatewaySettings()
    assert settings.port == 8000
    assert settings.ingest_url == "http://127.0.0.1:8001"
    assert settings.alerts_url == "http://127.0.0.1:8003"
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.max_large_body_bytes == 10 * 1024 * 1024


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "clk_" + "k" * 43
    monkeypatch.setenv("CLOSELOOP_BOOTSTRAP_ADMIN_KEY", key)
    monkeypatch.setenv("CLOSELOOP_GATEWAY_INGEST_URL", "http://ingest:8001/")
    monkeypatch.setenv("CLOSELOOP_GATEWAY_KEY_CACHE_TTL_S", "0")
    monkeypatch.setenv("CLOSELOOP_GATEWAY_PORT", "9000")
    settings = GatewaySettings()
    assert settings.bootstrap_admin_key is not None
    assert settings.bootstrap_admin_key.get_secret_value() == key
    assert key not in repr(settings)
    assert settings.ingest_url == "http://ingest:8001"
    assert settings.key_cache_ttl_s == 0
    assert settings.port == 9000


def test_short_bootstrap_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOSELOOP_BOOTSTRAP_ADMIN_KEY", "admin")
    with pytest.raises(ValidationError, match="at least 32"):
        GatewaySettings()
