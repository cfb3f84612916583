"""The per-model worker: token-budget batches, out-of-memory splits, merged concurrent callers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from stella_rag import SentenceEncoder
from stella_rag._models import LoadedModel, load_model
from stella_rag._runner import ModelRunner, runner_for

TEXTS = [
    "price",
    "the phone battery lasts a day " * 6,
    "你好 我 去 打 篮 球",
    "what is the price of the new phone",
    "museum open monday " * 12,
    "a",
    "river bridge city weather rain book " * 3,
    "how much",
] * 3


def _plain(loaded: LoadedModel, texts: list[str]) -> np.ndarray:
    return np.asarray(loaded.model.encode(texts, batch_size=4, convert_to_numpy=True))


@pytest.fixture
def loaded(tiny_model: str) -> LoadedModel:
    return load_model(tiny_model, device="cpu")


@pytest.fixture
def runner(loaded: LoadedModel) -> ModelRunner:
    """A private runner (not the shared one), so a replaced forward affects this test only."""
    return ModelRunner(loaded)


def _recording(runner: ModelRunner, sizes: list[tuple[int, int]]) -> Callable[[Any], Any]:
    real = runner.forward

    def forward(features: dict[str, Any]) -> Any:
        sizes.append(tuple(features["input_ids"].shape))  # type: ignore[arg-type]
        return real(features)

    return forward


# --------------------------------------------------------------------------- OOM
def test_out_of_memory_splits_the_batch_and_loses_nothing(
    runner: ModelRunner, loaded: LoadedModel
) -> None:
    real = runner.forward
    attempts: list[int] = []

    def forward(features: dict[str, Any]) -> Any:
        rows = int(features["input_ids"].shape[0])
        attempts.append(rows)
        if rows > 3:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(features)

    runner.forward = forward
    out = runner.submit(TEXTS, 128, 16).result(timeout=60)
    np.testing.assert_allclose(out, _plain(loaded, TEXTS), atol=1e-5)
    assert runner.stats()["oom_splits"] > 0
    assert max(attempts) > 3  # the big batch was tried first, then split
    # The same batch is never retried as it was: every retry is a strictly smaller half.
    successful = [a for a in attempts if a <= 3]
    assert sum(successful) == len(TEXTS)


def test_out_of_memory_on_one_text_is_raised(runner: ModelRunner) -> None:
    def forward(features: dict[str, Any]) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    runner.forward = forward
    with pytest.raises(torch.OutOfMemoryError):
        runner.submit(["one", "two"], 128, 8).result(timeout=60)
    assert runner.stats()["oom_splits"] == 1  # split once, then each single text failed


def test_other_errors_are_not_split_and_the_worker_lives_on(
    runner: ModelRunner, loaded: LoadedModel
) -> None:
    real = runner.forward
    calls = {"n": 0}

    def forward(features: dict[str, Any]) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("shape mismatch in layer 3")
        return real(features)

    runner.forward = forward
    with pytest.raises(RuntimeError, match="shape mismatch"):
        runner.submit(TEXTS, 128, 64).result(timeout=60)
    assert runner.stats()["oom_splits"] == 0
    np.testing.assert_allclose(
        runner.submit(TEXTS[:5], 128, 64).result(timeout=60), _plain(loaded, TEXTS[:5]), atol=1e-5
    )


def test_message_based_out_of_memory_is_recognised() -> None:
    from stella_rag._runner import is_out_of_memory

    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert not is_out_of_memory(RuntimeError("index out of range"))
    assert not is_out_of_memory(ValueError("out of memory"))


# ------------------------------------------------------------------ token budget
def test_batches_follow_the_token_budget(runner: ModelRunner, loaded: LoadedModel) -> None:
    sizes: list[tuple[int, int]] = []
    runner.forward = _recording(runner, sizes)
    runner.max_batch_tokens = 96
    out = runner.submit(TEXTS, 128, 64).result(timeout=60)
    np.testing.assert_allclose(out, _plain(loaded, TEXTS), atol=1e-5)
    assert sum(rows for rows, _ in sizes) == len(TEXTS)
    for rows, length in sizes:
        assert rows * length <= 96 or rows == 1, (rows, length)
    lengths = [length for _, length in sizes]
    assert lengths == sorted(lengths, reverse=True)  # longest first
    assert sizes[-1][0] > sizes[0][0]  # short texts travel in bigger batches


def test_batch_size_caps_rows(runner: ModelRunner) -> None:
    sizes: list[tuple[int, int]] = []
    runner.forward = _recording(runner, sizes)
    runner.submit(["a b"] * 10, 128, 4).result(timeout=60)
    assert [rows for rows, _ in sizes] == [4, 4, 2]


def test_texts_are_truncated_to_max_len(runner: ModelRunner) -> None:
    sizes: list[tuple[int, int]] = []
    runner.forward = _recording(runner, sizes)
    runner.submit(["museum open monday " * 50], 16, 4).result(timeout=60)
    assert sizes == [(1, 16)]


# --------------------------------------------------------------- merged callers
def _gated(
    runner: ModelRunner, gate: threading.Event, sizes: list[int]
) -> tuple[Callable[[Any], Any], threading.Event]:
    """A forward that holds the worker on its first call until ``gate`` opens."""
    real = runner.forward
    first = threading.Event()

    def forward(features: dict[str, Any]) -> Any:
        if not first.is_set():
            first.set()
            gate.wait(30)  # hold the worker while the other callers queue up
        sizes.append(int(features["input_ids"].shape[0]))
        return real(features)

    return forward, first


def test_concurrent_threads_are_merged_into_one_worker(
    runner: ModelRunner, loaded: LoadedModel
) -> None:
    gate = threading.Event()
    sizes: list[int] = []
    runner.forward, entered = _gated(runner, gate, sizes)
    runner.min_fill = 0.0  # one batch per round: this test is about merging, not batch shapes
    blocker = runner.submit(["first"], 128, 64)
    assert entered.wait(30)  # the worker is busy with the blocker
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        results[i] = runner.submit([TEXTS[i], TEXTS[i + 1]], 128, 64).result(timeout=60)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    while runner._queue.qsize() < 12:  # every caller is waiting
        threading.Event().wait(0.01)
    gate.set()
    for t in threads:
        t.join(60)
    blocker.result(timeout=60)
    assert len(results) == 12
    for i, vectors in results.items():
        np.testing.assert_allclose(vectors, _plain(loaded, [TEXTS[i], TEXTS[i + 1]]), atol=1e-5)
    stats = runner.stats()
    assert stats["peak_concurrent_forward_passes"] == 1
    assert len(sizes) == 2  # the blocker, then all 24 queued texts in one batch
    assert sizes[1] == 24


async def test_concurrent_asyncio_callers_are_merged(tiny: SentenceEncoder) -> None:
    runner = runner_for(tiny._load())
    gate = threading.Event()
    sizes: list[int] = []
    real_forward, real_fill = runner.forward, runner.min_fill
    runner.forward, entered = _gated(runner, gate, sizes)
    runner.min_fill = 0.0  # one batch per round: this test is about merging, not batch shapes
    try:
        blocker = runner.submit(["first"], tiny.max_seq_length, tiny.batch_size)
        assert await asyncio.to_thread(entered.wait, 30)
        tasks = [asyncio.create_task(tiny.aencode_documents([t])) for t in TEXTS[:10]]
        while runner._queue.qsize() < 10:
            await asyncio.sleep(0.01)
        gate.set()
        vectors = await asyncio.gather(*tasks)
        blocker.result(timeout=60)
    finally:
        runner.forward, runner.min_fill = real_forward, real_fill
    assert sizes[1:] == [10]
    np.testing.assert_allclose(
        np.concatenate(vectors), tiny.encode_documents(TEXTS[:10]), atol=1e-5
    )


def test_cpu_batches_hold_texts_of_similar_length(runner: ModelRunner, loaded: LoadedModel) -> None:
    """On CPU a text is padded by at most 10% of the batch width, or by at most 24 tokens."""
    shapes: list[tuple[int, int]] = []
    runner.forward = _recording(runner, shapes)
    assert runner.min_fill == 0.9
    texts = ["phone " * n for n in (1, 2, 3, 5, 8, 13, 21, 40, 41, 42, 60, 100, 100, 100)]
    got = runner.encode(texts, 128, 64)
    np.testing.assert_allclose(got, _plain(loaded, texts), atol=1e-5)
    lengths = sorted((len(t.split()) + 2 for t in texts), reverse=True)
    assert sum(rows for rows, _ in shapes) == len(texts)
    start = 0
    for rows, width in shapes:
        batch = lengths[start : start + rows]
        assert width == batch[0]
        assert min(batch) >= min(0.9 * width, width - 24)
        start += rows
    assert len(shapes) < len(texts)  # equal lengths still share a batch


# ------------------------------------------------------------------ onnx-int8
def test_onnx_int8_backend_is_close_to_float32_and_cached(
    tiny_model: str, tiny: SentenceEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime", reason="the fast path is the optional [fast] extra")
    pytest.importorskip("onnx", reason="the fast path is the optional [fast] extra")
    from stella_rag import _models

    monkeypatch.setenv("STELLA_RAG_CACHE", str(tmp_path))
    fast = SentenceEncoder(tiny_model, device="cpu", backend="onnx-int8")
    vectors = fast.encode_documents(TEXTS)
    expected = tiny.encode_documents(TEXTS)
    assert vectors.shape == expected.shape and vectors.dtype == np.float32
    assert float((vectors * expected).sum(axis=1).min()) > 0.95
    exported = list((tmp_path / "onnx").glob("*/model_qint8.onnx"))
    assert len(exported) == 1
    assert not list((tmp_path / "onnx").glob("*/.export-*"))  # no half-written leftovers

    def no_export(*args: object) -> None:
        raise AssertionError("the cached export should have been used")

    monkeypatch.setattr(_models, "_export_int8", no_export)
    session = _models._int8_session(fast._load().model)
    feeds = {i.name for i in session.get_inputs()}
    assert "input_ids" in feeds and "attention_mask" in feeds


def test_onnx_int8_is_cpu_only(tiny_model: str) -> None:
    with pytest.raises(ValueError, match=r"CPU fast path.*'cuda'"):
        load_model(tiny_model, device="cuda", backend="onnx-int8")


def test_unknown_backend_names_the_valid_ones(tiny_model: str) -> None:
    with pytest.raises(ValueError, match=r"onnx-int8.*got 'tensorrt'"):
        load_model(tiny_model, device="cpu", backend="tensorrt")  # type: ignore[arg-type]
