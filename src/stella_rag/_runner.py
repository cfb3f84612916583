"""One worker thread per loaded model runs every forward pass.

Callers (threads, asyncio tasks) submit lists of texts and get a future. The worker takes
everything that is waiting, encodes it together, and hands each caller its rows, so concurrent
small requests are merged into full batches and the model never runs two forward passes at once.

Within a request, texts are tokenized once, sorted by length (longest first, so an out-of-memory
error shows up on the first batch), and cut into batches by a token budget: short texts go in
large batches, long ones in small batches, with little padding. A CUDA out-of-memory error
splits the batch in two and runs the halves; nothing is dropped and nothing sleeps.

Each request names its side, ``"query"`` or ``"document"``: the ``task`` that
sentence-transformers' ``encode_query`` / ``encode_document`` pass. For a model whose first
module is a ``Router`` (query and document routes), the texts are tokenized by their route's
tokenizer and the forward pass takes their route; other models ignore the side.

With ``backend="onnx-int8"`` the same batches go to an ONNX Runtime session instead of torch.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ._models import LoadedModel

__all__ = ["ModelRunner", "runner_for"]

_MERGE_CAP_TEXTS = 4096
"""At most this many waiting texts are merged into one worker round."""

_CPU_BATCH_TOKENS = 16_384

_CHARS_PER_TOKEN_CAP = 64
"""Texts are cut at ``max_len * 64`` characters before tokenizing (see ``ModelRunner.encode``)."""

_CPU_PAD_SLACK = 24
"""...unless it is at most 24 tokens shorter: that much padding costs less than a forward pass."""

_CPU_MIN_FILL = 0.9
"""On CPU, a batch holds only texts at least 0.9 times as long as its longest. A CPU spends as
much on a padding token as on a real one and gains little from large batches: on 192 texts of
mixed length with MiniLM this took the encode from 4.1 s (batches cut by the token budget
alone) to 2.6 s."""
_GPU_BATCH_TOKENS = 65_536

_MEMO_TEXTS = 64
"""Texts counted by :meth:`ModelRunner.count_tokens` whose tokens are kept for a forward pass.
A dialogue window counts the text it is about to encode; the pass then does not tokenize it
again. Only small counts (at most ``_MEMO_BATCH`` texts) are kept."""
_MEMO_BATCH = 8


Task = Literal["query", "document"]
_Bucket = tuple[int, int, Task | None, tuple[int, ...] | None]


@dataclass
class _Request:
    texts: list[str]
    max_len: int
    batch_size: int
    task: Task | None = None
    future: Future[np.ndarray] = field(default_factory=Future)
    on_rows: Callable[[int], None] | None = None
    pool_after: tuple[int, ...] | None = None


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    return isinstance(exc, oom) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc))


class ModelRunner:
    """Runs the forward passes of one loaded model on a single worker thread."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.max_batch_tokens = (
            _CPU_BATCH_TOKENS if loaded.device in ("cpu", "mps") else _GPU_BATCH_TOKENS
        )
        self.min_fill = _CPU_MIN_FILL if loaded.device == "cpu" else 0.0
        self.pad_slack = _CPU_PAD_SLACK
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stats_lock = threading.Lock()
        self._active = 0
        self._peak = 0
        self._passes = 0
        self._oom_splits = 0
        self._memo: OrderedDict[tuple[Task | None, str], dict[str, Any]] = OrderedDict()
        self._memo_lock = threading.Lock()
        self.forward: Callable[[dict[str, Any]], Any] = self._default_forward
        self._last_turn_pooling: dict[tuple[int, ...], dict[int, Any]] = {}

    # ----------------------------------------------------------------- public
    def submit(
        self,
        texts: list[str],
        max_len: int,
        batch_size: int,
        *,
        task: Task | None = None,
        on_rows: Callable[[int], None] | None = None,
        pool_after: Sequence[int] | None = None,
    ) -> Future[np.ndarray]:
        """Queue texts for encoding; the future's result is a float32 array (unnormalised).

        ``task`` is the side (``"query"`` or ``"document"``): the route of a ``Router`` model.
        ``on_rows`` is called on the worker after each forward pass with how many of these texts
        it encoded, so that a progress bar moves more often than once per request.
        ``pool_after``: token ids of a separator; the model's pooling then reads only the tokens
        after the last one (:class:`~stella_rag.modules.LastTurnPooling`), the rest of the model
        unchanged; the caller checks :meth:`check_pool_after` first.
        """
        request = _Request(
            texts,
            max_len,
            batch_size,
            task,
            on_rows=on_rows,
            pool_after=None if pool_after is None else tuple(int(i) for i in pool_after),
        )
        self._ensure_thread()
        self._queue.put(request)
        return request.future

    @property
    def router(self) -> Any:
        """The model's ``Router`` module when it routes queries and documents, else ``None``."""
        model = self.loaded.model
        try:
            first = model[0]
        except (TypeError, IndexError, KeyError):
            return None
        return first if hasattr(first, "sub_modules") and hasattr(first, "default_route") else None

    def count_tokens(
        self, texts: list[str], *, special_tokens: bool = True, task: Task | None = "query"
    ) -> list[int]:
        """Tokens of each text by the side's tokenizer (no truncation).

        The tokens of a few texts counted with special tokens are kept, so that encoding one of
        them next does not tokenize it again.
        """
        enc = self.tokenizer(task)(
            texts, add_special_tokens=special_tokens, truncation=False, verbose=False
        )
        if special_tokens and len(texts) <= _MEMO_BATCH:
            with self._memo_lock:
                for i, text in enumerate(texts):
                    self._memo[(task, text)] = {key: enc[key][i] for key in enc}
                    self._memo.move_to_end((task, text))
                while len(self._memo) > _MEMO_TEXTS:
                    self._memo.popitem(last=False)
        return [len(ids) for ids in enc["input_ids"]]

    def _tokenize(
        self, tokenizer: Any, texts: list[str], max_len: int, task: Task | None
    ) -> dict[str, list[Any]]:
        """Tokenize for a forward pass, reusing the tokens of texts counted just before."""
        known: dict[int, dict[str, Any]] = {}
        if self._memo:
            with self._memo_lock:
                for i, text in enumerate(texts):
                    found = self._memo.get((task, text))
                    if found is not None and len(found["input_ids"]) <= max_len:
                        known[i] = found
        rest = [i for i in range(len(texts)) if i not in known]
        fresh: Any = {}
        if rest:
            fresh = tokenizer(
                [texts[i] for i in rest],
                add_special_tokens=True,
                truncation=True,
                max_length=max_len,
            )
            if not known:
                return {key: list(values) for key, values in fresh.items()}
        keys = list(fresh) if rest else list(next(iter(known.values())))
        out: dict[str, list[Any]] = {key: [None] * len(texts) for key in keys}
        for i, found in known.items():
            for key in keys:
                out[key][i] = found[key]
        for j, i in enumerate(rest):
            for key in keys:
                out[key][i] = fresh[key][j]
        return out

    def tokenizer(self, task: Task | None = None) -> Any:
        """The tokenizer of one side: its route's for a ``Router`` model, else the model's."""
        router = self.router
        if router is not None:
            route = router._resolve_route(task=task)
            for module in router.sub_modules[route]:
                found = getattr(module, "tokenizer", None)
                if found is not None:
                    return found
        return getattr(self.loaded.model, "tokenizer", None)

    def stats(self) -> dict[str, int]:
        with self._stats_lock:
            return {
                "forward_passes": self._passes,
                "peak_concurrent_forward_passes": self._peak,
                "oom_splits": self._oom_splits,
            }

    # ----------------------------------------------------------------- worker
    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name=f"stella-rag-{self.loaded.source.model_id}", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            group = [self._queue.get()]
            waiting = len(group[0].texts)
            while waiting < _MERGE_CAP_TEXTS:
                try:
                    request = self._queue.get_nowait()
                except queue.Empty:
                    break
                group.append(request)
                waiting += len(request.texts)
            buckets: dict[_Bucket, list[_Request]] = defaultdict(list)
            for request in group:
                if request.future.set_running_or_notify_cancel():
                    key = (request.max_len, request.batch_size, request.task, request.pool_after)
                    buckets[key].append(request)
            for key, requests in buckets.items():
                self._serve(requests, *key)

    def _serve(
        self,
        requests: list[_Request],
        max_len: int,
        batch_size: int,
        task: Task | None,
        pool_after: tuple[int, ...] | None = None,
    ) -> None:
        texts = [t for r in requests for t in r.texts]
        on_rows = _split_progress(requests)
        try:
            vectors = self.encode(
                texts, max_len, batch_size, task=task, on_rows=on_rows, pool_after=pool_after
            )
        except BaseException as exc:  # handed to every caller; the worker lives on
            for r in requests:
                r.future.set_exception(exc)
            return
        start = 0
        for r in requests:
            r.future.set_result(vectors[start : start + len(r.texts)])
            start += len(r.texts)

    # --------------------------------------------------------------- encoding
    def encode(
        self,
        texts: list[str],
        max_len: int,
        batch_size: int,
        *,
        task: Task | None = None,
        on_rows: Callable[[np.ndarray], None] | None = None,
        pool_after: tuple[int, ...] | None = None,
    ) -> np.ndarray:
        """Encode on the calling thread (the worker calls this)."""
        model: Any = self.loaded.model
        tokenizer = self.tokenizer(task)
        if pool_after is not None and (tokenizer is None or not callable(tokenizer)):
            raise ValueError(f"{self.loaded.source.model_id!r} has no tokenizer to pool by")
        if tokenizer is None or not callable(tokenizer):
            kwargs = {} if task is None else {"task": task}
            return np.asarray(
                model.encode(texts, batch_size=batch_size, convert_to_numpy=True, **kwargs),
                np.float32,
            )
        # No token can be made of less than one character, and tokenizing a megabyte to keep
        # its first 512 tokens costs seconds: cut very long texts well past what is kept.
        cap = max_len * _CHARS_PER_TOKEN_CAP
        texts = [t if len(t) <= cap else t[:cap] for t in texts]
        enc = self._tokenize(tokenizer, texts, max_len, task)
        lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        min_fill = self.min_fill
        out: np.ndarray | None = None
        i = 0
        while i < len(texts):
            longest = max(int(lengths[order[i]]), 1)
            take = max(1, min(batch_size, self.max_batch_tokens // longest))
            if min_fill > 0:  # stop where padding would exceed what the batch really holds
                window = lengths[order[i : i + take]]
                # ...but a few tokens of padding cost less than one more forward pass.
                floor = min(min_fill * longest, longest - self.pad_slack)
                short = np.nonzero(window < floor)[0]
                if len(short) and short[0] > 0:
                    take = int(short[0])
            idx = order[i : i + take]
            rows = self._forward_rows(tokenizer, enc, idx, task, pool_after)
            if out is None:
                out = np.empty((len(texts), rows.shape[1]), dtype=np.float32)
            out[idx] = rows
            if on_rows is not None:
                on_rows(idx)
            i += take
        assert out is not None
        return out

    def _forward_rows(
        self,
        tokenizer: Any,
        enc: Any,
        idx: np.ndarray,
        task: Task | None = None,
        pool_after: tuple[int, ...] | None = None,
    ) -> np.ndarray:
        import torch

        session = self.loaded.session
        batch = {key: [enc[key][j] for j in idx] for key in enc}
        features: dict[str, Any] = tokenizer.pad(
            batch, padding=True, return_tensors="np" if session is not None else "pt"
        )
        if session is None:
            device = self.loaded.model.device
            features = {k: v.to(device) for k, v in features.items()}
            if task is not None and self.router is not None:
                features["task"] = task  # the Router reads its route here, as encode() sets it
        try:
            with self._one_pass(), torch.inference_mode():
                if pool_after is None:
                    embeddings = self.forward(features)
                else:
                    embeddings = self._forward_pooled_after(features, pool_after)
            return _as_float32(embeddings)
        except BaseException as exc:
            if len(idx) == 1 or not is_out_of_memory(exc):
                raise
        # Out of memory: free what we can and run the two halves (each may split again).
        with self._stats_lock:
            self._oom_splits += 1
        del features
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(idx) // 2
        return np.concatenate(
            [
                self._forward_rows(tokenizer, enc, idx[:half], task, pool_after),
                self._forward_rows(tokenizer, enc, idx[half:], task, pool_after),
            ]
        )

    def _default_forward(self, features: dict[str, Any]) -> Any:
        session = self.loaded.session
        if session is not None:
            names = [i.name for i in session.get_inputs()]
            feeds = {n: np.asarray(features[n], dtype=np.int64) for n in names}
            return session.run(None, feeds)[0]
        return self.loaded.model(features)["sentence_embedding"]

    def check_pool_after(self) -> None:
        """Raise ``ValueError`` if this model cannot pool the tokens after a separator."""
        why = None
        if self.loaded.session is not None:
            why = "its onnx-int8 graph has the pooling built in (use backend='torch' or 'onnx')"
        elif self.router is not None:
            why = "it is a Router model"
        elif not any(_is_pooling(m) for m in self.loaded.model):
            why = "it has no sentence-transformers Pooling module"
        if why is not None:
            raise ValueError(
                f"{self.loaded.source.model_id!r} cannot pool the last turn's tokens: {why}"
            )

    def _forward_pooled_after(self, features: dict[str, Any], separator: tuple[int, ...]) -> Any:
        """The model's forward pass with its Pooling swapped for a last-turn pooling."""
        swapped = self._last_turn_pooling.get(separator)
        if swapped is None:
            from .modules import LastTurnPooling

            swapped = {}
            model: Any = self.loaded.model
            for module in model:
                if _is_pooling(module):
                    pooling = LastTurnPooling(
                        module.embedding_dimension,
                        pooling_mode=module.pooling_mode,
                        include_prompt=module.include_prompt,
                        separator_ids=list(separator),
                    )
                    swapped[id(module)] = pooling.to(self.loaded.model.device)
            self._last_turn_pooling[separator] = swapped
        for module in self.loaded.model:
            features = swapped.get(id(module), module)(features)
        return features["sentence_embedding"]

    @contextlib.contextmanager
    def _one_pass(self) -> Iterator[None]:
        with self._stats_lock:
            self._active += 1
            self._passes += 1
            self._peak = max(self._peak, self._active)
        try:
            yield
        finally:
            with self._stats_lock:
                self._active -= 1


def _is_pooling(module: Any) -> bool:
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # sentence-transformers 5
        from sentence_transformers.models import Pooling  # type: ignore[no-redef]
    return isinstance(module, Pooling)


def _as_float32(embeddings: Any) -> np.ndarray:
    if isinstance(embeddings, np.ndarray):
        return np.asarray(embeddings, dtype=np.float32)
    return np.asarray(embeddings.float().cpu().numpy(), dtype=np.float32)


_RUNNERS: dict[int, ModelRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def _split_progress(requests: list[_Request]) -> Callable[[np.ndarray], None] | None:
    """Turn "these rows of the merged texts are done" into each request's own count."""
    if not any(r.on_rows is not None for r in requests):
        return None
    owner = np.repeat(np.arange(len(requests)), [len(r.texts) for r in requests])

    def done(idx: np.ndarray) -> None:
        counts = np.bincount(owner[idx], minlength=len(requests))
        for request, n in zip(requests, counts, strict=True):
            if n and request.on_rows is not None:
                # A progress display must never fail the encoding.
                with contextlib.suppress(Exception):
                    request.on_rows(int(n))

    return done


def runner_for(loaded: LoadedModel) -> ModelRunner:
    """The one runner of a loaded model."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(id(loaded))
        if runner is None or runner.loaded is not loaded:
            runner = ModelRunner(loaded)
            _RUNNERS[id(loaded)] = runner
        return runner
