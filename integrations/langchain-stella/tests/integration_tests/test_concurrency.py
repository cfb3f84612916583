"""Many concurrent async embeds: right answers, one forward pass at a time, loop not blocked."""

from __future__ import annotations

import asyncio

import numpy as np
from langchain_stella import StellaEmbeddings


async def test_64_concurrent_queries_share_one_worker(tiny_model: str) -> None:
    emb = StellaEmbeddings(model_name=tiny_model, device="cpu")
    texts = [f"question {i} about the river boat tour and the phone battery" for i in range(64)]
    expected = np.asarray(emb.embed_documents(texts))  # embed_query == embed_documents here
    passages = [f"passage {i} about basketball" for i in range(200)]
    before = emb.encoder.runner_stats()

    queries, documents = await asyncio.gather(
        asyncio.gather(*(emb.aembed_query(t) for t in texts)),
        asyncio.to_thread(emb.embed_documents, passages),  # a thread joins the queue too
    )

    np.testing.assert_allclose(np.asarray(queries), expected, atol=1e-5)
    assert len(documents) == 200
    stats = emb.encoder.runner_stats()
    assert stats["forward_passes"] > before["forward_passes"]
    assert stats["peak_concurrent_forward_passes"] == 1


async def test_async_embedding_does_not_block_the_event_loop(tiny_model: str) -> None:
    emb = StellaEmbeddings(model_name=tiny_model, device="cpu")
    emb.embed_query("load the model first")
    ticks_while_embedding = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks_while_embedding
        while not done:
            ticks_while_embedding += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    vectors = await emb.aembed_documents([f"passage {i} about the museum" for i in range(300)])
    done = True
    await task
    assert len(vectors) == 300
    assert ticks_while_embedding > 0
