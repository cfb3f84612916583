"""examples/langchain_agent_rag.py runs offline; the follow-up gets the Pixel 8's price."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[4] / "examples" / "langchain_agent_rag.py"


@pytest.mark.slow
def test_langchain_agent_rag_example_runs() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    ours = next(line for line in lines if line.startswith("stella-rag (whole chat):"))
    guide = next(line for line in lines if line.startswith("last message only"))
    assert "pixel-price" in ours
    assert "pixel-price" not in guide
    assert any(line.startswith("  state['context']: ") and "pixel-price" in line for line in lines)
