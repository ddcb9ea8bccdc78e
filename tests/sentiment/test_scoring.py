from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from closeloop_sentiment.scoring import (
    CHINESE_NEUTRAL_BAND,
    CHUNK_CHARS,
    ENGLISH_NEUTRAL_BAND,
    MODEL_NAME,
    MODEL_VERSION,
    RATING_WEIGHT,
    LexiconScorer,
    ScoringInput,
    chunk_text,
    confidence_for,
    customer_turns,
    label_for,
    rating_polarity,
    scoring_input,
)
from closeloop_shared.contracts.feedback import Channel, Feedback, Rating, RatingType
from closeloop_shared.contracts.sentiment import Sentiment, SentimentLabel

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NEGATIVE = SentimentLabel.NEGATIVE
NEUTRAL = SentimentLabel.NEUTRAL
POSITIVE = SentimentLabel.POSITIVE


def score(scorer: LexiconScorer, text: str, rating: Rating | None = None) -> Sentiment:
    return scorer.score(ScoringInput(text=text, rating=rating), NOW)


def feedback(**overrides: Any) -> Feedback:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "channel": Channel.HOTLINE,
        "external_id": "call-1",
        "text": "Call transcript",
        "occurred_at": NOW,
        "received_at": NOW,
        **overrides,
    }
    return Feedback(**fields)


@pytest.mark.parametrize(
    "text",
    [
        "Worst customer service ever. Rude and useless.",
        "The product broke after two days, I am very disappointed.",
        "Terrible experience, I will never order from you again!",
    ],
)
def test_clear_english_negatives(lexicon_scorer: LexiconScorer, text: str) -> None:
    sentiment = score(lexicon_scorer, text)
    assert (sentiment.language, sentiment.label) == ("en", NEGATIVE)
    assert sentiment.score < -0.5


@pytest.mark.parametrize(
    "text",
    [
        "Absolutely love this app, the support team is amazing!",
        "Great service, thank you so much for the quick help.",
        "Checkout was seamless and delivery was fast. Very happy.",
    ],
)
def test_clear_english_positives(lexicon_scorer: LexiconScorer, text: str) -> None:
    sentiment = score(lexicon_scorer, text)
    assert (sentiment.language, sentiment.label) == ("en", POSITIVE)
    assert sentiment.score > 0.4


@pytest.mark.parametrize(
    "text", ["太失望了，再也不买了", "客服态度很差", "客服一直不回复", "这个产品太差了，质量很烂"]
)
def test_clear_chinese_negatives(lexicon_scorer: LexiconScorer, text: str) -> None:
    sentiment = score(lexicon_scorer, text)
    assert (sentiment.language, sentiment.label) == ("zh", NEGATIVE)


@pytest.mark.parametrize("text", ["服务很好，非常满意", "非常好用，推荐", "质量不错，物流很快"])
def test_clear_chinese_positives(lexicon_scorer: LexiconScorer, text: str) -> None:
    sentiment = score(lexicon_scorer, text)
    assert (sentiment.language, sentiment.label) == ("zh", POSITIVE)


@pytest.mark.parametrize(
    "text",
    [
        "I want a refund",
        "I waited on the phone for an hour",
        "The issue is still not fixed",
        "My package never arrived",
        "I still haven't received my order",
        "The app is not working since the update",
        "No response from support for a week",
        "Where is my refund?",
        "I want my money back",
        "They put me on hold for 40 minutes",
        "The app keeps crashing",
    ],
)
def test_customer_experience_terms_that_plain_vader_misses(
    lexicon_scorer: LexiconScorer, text: str
) -> None:
    plain = SentimentIntensityAnalyzer().polarity_scores(text)["compound"]
    assert plain > -ENGLISH_NEUTRAL_BAND, "plain VADER already gets this one: not a CX term"
    assert score(lexicon_scorer, text).label is NEGATIVE


@pytest.mark.parametrize(
    "text", ["I want to cancel my subscription", "I was charged twice for one order"]
)
def test_customer_experience_terms_that_plain_vader_underrates(
    lexicon_scorer: LexiconScorer, text: str
) -> None:
    # Plain VADER barely crosses -0.05 on these: churn and double billing are
    # among the clearest complaints there are.
    plain = SentimentIntensityAnalyzer().polarity_scores(text)["compound"]
    assert plain > -0.25
    assert score(lexicon_scorer, text).score < -0.45


