"""Texts longer than an encoder reads: counted cheaply, and reported once per adapter.

A sentence-transformers model embeds only the first ``max_seq_length`` tokens of a text and
drops the rest without a word. LlamaIndex's default nodes (about 1,000 tokens) and many
LangChain splitters make texts far longer than MiniLM's 256 tokens, so most of each text would
never be embedded; :class:`TruncationWarner` says so, once, with the model's limit and the fix.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import Any

from ._errors import StellaRagWarning

__all__ = ["TruncationWarner", "count_truncated"]

_MAX_TOKENS_PER_CHAR = 4
"""A character makes at most this many tokens (byte-level BPE: one per UTF-8 byte), so a text
shorter than a quarter of the budget in characters needs no tokenizing to know that it fits."""


def count_truncated(encoder: Any, texts: Sequence[str]) -> int:
    """How many of ``texts`` are longer than ``encoder`` reads (special tokens counted)."""
    limit = int(encoder.max_seq_length)
    # Not a string: left to the encoder, whose error names its position.
    long = [t for t in texts if isinstance(t, str) and len(t) * _MAX_TOKENS_PER_CHAR > limit]
    if not long:
        return 0
    return sum(1 for n in encoder.count_tokens(long) if n > limit)


class TruncationWarner:
    """Warns (a :class:`~stella_rag.StellaRagWarning`) the first time texts are cut.

    Args:
        owner: who embeds the texts, named in the warning (``"StellaEmbedding"``).
        fix: what to do instead, in the owner's terms (a splitter sized to the model).

    After the warning it stops counting, so texts that fit cost one tokenization pass each, and
    only until the first warning.
    """

    def __init__(self, owner: str, fix: str) -> None:
        self.owner = owner
        self.fix = fix
        self.warned = False
        self._lock = threading.Lock()

    def check(self, encoder: Any, texts: Sequence[str]) -> None:
        if self.warned or not hasattr(encoder, "count_tokens"):
            return
        cut = count_truncated(encoder, texts)
        if not cut:
            return
        with self._lock:
            if self.warned:
                return
            self.warned = True
        limit = int(encoder.max_seq_length)
        warnings.warn(
            f"{self.owner}: {cut} of {len(texts)} text(s) are longer than the {limit} tokens "
            f"{encoder.model_id!r} reads; only their first {limit} tokens are embedded and the "
            f"rest is ignored. {self.fix} (This warning is shown once.)",
            StellaRagWarning,
            stacklevel=4,
        )
