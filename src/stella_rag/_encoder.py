"""SentenceEncoder: any sentence-transformers model, batched for speed, shared per process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._models import Backend, LoadedModel, Precision, load_model, resolve_device, resolve_model
from ._runner import ModelRunner, runner_for
from ._validate import check_texts

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["SentenceEncoder"]

DEFAULT_MODEL = "stella-large-zh"


def _full_dim(model: Any) -> int | None:
    getter = getattr(model, "get_embedding_dimension", None)
    dim = getter() if getter is not None else model.get_sentence_embedding_dimension()
    return None if dim is None else int(dim)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    return vectors / norms


class SentenceEncoder:
    """A sentence-transformers encoder with a document side and a query side.

    Args:
        model: a short alias (``"stella-large-zh"``, ``"minilm"``, ...), a hub id or a folder.
        device: ``"cuda"``, ``"mps"``, ``"cpu"``...; default: CUDA, else MPS, else CPU.
        precision: ``"float32"``, ``"float16"`` or ``"bfloat16"``; default float16 on CUDA,
            float32 elsewhere.
        batch_size: at most this many texts per forward pass (default 64 on CPU, 512 on GPU).
            Batches are formed from length-sorted texts and also capped by a token budget.
        max_seq_length: tokens kept per text (default: the model's own limit).
        truncate_dim: keep only the first ``truncate_dim`` dimensions (Matryoshka models).
        normalize: return unit-length vectors (dot product = cosine similarity).
        cache_folder: where hub models are cached.
        backend: ``"torch"`` (default); ``"onnx-int8"``, the CPU fast path (the model exported
            once to ONNX with int8 weights, cached on disk, run by ONNX Runtime; needs
            ``pip install 'stella-rag[fast]'``, see docs/benchmarks.md); or sentence-transformers'
            own ``"onnx"`` / ``"openvino"`` backends.
        trust_remote_code: run code shipped with the model; off unless you trust its author.

    The weights load on first use. Every encoder in the process that asks for the same model,
    device, precision and backend shares one copy, and one worker thread runs its forward passes.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] = DEFAULT_MODEL,
        *,
        device: str | None = None,
        precision: Precision | None = None,
        batch_size: int | None = None,
        max_seq_length: int | None = None,
        truncate_dim: int | None = None,
        normalize: bool = True,
        cache_folder: str | None = None,
        backend: Backend = "torch",
        trust_remote_code: bool = False,
    ) -> None:
        self._source = resolve_model(model)
        for name, value in (
            ("batch_size", batch_size),
            ("max_seq_length", max_seq_length),
            ("truncate_dim", truncate_dim),
        ):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < 1
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if precision is not None and precision not in ("float32", "float16", "bfloat16"):
            raise ValueError(
                f"precision must be 'float32', 'float16' or 'bfloat16', got {precision!r}"
            )
        self._model_arg = model
        self._device_arg = device
        self._precision = precision
        self._batch_size = batch_size
        self._max_seq_length = max_seq_length
        self._truncate_dim = truncate_dim
        self.normalize = bool(normalize)
        self._cache_folder = cache_folder
        self._backend: Backend = backend
        self._trust_remote_code = trust_remote_code
        self._loaded: LoadedModel | None = None

    # ------------------------------------------------------------------ loading
    def _load(self) -> LoadedModel:
        if self._loaded is None:
            self._loaded = load_model(
                self._model_arg,
                device=self._device_arg,
                precision=self._precision,
                backend=self._backend,
                cache_folder=self._cache_folder,
                trust_remote_code=self._trust_remote_code,
            )
            full = _full_dim(self._loaded.model)
            if self._truncate_dim is not None and full is not None and self._truncate_dim > full:
                raise ValueError(
                    f"truncate_dim={self._truncate_dim} is larger than the {full} dimensions of "
                    f"{self.model_id!r}"
                )
        return self._loaded

    @property
    def _runner(self) -> ModelRunner:
        return runner_for(self._load())

    def load(self) -> SentenceEncoder:
        """Load the weights now rather than on first use."""
        self._load()
        return self

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    # --------------------------------------------------------------- properties
    @property
    def model_id(self) -> str:
        """The hub id (for aliases and hub models) or the absolute folder (for local models)."""
        return self._source.model_id

    @property
    def device(self) -> str:
        if self._loaded is not None:
            return self._loaded.device
        return resolve_device(self._device_arg)

    @property
    def precision(self) -> str:
        if self._loaded is not None:
            return self._loaded.precision
        return self._precision or ("float16" if self.device.startswith("cuda") else "float32")

    @property
    def backend(self) -> str:
        return self._backend

    @property
    def truncate_dim(self) -> int | None:
        return self._truncate_dim

    @property
    def dim(self) -> int:
        """The dimension of the vectors this encoder returns (loads the model)."""
        full = _full_dim(self._load().model)
        if full is None:
            raise RuntimeError(f"model {self.model_id!r} does not report its embedding dimension")
        return min(full, self._truncate_dim) if self._truncate_dim else full

    @property
    def max_seq_length(self) -> int:
        """Tokens kept per text, special tokens included."""
        if self._max_seq_length is not None:
            return self._max_seq_length
        return int(self._load().model.max_seq_length or 512)

    @property
    def batch_size(self) -> int:
        if self._batch_size is not None:
            return self._batch_size
        return 64 if self.device == "cpu" else 512

    @property
    def tokenizer(self) -> Any:
        return self._load().model.tokenizer

    def __repr__(self) -> str:
        return (
            f"SentenceEncoder({self.model_id!r}, device={self.device!r}, "
            f"precision={self.precision!r}, normalize={self.normalize})"
        )

    # ----------------------------------------------------------------- encoding
    def _prompt(self, side: str) -> str:
        prompts = getattr(self._load().model, "prompts", None) or {}
        return str(prompts.get(side) or "")

    def _submit(self, texts: list[str], side: str) -> Future[np.ndarray]:
        prompt = self._prompt(side)
        if prompt:
            texts = [prompt + t for t in texts]
        return self._runner.submit(texts, self.max_seq_length, self.batch_size)

    def _finish(self, vectors: np.ndarray) -> np.ndarray:
        if self._truncate_dim is not None:
            vectors = vectors[:, : self._truncate_dim]
        if self.normalize:
            vectors = _unit_rows(vectors)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _empty(self) -> np.ndarray:
        return np.empty((0, self.dim if self.is_loaded else 0), dtype=np.float32)

    def _encode(self, texts: Sequence[str], side: str) -> np.ndarray:
        items = check_texts(texts)
        if not items:
            return self._empty()
        return self._finish(self._submit(items, side).result())

    async def _aencode(self, texts: Sequence[str], side: str) -> np.ndarray:
        items = check_texts(texts)
        if not items:
            return self._empty()
        if self._loaded is None:  # loading takes seconds: keep it off the event loop
            await asyncio.to_thread(self._load)
        return self._finish(await asyncio.wrap_future(self._submit(items, side)))

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed passages: a float32 array of shape ``(len(texts), dim)``."""
        return self._encode(texts, "document")

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries (uses the model's ``"query"`` prompt when it has one)."""
        return self._encode(texts, "query")

    async def aencode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Like :meth:`encode_documents`, without blocking the event loop."""
        return await self._aencode(texts, "document")

    async def aencode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Like :meth:`encode_queries`, without blocking the event loop."""
        return await self._aencode(texts, "query")

    # --------------------------------------------------------------- tokenizing
    def count_tokens(self, texts: Sequence[str], *, special_tokens: bool = True) -> list[int]:
        """How many tokens the model's tokenizer makes of each text (no truncation)."""
        if not texts:
            return []
        ids = self.tokenizer(
            list(texts), add_special_tokens=special_tokens, truncation=False, verbose=False
        )["input_ids"]
        return [len(x) for x in ids]

    def keep_last_tokens(self, text: str, n: int) -> str:
        """The end of ``text`` that makes at most ``n`` tokens (no special tokens)."""
        if n <= 0:
            return ""
        enc = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets = enc["offset_mapping"]
        if len(offsets) <= n:
            return text
        return text[offsets[-n][0] :]

    # -------------------------------------------------------------- diagnostics
    def runner_stats(self) -> dict[str, int]:
        """Forward passes run so far for this model, and the most ever run at once."""
        return self._runner.stats()


def same_model(a: object, b: object) -> bool:
    """Whether two encoders embed into the same space (same model id and dimension)."""
    return bool(
        getattr(a, "model_id", None) == getattr(b, "model_id", None)
        and getattr(a, "dim", None) == getattr(b, "dim", None)
    )


def resolve_encoder(encoder: Any, **kwargs: Any) -> Any:
    """An encoder instance from an encoder or a model name."""
    if encoder is None or isinstance(encoder, (str, os.PathLike)):
        return SentenceEncoder(encoder if encoder is not None else DEFAULT_MODEL, **kwargs)
    for attr in ("encode_documents", "encode_queries", "dim", "model_id"):
        if not hasattr(encoder, attr):
            raise TypeError(
                f"encoder must be a SentenceEncoder, a model name or an object with {attr!r}; "
                f"got {type(encoder).__name__}"
            )
    return encoder
