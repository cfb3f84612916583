"""langchain_chroma.Chroma and stella-rag read each other's collections (minilm, offline)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from langchain_chroma import Chroma
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, HumanMessage
from langchain_stella import StellaDialogueRetriever, StellaEmbeddings

from stella_rag import ChromaStore, EncoderMismatchError, SentenceEncoder, StellaRagWarning

# The Stella card's way to encode a chat, pinned so that these tests of the plumbing do not
# move with the tuning of the core's default strategy (the example runs with the default).
STRATEGY = "dialogue"

CHAT = [
    HumanMessage("Have you played basketball lately?"),
    AIMessage("No, I haven't."),
    HumanMessage("Why not?"),
]


def test_retriever_searches_a_collection_written_by_chroma(
    minilm_chroma: Chroma, minilm_embeddings: StellaEmbeddings, corpus: tuple[Any, ...]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", StellaRagWarning)  # same model: adopted, no warning
        retriever = StellaDialogueRetriever(
            vectorstore=minilm_chroma, dialogue_model=None, strategy=STRATEGY, k=2
        )
    store = retriever.conversational_retriever.store
    assert store.space == "l2"  # langchain_chroma's default
    assert store.collection.metadata["stella_rag:model_id"] == minilm_embeddings.encoder.model_id

    docs = retriever.invoke(CHAT)
    assert docs[0].page_content == corpus[0][0]  # the injury passage
    assert docs[0].metadata["topic"] == "sport"
    stored = minilm_chroma.get_by_ids([d.id for d in docs if d.id])
    assert [d.page_content for d in stored] == [d.page_content for d in docs]
    # l2 distances of unit vectors come back as cosine similarities
    query = retriever.conversational_retriever.dialogue_encoder.encode(CHAT)
    for doc in docs:
        cosine = float(np.dot(query, minilm_embeddings.embed_documents([doc.page_content])[0]))
        assert doc.metadata["score"] == pytest.approx(cosine, abs=1e-4)


def test_chroma_reads_a_collection_written_by_stella(
    minilm: SentenceEncoder,
    minilm_embeddings: StellaEmbeddings,
    collection_name: str,
    corpus: tuple[Any, ...],
) -> None:
    store = ChromaStore(collection_name, encoder=minilm)
    texts, metadatas = zip(*corpus, strict=True)
    store.add(list(texts), metadatas=list(metadatas))

    vectorstore = Chroma(
        collection_name=collection_name, client=store.client, embedding_function=minilm_embeddings
    )
    query = "how long does a sprained ankle take to heal"
    found = vectorstore.similarity_search_with_relevance_scores(query, k=2)
    expected = store.search(query, k=2)
    assert [d.page_content for d, _ in found] == [h.text for h in expected]
    assert [s for _, s in found] == pytest.approx([h.score for h in expected], abs=1e-4)
    assert found[0][0].page_content == corpus[1][0]

    # Chroma adds to the stella collection; the retriever finds what both wrote.
    (new_id,) = vectorstore.add_texts(["Ice hockey players wear helmets and thick gloves."])
    retriever = StellaDialogueRetriever(
        vectorstore=vectorstore, dialogue_model=None, strategy=STRATEGY, k=1
    )
    assert retriever.invoke("what do hockey players wear?")[0].id == new_id
    assert retriever.invoke(CHAT)[0].page_content == corpus[0][0]


def test_a_foreign_collection_of_the_right_size_warns_once(collection_name: str) -> None:
    vectorstore = Chroma(
        collection_name=collection_name, embedding_function=DeterministicFakeEmbedding(size=384)
    )
    vectorstore.add_texts(["one passage", "another passage", "a third passage"])
    retriever = StellaDialogueRetriever(
        vectorstore=vectorstore, general_model="minilm", dialogue_model=None
    )
    with pytest.warns(StellaRagWarning, match="not created by stella-rag"):
        assert len(retriever.invoke("a passage")) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", StellaRagWarning)
        StellaDialogueRetriever(
            vectorstore=vectorstore, general_model="minilm", dialogue_model=None
        ).invoke("a passage")


def test_a_collection_of_another_size_is_refused(collection_name: str) -> None:
    vectorstore = Chroma(
        collection_name=collection_name, embedding_function=DeterministicFakeEmbedding(size=16)
    )
    vectorstore.add_texts(["one passage"])
    with pytest.raises(EncoderMismatchError, match="16-d"):
        StellaDialogueRetriever(
            vectorstore=vectorstore, general_model="minilm", dialogue_model=None
        )


def test_a_collection_of_another_stella_model_is_refused(
    minilm_chroma: Chroma, tiny_model: str
) -> None:
    with pytest.raises(EncoderMismatchError):
        StellaDialogueRetriever(
            vectorstore=minilm_chroma, general_model=tiny_model, dialogue_model=None
        )
