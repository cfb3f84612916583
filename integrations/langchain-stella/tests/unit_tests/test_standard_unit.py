"""LangChain's standard unit tests for StellaEmbeddings (no network, nothing loaded)."""

from __future__ import annotations

from langchain_stella import StellaEmbeddings
from langchain_tests.unit_tests import EmbeddingsUnitTests


class TestStellaEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[StellaEmbeddings]:
        return StellaEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, object]:
        # The real default model: constructing must neither download nor load it.
        return {"model_name": "stella-large-zh"}