def test_a_thanked_refund_stays_positive(lexicon_scorer: LexiconScorer) -> None:
    assert score(lexicon_scorer, "Thanks for the quick refund, great service").label is POSITIVE


def test_emoji(lexicon_scorer: LexiconScorer) -> None:
    assert score(lexicon_scorer, "👍").label is POSITIVE
    assert score(lexicon_scorer, "👎👎").label is NEGATIVE
    assert score(lexicon_scorer, "😡").label is NEGATIVE
    assert score(lexicon_scorer, "👍").language == "und"


def test_text_without_sentiment_is_neutral(lexicon_scorer: LexiconScorer) -> None:
    sentiment = score(lexicon_scorer, "Order 4471")
    assert (sentiment.label, sentiment.confidence) == (NEUTRAL, 0.5)
    # The lexicon half has no evidence at all; the trained half leans a little
    # (a known limit: review corpora call factual sentences mildly positive).
    assert lexicon_scorer.english.score("The delivery came on Tuesday") == 0.0
    assert abs(score(lexicon_scorer, "The delivery came on Tuesday").score) < 0.3


def test_other_languages_use_the_fallback_with_lower_confidence(
    lexicon_scorer: LexiconScorer,
) -> None:
    sentiment = score(lexicon_scorer, "Das ist sehr schlecht, die Lieferung kam nie an")
    assert sentiment.language == "de"
    assert sentiment.model == MODEL_NAME
    assert sentiment.confidence <= 0.5


@pytest.mark.parametrize(
    ("rating_type", "value", "expected"),
    [
        (RatingType.STARS, 1, -1.0),
        (RatingType.STARS, 2, -0.5),
        (RatingType.STARS, 3, 0.0),
        (RatingType.STARS, 4, 0.5),
        (RatingType.STARS, 5, 1.0),
        (RatingType.CSAT, 1, -1.0),
        (RatingType.CES, 7, 1.0),
        (RatingType.CES, 4, 0.0),
        (RatingType.NPS, 0, -1.0),
        (RatingType.NPS, 6, -0.5),
        (RatingType.NPS, 7, 0.0),
        (RatingType.NPS, 8, 0.0),
        (RatingType.NPS, 9, 0.5),
        (RatingType.NPS, 10, 1.0),
    ],
)
def test_rating_polarity(rating_type: RatingType, value: float, expected: float) -> None:
    assert rating_polarity(Rating(type=rating_type, value=value)) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rating_type", "value", "expected"),
    [
        (RatingType.STARS, 1, NEGATIVE),
        (RatingType.STARS, 2, NEGATIVE),
        (RatingType.STARS, 3, NEUTRAL),
        (RatingType.STARS, 4, POSITIVE),
        (RatingType.STARS, 5, POSITIVE),
        (RatingType.NPS, 0, NEGATIVE),
        (RatingType.NPS, 6, NEGATIVE),
        (RatingType.NPS, 8, NEUTRAL),
        (RatingType.NPS, 9, POSITIVE),
        (RatingType.NPS, 10, POSITIVE),
    ],
)
def test_a_rating_decides_when_the_text_is_neutral(
    lexicon_scorer: LexiconScorer, rating_type: RatingType, value: float, expected: SentimentLabel
) -> None:
    rating = Rating(type=rating_type, value=value)
    assert score(lexicon_scorer, "Order 4471", rating).label is expected
    assert score(lexicon_scorer, "包裹到了", rating).label is expected  # "the parcel arrived"


def test_a_rating_pulls_the_text_score(lexicon_scorer: LexiconScorer) -> None:
    text = "It's fine"
    unrated = score(lexicon_scorer, text)
    one_star = score(lexicon_scorer, text, Rating(type=RatingType.STARS, value=1))
    five_stars = score(lexicon_scorer, text, Rating(type=RatingType.STARS, value=5))
    assert unrated.label is POSITIVE
    assert one_star.label is NEGATIVE
    assert one_star.score < unrated.score < five_stars.score


def test_customer_turns_are_selected_case_insensitively() -> None:
    transcript = [
        {"role": "AGENT", "text": "Thank you for calling, happy to help!"},
        {"role": "CUSTOMER", "text": "My internet has been down for three days."},
        {"role": "agent", "text": "I am so sorry to hear that."},
        {"role": " Customer ", "text": "  Nobody called back.  "},
    ]
    assert customer_turns(transcript) == [
        "My internet has been down for three days.",
        "Nobody called back.",
    ]


