"""StellaNodeParser: LlamaIndex nodes sized to what a stella-rag encoder reads."""

from __future__ import annotations

import os
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.node_parser.interface import MetadataAwareTextSplitter

from stella_rag import DEFAULT_MODEL, SentenceEncoder, Splitter

__all__ = ["StellaNodeParser"]

_MIN_TOKENS = 8


class StellaNodeParser(MetadataAwareTextSplitter):
    """Splits documents into nodes the encoder embeds whole: the core's token-aware splitter
    (paragraph, sentence, then word boundaries), counted in the encoder's own tokens.

    LlamaIndex's default nodes hold about 1,000 tokens; MiniLM reads 256 and Stella 512, so the
    rest of each node would never be embedded. The metadata LlamaIndex puts before a node's text
    when embedding it is counted too.

    Args:
        embed_model: a :class:`~llama_index.embeddings.stella.StellaEmbedding`, a
            :class:`stella_rag.SentenceEncoder`, or a model name.
        chunk_tokens: the most tokens per node (default: all the model reads).
        overlap_tokens: tokens a node repeats from the one before it (default: 32, or a
            quarter of a smaller node).

    Examples:
        ```python
        from llama_index.core import Settings
        from llama_index.embeddings.stella import StellaEmbedding, StellaNodeParser

        Settings.embed_model = StellaEmbedding("minilm")
        Settings.node_parser = StellaNodeParser.from_defaults(Settings.embed_model)
        ```
    """

    chunk_tokens: int = Field(description="The most tokens of the model per node.", gt=0)
    overlap_tokens: int = Field(default=32, description="Tokens repeated from the node before.")
    model_name: str = Field(description="The model whose tokens are counted.")

    _splitter: Splitter = PrivateAttr()

    def __init__(
        self,
        embed_model: Any = DEFAULT_MODEL,
        *,
        chunk_tokens: int | None = None,
        overlap_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        encoder = _encoder_of(embed_model)
        splitter = Splitter.for_encoder(encoder, chunk_tokens, overlap_tokens)
        super().__init__(
            chunk_tokens=splitter.size,
            overlap_tokens=splitter.overlap,
            model_name=encoder.model_id,
            **kwargs,
        )
        self._splitter = splitter

    @classmethod
    def from_defaults(
        cls,
        embed_model: Any = DEFAULT_MODEL,
        *,
        chunk_tokens: int | None = None,
        overlap_tokens: int | None = None,
        **kwargs: Any,
    ) -> StellaNodeParser:
        return cls(embed_model, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens, **kwargs)

    @classmethod
    def class_name(cls) -> str:
        return "StellaNodeParser"

    def split_text(self, text: str) -> list[str]:
        return self._splitter.split(text)

    def split_text_metadata_aware(self, text: str, metadata_str: str) -> list[str]:
        splitter = self._splitter
        used = splitter.encoder.count_tokens([metadata_str], special_tokens=False)[0] + 2
        room = splitter.size - used
        if used <= 2 or room < _MIN_TOKENS:  # no metadata, or metadata that leaves no room
            return splitter.split(text)
        sized = Splitter(splitter.encoder, room, min(splitter.overlap, room // 2))
        return sized.split(text)


def _encoder_of(embed_model: Any) -> SentenceEncoder:
    encoder = getattr(embed_model, "encoder", embed_model)
    if isinstance(encoder, (str, os.PathLike)):
        return SentenceEncoder(encoder)
    if not isinstance(encoder, SentenceEncoder):
        raise TypeError(
            "embed_model must be a StellaEmbedding, a stella_rag.SentenceEncoder or a model "
            f"name, got {type(embed_model).__name__}"
        )
    return encoder
