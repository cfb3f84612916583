"""Several devices: sentence-transformers' multi-process pool, on CPU devices here."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import torch

from stella_rag import SentenceEncoder
from stella_rag._pool import device_pool

TEXTS = [f"the museum opens on monday, note {i}" + " price" * (i % 40) for i in range(120)]


@pytest.mark.slow
def test_pool_on_two_cpu_devices_is_kept_and_matches_one_device(tiny_model: str) -> None:
    single = SentenceEncoder(tiny_model, device="cpu", max_seq_length=32)
    pooled = SentenceEncoder(tiny_model, device=["cpu", "cpu"], max_seq_length=32)
    assert pooled.devices == ("cpu", "cpu") and pooled.device == "cpu"
    assert pooled.get_config()["device"] == ["cpu", "cpu"]
    assert "['cpu', 'cpu']" in repr(pooled)
    passes = pooled.load().runner_stats()["forward_passes"]  # this process's runner
    try:
        docs = pooled.encode_documents(TEXTS)
        pool = device_pool(pooled._load(), ("cpu", "cpu"))
        pids = [p.pid for p in pool._pool["processes"]]  # type: ignore[index]
        assert len(pids) == 2
        queries = asyncio.run(pooled.aencode_queries(TEXTS[:3]))
        again = pooled.encode_documents(TEXTS[:5])
        # Kept across calls: the same worker processes served all three.
        assert [p.pid for p in pool._pool["processes"]] == pids  # type: ignore[index]
        assert pooled.runner_stats()["forward_passes"] == passes  # none ran in this process
    finally:
        pooled.close()
    assert not pool.started
    want = single.encode_documents(TEXTS)  # truncated to 32 tokens, as the pool's were
    assert docs.shape == want.shape and docs.dtype == np.float32
    assert float(np.min(np.sum(docs * want, axis=1))) >= 0.9999
    np.testing.assert_allclose(again, docs[:5], atol=1e-5)
    np.testing.assert_allclose(queries, single.encode_queries(TEXTS[:3]), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)


def test_device_lists_are_checked(tiny_model: str) -> None:
    with pytest.raises(TypeError, match="device"):
        SentenceEncoder(tiny_model, device=[])
    with pytest.raises(TypeError, match="device names"):
        SentenceEncoder(tiny_model, device=["cpu", 0])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="backend='torch'"):
        SentenceEncoder(tiny_model, device=["cpu", "cpu"], backend="onnx-int8")
    one = SentenceEncoder(tiny_model, device=["cpu"])  # a list of one: that device, no pool
    assert one.devices == ("cpu",) and one.encode_documents(["a b"]).shape == (1, 48)


@pytest.mark.cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_pool_on_two_gpus(tiny_model: str) -> None:
    pooled = SentenceEncoder(tiny_model, device=["cuda:0", "cuda:1"])
    try:
        assert pooled.precision == "float16"
        vectors = pooled.encode_documents(TEXTS)
    finally:
        pooled.close()
    want = SentenceEncoder(tiny_model, device="cpu").encode_documents(TEXTS)
    assert float(np.min(np.sum(vectors * want, axis=1))) >= 0.99
