"""StellaEmbedding: LlamaIndex's ``BaseEmbedding`` over :class:`stella_rag.SentenceEncoder`."""

from __future__ import annotations

import os
from typing import Any, Literal

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.callbacks import CallbackManager

from stella_rag import DEFAULT_MODEL, SentenceEncoder, TruncationWarner

__all__ = ["DEFAULT_EMBED_BATCH_SIZE", "DEFAULT_MODEL", "StellaEmbedding"]

DEFAULT_EMBED_BATCH_SIZE = 1024
"""Texts handed to the encoder per call. LlamaIndex's default of 10 would cut every request into
tiny forward passes; the core sorts each request by length and batches it by a token budget, so
large requests are what it needs."""


class StellaEmbedding(BaseEmbedding):
    """Stella v3 (or any sentence-transformers model) embeddings for LlamaIndex.

    Queries go through the model's query side (its ``"query"`` prompt, if it has one), nodes
    through its document side. Every ``stella_rag`` user in the process that names the same
    model, device, precision and backend shares one loaded copy and one worker thread, which
    merges concurrent requests into full batches.

    Args:
        model_name: an alias (``"stella-large-zh"``, ``"minilm"``, ...), a hub id or a folder.
        encoder: an existing :class:`stella_rag.SentenceEncoder` to use instead of
            ``model_name`` and the options below.
        device: ``"cuda"``, ``"mps"``, ``"cpu"``...; default: the best available.
        precision: ``"float32"``, ``"float16"`` or ``"bfloat16"``; default float16 on CUDA.
        batch_size: at most this many texts per forward pass (the core's batching).
        max_seq_length: tokens kept per text.
        truncate_dim: keep the first ``truncate_dim`` dimensions (Matryoshka models).
        normalize: unit-length vectors.
        cache_folder: where hub models are cached.
        backend: ``"torch"``, ``"onnx"`` or ``"openvino"``.
        trust_remote_code: run code shipped with the model.
        embed_batch_size: texts per call into the core (LlamaIndex's batching).

    Examples:
        ```python
        from llama_index.core import Settings
        from llama_index.embeddings.stella import StellaEmbedding

        Settings.embed_model = StellaEmbedding("stella-large-zh")
        ```
    """

    model_name: str = Field(default=DEFAULT_MODEL, description="Model alias, hub id or folder.")
    device: str | None = Field(default=None, description="Torch device; default: best available.")
    precision: Literal["float32", "float16", "bfloat16"] | None = Field(
        default=None, description="Weights' precision; default float16 on CUDA, else float32."
    )
    batch_size: int | None = Field(default=None, description="Texts per forward pass.", gt=0)
    max_seq_length: int | None = Field(default=None, description="Tokens kept per text.", gt=0)
    truncate_dim: int | None = Field(
        default=None, description="Keep only the first dimensions (Matryoshka models).", gt=0
    )
    normalize: bool = Field(default=True, description="Return unit-length vectors.")
    cache_folder: str | None = Field(default=None, description="Hugging Face cache folder.")
    backend: Literal["torch", "onnx", "openvino"] = Field(
        default="torch", description="sentence-transformers backend."
    )
    trust_remote_code: bool = Field(default=False, description="Run code shipped with the model.")

    _encoder: SentenceEncoder = PrivateAttr()
    _truncation: TruncationWarner = PrivateAttr()

    def __init__(
        self,
        model_name: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        encoder: SentenceEncoder | None = None,
        device: str | None = None,
        precision: Literal["float32", "float16", "bfloat16"] | None = None,
        batch_size: int | None = None,
        max_seq_length: int | None = None,
        truncate_dim: int | None = None,
        normalize: bool = True,
        cache_folder: str | None = None,
        backend: Literal["torch", "onnx", "openvino"] = "torch",
        trust_remote_code: bool = False,
        embed_batch_size: int = DEFAULT_EMBED_BATCH_SIZE,
        callback_manager: CallbackManager | None = None,
        **kwargs: Any,
    ) -> None:
        if encoder is not None:
            if not isinstance(encoder, SentenceEncoder):
                raise TypeError(
                    f"encoder must be a stella_rag.SentenceEncoder, got {type(encoder).__name__}"
                )
            model_name = encoder.model_id
            device = encoder.device
            truncate_dim = encoder.truncate_dim
            normalize = encoder.normalize
            backend = encoder.backend  # type: ignore[assignment]
        else:
            encoder = SentenceEncoder(
                model_name,
                device=device,
                precision=precision,
                batch_size=batch_size,
                max_seq_length=max_seq_length,
                truncate_dim=truncate_dim,
                normalize=normalize,
                cache_folder=cache_folder,
                backend=backend,
                trust_remote_code=trust_remote_code,
            )
        fields: dict[str, Any] = {
            "model_name": os.fspath(model_name),
            "device": device,
            "precision": precision,
            "batch_size": batch_size,
            "max_seq_length": max_seq_length,
            "truncate_dim": truncate_dim,
            "normalize": normalize,
            "cache_folder": cache_folder,
            "backend": backend,
            "trust_remote_code": trust_remote_code,
            "embed_batch_size": embed_batch_size,
        }
        if callback_manager is not None:
            fields["callback_manager"] = callback_manager
        super().__init__(**fields, **kwargs)
        self._encoder = encoder
        self._truncation = TruncationWarner(
            "StellaEmbedding",
            "Split documents to the model's budget: Settings.node_parser = "
            "StellaNodeParser.from_defaults(embed_model) "
            "(from llama_index.embeddings.stella import StellaNodeParser).",
        )

    @classmethod
    def class_name(cls) -> str:
        return "StellaEmbedding"

    @property
    def encoder(self) -> SentenceEncoder:
        """The core encoder (shared model, lazy loading)."""
        return self._encoder

    @property
    def dim(self) -> int:
        """The dimension of the vectors (loads the model)."""
        return self._encoder.dim

    # ------------------------------------------------------------------ sync
    def _get_query_embedding(self, query: str) -> Embedding:
        return self._encoder.encode_queries([query])[0].tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        self._truncation.check(self._encoder, [text])
        return self._encoder.encode_documents([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        self._truncation.check(self._encoder, texts)
        return self._encoder.encode_documents(texts).tolist()

    # ----------------------------------------------------------------- async
    async def _aget_query_embedding(self, query: str) -> Embedding:
        return (await self._encoder.aencode_queries([query]))[0].tolist()

    async def _aget_text_embedding(self, text: str) -> Embedding:
        embedding = (await self._encoder.aencode_documents([text]))[0].tolist()
        self._truncation.check(self._encoder, [text])  # loaded by now: no load on the loop
        return embedding

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        embeddings = (await self._encoder.aencode_documents(texts)).tolist()
        self._truncation.check(self._encoder, texts)
        return embeddings
