"""Signature properties: any change to what a provider signed is refused, and every
comparison of a secret goes through a constant-time compare.

Complements the per-provider vectors in ``test_<provider>.py`` with generated
tampering: any one-byte change of a signed Meta body, any changed Twilio
parameter, any Mailgun timestamp outside the 300 s window (either way) and any
inside it, a replayed Mailgun token inside the window, wrong secrets.
"""

from __future__ import annotations

import hmac
import time
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from closeloop_ingest.adapters import mailgun, meta, postmark
from closeloop_ingest.adapters.mailgun import verify_mailgun_signature
from closeloop_ingest.adapters.meta import verify_meta_signature
from closeloop_ingest.adapters.postmark import verify_basic_auth
from closeloop_ingest.adapters.twilio import verify_twilio_signature
from closeloop_ingest.errors import SignatureRejected
from tests.ingest.support import (
    MAILGUN_SIGNING_KEY,
    META_APP_SECRET,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    TWILIO_AUTH_TOKEN,
    basic_auth,
    mailgun_fields,
    meta_body,
    meta_headers,
    page_comment,
    transcription_params,
    twilio_signature,
)

TOLERANCE_S = 300
EXAMPLES = settings(max_examples=300, deadline=None)
BODY = meta_body("page", [page_comment()])
URL = "https://feedback.example.com/v1/webhooks/twilio/transcription"


@EXAMPLES
@given(position=st.integers(0, len(BODY) - 1), byte=st.integers(0, 255))
def test_any_changed_byte_of_a_signed_meta_body_is_refused(position: int, byte: int) -> None:
    signature = meta_headers(BODY)["X-Hub-Signature-256"]
    tampered = BODY[:position] + bytes([byte]) + BODY[position + 1 :]
    if tampered == BODY:
        verify_meta_signature(META_APP_SECRET, tampered, signature)
        return
    with pytest.raises(SignatureRejected):
        verify_meta_signature(META_APP_SECRET, tampered, signature)


@EXAMPLES
@given(extra=st.binary(min_size=1, max_size=20), cut=st.integers(1, 20))
def test_appended_or_truncated_meta_bodies_are_refused(extra: bytes, cut: int) -> None:
    signature = meta_headers(BODY)["X-Hub-Signature-256"]
    for tampered in (BODY + extra, BODY[:-cut]):
        with pytest.raises(SignatureRejected):
            verify_meta_signature(META_APP_SECRET, tampered, signature)


@EXAMPLES
@given(secret=st.text(min_size=1, max_size=40))
def test_a_wrong_secret_is_refused_by_every_verifier(secret: str) -> None:
    if secret != META_APP_SECRET:
        with pytest.raises(SignatureRejected):
            verify_meta_signature(
                META_APP_SECRET, BODY, meta_headers(BODY, secret)["X-Hub-Signature-256"]
            )
    if secret != TWILIO_AUTH_TOKEN:
        params = transcription_params()
        with pytest.raises(SignatureRejected):
            verify_twilio_signature(
                TWILIO_AUTH_TOKEN, URL, params, twilio_signature(secret, URL, params)
            )
    if secret != MAILGUN_SIGNING_KEY:
        fields = mailgun_fields(signing_key=secret)
        with pytest.raises(SignatureRejected):
            verify_mailgun_signature(
                MAILGUN_SIGNING_KEY, fields, now=time.time(), tolerance_s=TOLERANCE_S
            )
    if secret != POSTMARK_PASSWORD:
        with pytest.raises(SignatureRejected):
            verify_basic_auth(basic_auth(POSTMARK_USER, secret), POSTMARK_USER, POSTMARK_PASSWORD)


@EXAMPLES
@given(data=st.data())
def test_any_changed_twilio_parameter_is_refused(data: st.DataObject) -> None:
    params = transcription_params()
    signature = twilio_signature(TWILIO_AUTH_TOKEN, URL, params)
    key = data.draw(st.sampled_from(sorted(params)))
    value = data.draw(st.text(max_size=40).filter(lambda v: v != params[key]))
    with pytest.raises(SignatureRejected):
        verify_twilio_signature(TWILIO_AUTH_TOKEN, URL, {**params, key: value}, signature)


@EXAMPLES
@given(offset=st.integers(TOLERANCE_S + 1, 10**9), sign=st.sampled_from([-1, 1]))
def test_mailgun_timestamps_outside_the_window_are_refused(offset: int, sign: int) -> None:
    now = time.time()
    fields = mailgun_fields(timestamp=int(now) + sign * offset)
    with pytest.raises(SignatureRejected):
        verify_mailgun_signature(MAILGUN_SIGNING_KEY, fields, now=now, tolerance_s=TOLERANCE_S)


@EXAMPLES
@given(offset=st.integers(-(TOLERANCE_S - 1), TOLERANCE_S - 1))
def test_mailgun_timestamps_inside_the_window_are_accepted(offset: int) -> None:
    now = float(int(time.time()))
    fields = mailgun_fields(timestamp=int(now) + offset, token=uuid.uuid4().hex)
    signed = verify_mailgun_signature(MAILGUN_SIGNING_KEY, fields, now=now, tolerance_s=TOLERANCE_S)
    assert signed.token == fields["token"]


def test_verifiers_compare_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every verifier compares secrets with ``hmac.compare_digest``, never ``==``."""
    calls: list[str] = []
    real = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        calls.append(type(a).__name__)
        return real(a, b)

    for module in (meta, mailgun, postmark):
        monkeypatch.setattr(module.hmac, "compare_digest", recording)
    verify_meta_signature(META_APP_SECRET, BODY, meta_headers(BODY)["X-Hub-Signature-256"])
    assert len(calls) == 1
    verify_mailgun_signature(
        MAILGUN_SIGNING_KEY, mailgun_fields(), now=time.time(), tolerance_s=300
    )
    assert len(calls) == 2
    verify_basic_auth(basic_auth(), POSTMARK_USER, POSTMARK_PASSWORD)
    assert len(calls) == 4  # user and password, both compared whatever the first said
    # Twilio's validator compares with its own constant-time ``compare``.
    from twilio import request_validator

    assert "compare" in request_validator.RequestValidator.validate.__code__.co_names
