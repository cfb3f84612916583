"""Several devices on one machine: sentence-transformers' own multi-process pool, kept alive.

``SentenceEncoder(device=["cuda:0", "cuda:1"])`` encodes through
``SentenceTransformer.start_multi_process_pool``: one process per device, each with its own copy
of the model, fed chunks of the texts. sentence-transformers' ``encode(device=[...])`` starts and
stops such a pool on every call (seconds per call: each process imports torch and receives the
model); here the pool starts on first use and is kept until :func:`stop_pools`, the encoder's
``close()`` or the end of the process. Every encoder of the process with the same model,
precision and devices shares one pool.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal

import numpy as np

from ._models import LoadedModel

__all__ = ["DevicePool", "device_pool", "parse_devices", "stop_pools"]

Side = Literal["query", "document"]


def parse_devices(device: Any) -> tuple[str, ...] | None:
    """The devices of a list such as ``["cuda:0", "cuda:1"]``; ``None`` for one device."""
    if device is None or isinstance(device, str):
        return None
    if not isinstance(device, Sequence) or not device:
        raise TypeError(
            f"device must be a name such as 'cuda' or a list of them such as ['cuda:0', "
            f"'cuda:1'], got {device!r}"
        )
    for item in device:
        if not isinstance(item, str) or not item:
            raise TypeError(f"device lists hold device names such as 'cuda:0', got {item!r}")
    return tuple(device)


class DevicePool:
    """One pool of worker processes, one per device; calls are served one at a time."""

    def __init__(self, loaded: LoadedModel, devices: tuple[str, ...]) -> None:
        self.loaded = loaded
        self.devices = devices
        self._pool: dict[Any, Any] | None = None
        self._lock = threading.Lock()
        # One caller at a time: the pool's queues carry chunk numbers, not callers.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="stella-rag-pool")

    @property
    def started(self) -> bool:
        return self._pool is not None

    def start(self) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = self.loaded.model.start_multi_process_pool(list(self.devices))

    def stop(self) -> None:
        with self._lock:
            if self._pool is not None:
                self.loaded.model.stop_multi_process_pool(self._pool)
                self._pool = None

    def submit(
        self, texts: list[str], max_len: int, batch_size: int, side: Side
    ) -> Future[np.ndarray]:
        """Queue texts (prompts already added); the result is float32, not normalised."""
        return self._executor.submit(self._encode, texts, max_len, batch_size, side)

    def _encode(self, texts: list[str], max_len: int, batch_size: int, side: Side) -> np.ndarray:
        self.start()
        kwargs: dict[str, Any] = {"processing_kwargs": {"text": {"max_length": max_len}}}
        if _is_router(self.loaded.model):
            kwargs["task"] = side
        vectors = self.loaded.model.encode(
            texts,
            pool=self._pool,
            prompt="",  # the encoder has put its side's prompt before each text already
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
            **kwargs,
        )
        return np.asarray(vectors, dtype=np.float32)


def _is_router(model: Any) -> bool:
    try:
        first = model[0]
    except (TypeError, IndexError, KeyError):
        return False
    return hasattr(first, "sub_modules") and hasattr(first, "default_route")


_POOLS: dict[tuple[int, tuple[str, ...]], DevicePool] = {}
_POOLS_LOCK = threading.Lock()


def device_pool(loaded: LoadedModel, devices: tuple[str, ...]) -> DevicePool:
    """The one pool of a loaded model over these devices (not started until used)."""
    with _POOLS_LOCK:
        pool = _POOLS.get((id(loaded), devices))
        if pool is None or pool.loaded is not loaded:
            pool = _POOLS[(id(loaded), devices)] = DevicePool(loaded, devices)
        return pool


@atexit.register
def stop_pools() -> None:
    """Stop every pool of the process (they start again on next use)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
    for pool in pools:
        pool.stop()
