"""examples/llamaindex_chat.py runs offline and shows the LLM the passage the history points to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llamaindex_chat.py"


@pytest.mark.slow
def test_chat_example_gives_the_llm_the_passage_the_history_makes_relevant() -> None:
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=EXAMPLE.parent.parent,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    chat, _, context = result.stdout.partition("context given to the LLM on the last turn:")
    assert context, result.stdout
    alone = next(line for line in chat.splitlines() if line.startswith("the last turn alone"))
    # "How much is it?" by itself finds other prices; after the chat, the Pixel 8's.
    assert "pixel-price" not in alone
    assert "The Pixel 8 costs $699 in the Google Store." in context
    assert "user: How much is it?" in chat
