"""Load generators: wrk for saturation, hey for a fixed rate; both from Debian's packages.

They run as separate processes so the load generator's CPU is not the measured server's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass(frozen=True)
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int
    duration_s: float


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not installed: apt-get install -y {tool} (make bench does)")
    return path


def _ms(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if match is None:
        raise ValueError(f"cannot read a duration from {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk_script(path: Path, *, route: str, auth: str | None, body_lua: str) -> Path:
    """A wrk Lua script whose every request carries a fresh body built by ``body_lua``.

    ``body_lua`` is a Lua expression using ``n`` (a per-thread counter) and ``tid``.
    """
    auth_line = f'wrk.headers["Authorization"] = "Bearer {auth}"' if auth else ""
    path.write_text(
        f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{auth_line}
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "{route}", nil, {body_lua})
end
"""
    )
    return path


def run_wrk(
    url: str,
    script: Path,
    *,
    connections: int,
    duration_s: int,
    threads: int = 1,
) -> LoadResult:
    output = subprocess.run(
        [
            require("wrk"),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration_s + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    non_2xx_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors_match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = sum(int(g) for g in errors_match.groups()) if errors_match else 0
    return LoadResult(
        rps,
        p50,
        p99,
        int(non_2xx_match.group(1)) if non_2xx_match else 0,
        errors,
        float(duration_s),
    )


def run_hey(
    url: str, body: Path, *, rate: float, duration_s: int, auth: str | None, workers: int = 10
) -> LoadResult:
    """Open-loop-ish fixed rate: ``workers`` each send ``rate / workers`` requests per second."""
    command = [
        require("hey"),
        "-z",
        f"{duration_s}s",
        "-c",
        str(workers),
        "-q",
        f"{rate / workers:.2f}",
        "-m",
        "POST",
        "-T",
        "application/json",
        "-D",
        str(body),
    ]
    if auth:
        command += ["-H", f"Authorization: Bearer {auth}"]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=duration_s + 60
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = float(re.search(r"50%+ in ([\d.]+) secs", output).group(1)) * 1000  # type: ignore[union-attr]
    p99 = float(re.search(r"99%+ in ([\d.]+) secs", output).group(1)) * 1000  # type: ignore[union-attr]
    statuses = {
        int(code): int(count)
        for code, count in re.findall(r"\[(\d{3})\]\s+(\d+) responses", output)
    }
    non_2xx = sum(count for code, count in statuses.items() if not 200 <= code < 300)
    errors_match = re.search(r"Error distribution:(.*)", output, re.S)
    errors = 0
    if errors_match:
        errors = sum(int(n) for n in re.findall(r"\[(\d+)\]", errors_match.group(1)))
    return LoadResult(rps, p50, p99, non_2xx, errors, float(duration_s))
