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

    scorer = LexiconScorer.load()
    results = scorer.score_batch([ScoringInput("Great service!"), ScoringInput("太差了")])
    print(",".join(result.label.value for result in results))
    # vaderSentiment declares requests for its demo only; scoring must not pull it in.
    loaded = sorted({"requests", "urllib3", "http.client"} & set(sys.modules))
    print(",".join(loaded))
    """
)


def test_models_load_and_score_with_the_network_refused() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    labels, network_modules = completed.stdout.splitlines()
    assert labels == "positive,negative"
    assert network_modules == ""
