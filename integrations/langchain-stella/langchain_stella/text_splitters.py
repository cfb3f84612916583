"""StellaTextSplitter: LangChain chunks sized to what a stella-rag encoder reads."""

from __future__ import annotations

import os
from typing import Any

from langchain_text_splitters import TextSplitter

from stella_rag import DEFAULT_MODEL, SentenceEncoder, Splitter

__all__ = ["StellaTextSplitter"]


class StellaTextSplitter(TextSplitter):
    """Splits texts into chunks the encoder embeds whole: the core's token-aware splitter
    (paragraph, sentence, then word boundaries), counted in the encoder's own tokens.

    Setup:
        ``pip install -U langchain-stella`` (from a clone: ``pip install -e
        integrations/langchain-stella``)

    Args:
        embeddings: a :class:`~langchain_stella.StellaEmbeddings`, a
            :class:`stella_rag.SentenceEncoder`, or a model name.
        chunk_tokens: the most tokens per chunk (default: all the model reads).
        overlap_tokens: tokens a chunk repeats from the one before it (default: 32, or a
            quarter of a smaller chunk).
        **kwargs: other ``TextSplitter`` options (``add_start_index``...).

    Example:
        .. code-block:: python

            from langchain_stella import StellaEmbeddings, StellaTextSplitter

            embeddings = StellaEmbeddings(model_name="minilm")
            docs = StellaTextSplitter(embeddings).split_documents(docs)
    """

    def __init__(
        self,
        embeddings: Any = DEFAULT_MODEL,
        *,
        chunk_tokens: int | None = None,
        overlap_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        encoder = _encoder_of(embeddings)
        self._splitter = Splitter.for_encoder(encoder, chunk_tokens, overlap_tokens)
        super().__init__(
            chunk_size=self._splitter.size,
            chunk_overlap=self._splitter.overlap,
            length_function=self._length,
            **kwargs,
        )

    @property
    def encoder(self) -> SentenceEncoder:
        return self._splitter.encoder  # type: ignore[return-value]

    def _length(self, text: str) -> int:
        return self._splitter.encoder.count_tokens([text], special_tokens=False)[0]

    def split_text(self, text: str) -> list[str]:
        return self._splitter.split(text)


def _encoder_of(embeddings: Any) -> SentenceEncoder:
    encoder = getattr(embeddings, "encoder", embeddings)
    if isinstance(encoder, (str, os.PathLike)):
        return SentenceEncoder(encoder)
    if not isinstance(encoder, SentenceEncoder):
        raise TypeError(
            "embeddings must be a StellaEmbeddings, a stella_rag.SentenceEncoder or a model "
            f"name, got {type(embeddings).__name__}"
        )
    return encoder
