"""One worker thread per loaded model runs every forward pass.

Callers (threads, asyncio tasks) submit lists of texts and get a future. The worker takes
everything that is waiting, encodes it together, and hands each caller its rows, so concurrent
small requests are merged into full batches and the model never runs two forward passes at once.

Within a request, texts are tokenized once, sorted by length (longest first, so an out-of-memory
error shows up on the first batch), and cut into batches by a token budget: short texts go in
large batches, long ones in small batches, with little padding. A CUDA out-of-memory error
splits the batch in two and runs the halves; nothing is dropped and nothing sleeps.

With ``backend="onnx-int8"`` the same batches go to an ONNX Runtime session instead of torch.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class _Request:
    texts: list[str]
    max_len: int
    batch_size: int
    future: Future[np.ndarray] = field(default_factory=Future)


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
        self.forward: Callable[[dict[str, Any]], Any] = self._default_forward

    # ----------------------------------------------------------------- public
    def submit(self, texts: list[str], max_len: int, batch_size: int) -> Future[np.ndarray]:
        """Queue texts for encoding; the future's result is a float32 array (unnormalised)."""
        request = _Request(texts, max_len, batch_size)
        self._ensure_thread()
        self._queue.put(request)
        return request.future

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
            buckets: dict[tuple[int, int], list[_Request]] = defaultdict(list)
            for request in group:
                if request.future.set_running_or_notify_cancel():
                    buckets[(request.max_len, request.batch_size)].append(request)
            for (max_len, batch_size), requests in buckets.items():
                self._serve(requests, max_len, batch_size)

    def _serve(self, requests: list[_Request], max_len: int, batch_size: int) -> None:
        texts = [t for r in requests for t in r.texts]
        try:
            vectors = self.encode(texts, max_len, batch_size)
        except BaseException as exc:  # handed to every caller; the worker lives on
            for r in requests:
                r.future.set_exception(exc)
            return
        start = 0
        for r in requests:
            r.future.set_result(vectors[start : start + len(r.texts)])
            start += len(r.texts)

    # --------------------------------------------------------------- encoding
    def encode(self, texts: list[str], max_len: int, batch_size: int) -> np.ndarray:
        """Encode on the calling thread (the worker calls this)."""
        model = self.loaded.model
        tokenizer = getattr(model, "tokenizer", None)
        if tokenizer is None or not callable(tokenizer):
            return np.asarray(
                model.encode(texts, batch_size=batch_size, convert_to_numpy=True), np.float32
            )
        # No token can be made of less than one character, and tokenizing a megabyte to keep
        # its first 512 tokens costs seconds: cut very long texts well past what is kept.
        cap = max_len * _CHARS_PER_TOKEN_CAP
        texts = [t if len(t) <= cap else t[:cap] for t in texts]
        enc = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_len)
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
            rows = self._forward_rows(tokenizer, enc, idx)
            if out is None:
                out = np.empty((len(texts), rows.shape[1]), dtype=np.float32)
            out[idx] = rows
            i += take
        assert out is not None
        return out

    def _forward_rows(self, tokenizer: Any, enc: Any, idx: np.ndarray) -> np.ndarray:
        import torch

        session = self.loaded.session
        batch = {key: [enc[key][j] for j in idx] for key in enc}
        features: dict[str, Any] = tokenizer.pad(
            batch, padding=True, return_tensors="np" if session is not None else "pt"
        )
        if session is None:
            device = self.loaded.model.device
            features = {k: v.to(device) for k, v in features.items()}
        try:
            with self._one_pass(), torch.inference_mode():
                embeddings = self.forward(features)
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
                self._forward_rows(tokenizer, enc, idx[:half]),
                self._forward_rows(tokenizer, enc, idx[half:]),
            ]
        )

    def _default_forward(self, features: dict[str, Any]) -> Any:
        session = self.loaded.session
        if session is not None:
            names = [i.name for i in session.get_inputs()]
            feeds = {n: np.asarray(features[n], dtype=np.int64) for n in names}
            return session.run(None, feeds)[0]
        return self.loaded.model(features)["sentence_embedding"]

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


def _as_float32(embeddings: Any) -> np.ndarray:
    if isinstance(embeddings, np.ndarray):
        return np.asarray(embeddings, dtype=np.float32)
    return np.asarray(embeddings.float().cpu().numpy(), dtype=np.float32)


_RUNNERS: dict[int, ModelRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def runner_for(loaded: LoadedModel) -> ModelRunner:
    """The one runner of a loaded model."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(id(loaded))
        if runner is None or runner.loaded is not loaded:
            runner = ModelRunner(loaded)
            _RUNNERS[id(loaded)] = runner
        return runner
