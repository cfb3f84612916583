"""StellaEmbedding: the checks LlamaIndex's own embedding tests make, on real models."""

from __future__ import annotations

import asyncio
import importlib

import numpy as np
import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import TextNode
from llama_index.embeddings.stella import StellaEmbedding

from stella_rag import SentenceEncoder

TINY_DIM = 48  # the root conftest's tiny model

TEXTS = [
    "the phone battery lasts a day",
    "what is the price of the new phone",
    "the museum opens on monday",
    "a bridge over the river",
    "我最近去打篮球了",
]


@pytest.fixture(scope="module")
def embedding(tiny: SentenceEncoder) -> StellaEmbedding:
    return StellaEmbedding(encoder=tiny)


def _is_vector(value: object, dim: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == dim
        and all(type(x) is float for x in value)  # Python floats, not numpy.float32
    )


# ----------------------------------------------------------------- the package
def test_public_api() -> None:
    module = importlib.import_module("llama_index.embeddings.stella")
    assert module.__all__ == ["StellaEmbedding", "StellaNodeParser"]


def test_namespace_packages_merge_with_installed_integrations() -> None:
    import llama_index
    import llama_index.embeddings

    # PEP 420: no __init__.py above llama_index/embeddings/stella/, so the installed core and
    # the other integrations stay importable beside this one.
    assert getattr(llama_index, "__file__", None) is None
    assert getattr(llama_index.embeddings, "__file__", None) is None
    importlib.import_module("llama_index.core")
    importlib.import_module("llama_index.embeddings.huggingface")
    importlib.import_module("llama_index.vector_stores.chroma")


def test_mro_and_class_name() -> None:
    assert BaseEmbedding.__name__ in [c.__name__ for c in StellaEmbedding.__mro__]
    assert issubclass(StellaEmbedding, BaseEmbedding)
    assert StellaEmbedding.class_name() == "StellaEmbedding"


def test_default_batch_size_leaves_batching_to_the_core() -> None:
    assert StellaEmbedding("minilm").embed_batch_size >= 256


# ------------------------------------------------------------------ options
def test_options_reach_the_core_encoder(tiny_model: str) -> None:
    emb = StellaEmbedding(tiny_model, device="cpu", truncate_dim=16, batch_size=8, normalize=False)
    assert emb.encoder.truncate_dim == 16
    assert emb.encoder.batch_size == 8
    assert emb.dim == 16
    vector = np.asarray(emb.get_text_embedding("the phone battery"))
    assert vector.shape == (16,)
    assert abs(float(np.linalg.norm(vector)) - 1.0) > 1e-3


def test_normalized_by_default(embedding: StellaEmbedding) -> None:
    vector = np.asarray(embedding.get_query_embedding("the phone battery"))
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)


def test_bad_options_are_rejected_with_the_value(tiny_model: str) -> None:
    with pytest.raises(ValueError, match=r"batch_size.*0"):
        StellaEmbedding(tiny_model, batch_size=0)
    with pytest.raises(ValueError, match="'float8'"):
        StellaEmbedding(tiny_model, precision="float8")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="SentenceEncoder, got str"):
        StellaEmbedding(encoder="minilm")  # type: ignore[arg-type]


def test_shares_the_loaded_model(tiny_model: str, tiny: SentenceEncoder) -> None:
    emb = StellaEmbedding(tiny_model, device="cpu")
    assert emb.encoder is not tiny
    assert emb.encoder.load()._load().model is tiny._load().model


def test_from_encoder_reports_its_model(tiny: SentenceEncoder) -> None:
    emb = StellaEmbedding(encoder=tiny)
    assert emb.encoder is tiny
    assert emb.model_name == tiny.model_id
    assert emb.device == "cpu"


def test_serialization_round_trip(tiny_model: str) -> None:
    emb = StellaEmbedding(tiny_model, device="cpu", truncate_dim=16, embed_batch_size=300)
    data = emb.to_dict()
    assert data["class_name"] == "StellaEmbedding"
    again = StellaEmbedding.from_dict(data)
    assert (again.model_name, again.truncate_dim, again.embed_batch_size) == (tiny_model, 16, 300)
    assert again.get_text_embedding("a bridge") == pytest.approx(emb.get_text_embedding("a bridge"))


