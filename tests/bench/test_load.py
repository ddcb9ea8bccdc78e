"""The benchmark reads wrk's and hey's reports; a misread would publish wrong numbers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from closeloop_bench import load, payloads

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.55ms    2.10ms  40.12ms   90.00%
  Latency Distribution
     50%   10.01ms
     75%   11.20ms
     90%   12.90ms
     99%   21.50ms
  30000 requests in 10.00s, 4.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   3000.12
Transfer/sec:    409.60KB
"""

HEY_OUTPUT = """
Summary:
  Total:\t10.0040 secs
  Requests/sec:\t199.8201

Latency distribution:
  10%% in 0.0021 secs
  50%% in 0.0034 secs
  99%% in 0.0123 secs

Status code distribution:
  [202]\t1990 responses
  [503]\t9 responses

Error distribution:
  [1]\tPost "http://127.0.0.1:8000/v1/feedback": dial tcp: connection refused
"""


def _fake_run(output: str):  # type: ignore[no-untyped-def]
    def run(*_args: object, **_kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess([], 0, stdout=output, stderr="")

    return run


def test_wrk_report_is_read_in_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "require", lambda tool: tool)
    monkeypatch.setattr(subprocess, "run", _fake_run(WRK_OUTPUT))
    result = load.run_wrk("http://x", Path("s.lua"), connections=32, duration_s=10)
    assert result.requests_per_s == pytest.approx(3000.12)
    assert result.p50_ms == pytest.approx(10.01)
    assert result.p99_ms == pytest.approx(21.5)
    assert result.non_2xx == 7
    assert result.errors == 3


def test_hey_report_counts_non_2xx_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "require", lambda tool: tool)
    monkeypatch.setattr(subprocess, "run", _fake_run(HEY_OUTPUT.replace("%%", "%")))
    result = load.run_hey("http://x", Path("b.json"), rate=200, duration_s=10, auth="k")
    assert result.requests_per_s == pytest.approx(199.8201)
    assert result.p50_ms == pytest.approx(3.4)
    assert result.p99_ms == pytest.approx(12.3)
    assert result.non_2xx == 9
    assert result.errors == 1


@pytest.mark.parametrize(("text", "ms"), [("850us", 0.85), ("12.5ms", 12.5), ("1.2s", 1200.0)])
def test_durations_convert_to_milliseconds(text: str, ms: float) -> None:
    assert load._ms(text) == pytest.approx(ms)


def test_items_are_about_one_kilobyte_and_one_in_five_negative() -> None:
    import json

    items = [payloads.item(i, "run") for i in range(100)]
    sizes = [len(json.dumps(i, ensure_ascii=False).encode()) for i in items]
    assert min(sizes) >= 700
    assert max(sizes) <= 1200
    negatives = [i for i in items if "refund" in str(i["text"]) or "退款" in str(i["text"])]
    assert len(negatives) == 20
    assert len({i["external_id"] for i in items}) == 100
