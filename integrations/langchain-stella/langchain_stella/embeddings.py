"""StellaEmbeddings: LangChain's ``Embeddings`` over a :class:`stella_rag.SentenceEncoder`."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from stella_rag import DEFAULT_MODEL, SentenceEncoder, TruncationWarner

__all__ = ["DEFAULT_MODEL_NAME", "StellaEmbeddings"]

DEFAULT_MODEL_NAME = DEFAULT_MODEL
"""``stella_rag.DEFAULT_MODEL``, the core's default document model (Stella large, Chinese)."""


class StellaEmbeddings(BaseModel, Embeddings):
    """Stella (or any sentence-transformers) embeddings, computed locally.

    Setup:
        ``pip install -U langchain-stella``

    Key init args:
        model_name: a hub id, a folder, or a stella-rag alias (``"stella-large-zh"``,
            ``"minilm"`` for an offline model, ...).
        device: ``"cuda"``, ``"mps"``, ``"cpu"``; default: the best available.
        precision: ``"float32"``, ``"float16"`` or ``"bfloat16"``.
        batch_size: at most this many texts per forward pass.
        normalize: return unit-length vectors.
        truncate_dim: keep the first ``truncate_dim`` dimensions (Matryoshka models).
        show_progress: show a progress bar while embedding documents.
        model_kwargs: other :class:`stella_rag.SentenceEncoder` arguments
            (``max_seq_length``, ``cache_folder``, ``backend``, ``trust_remote_code``).

    Instantiate:
        .. code-block:: python

            from langchain_stella import StellaEmbeddings

            embeddings = StellaEmbeddings(model_name="stella-large-zh")

    Embed:
        .. code-block:: python

            vector = embeddings.embed_query("最近去打篮球了吗")
            vectors = embeddings.embed_documents(["篮球是一项运动", "乒乓球拍很轻"])
            vector = await embeddings.aembed_query("最近去打篮球了吗")

    The weights load on first use and are shared with every other stella-rag user of the same
    model in the process. Async calls do not block the event loop; concurrent calls are queued
    to the model's single worker thread, which merges them into batches.
    """

    model_name: str = DEFAULT_MODEL_NAME
    device: str | None = None
    precision: Literal["float32", "float16", "bfloat16"] | None = None
    batch_size: int | None = None
    normalize: bool = True
    truncate_dim: int | None = None
    show_progress: bool = False
    model_kwargs: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    _encoder: SentenceEncoder = PrivateAttr()
    _truncation: TruncationWarner = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._encoder = SentenceEncoder(
            self.model_name,
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
            normalize=self.normalize,
            truncate_dim=self.truncate_dim,
            **self.model_kwargs,
        )
        self._truncation = TruncationWarner(
            "StellaEmbeddings",
            "Split documents to the model's budget first: "
            "StellaTextSplitter(embeddings).split_documents(docs) "
            "(from langchain_stella import StellaTextSplitter).",
        )

    @property
    def encoder(self) -> SentenceEncoder:
        """The :class:`stella_rag.SentenceEncoder` doing the work."""
        return self._encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed passages (the document side of the model)."""
        self._truncation.check(self._encoder, texts)
        if not self.show_progress:
            return self._encoder.encode_documents(texts).tolist()
        from tqdm.auto import tqdm

        size = self._encoder.batch_size
        chunks = [texts[i : i + size] for i in range(0, len(texts), size)]
        parts = [self._encoder.encode_documents(c) for c in tqdm(chunks, desc="embedding")]
        return np.concatenate(parts).tolist() if parts else []

    def embed_query(self, text: str) -> list[float]:
        """Embed a query (the query side of the model)."""
        return self._encoder.encode_queries([text])[0].tolist()

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Like :meth:`embed_documents`, without blocking the event loop."""
        embeddings = (await self._encoder.aencode_documents(texts)).tolist()
        self._truncation.check(self._encoder, texts)  # loaded by now: no load on the loop
        return embeddings

    async def aembed_query(self, text: str) -> list[float]:
        """Like :meth:`embed_query`, without blocking the event loop."""
        return (await self._encoder.aencode_queries([text]))[0].tolist()
