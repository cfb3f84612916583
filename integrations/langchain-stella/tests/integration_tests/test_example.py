"""examples/langchain_chat_rag.py runs offline and retrieves by the history."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "langchain_chat_rag.py"


@pytest.mark.slow
def test_langchain_chat_rag_example_runs() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5
    assert lines[1].startswith("turn 2 | user: Why not? | passage")
    assert "Basketball players often miss games because of knee and ankle injuries." in lines[1]
    assert "heals in two to six weeks" in lines[2]
    assert "phone battery" in lines[4]
