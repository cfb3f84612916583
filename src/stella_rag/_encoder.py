"""SentenceEncoder: any sentence-transformers model, batched for speed, shared per process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np

from ._models import (
    Backend,
    LoadedModel,
    Precision,
    default_precision,
    load_model,
    resolve_device,
    resolve_model,
)
from ._pool import DevicePool, device_pool, parse_devices
from ._runner import ModelRunner, runner_for
from ._validate import check_texts

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["DEFAULT_MODEL", "Encoder", "SentenceEncoder", "TokenCounter"]

DEFAULT_MODEL = "stella-large-zh"
"""The document encoder used wherever none is named (CLI, ChromaStore.open, the adapters)."""

Side = Literal["query", "document"]

# The prompts sentence-transformers' encode_query / encode_document try, in this order.
_PROMPT_NAMES: dict[Side, tuple[str, ...]] = {
    "query": ("query",),
    "document": ("document", "passage", "corpus"),
}


@runtime_checkable
class Encoder(Protocol):
    """What stella-rag needs of a document encoder: two sides, a dimension and an id.

    :class:`SentenceEncoder` is one; :class:`stella_rag.testing.FakeEncoder` is another.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class TokenCounter(Encoder, Protocol):
    """An :class:`Encoder` that also counts tokens, as the dialogue side's windowing needs."""

    @property
    def max_seq_length(self) -> int: ...

    def count_tokens(self, texts: Sequence[str], *, special_tokens: bool = True) -> list[int]: ...

    def keep_last_tokens(self, text: str, n: int) -> str: ...


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
        device: ``"cuda"``, ``"mps"``, ``"cpu"``...; default: CUDA, else MPS, else CPU. A list
            of devices (``["cuda:0", "cuda:1"]``) encodes on all of them through
            sentence-transformers' multi-process pool, started on first use and kept (see
            :meth:`close`).
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
        device: str | Sequence[str] | None = None,
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
        devices = parse_devices(device)
        if devices is not None and len(devices) > 1 and backend != "torch":
            raise ValueError(
                f"several devices ({list(devices)}) need backend='torch', got {backend!r}"
            )
        # Several devices: the pool's processes run the forward passes; this process keeps a
        # copy on the CPU (tokenizer, dimension), in the precision the pool's copies get.
        self._pool_devices = devices if devices is not None and len(devices) > 1 else None
        self._load_device: str | None = "cpu" if self._pool_devices else None
        if self._pool_devices is None and devices:
            self._load_device = devices[0]
        elif self._pool_devices is None and isinstance(device, str):
            self._load_device = device
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
                device=self._load_device,
                precision=self._precision if self._pool_devices is None else self.precision,
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
        """Load the weights now rather than on first use (and start a multi-device pool)."""
        self._load()
        if self._pool_devices is not None:
            self._device_pool().start()
        return self

    def _device_pool(self) -> DevicePool:
        assert self._pool_devices is not None
        return device_pool(self._load(), self._pool_devices)

    def close(self) -> None:
        """Stop the worker processes of a multi-device encoder (shared with every encoder of the
        same model and devices; the next call starts them again). Nothing to do otherwise."""
        if self._pool_devices is not None and self._loaded is not None:
            self._device_pool().stop()

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def get_config(self) -> dict[str, Any]:
        """The arguments this encoder was made with: ``SentenceEncoder(**config)`` makes it
        again (in another process, for example a Ray actor)."""
        device = self._device_arg
        return {
            "model": os.fspath(self._model_arg),
            "device": list(device) if isinstance(device, (list, tuple)) else device,
            "precision": self._precision,
            "batch_size": self._batch_size,
            "max_seq_length": self._max_seq_length,
            "truncate_dim": self._truncate_dim,
            "normalize": self.normalize,
            "cache_folder": self._cache_folder,
            "backend": self._backend,
            "trust_remote_code": self._trust_remote_code,
        }

    # --------------------------------------------------------------- properties
    @property
    def model_id(self) -> str:
        """The hub id (for aliases and hub models) or the absolute folder (for local models)."""
        return self._source.model_id

    @property
    def device(self) -> str:
        """Where the forward passes run (the first device of a multi-device encoder)."""
        if self._pool_devices is not None:
            return self._pool_devices[0]
        if self._loaded is not None:
            return self._loaded.device
        return resolve_device(self._load_device)

    @property
    def devices(self) -> tuple[str, ...]:
        """Every device the forward passes run on."""
        return self._pool_devices or (self.device,)

    @property
    def precision(self) -> Precision:
        if self._loaded is not None:
            return self._loaded.precision
        return self._precision or default_precision(self.device)

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
        """The tokenizer of the query side (the same as the document side's, unless the model is
        a ``Router`` whose routes tokenize differently)."""
        return self._runner.tokenizer("query")

    def __repr__(self) -> str:
        return (
            f"SentenceEncoder({self.model_id!r}, "
            f"device={list(self.devices) if self._pool_devices else self.device!r}, "
            f"precision={self.precision!r}, normalize={self.normalize})"
        )

    # ----------------------------------------------------------------- encoding
    def _prompt(self, side: Side) -> str:
        """The prompt put before each text of one side, as ``encode_query`` /
        ``encode_document`` of sentence-transformers choose it: the model's ``"query"`` prompt
        for queries; its ``"document"``, else ``"passage"``, else ``"corpus"`` prompt for
        documents; else its default prompt; else none."""
        model = self._load().model
        prompts = getattr(model, "prompts", None) or {}
        for name in _PROMPT_NAMES[side]:
            if name in prompts:
                return str(prompts[name] or "")
        default = getattr(model, "default_prompt_name", None)
        return str(prompts.get(default) or "") if default else ""

    def _submit(
        self,
        texts: list[str],
        side: Side,
        on_progress: Callable[[int], None] | None = None,
        pool_after: list[int] | None = None,
    ) -> Future[np.ndarray]:
        prompt = self._prompt(side)
        if prompt:
            texts = [prompt + t for t in texts]
        if self._pool_devices is not None:
            assert pool_after is None, "check_last_turns() first"
            return self._device_pool().submit(texts, self.max_seq_length, self.batch_size, side)
        return self._runner.submit(
            texts,
            self.max_seq_length,
            self.batch_size,
            task=side,
            on_rows=on_progress,
            pool_after=pool_after,
        )

    def _finish(self, vectors: np.ndarray) -> np.ndarray:
        if self._truncate_dim is not None:
            vectors = vectors[:, : self._truncate_dim]
        if self.normalize:
            vectors = _unit_rows(vectors)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _empty(self) -> np.ndarray:
        return np.empty((0, self.dim if self.is_loaded else 0), dtype=np.float32)

    def _encode(
        self, texts: Sequence[str], side: Side, on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        items = check_texts(texts)
        if not items:
            return self._empty()
        return self._finish(self._submit(items, side, on_progress).result())

    async def _aencode(self, texts: Sequence[str], side: Side) -> np.ndarray:
        items = check_texts(texts)
        if not items:
            return self._empty()
        if self._loaded is None:  # loading takes seconds: keep it off the event loop
            await asyncio.to_thread(self._load)
        return self._finish(await asyncio.wrap_future(self._submit(items, side)))

    def encode_documents(
        self, texts: Sequence[str], *, on_progress: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Embed passages: a float32 array of shape ``(len(texts), dim)``.

        Args:
            on_progress: called (from the model's worker thread) after each forward pass with
                how many more of ``texts`` are encoded.
        """
        return self._encode(texts, "document", on_progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Embed queries (uses the model's ``"query"`` prompt when it has one)."""
        return self._encode(texts, "query")

    def encode_last_turns(self, texts: Sequence[str], separator: str = "[SEP]") -> np.ndarray:
        """Query vectors of formatted chats, pooled over the last turn's tokens only.

        The whole text goes through the transformer, so the last turn's tokens are read in the
        context of the turns before it; the model's pooling then averages only the tokens after
        the last ``separator`` (:class:`~stella_rag.modules.LastTurnPooling`; the CQE idea).
        Any Dense/Normalize modules after the pooling run as usual, so the vectors are in the
        same space as :meth:`encode_documents`. A text without the separator is pooled whole.

        Raises:
            ValueError: the model cannot pool this way (an onnx-int8 encoder, whose graph has
                its pooling built in; a Router model; a model without a Pooling module; an
                encoder on several devices).
        """
        items = check_texts(texts)
        if not isinstance(separator, str) or not separator:
            raise ValueError(f"separator must be a non-empty string, got {separator!r}")
        self.check_last_turns()
        ids = self.tokenizer(separator, add_special_tokens=False)["input_ids"]
        if not items:
            return self._empty()
        return self._finish(self._submit(items, "query", pool_after=list(ids)).result())

    def check_last_turns(self) -> None:
        """Raise ``ValueError`` now if :meth:`encode_last_turns` cannot work for this model."""
        if self._pool_devices is not None:
            raise ValueError(
                "pooling only the last turn needs a single-device encoder; this one runs on "
                f"{list(self._pool_devices)}"
            )
        self._runner.check_pool_after()

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
        return self._runner.count_tokens(list(texts), special_tokens=special_tokens)

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
    """An encoder instance from an encoder (any :class:`Encoder`) or a model name."""
    if encoder is None or isinstance(encoder, (str, os.PathLike)):
        return SentenceEncoder(encoder if encoder is not None else DEFAULT_MODEL, **kwargs)
    for attr in ("encode_documents", "encode_queries", "dim", "model_id"):
        if not hasattr(encoder, attr):  # before isinstance(Encoder): that would read dim
            raise TypeError(
                f"encoder must be a SentenceEncoder, a model name or an object with {attr!r}; "
                f"got {type(encoder).__name__}"
            )
    return encoder


def describe_model(name: str | os.PathLike[str], **kwargs: Any) -> dict[str, Any]:
    """A model's id and, when it loads, its dimension, sequence length, device and precision.

    A model that cannot be loaded is described with ``available: False`` and the ``error``.
    """
    from ._errors import StellaRagError

    encoder = SentenceEncoder(name, **kwargs)
    entry: dict[str, Any] = {"name": os.fspath(name), "model_id": encoder.model_id}
    try:
        encoder.load()
    except StellaRagError as exc:
        return {**entry, "available": False, "error": " ".join(str(exc).split())}
    return {
        **entry,
        "available": True,
        "dim": encoder.dim,
        "max_seq_length": encoder.max_seq_length,
        "device": encoder.device,
        "precision": encoder.precision,
    }
