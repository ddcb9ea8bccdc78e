"""Free-text redaction: what counts as personal data, what does not, and the log processor."""

from __future__ import annotations

import logging
from datetime import date

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from closeloop_shared.logging import configure_logging, get_logger
from closeloop_shared.redaction import (
    DEFAULT_REDACTOR,
    Redactor,
    cn_id_valid,
    contains_pii,
    luhn_valid,
    redact_text,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at dana.reyes@example.com now", "mail me at [redacted email] now"),
        ("王芳 wang.fang@example.cn", "王芳 [redacted email]"),
        ("电话13800138000谢谢", "电话[redacted phone]谢谢"),
        ("+86 138 0013 8000", "[redacted phone]"),
        ("0086-138-0013-8000", "[redacted phone]"),
        ("+8613912345678", "[redacted phone]"),
        ("call +1 415-555-0123 today", "call [redacted phone] today"),
        ("call (415) 555-0123", "call [redacted phone]"),
        ("London +44 20 7946 0958", "London [redacted phone]"),
        ("card 4111 1111 1111 1111 ok", "card [redacted card] ok"),
        ("card 5500-0000-0000-0004", "card [redacted card]"),
        ("amex 378282246310005", "amex [redacted card]"),
        ("身份证 11010519491231002X", "身份证 [redacted cn_id]"),
        # An id beside a phone number neither hides the number nor gets masked itself.
        (
            "alert 3f2a9c10-1234-4567-8901-123456789012 call +1 415-555-0123",
            "alert 3f2a9c10-1234-4567-8901-123456789012 call [redacted phone]",
        ),
        ("tel: 415.555.0123", "tel: [redacted phone]"),
    ],
)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "feedback_id=123e4567-e89b-12d3-a456-426614174000",
        "12345678-1234-4567-8901-123456789012",  # all-digit groups are still an id
        "2026-11-22T10:00:00Z",
        "took 0.0123456789 s",
        "offset 123456789012",
        "msg_0b9f6f5759a44b078a526f8f0c6f2d11",
        "listening on 127.0.0.1:54321 pid 1234567",
        "version 3.3.2 build 20240101",
        "4111-1111-1111-1112",  # fails the Luhn check
        "110105194912310021",  # fails the ID checksum
        "The app keeps crashing at checkout",
        "结账时应用一直崩溃",
    ],
)
def test_ids_times_and_numbers_that_are_not_personal_data_stay(text: str) -> None:
    assert redact_text(text) == text
    assert not contains_pii(text)


def test_known_values_are_masked_too() -> None:
    text = "Dana Reyes called about order 7; Dana Reyes is upset"
    masked = redact_text(text, extra=["Dana Reyes", ""])
    assert "Dana" not in masked
    assert masked.count("[redacted personal data]") == 2


def test_national_formats_follow_the_configured_regions() -> None:
    german = "Ruf 030 901820 an"
    assert Redactor(phone_regions=()).redact_text(german) == german
    assert Redactor(phone_regions=("DE",)).redact_text(german) == "Ruf [redacted phone] an"


def test_structures_are_walked_and_numbers_checked() -> None:
    value = {"a": ["x 13800138000", {"b": "y@example.org"}], "n": 13800138000, "ok": 42}
    assert DEFAULT_REDACTOR.redact(value) == {
        "a": ["x [redacted phone]", {"b": "[redacted email]"}],
        "n": "[redacted phone]",
        "ok": 42,
    }


def _with_luhn_digit(body: str) -> str:
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("one check digit always fits")


@given(st.from_regex(r"4[0-9]{14}", fullmatch=True))
def test_every_luhn_valid_card_number_is_masked(body: str) -> None:
    number = _with_luhn_digit(body)
    grouped = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    assert redact_text(f"paid with {grouped}.") == "paid with [redacted card]."


@given(
    st.integers(110000, 659999),
    st.dates(min_value=date(1800, 1, 1), max_value=date(2099, 12, 31)),
    st.integers(0, 999),
)
def test_every_valid_chinese_id_number_is_masked(region: int, born: date, sequence: int) -> None:
    body = f"{region}{born:%Y%m%d}{sequence:03d}"
    check = next(c for c in "0123456789X" if cn_id_valid(body + c))
    assert redact_text(f"证件号{body}{check}。") == "证件号[redacted cn_id]。"


def test_log_lines_never_carry_personal_data(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    log = get_logger("redaction-test")
    log.info("customer_contacted", detail="wrote from dana@example.com", count=3)
    logging.getLogger("some.library").warning("retrying for +86 139 1234 5678")
    try:
        raise ValueError("row (4111 1111 1111 1111) refused")
    except ValueError:
        log.exception("insert_failed")
    lines = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_event = {line["event"]: line for line in lines}
    assert by_event["customer_contacted"]["detail"] == "wrote from [redacted email]"
    assert by_event["customer_contacted"]["count"] == 3
    assert by_event["retrying for [redacted phone]"]["logger"] == "some.library"
    exception = by_event["insert_failed"]["exception"]
    assert "[redacted card]" in exception
    assert "4111" not in exception
