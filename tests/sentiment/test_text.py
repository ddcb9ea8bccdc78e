"""Channel-aware text handling: whose words, which part of an email, which signals."""

from __future__ import annotations

import pytest

from closeloop_sentiment.text import customer_lines, prepare, social_text, strip_email


def test_hotline_transcript_attribute_keeps_only_the_customer() -> None:
    transcript = [
        {"role": "agent", "text": "Thank you for calling, happy to help!"},
        {"role": "customer", "text": "My internet is down again."},
        {"role": "客服", "text": "非常抱歉"},
        {"role": "客户", "text": "第三次了"},
    ]
    prepared = prepare("hotline", "ignored", None, {"transcript": transcript})
    assert prepared.text == "My internet is down again.\n第三次了"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "AGENT: Thanks for calling, wonderful to hear from you!\n"
            "CUSTOMER: I was charged twice.\nAnd nobody called back.\n"
            "AGENT: So sorry, have a lovely day!",
            "I was charged twice.\nAnd nobody called back.",
        ),
        ("客服：您好，很高兴为您服务\n客户：宽带又断了\n客服：非常抱歉", "宽带又断了"),
        ("Customer: the app crashes", "the app crashes"),
    ],
)
def test_hotline_role_lines_keep_only_the_customer(text: str, expected: str) -> None:
    assert customer_lines(text) == expected
    assert prepare("hotline", text, None, {}).text == expected


def test_a_hotline_text_without_roles_is_the_customers() -> None:
    voicemail = "Hi, this is Ann, my router has been dead since Monday, please call me."
    assert customer_lines(voicemail) is None
    assert prepare("hotline", voicemail, None, {}).text == voicemail


def test_a_hotline_text_with_only_agent_turns_is_kept_whole() -> None:
    text = "AGENT: Hello? Is anyone there?"
    assert prepare("hotline", text, None, {}).text == text


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        (
            "Still no refund.\n\nOn Tue, Nov 3, 2026 at 9:14 AM Support <s@x.example> wrote:\n"
            "> Thank you for your patience! Have a wonderful day!",
            "Still no refund.",
        ),
        (
            "退款还没到账。\n\n在 2026年11月3日 09:14，客服中心 写道：\n> 感谢您的耐心等待！",
            "退款还没到账。",
        ),
        (
            "Fine by me.\n\n-----Original Message-----\nFrom: Shop\nSent: Friday\n"
            "We apologise for the inconvenience.",
            "Fine by me.",
        ),
        ("好的。\n\n-----原始邮件-----\n发件人：配送中心\n很抱歉给您带来不便。", "好的。"),
        (
            "Great speeds.\n\n________________________________\nFrom: Sales\nUpgrade today!",
            "Great speeds.",
        ),
        ("Broken again.\n> earlier quoted line\nStill broken.", "Broken again.\nStill broken."),
    ],
)
def test_email_quoted_replies_are_dropped(body: str, kept: str) -> None:
    assert strip_email(body).text == kept


@pytest.mark.parametrize(
    ("body", "kept"),
    [
        ("The screen is cracked.\n\nSent from my iPhone", "The screen is cracked."),
        ("屏幕碎了。\n\n发自我的iPhone", "屏幕碎了。"),
        ("It broke.\n\n--\nKaren Doyle\nAcme Ltd", "It broke."),
        ("Still waiting.\n\nThanks,\nRob", "Still waiting."),
        (
            "No call back.\n\nKind regards,\nJane Cooper\nOperations Lead\nNorthwind Traders",
            "No call back.",
        ),
        ("发票请再发一份。\n\n谢谢！\n李娜\n财务部", "发票请再发一份。"),
        (
            "Still waiting.\n\nJane\nThis email and any attachments are confidential.",
            "Still waiting.\n\nJane",
        ),
        # A thank-you sentence inside the message is the customer's, not a sign-off.
        ("Thank you so much for the quick refund!", "Thank you so much for the quick refund!"),
    ],
)
def test_email_signatures_and_sign_offs_are_dropped(body: str, kept: str) -> None:
    assert strip_email(body).text == kept


def test_email_subject_is_kept_with_the_new_message() -> None:
    prepared = prepare(
        "email", "Nobody replied.\n\nOn Mon, Team wrote:\n> Great news!", "Complaint", {}
    )
    assert prepared.text == "Complaint\nNobody replied."
    assert any("Great news" in dropped for dropped in prepared.dropped)


def test_social_keeps_emoji_and_hashtag_words_and_drops_mentions() -> None:
    prepared = social_text("@AcmeTelecom 3 days without internet 😡 #NeverAgain #acme_outage")
    assert prepared.text == "3 days without internet 😡 Never Again acme outage"
    assert prepared.dropped == ("@AcmeTelecom",)
    assert social_text("断网三天了😡 #宽带故障# 服了").text == "断网三天了😡 宽带故障 服了"


def test_app_reviews_and_unknown_channels_use_subject_and_text() -> None:
    assert prepare("app", "Crashes on start", None, {}).text == "Crashes on start"
    assert prepare(None, "Body", "Subject", {}).text == "Subject\nBody"
