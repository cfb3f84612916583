"""LangChain's standard integration suites, subclassed as they are, run offline."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from langchain_core.retrievers import BaseRetriever
from langchain_stella import StellaDialogueRetriever, StellaEmbeddings
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    RetrieversIntegrationTests,
)

from stella_rag import ChromaStore, SentenceEncoder


class TestStellaEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> type[StellaEmbeddings]:
        return StellaEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"model_name": "minilm", "device": "cpu"}


@pytest.fixture(scope="module")
def standard_store(tiny: SentenceEncoder, corpus: tuple[Any, ...]) -> ChromaStore:
    store = ChromaStore(f"lc-standard-{uuid.uuid4().hex[:12]}", encoder=tiny)
    texts, metadatas = zip(*corpus, strict=True)
    store.add(list(texts), metadatas=list(metadatas))
    return store


class TestStellaDialogueRetrieverIntegration(RetrieversIntegrationTests):
    """On real tiny models: a dedicated dialogue model and the general model of the store."""

    @pytest.fixture(autouse=True)
    def _collection(self, standard_store: ChromaStore, tiny_dialogue_model: str) -> None:
        self._params = {"vectorstore": standard_store, "dialogue_model": tiny_dialogue_model}

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return StellaDialogueRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def retriever_query_example(self) -> str:
        return "have you played basketball lately"
