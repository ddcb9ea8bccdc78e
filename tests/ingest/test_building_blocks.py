"""Small pieces: the replay cache, HTML to text, public URL reconstruction, text fitting."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from closeloop_ingest.adapters.base import fit_text, from_iso8601, from_rfc2822
from closeloop_ingest.adapters.html_text import html_to_text
from closeloop_ingest.http_body import public_url
from closeloop_ingest.replay import SeenTokens
from closeloop_shared.contracts.feedback import MAX_TEXT_CHARS


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# -- replay cache ---------------------------------------------------------------------------


def test_a_token_is_accepted_once_until_it_expires() -> None:
    clock = FakeClock(1000.0)
    seen = SeenTokens(max_entries=10, clock=clock)
    assert seen.claim("t1", expires_at=1300.0)
    assert not seen.claim("t1", expires_at=1300.0)
    clock.now = 1300.0
    assert seen.claim("t1", expires_at=1600.0)


def test_a_released_token_can_be_claimed_again() -> None:
    seen = SeenTokens(max_entries=10, clock=FakeClock(0.0))
    assert seen.claim("t1", expires_at=300.0)
    seen.release("t1")
    assert seen.claim("t1", expires_at=300.0)


def test_the_cache_is_bounded_and_forgets_the_oldest_first() -> None:
    seen = SeenTokens(max_entries=3, clock=FakeClock(0.0))
    for token in ("a", "b", "c", "d"):
        assert seen.claim(token, expires_at=300.0)
    assert len(seen) == 3
    assert seen.claim("a", expires_at=300.0)  # forgotten: evicted by "d"
    assert not seen.claim("d", expires_at=300.0)


def test_expired_tokens_are_dropped_as_new_ones_arrive() -> None:
    clock = FakeClock(0.0)
    seen = SeenTokens(max_entries=100, clock=clock)
    for index in range(50):
        seen.claim(f"old-{index}", expires_at=10.0)
    clock.now = 11.0
    seen.claim("new", expires_at=400.0)
    assert len(seen) == 1


# -- HTML to text ---------------------------------------------------------------------------


def test_html_to_text_keeps_words_and_line_structure_only() -> None:
    html = """<html><head><title>t</title><style>.x{}</style></head><body>
      <!-- a comment -->
      <h1>Order   problem</h1>
      <p>It&#39;s broken &lt;again&gt;</p>
      <ul><li>one</li><li>two</li></ul>
      <script>var s = "<p>not text</p>";</script>
      <img src="x" alt="ignored"/>
    </body></html>"""
    assert html_to_text(html) == "Order problem\n\nIt's broken <again>\n\none\n\ntwo"


def test_unclosed_tags_do_not_lose_text() -> None:
    assert html_to_text("<div><p>first<p>second") == "first\nsecond"


# -- public URL -----------------------------------------------------------------------------


def make_request(headers: dict[str, str], path: str = "/v1/hook", query: bytes = b"") -> Request:
    return Request(
        {
            "type": "http",
            "method": "POST",
            "scheme": "http",
            "server": ("ingest.internal", 8001),
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )


@pytest.mark.parametrize(
    ("headers", "query", "expected"),
    [
        pytest.param(
            {"host": "ingest.internal:8001"}, b"", "http://ingest.internal:8001/v1/hook", id="direct"
        ),
        pytest.param(
            {"host": "ingest.internal:8001", "x-forwarded-proto": "https", "x-forwarded-host": "fb.example.com"},
            b"a=1&b=%20",
            "https://fb.example.com/v1/hook?a=1&b=%20",
            id="forwarded-with-query",
        ),
        pytest.param(
            {"host": "ingest.internal:8001", "x-forwarded-proto": "https, http", "x-forwarded-host": "fb.example.com:8443, gw"},
            b"",
            "https://fb.example.com:8443/v1/hook",
            id="proxy-chain-first-wins",
        ),
    ],
)  # fmt: skip
def test_public_url_is_what_the_provider_called(
    headers: dict[str, str], query: bytes, expected: str
) -> None:
    assert public_url(make_request(headers, query=query)) == expected


# -- text and time helpers ------------------------------------------------------------------


def test_fit_text_leaves_short_text_alone_and_cuts_long_text() -> None:
    assert fit_text("  hello  ") == ("hello", False)
    text, cut = fit_text(("line " * 100 + "\n") * 500)
    assert cut
    assert len(text) <= MAX_TEXT_CHARS
    assert text.endswith("line")


def test_time_parsers_give_aware_datetimes_or_none() -> None:
    parsed = from_iso8601("2024-03-01T08:00:00")
    assert parsed is not None
    assert parsed.tzinfo is not None
    assert from_iso8601("yesterday") is None
    email_date = from_rfc2822("Mon, 04 Mar 2024 09:30:00 -0000")
    assert email_date is not None
    assert email_date.tzinfo is not None
    assert from_rfc2822("not a date") is None