# -------------------------------------------------------------------- sync
def test_query_and_text_embeddings(embedding: StellaEmbedding, tiny: SentenceEncoder) -> None:
    query = embedding.get_query_embedding(TEXTS[0])
    text = embedding.get_text_embedding(TEXTS[0])
    assert _is_vector(query, TINY_DIM)
    assert _is_vector(text, TINY_DIM)
    assert query == pytest.approx(tiny.encode_queries([TEXTS[0]])[0].tolist(), abs=1e-6)
    assert text == pytest.approx(tiny.encode_documents([TEXTS[0]])[0].tolist(), abs=1e-6)


@pytest.mark.parametrize("n", [0, 1, 37])
def test_text_embedding_batch(tiny: SentenceEncoder, n: int) -> None:
    texts = [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(n)]
    emb = StellaEmbedding(encoder=tiny, embed_batch_size=8)  # several LlamaIndex batches
    vectors = emb.get_text_embedding_batch(texts)
    assert isinstance(vectors, list)
    assert len(vectors) == n
    assert all(_is_vector(v, TINY_DIM) for v in vectors)
    if n:
        expected = tiny.encode_documents(texts)
        np.testing.assert_allclose(np.asarray(vectors), expected, atol=1e-5)


def test_large_default_batch_is_one_core_call(tiny: SentenceEncoder) -> None:
    texts = [f"passage number {i}" for i in range(300)]
    emb = StellaEmbedding(encoder=tiny)
    before = tiny.runner_stats()["forward_passes"]
    vectors = emb.get_text_embedding_batch(texts)
    passes = tiny.runner_stats()["forward_passes"] - before
    assert len(vectors) == 300
    # one request of 300 texts: the core cuts it by its own batch size (64 on CPU), not 10.
    assert passes <= -(-300 // tiny.batch_size) + 1


# ------------------------------------------------------------------- async
async def test_async_methods_match_sync(embedding: StellaEmbedding) -> None:
    query = await embedding.aget_query_embedding(TEXTS[1])
    text = await embedding.aget_text_embedding(TEXTS[1])
    batch = await embedding.aget_text_embedding_batch(TEXTS)
    assert _is_vector(query, TINY_DIM) and _is_vector(text, TINY_DIM)
    assert query == pytest.approx(embedding.get_query_embedding(TEXTS[1]), abs=1e-5)
    assert text == pytest.approx(embedding.get_text_embedding(TEXTS[1]), abs=1e-5)
    np.testing.assert_allclose(
        np.asarray(batch), np.asarray(embedding.get_text_embedding_batch(TEXTS)), atol=1e-5
    )


async def test_async_empty_batch(embedding: StellaEmbedding) -> None:
    assert await embedding.aget_text_embedding_batch([]) == []


async def test_many_concurrent_calls_are_correct_and_bounded(tiny: SentenceEncoder) -> None:
    emb = StellaEmbedding(encoder=tiny, embed_batch_size=4)
    queries = [f"question {i} about the phone price" for i in range(40)]
    batches = [[f"passage {i}.{j} about the museum" for j in range(i % 9)] for i in range(20)]
    results = await asyncio.gather(
        *(emb.aget_query_embedding(q) for q in queries),
        *(emb.aget_text_embedding_batch(b) for b in batches),
    )
    query_vectors, batch_vectors = results[: len(queries)], results[len(queries) :]
    np.testing.assert_allclose(np.asarray(query_vectors), tiny.encode_queries(queries), atol=1e-5)
    for texts, vectors in zip(batches, batch_vectors, strict=True):
        assert len(vectors) == len(texts)
        if texts:
            np.testing.assert_allclose(np.asarray(vectors), tiny.encode_documents(texts), atol=1e-5)
    # one worker thread per model: never two forward passes at once
    assert tiny.runner_stats()["peak_concurrent_forward_passes"] == 1


# -------------------------------------------------------------- in LlamaIndex
def test_vector_store_index_finds_the_relevant_node(minilm: SentenceEncoder) -> None:
    nodes = [
        TextNode(id_="price", text="The Pixel 8 costs $699 in the Google Store."),
        TextNode(id_="bridge", text="The old stone bridge crosses the river."),
        TextNode(id_="museum", text="The museum opens at 9 am and is closed on Mondays."),
    ]
    index = VectorStoreIndex(nodes, embed_model=StellaEmbedding(encoder=minilm))
    found = index.as_retriever(similarity_top_k=1).retrieve("How much is the Pixel phone?")
    assert [n.node.node_id for n in found] == ["price"]