@pytest.mark.parametrize(
    "transcript",
    [
        None,
        "customer: hello",
        [],
        [{"role": "agent", "text": "Hello"}],
        [{"role": "customer"}, {"role": "customer", "text": 3}, "hello", {"text": "no role"}],
    ],
)
def test_malformed_or_customerless_transcripts_yield_no_turns(transcript: object) -> None:
    assert customer_turns(transcript) == []


def test_hotline_items_are_scored_on_the_customers_turns_only(
    lexicon_scorer: LexiconScorer,
) -> None:
    item = feedback(
        text="Agent: Thank you, wonderful to hear from you! Customer: still not fixed.",
        attributes={
            "transcript": [
                {"role": "agent", "text": "Thank you for calling, wonderful to hear from you!"},
                {"role": "customer", "text": "My internet is still not fixed and nobody called."},
                {"role": "agent", "text": "Great, have a lovely day, happy to help!"},
            ]
        },
    )
    selected = scoring_input(item)
    assert selected.text == "My internet is still not fixed and nobody called."
    assert lexicon_scorer.score(selected, NOW).label is NEGATIVE


def test_without_a_transcript_the_subject_and_text_are_scored() -> None:
    item = feedback(
        channel=Channel.EMAIL,
        subject="Terrible",
        text="See below.",
        rating=Rating(type=RatingType.NPS, value=3),
        language="en-GB",
    )
    assert scoring_input(item) == ScoringInput(
        text="Terrible\nSee below.", rating=item.rating, declared_language="en-GB", channel="email"
    )
    assert scoring_input(feedback(text="Hi")).text == "Hi"


def test_label_and_confidence_bands() -> None:
    assert label_for(0.05, ENGLISH_NEUTRAL_BAND) is POSITIVE
    assert label_for(0.0499, ENGLISH_NEUTRAL_BAND) is NEUTRAL
    assert label_for(-0.05, ENGLISH_NEUTRAL_BAND) is NEGATIVE
    assert label_for(0.29, CHINESE_NEUTRAL_BAND) is NEUTRAL
    assert label_for(-0.3, CHINESE_NEUTRAL_BAND) is NEGATIVE
    assert confidence_for(0.0, ENGLISH_NEUTRAL_BAND) == 0.5
    assert confidence_for(0.05, ENGLISH_NEUTRAL_BAND) == 0.5
    assert confidence_for(-1.0, CHINESE_NEUTRAL_BAND) == 1.0


LONG_MIXED = (
    "The courier was friendly and the box looked great. " * 60
    + "But the product inside was broken and support never answered. " * 60
)


@pytest.mark.parametrize(
    "text",
    [
        "Worst customer service ever.",
        "Great!",
        "ok",
        "这个产品太差了",
        "好",
        "hello 你好",
        "👍",
        "1234",
        "Das ist gut",
        "I want a refund!!! NOW!!!",
        LONG_MIXED,
        "差" * 30_000,
        "great " * 30_000,
    ],
)
@pytest.mark.parametrize("rating", [None, Rating(type=RatingType.STARS, value=1)])
def test_score_label_and_confidence_are_consistent_and_bounded(
    lexicon_scorer: LexiconScorer, text: str, rating: Rating | None
) -> None:
    sentiment = score(lexicon_scorer, text, rating)
    assert -1.0 <= sentiment.score <= 1.0
    assert 0.0 <= sentiment.confidence <= 1.0
    band = CHINESE_NEUTRAL_BAND if sentiment.language == "zh" else ENGLISH_NEUTRAL_BAND
    if rating is not None:
        band *= 1 - RATING_WEIGHT
    assert sentiment.label is label_for(sentiment.score, band)
    assert (sentiment.model, sentiment.model_version) == (MODEL_NAME, MODEL_VERSION)
    assert sentiment.scored_at == NOW


def test_long_texts_are_averaged_over_chunks_not_saturated(lexicon_scorer: LexiconScorer) -> None:
    # Summed over 7,000 characters VADER would say -1 or +1; the chunk mean
    # reflects that this text is half praise, half complaint.
    assert abs(score(lexicon_scorer, LONG_MIXED).score) < 0.9


