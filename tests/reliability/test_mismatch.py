"""Encoder mismatches are refused before any write or search; foreign collections warn once."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stella_rag import (
    ChromaStore,
    ConversationalRetriever,
    DialogueEncoder,
    EncoderMismatchError,
    SentenceEncoder,
    StellaRagWarning,
)
from stella_rag.testing import FakeEncoder


@pytest.fixture
def written(tmp_path: Path, tiny: SentenceEncoder) -> tuple[Path, str]:
    """A persistent collection written by the tiny model."""
    path = tmp_path / "db"
    ChromaStore("docs", encoder=tiny, path=path).add(
        ["the battery lasts two days", "the museum opens on monday"]
    )
    return path, "docs"


def other_encoders(
    tiny_model: str, tiny_dialogue_model: str, tiny_model_40d: str
) -> dict[str, tuple[SentenceEncoder, list[str]]]:
    """Encoders that must not open the tiny model's collection, and what the error must name."""
    return {
        "other-model": (
            SentenceEncoder(tiny_dialogue_model, device="cpu"),
            ["tiny-general", "tiny-dialogue"],
        ),
        "other-dimension": (
            SentenceEncoder(tiny_model_40d, device="cpu"),
            ["tiny-general", "48-d", "tiny-40d", "40-d"],
        ),
        "other-truncate-dim": (
            SentenceEncoder(tiny_model, device="cpu", truncate_dim=32),
            ["48-d", "32-d", "truncate_dim=32"],
        ),
        "other-normalization": (
            SentenceEncoder(tiny_model, device="cpu", normalize=False),
            ["normalized", "not normalized"],
        ),
    }


@pytest.mark.parametrize(
    "case", ["other-model", "other-dimension", "other-truncate-dim", "other-normalization"]
)
def test_open_with_another_encoder_is_refused(
    case: str,
    written: tuple[Path, str],
    tiny_model: str,
    tiny_dialogue_model: str,
    tiny_model_40d: str,
    snapshot: Callable[[ChromaStore], dict[str, Any]],
    tiny: SentenceEncoder,
) -> None:
    path, name = written
    encoder, words = other_encoders(tiny_model, tiny_dialogue_model, tiny_model_40d)[case]
    before = snapshot(ChromaStore(name, encoder=tiny, path=path))
    with pytest.raises(EncoderMismatchError) as info:
        ChromaStore(name, encoder=encoder, path=path)
    message = str(info.value)
    for word in words:
        assert word in message
    assert "written by" in message and "opened with" in message
    # ChromaStore.open with an explicit encoder does not override a recorded encoder either
    with pytest.raises(EncoderMismatchError):
        ChromaStore.open(name, encoder=encoder, path=path)
    assert snapshot(ChromaStore(name, encoder=tiny, path=path)) == before


def test_mismatch_is_found_before_anything_is_encoded(written: tuple[Path, str]) -> None:
    path, name = written
    fake = FakeEncoder(48, model_id="someone/else")
    with pytest.raises(EncoderMismatchError, match="someone/else"):
        ChromaStore(name, encoder=fake, path=path)
    assert fake.calls == 0


def test_dialogue_model_of_another_dimension_is_refused(
    tiny: SentenceEncoder, tiny_model_40d: str
) -> None:
    with pytest.raises(EncoderMismatchError) as info:
        DialogueEncoder(tiny_model_40d, general=tiny)
    message = str(info.value)
    assert "40-d" in message and "48-d" in message
    assert "tiny-40d" in message and "tiny-general" in message


def test_retriever_with_dialogue_side_of_another_dimension_is_refused(
    seeded_store: ChromaStore, tiny: SentenceEncoder, snapshot: Any
) -> None:
    before = snapshot(seeded_store)
    same_name_other_dim = FakeEncoder(40, model_id=tiny.model_id)
    with pytest.raises(EncoderMismatchError) as info:
        ConversationalRetriever(seeded_store, DialogueEncoder(general=same_name_other_dim))
    message = str(info.value)
    assert "40-d" in message and "48-d" in message and seeded_store.name in message
    assert same_name_other_dim.calls == 0
    assert snapshot(seeded_store) == before


def test_retriever_with_another_general_model_is_refused(
    seeded_store: ChromaStore, tiny_dialogue_model: str, tiny: SentenceEncoder
) -> None:
    other = SentenceEncoder(tiny_dialogue_model, device="cpu")
    with pytest.raises(EncoderMismatchError) as info:
        ConversationalRetriever(seeded_store, DialogueEncoder(general=other))
    assert "tiny-dialogue" in str(info.value) and "tiny-general" in str(info.value)
    # a dedicated dialogue model of the same dimension, paired with the right general model, is fine
    retriever = ConversationalRetriever(seeded_store, DialogueEncoder(other, general=tiny), k=1)
    assert len(retriever.retrieve("battery")) == 1


