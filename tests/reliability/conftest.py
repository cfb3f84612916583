"""Helpers for the reliability tests: unique collections and snapshots of a collection."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from stella_rag import ChromaStore

_names = itertools.count()


def _unique_name(prefix: str = "rel") -> str:
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:6]}"


def _snapshot(store: ChromaStore) -> dict[str, Any]:
    """Everything stored in a collection: ids, texts, metadata and vectors, by id."""
    got = store.collection.get(include=["documents", "metadatas", "embeddings"])
    rows = {
        pid: (doc, dict(meta or {}), np.asarray(vec, dtype=np.float32).round(6).tobytes())
        for pid, doc, meta, vec in zip(
            got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
        )
    }
    return {"count": store.count(), "rows": rows, "meta": dict(store.collection.metadata or {})}


@pytest.fixture(scope="session")
def unique_name() -> Callable[..., str]:
    """Makes collection names no other test uses: ``unique_name("prefix")``."""
    return _unique_name


@pytest.fixture(scope="session")
def snapshot() -> Callable[[ChromaStore], dict[str, Any]]:
    """Everything stored in a collection (ids, texts, metadata, vectors), to compare."""
    return _snapshot


@pytest.fixture
def seeded_store(tiny: Any) -> ChromaStore:
    """An in-memory collection of the tiny model holding three passages with metadata."""
    store = ChromaStore(_unique_name("seeded"), encoder=tiny)
    store.add(
        ["the battery lasts two days", "the museum opens on monday", "table tennis is fun"],
        metadatas=[{"topic": "phone"}, {"topic": "city"}, {"topic": "sport", "n": 3}],
    )
    return store