def test_chunks_keep_the_text_and_respect_the_size() -> None:
    text = "Sentence number one is here. " * 100 + "x" * 2_500 + "。最后一句话。" * 50
    chunks = chunk_text(text)
    assert "".join(chunks) == text
    assert all(0 < len(chunk) <= CHUNK_CHARS for chunk in chunks)
    assert chunk_text("short") == ["short"]


def test_batches_keep_order_and_share_one_timestamp(lexicon_scorer: LexiconScorer) -> None:
    items = [ScoringInput("Great!"), ScoringInput("太差了"), ScoringInput("Awful.")]
    results = lexicon_scorer.score_batch(items)
    assert [result.label for result in results] == [POSITIVE, NEGATIVE, NEGATIVE]
    assert len({result.scored_at for result in results}) == 1
    assert lexicon_scorer.score_batch([]) == []


def test_model_identity(lexicon_scorer: LexiconScorer) -> None:
    assert (lexicon_scorer.model_name, lexicon_scorer.model_version) == (
        "closeloop-lexicon",
        "2.1.0",
    )


def test_the_analysis_reaches_the_contract(lexicon_scorer: LexiconScorer) -> None:
    sentiment = score(
        lexicon_scorer, "Third time I call about being charged twice. I'm going to the FTC!"
    )
    assert sentiment.label is NEGATIVE
    assert sentiment.topics == ["billing"]
    assert sentiment.urgency == "high"
    assert any(cue.startswith("regulator:") for cue in sentiment.urgency_cues)
    assert any(cue.startswith("repeat_contact:") for cue in sentiment.urgency_cues)
    assert set(sentiment.emotions) <= {"anger", "frustration", "anxiety", "joy"}


def test_urgency_cues_make_a_polite_complaint_negative(lexicon_scorer: LexiconScorer) -> None:
    # Courteous words, but a regulator: a complaint all the same.
    sentiment = score(lexicon_scorer, "Thank you, but I will now refer this to the Ombudsman.")
    assert sentiment.label is NEGATIVE
    assert score(lexicon_scorer, "谢谢，不过我已经向12315反映了").label is NEGATIVE


def test_enquiries_stay_neutral(lexicon_scorer: LexiconScorer) -> None:
    enquiry = score(lexicon_scorer, "Do you offer a family plan with four lines?")
    assert enquiry.label is not NEGATIVE
    assert abs(enquiry.score) < 0.1
    assert score(lexicon_scorer, "请问有没有便宜一点的套餐？").label is NEUTRAL


def test_an_email_is_scored_without_our_quoted_reply(lexicon_scorer: LexiconScorer) -> None:
    item = feedback(
        channel=Channel.EMAIL,
        subject="Re: refund",
        text=(
            "It has been three weeks and the refund is still not here.\n\n"
            "On Tue, Nov 3, 2026 at 9:14 AM Support <support@acme.example> wrote:\n"
            "> Thank you for your patience! Great news, your refund is approved. Have a"
            " wonderful, happy day!"
        ),
    )
    prepared = scoring_input(item)
    assert "wonderful" not in prepared.text
    assert lexicon_scorer.score(prepared, NOW).label is NEGATIVE


def test_social_emoji_and_hashtags_are_signals(lexicon_scorer: LexiconScorer) -> None:
    item = feedback(channel=Channel.SOCIAL, text="@AcmeTelecom 3 days without internet 😡 #fail")
    sentiment = lexicon_scorer.score(scoring_input(item), NOW)
    assert (sentiment.label, sentiment.topics) == (NEGATIVE, ["network"])
    zh = feedback(channel=Channel.SOCIAL, text="新手表到啦🎉 续航真的强 #好物推荐#")
    assert lexicon_scorer.score(scoring_input(zh), NOW).label is POSITIVE


def test_an_app_review_combines_stars_and_text(lexicon_scorer: LexiconScorer) -> None:
    review = feedback(
        channel=Channel.APP, text="It does the job.", rating=Rating(type=RatingType.STARS, value=1)
    )
    assert lexicon_scorer.score(scoring_input(review), NOW).label is NEGATIVE
    review = feedback(
        channel=Channel.APP, text="It does the job.", rating=Rating(type=RatingType.STARS, value=5)
    )
    assert lexicon_scorer.score(scoring_input(review), NOW).label is POSITIVE