def test_query_vector_of_another_dimension_is_refused(seeded_store: ChromaStore) -> None:
    with pytest.raises(ValueError, match="40 dimensions but the collection holds 48"):
        seeded_store.search(np.ones(40, dtype=np.float32))


# --------------------------------------------------------------------------- foreign collections
def _foreign_plain(client: Any, name: str, vectors: np.ndarray, texts: list[str]) -> None:
    collection = client.create_collection(name, metadata={"owner": "someone"})
    collection.add(ids=[f"x{i}" for i in range(len(texts))], embeddings=vectors, documents=texts)


TEXTS = ["the battery lasts two days", "the museum opens on monday", "table tennis is fun"]


def test_plain_chromadb_collection_warns_once_then_record_encoder(
    tiny: SentenceEncoder, unique_name: Callable[[str], str]
) -> None:
    import chromadb

    client = chromadb.EphemeralClient()
    name = unique_name("plain")
    _foreign_plain(client, name, tiny.encode_documents(TEXTS), TEXTS)
    with pytest.warns(
        StellaRagWarning, match=r"not created by stella-rag.*record_encoder"
    ) as record:
        store = ChromaStore(name, encoder=tiny, client=client)
        assert store.search(TEXTS[0], k=1)[0].text == TEXTS[0]  # usable as it is
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second use in this process is quiet
        ChromaStore(name, encoder=tiny, client=client).search(TEXTS[0], k=1)
        adopted = ChromaStore(name, encoder=tiny, client=client)
        adopted.record_encoder()
    meta = adopted.collection.metadata
    assert meta["stella_rag:model_id"] == tiny.model_id and meta["stella_rag:dim"] == 48
    assert meta["owner"] == "someone"  # the owner's metadata is kept
    assert adopted.count() == 3
    # from now on it is checked like our own collections
    fresh = chromadb.EphemeralClient()  # same in-memory system, new client object
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ChromaStore(name, encoder=tiny, client=fresh).count() == 3
    with pytest.raises(EncoderMismatchError):
        ChromaStore(name, encoder=FakeEncoder(48, model_id="other"), client=client)


def test_foreign_collection_of_another_dimension_is_refused(
    tiny: SentenceEncoder, unique_name: Callable[[str], str]
) -> None:
    import chromadb

    client = chromadb.EphemeralClient()
    name = unique_name("plain40")
    _foreign_plain(client, name, np.random.default_rng(0).random((3, 40)), TEXTS)
    with pytest.raises(EncoderMismatchError, match=r"40-d vectors.*48-d"):
        ChromaStore(name, encoder=tiny, client=client)
    assert "stella_rag:model_id" not in (client.get_collection(name).metadata or {})


def test_empty_foreign_collection_is_adopted_silently(
    tiny: SentenceEncoder, unique_name: Callable[[str], str]
) -> None:
    import chromadb

    client = chromadb.EphemeralClient()
    name = unique_name("empty-foreign")
    client.create_collection(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        store = ChromaStore(name, encoder=tiny, client=client)
    assert store.collection.metadata["stella_rag:model_id"] == tiny.model_id


def test_langchain_chroma_collection_warns_then_record_encoder(
    tiny: SentenceEncoder, unique_name: Callable[[str], str]
) -> None:
    import chromadb
    from langchain_chroma import Chroma
    from langchain_core.embeddings import DeterministicFakeEmbedding

    client = chromadb.EphemeralClient()
    name, name32 = unique_name("from-langchain"), unique_name("lc-32")
    lc = Chroma(
        collection_name=name,
        embedding_function=DeterministicFakeEmbedding(size=48),
        client=client,
    )
    lc.add_texts(TEXTS, metadatas=[{"source": f"{i}.txt"} for i in range(3)])
    with pytest.warns(StellaRagWarning, match=name):
        ChromaStore(name, encoder=tiny, client=client).search("battery", k=1)
    adopted = ChromaStore(name, encoder=tiny, client=client)
    adopted.record_encoder()
    assert adopted.collection.metadata["stella_rag:model_id"] == tiny.model_id
    assert adopted.count() == 3
    # LangChain still reads and writes the adopted collection
    assert len(lc.similarity_search("battery", k=2)) == 2
    # a LangChain collection of another width is refused
    other = Chroma(name32, embedding_function=DeterministicFakeEmbedding(size=32), client=client)
    other.add_texts(TEXTS)
    with pytest.raises(EncoderMismatchError, match="32-d"):
        ChromaStore(name32, encoder=tiny, client=client)
