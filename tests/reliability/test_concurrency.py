"""16 threads and 200 asyncio tasks share one model and one collection: every result equals the
single-threaded one, nothing raises, nothing is stored twice."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from stella_rag import (
    ChromaStore,
    ConversationalRetriever,
    DialogueEncoder,
    SentenceEncoder,
    text_id,
)

BASE = {"set": "base"}
NEW = {"set": "new"}
TOPICS = ["battery", "phone", "price", "museum", "ticket", "weather", "river", "bridge"]


@dataclass
class World:
    store: ChromaStore
    retriever: ConversationalRetriever
    encoder: SentenceEncoder
    texts: list[str]  # to encode
    expected_vectors: dict[str, np.ndarray]
    dialogues: list[list[tuple[str, str]]]
    expected_hits: list[list[tuple[str, float]]]
    new_passages: list[str]  # to add, several times each
    base_count: int


def _world(tiny: SentenceEncoder, name: str) -> World:
    rng = random.Random(7)
    base = [
        f"base passage {i}: the {TOPICS[i % 8]} and the {TOPICS[(i * 3) % 8]}" for i in range(60)
    ]
    store = ChromaStore(name, encoder=tiny)
    store.add(base, [BASE] * len(base))
    retriever = ConversationalRetriever(store, DialogueEncoder(general=tiny), k=4)
    texts = [
        f"text {i} how much is the {rng.choice(TOPICS)} {rng.choice(TOPICS)}" for i in range(80)
    ]
    dialogues = [
        [
            ("user", f"tell me about the {TOPICS[i % 8]}"),
            ("assistant", "sure"),
            ("user", f"and the {TOPICS[(i + 1) % 8]} {i}"),
        ]
        for i in range(40)
    ]
    new_passages = [f"new passage {i} on the {TOPICS[i % 8]}" for i in range(64)]
    # single-threaded results, one call per input
    expected_vectors = {t: tiny.encode_documents([t])[0] for t in texts}
    expected_hits = [
        [(h.id, float(h.score)) for h in retriever.retrieve(d, where=BASE)] for d in dialogues
    ]
    return World(
        store,
        retriever,
        tiny,
        texts,
        expected_vectors,
        dialogues,
        expected_hits,
        new_passages,
        len(base),
    )


def _check_encode(world: World, texts: list[str], got: np.ndarray) -> None:
    assert got.shape == (len(texts), world.encoder.dim)
    want = np.stack([world.expected_vectors[t] for t in texts])
    np.testing.assert_allclose(got, want, atol=2e-5)


def _check_hits(world: World, index: int, hits: Any) -> None:
    want = world.expected_hits[index]
    assert [h.id for h in hits] == [pid for pid, _ in want]
    np.testing.assert_allclose([h.score for h in hits], [s for _, s in want], atol=1e-4)


def _check_final(world: World) -> None:
    store = world.store
    got = store.collection.get(include=["documents", "metadatas", "embeddings"])
    assert len(got["ids"]) == len(set(got["ids"])) == store.count()
    assert store.count() == world.base_count + len(world.new_passages)
    new = {
        pid: (doc, vec)
        for pid, doc, meta, vec in zip(
            got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
        )
        if meta == NEW
    }
    assert sorted(doc for doc, _ in new.values()) == sorted(world.new_passages)
    for text in world.new_passages:
        np.testing.assert_allclose(
            new[text_id(text)][1], world.encoder.encode_documents([text])[0], atol=2e-5
        )


def _ops(world: World, seed: int, n: int) -> list[tuple[str, Any]]:
    rng = random.Random(seed)
    ops: list[tuple[str, Any]] = []
    for _ in range(n):
        kind = rng.choice(["encode", "add", "retrieve"])
        if kind == "encode":
            ops.append((kind, rng.sample(world.texts, rng.randint(1, 6))))
        elif kind == "add":
            ops.append((kind, rng.sample(world.new_passages, rng.randint(1, 8))))
        else:
            ops.append((kind, rng.randrange(len(world.dialogues))))
    return ops


def _all_new_passages(world: World) -> list[tuple[str, Any]]:
    """Every new passage added at least once, by whichever worker gets it."""
    return [("add", world.new_passages[i : i + 8]) for i in range(0, len(world.new_passages), 8)]


def _do(world: World, op: tuple[str, Any]) -> None:
    kind, arg = op
    if kind == "encode":
        _check_encode(world, arg, world.encoder.encode_documents(arg))
    elif kind == "add":
        assert world.store.add(arg, [NEW] * len(arg)) == [text_id(t) for t in arg]
    else:
        _check_hits(world, arg, world.retriever.retrieve(world.dialogues[arg], where=BASE))


async def _ado(world: World, op: tuple[str, Any]) -> None:
    kind, arg = op
    if kind == "encode":
        _check_encode(world, arg, await world.encoder.aencode_documents(arg))
    elif kind == "add":
        ids = await asyncio.to_thread(world.store.add, arg, [NEW] * len(arg))
        assert ids == [text_id(t) for t in arg]
    else:
        _check_hits(world, arg, await world.retriever.aretrieve(world.dialogues[arg], where=BASE))


def test_sixteen_threads(tiny: SentenceEncoder, unique_name: Callable[[str], str]) -> None:
    world = _world(tiny, unique_name("threads"))
    plans = [_ops(world, seed, 12) for seed in range(16)]
    for i, op in enumerate(_all_new_passages(world)):
        plans[i % 16].insert(i % 5, op)
    barrier = threading.Barrier(16)

    def worker(plan: list[tuple[str, Any]]) -> int:
        barrier.wait(30)  # all 16 start together
        for op in plan:
            _do(world, op)
        return len(plan)

    with ThreadPoolExecutor(16) as pool:
        done = list(pool.map(worker, plans))  # re-raises the first failure, if any
    print(f"16 threads ran {sum(done)} operations")
    assert done == [len(p) for p in plans]
    _check_final(world)


async def test_two_hundred_asyncio_tasks(
    tiny: SentenceEncoder, unique_name: Callable[[str], str]
) -> None:
    world = await asyncio.to_thread(_world, tiny, unique_name("tasks"))
    ops = [op for seed in range(200) for op in _ops(world, 1000 + seed, 1)]
    ops += _all_new_passages(world)
    random.Random(3).shuffle(ops)
    results = await asyncio.gather(*(_ado(world, op) for op in ops), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    print(f"{len(ops)} asyncio tasks, {len(errors)} errors")
    assert not errors, errors[:3]
    assert len(ops) >= 200
    _check_final(world)


def test_one_forward_pass_at_a_time(tiny: SentenceEncoder) -> None:
    """However many callers, the shared model runs one forward pass at a time."""
    texts = [f"concurrent text {i}" for i in range(32)]
    expected = tiny.encode_documents(texts)

    def encode(i: int) -> np.ndarray:
        return tiny.encode_documents(texts[i : i + 4])

    with ThreadPoolExecutor(16) as pool:
        parts = list(pool.map(encode, range(0, 32, 4)))
    np.testing.assert_allclose(np.concatenate(parts), expected, atol=2e-5)
    assert tiny.runner_stats()["peak_concurrent_forward_passes"] == 1
