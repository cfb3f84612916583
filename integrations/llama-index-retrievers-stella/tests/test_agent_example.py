"""examples/llamaindex_agent_rag.py runs offline; the agent's LLM gets the Pixel 8's price."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llamaindex_agent_rag.py"


@pytest.mark.slow
def test_agent_example_gives_the_llm_the_passage_the_chat_points_to() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    ours = next(line for line in lines if line.startswith("stella-rag (whole chat):"))
    alone = next(line for line in lines if line.startswith("last message only:"))
    assert "pixel-price" in ours
    assert "pixel-price" not in alone
    system = result.stdout.partition("system messages given to the LLM:")[2]
    assert "The Pixel 8 costs $699 in the Google Store." in system
