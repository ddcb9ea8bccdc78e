"""Find and mask personal data in free text.

Recognises e-mail addresses, phone numbers (Chinese mobiles with or without +86, and
international numbers through Google's libphonenumber rules), payment card numbers
(13 to 19 digits that pass the Luhn check) and Chinese resident ID numbers (18
characters whose check character is right). Each is replaced by a marker naming what was
there, e.g. ``[redacted email]``, so a reader still sees that something was said.

This is plumbing without business rules: the logging setup applies it to every log line
and services apply it to whatever they send where personal data must not go.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import phonenumbers

EMAIL = "email"
PHONE = "phone"
CARD = "card"
CN_ID = "cn_id"

# Local part and domain as RFC 5322 addresses are written in practice; a Chinese
# character right before the local part ends up inside the match, which only widens
# what is masked.
_EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}", re.UNICODE)
# Region (6 digits), birth date (19xx/20xx, month, day), sequence (3), check character.
_CN_ID = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"\d{3}[0-9Xx](?![0-9A-Za-z])",
    re.ASCII,
)
_CN_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_ID_CHECK = "10X98765432"
# 13 to 19 digits, optionally grouped by single spaces or hyphens (4111 1111 1111 1111).
# Not part of a decimal number (0.0123456789012345) either.
_CARD = re.compile(r"(?<!\d)(?<!\d\.)\d(?:[ -]?\d){12,18}(?!\d|\.\d)", re.ASCII)
# Chinese mobiles: 1[3-9] and nine more digits, optionally +86 / 0086 and 3-4-4 grouping.
_CN_MOBILE = re.compile(r"(?<![\d+])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)", re.ASCII)
# Cheap pre-check: libphonenumber (about 35 µs per region and call) is only asked about
# text holding a run of at least 7 digits joined by at most a few separators, which every
# written phone number has and most log values (event names, ids, counts) do not.
_PHONE_CANDIDATE = re.compile(r"\d(?:[\s().\-/]{0,3}\d){6,}")
# Ids are the commonest log values and carry many digits: never personal data themselves.
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int


def marker(kind: str) -> str:
    return f"[redacted {kind}]"


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def cn_id_valid(number: str) -> bool:
    """GB 11643-1999: the 18th character is a checksum of the first 17 digits."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number, _CN_ID_WEIGHTS, strict=False))
    return _CN_ID_CHECK[total % 11] == number[17].upper()


class Redactor:
    """Finds personal data in text. ``phone_regions`` are the countries whose national
    formats (no leading +) count as phone numbers; international ones always do."""

    def __init__(self, phone_regions: Iterable[str] = ("US", "GB", "CN")) -> None:
        self._phone_regions = tuple(phone_regions)

    def findings(self, text: str) -> list[Finding]:
        """Non-overlapping findings, in order of appearance."""
        found: list[Finding] = []
        if _UUID.fullmatch(text):
            return found

        def free(start: int, end: int) -> bool:
            return all(end <= taken.start or start >= taken.end for taken in found)

        for match in _EMAIL.finditer(text):
            found.append(Finding(EMAIL, match.start(), match.end()))
        for match in _CN_ID.finditer(text):
            if cn_id_valid(match.group()) and free(match.start(), match.end()):
                found.append(Finding(CN_ID, match.start(), match.end()))
        for match in _CARD.finditer(text):
            digits = re.sub(r"[ -]", "", match.group())
            if luhn_valid(digits) and free(match.start(), match.end()):
                found.append(Finding(CARD, match.start(), match.end()))
        for match in _CN_MOBILE.finditer(text):
            if free(match.start(), match.end()):
                found.append(Finding(PHONE, match.start(), match.end()))
        if _PHONE_CANDIDATE.search(_UUID.sub("-", text)) is not None:
            for region in (None, *self._phone_regions):
                for phone in phonenumbers.PhoneNumberMatcher(text, region):
                    if free(phone.start, phone.end):
                        found.append(Finding(PHONE, phone.start, phone.end))
        return sorted(found, key=lambda finding: finding.start)

    def redact_text(self, text: str, extra: Iterable[str] = ()) -> str:
        """``text`` with every finding, and every occurrence of the ``extra`` values (known
        personal data such as a customer's name), replaced by a marker."""
        for value in sorted({v for v in extra if v and v.strip()}, key=len, reverse=True):
            text = text.replace(value, marker("personal data"))
        if not text:
            return text
        parts: list[str] = []
        position = 0
        for finding in self.findings(text):
            parts.append(text[position : finding.start])
            parts.append(marker(finding.kind))
            position = finding.end
        parts.append(text[position:])
        return "".join(parts)

    def redact(self, value: Any) -> Any:
        """Strings masked; mappings, lists and tuples walked; anything else unchanged."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {key: self.redact(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact(item) for item in value]
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**6:
            # A phone or card number passed as a number is still one.
            masked = self.redact_text(str(value))
            return value if masked == str(value) else masked
        return value


DEFAULT_REDACTOR = Redactor()


def redact_text(text: str, extra: Iterable[str] = ()) -> str:
    return DEFAULT_REDACTOR.redact_text(text, extra)


def contains_pii(text: str) -> bool:
    return bool(DEFAULT_REDACTOR.findings(text))
