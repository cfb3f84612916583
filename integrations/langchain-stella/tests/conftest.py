"""Fixtures of the langchain-stella tests (the models come from the repository's conftest.py)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_stella import StellaEmbeddings

# Passages for the multi-turn tests: "Why not?" after "Have you played basketball lately? / No"
# needs the history to find the injury passage (alone, it matches the swimming one).
CORPUS: list[tuple[str, dict[str, Any]]] = [
    ("Basketball players often miss games because of knee and ankle injuries.", {"topic": "sport"}),
    ("A sprained ankle usually heals in two to six weeks with rest and ice.", {"topic": "health"}),
    ("Table tennis needs quick reflexes and a very light paddle.", {"topic": "sport"}),
    ("The city museum is closed on Mondays and opens at 9 am on other days.", {"topic": "city"}),
    ("A new phone battery usually lasts about two days on one charge.", {"topic": "tech"}),
    ("Tickets for the river boat tour cost 12 dollars for adults.", {"topic": "city"}),
    ("Swimming in the river is not allowed because the current is strong.", {"topic": "city"}),
    ("Rain is expected in the city all weekend.", {"topic": "weather"}),
]


@pytest.fixture(scope="session")
def corpus() -> tuple[tuple[str, dict[str, Any]], ...]:
    """The passages with their metadata; the first is the injury one, the second the healing."""
    return tuple(CORPUS)


@pytest.fixture
def collection_name() -> str:
    """A fresh name: in-memory Chroma clients of one process share their collections."""
    return f"lc-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def minilm_embeddings() -> StellaEmbeddings:
    return StellaEmbeddings(model_name="minilm", device="cpu")


@pytest.fixture
def minilm_chroma(minilm_embeddings: StellaEmbeddings, collection_name: str) -> Any:
    """A langchain_chroma.Chroma (default l2 space) written through StellaEmbeddings."""
    from langchain_chroma import Chroma

    store = Chroma(collection_name=collection_name, embedding_function=minilm_embeddings)
    texts, metadatas = zip(*CORPUS, strict=True)
    store.add_texts(list(texts), metadatas=list(metadatas))
    return store
