"""StellaDialogueRetriever: LlamaIndex's retriever checks, interop with ChromaVectorStore, chat."""

from __future__ import annotations

import asyncio
import importlib
import uuid
import warnings
from typing import Any

import numpy as np
import pytest
from llama_index.core import MockEmbedding, StorageContext, VectorStoreIndex
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.chat_engine import ContextChatEngine
from llama_index.core.llms import MockLLM
from llama_index.core.memory import ChatMemoryBuffer, Memory
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.embeddings.stella import StellaEmbedding
from llama_index.retrievers.stella import StellaDialogueRetriever
from llama_index.vector_stores.chroma import ChromaVectorStore

from stella_rag import (
    ChromaStore,
    DialogueEncoder,
    EncoderMismatchError,
    SentenceEncoder,
    StellaRagWarning,
    connect,
)

PASSAGES = {
    "pixel-price": ("phones", "The Pixel 8 costs $699 in the Google Store."),
    "iphone-price": ("phones", "The iPhone 15 costs $799 at Apple."),
    "galaxy-price": ("phones", "The Galaxy S24 costs $799 from Samsung."),
    "pixel-battery": ("phones", "The Pixel 8 battery lasts about 24 hours on a charge."),
    "iphone-battery": ("phones", "The iPhone 15 battery lasts about 20 hours of video playback."),
    "museum-hours": ("city", "The city museum opens at 9 am and closes at 5 pm, closed Mondays."),
    "museum-ticket": ("city", "A museum ticket costs $15 for adults and is free for children."),
    "bridge": ("city", "The old stone bridge crosses the river near the city center."),
    "bus-ticket": ("city", "A single bus ticket costs $2.50 and is valid for 90 minutes."),
    "headphones-price": ("audio", "The Sony WH-1000XM5 headphones cost $399."),
}
# The last turn could be about any price; the history says which.
HISTORY = [
    ChatMessage(role="user", content="I'm thinking about buying a Pixel 8 phone."),
    ChatMessage(role="assistant", content="Sure, what would you like to know about it?"),
    ChatMessage(role="user", content="Is its battery any good?"),
    ChatMessage(role="assistant", content="It lasts a full day."),
]
LAST_TURN = "How much is it?"
RELEVANT = "pixel-price"


def _name(prefix: str) -> str:
    # Chroma's in-memory client is one per process: a fresh collection name per use.
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _ids(nodes: list[NodeWithScore]) -> list[str]:
    return [n.node.node_id for n in nodes]


@pytest.fixture(scope="module")
def client() -> Any:
    return connect()


@pytest.fixture(scope="module")
def store(minilm: SentenceEncoder, client: Any) -> ChromaStore:
    """The passages in a collection written by stella-rag."""
    store = ChromaStore(_name("stella"), encoder=minilm, client=client)
    store.add(
        [text for _, text in PASSAGES.values()],
        metadatas=[{"topic": topic} for topic, _ in PASSAGES.values()],
        ids=list(PASSAGES),
    )
    return store


@pytest.fixture(scope="module")
def retriever(store: ChromaStore) -> StellaDialogueRetriever:
    return StellaDialogueRetriever(store, similarity_top_k=2)


@pytest.fixture(scope="module")
def li_nodes() -> list[TextNode]:
    return [
        TextNode(
            id_=f"node-{key}",
            text=text,
            metadata={"topic": topic, "rank": i, "weight": i / 10, "key": key},
            relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=f"doc-{topic}")},
            excluded_llm_metadata_keys=["rank"],
        )
        for i, (key, (topic, text)) in enumerate(PASSAGES.items())
    ]


@pytest.fixture(scope="module")
def li_index(minilm: SentenceEncoder, client: Any, li_nodes: list[TextNode]) -> VectorStoreIndex:
    """The passages inserted the LlamaIndex way: VectorStoreIndex + ChromaVectorStore."""
    vector_store = ChromaVectorStore(chroma_collection=client.get_or_create_collection(_name("li")))
    return VectorStoreIndex(
        li_nodes,
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=StellaEmbedding(encoder=minilm),
    )


# ----------------------------------------------------------------- the package
def test_public_api() -> None:
    module = importlib.import_module("llama_index.retrievers.stella")
    assert module.__all__ == [
        "StellaContextBlock",
        "StellaDialogueRetriever",
        "StellaRetrieverTool",
        "condense_plus_context_chat_engine",
        "create_retriever_tool",
    ]


def test_namespace_packages_merge_with_installed_integrations() -> None:
    import llama_index
    import llama_index.retrievers

    assert getattr(llama_index, "__file__", None) is None
    assert getattr(llama_index.retrievers, "__file__", None) is None
    for name in (
        "llama_index.core",
        "llama_index.embeddings.stella",
        "llama_index.embeddings.huggingface",
        "llama_index.vector_stores.chroma",
    ):
        importlib.import_module(name)


def test_mro_and_class_name() -> None:
    assert BaseRetriever.__name__ in [c.__name__ for c in StellaDialogueRetriever.__mro__]
    assert issubclass(StellaDialogueRetriever, BaseRetriever)
    assert StellaDialogueRetriever.class_name() == "StellaDialogueRetriever"


# ------------------------------------------------------------------ retrieving
def test_retrieve_with_str_and_query_bundle(retriever: StellaDialogueRetriever) -> None:
    from_str = retriever.retrieve("When does the museum open?")
    from_bundle = retriever.retrieve(QueryBundle("When does the museum open?"))
    assert _ids(from_str) == _ids(from_bundle)
    assert len(from_str) == 2
    assert from_str[0].node.node_id == "museum-hours"
    top = from_str[0]
    assert isinstance(top, NodeWithScore) and isinstance(top.node, TextNode)
    assert top.node.get_content() == PASSAGES["museum-hours"][1]
    assert top.node.metadata == {"topic": "city"}
    assert type(top.score) is float
    assert from_str[0].score >= from_str[1].score  # type: ignore[operator]
    assert [n.score for n in from_str] == pytest.approx([n.score for n in from_bundle])


async def test_aretrieve_matches_retrieve(store: ChromaStore) -> None:
    memory = ChatMemoryBuffer.from_defaults(chat_history=list(HISTORY))
    retriever = StellaDialogueRetriever(store, memory=memory, similarity_top_k=3)
    sync = retriever.retrieve(LAST_TURN)
    for query in (LAST_TURN, QueryBundle(LAST_TURN)):
        result = await retriever.aretrieve(query)
        assert _ids(result) == _ids(sync)
        assert [n.score for n in result] == pytest.approx([n.score for n in sync])


async def test_empty_collection_returns_empty_list(minilm: SentenceEncoder, client: Any) -> None:
    empty = ChromaStore(_name("empty"), encoder=minilm, client=client)
    retriever = StellaDialogueRetriever(empty, chat_history=HISTORY)
    assert retriever.retrieve(LAST_TURN) == []
    assert await retriever.aretrieve(QueryBundle(LAST_TURN)) == []


def test_history_finds_what_the_last_turn_alone_misses(store: ChromaStore) -> None:
    alone = StellaDialogueRetriever(store, similarity_top_k=2).retrieve(LAST_TURN)
    with_history = StellaDialogueRetriever(store, chat_history=HISTORY, similarity_top_k=2)
    assert RELEVANT not in _ids(alone)
    assert RELEVANT in _ids(with_history.retrieve(LAST_TURN))


@pytest.mark.parametrize("memory_class", [ChatMemoryBuffer, Memory])
def test_history_is_read_from_memory_at_each_call(store: ChromaStore, memory_class: Any) -> None:
    memory = memory_class.from_defaults()
    retriever = StellaDialogueRetriever(store, memory=memory, similarity_top_k=2)
    assert RELEVANT not in _ids(retriever.retrieve(LAST_TURN))
    for message in HISTORY:
        memory.put(message)
    assert RELEVANT in _ids(retriever.retrieve(LAST_TURN))


def test_history_list_is_read_at_each_call(store: ChromaStore) -> None:
    history: list[ChatMessage] = []
    retriever = StellaDialogueRetriever(store, chat_history=history, similarity_top_k=2)
    history.extend(HISTORY)
    assert RELEVANT in _ids(retriever.retrieve(LAST_TURN))


def test_query_already_stored_as_last_message_counts_once(store: ChromaStore) -> None:
    plain = StellaDialogueRetriever(store, chat_history=HISTORY, similarity_top_k=4)
    stored = StellaDialogueRetriever(
        store,
        chat_history=[*HISTORY, ChatMessage(role="user", content=LAST_TURN)],
        similarity_top_k=4,
    )
    expected = plain.retrieve(LAST_TURN)
    got = stored.retrieve(LAST_TURN)
    assert _ids(got) == _ids(expected)
    assert [n.score for n in got] == pytest.approx([n.score for n in expected])


def test_system_and_textless_messages_are_left_out(store: ChromaStore) -> None:
    noisy = [
        ChatMessage(role="system", content="You are a shop assistant."),
        *HISTORY[:2],
        ChatMessage(role="assistant", blocks=[]),  # a tool-call turn: no text
        *HISTORY[2:],
    ]
    plain = StellaDialogueRetriever(store, chat_history=HISTORY, similarity_top_k=4)
    got = StellaDialogueRetriever(store, chat_history=noisy, similarity_top_k=4).retrieve(LAST_TURN)
    assert _ids(got) == _ids(plain.retrieve(LAST_TURN))


def test_top_k_and_where(store: ChromaStore) -> None:
    one = StellaDialogueRetriever(store, similarity_top_k=1).retrieve("museum tickets")
    assert len(one) == 1
    city = StellaDialogueRetriever(store, similarity_top_k=8, where={"topic": "city"})
    found = city.retrieve(LAST_TURN)
    assert len(found) == 4
    assert {n.node.metadata["topic"] for n in found} == {"city"}


async def test_many_concurrent_aretrieves_are_correct_and_bounded(
    store: ChromaStore, minilm: SentenceEncoder
) -> None:
    dialogues = [HISTORY[: i % 5] for i in range(12)]
    queries = [LAST_TURN, "When does the museum open?", "Where is the bridge?"]
    retrievers = [
        StellaDialogueRetriever(store, chat_history=d, similarity_top_k=3) for d in dialogues
    ]
    calls = [(r, queries[i % 3]) for i, r in enumerate(retrievers)]
    results = await asyncio.gather(*(r.aretrieve(q) for r, q in calls))
    for (r, q), got in zip(calls, results, strict=True):
        assert _ids(got) == _ids(r.retrieve(q))
    assert minilm.runner_stats()["peak_concurrent_forward_passes"] == 1


def test_dedicated_dialogue_model(tiny: SentenceEncoder, tiny_dialogue_model: str) -> None:
    tiny_store = ChromaStore(_name("tiny"), encoder=tiny, client=connect())
    tiny_store.add([text for _, text in PASSAGES.values()], ids=list(PASSAGES))
    retriever = StellaDialogueRetriever(tiny_store, tiny_dialogue_model, chat_history=HISTORY)
    assert retriever.dialogue_encoder.dialogue_model is not None
    assert retriever.dialogue_encoder.model_id != tiny.model_id
    assert retriever.dialogue_encoder.general is tiny
    assert len(retriever.retrieve(LAST_TURN)) == 4


def test_bad_arguments(store: ChromaStore, tiny: SentenceEncoder, tiny_dialogue_model: str) -> None:
    with pytest.raises(TypeError, match="from_index"):
        StellaDialogueRetriever(VectorStoreIndex([], embed_model=MockEmbedding(embed_dim=8)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        StellaDialogueRetriever(store, memory=ChatMemoryBuffer.from_defaults(), chat_history=[])
    with pytest.raises(TypeError, match="BaseMemory, got list"):
        StellaDialogueRetriever(store, memory=[])  # type: ignore[arg-type]
    with pytest.raises(EncoderMismatchError):  # documents by MiniLM, dialogue by another model
        StellaDialogueRetriever(store, DialogueEncoder(general=tiny))
    with pytest.raises(EncoderMismatchError):  # a 48-d dialogue model against 384-d documents
        StellaDialogueRetriever(store, tiny_dialogue_model)


def test_with_memory_binds_a_copy(retriever: StellaDialogueRetriever) -> None:
    memory = ChatMemoryBuffer.from_defaults(chat_history=list(HISTORY))
    bound = retriever.with_memory(memory)
    assert bound.memory is memory and retriever.memory is None
    assert bound.store is retriever.store
    assert RELEVANT in _ids(bound.retrieve(LAST_TURN))
    assert RELEVANT not in _ids(retriever.retrieve(LAST_TURN))


# ------------------------------------------------- VectorStoreIndex + ChromaVectorStore
def test_index_nodes_come_back_whole(li_index: VectorStoreIndex, li_nodes: list[TextNode]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", StellaRagWarning)
        retriever = StellaDialogueRetriever.from_index(
            li_index, chat_history=HISTORY, similarity_top_k=len(li_nodes)
        )
    found = retriever.retrieve(LAST_TURN)
    assert found[0].node.node_id in {"node-pixel-price", "node-pixel-battery"}
    assert "node-pixel-price" in _ids(found[:2])
    by_id = {n.node_id: n for n in li_nodes}
    assert sorted(_ids(found)) == sorted(by_id)
    for hit in found:
        original = by_id[hit.node.node_id]
        assert isinstance(hit.node, TextNode)
        assert hit.node.text == original.text
        assert hit.node.metadata == original.metadata
        assert hit.node.ref_doc_id == original.ref_doc_id
        assert hit.node.excluded_llm_metadata_keys == ["rank"]
        assert "_node_content" not in hit.node.metadata


def test_scores_are_cosine_on_an_l2_collection(li_index: VectorStoreIndex) -> None:
    retriever = StellaDialogueRetriever.from_index(li_index, chat_history=HISTORY)
    assert retriever.store.space == "l2"  # ChromaVectorStore's default
    found = retriever.retrieve(LAST_TURN)
    query = retriever.dialogue_encoder.encode([*HISTORY, ("user", LAST_TURN)])
    stored = retriever.store.collection.get(ids=_ids(found), include=["embeddings"])
    vectors = dict(zip(stored["ids"], stored["embeddings"], strict=True))
    for hit in found:
        assert hit.score == pytest.approx(float(np.dot(query, vectors[hit.node.node_id])), abs=1e-4)


def test_from_index_records_the_encoder(
    li_index: VectorStoreIndex, minilm: SentenceEncoder
) -> None:
    retriever = StellaDialogueRetriever.from_index(li_index)
    metadata = retriever.store.collection.metadata
    assert metadata["stella_rag:model_id"] == minilm.model_id
    assert metadata["stella_rag:dim"] == 384


def test_index_with_another_embed_model(
    minilm: SentenceEncoder, client: Any, li_nodes: list[TextNode]
) -> None:
    vector_store = ChromaVectorStore(
        chroma_collection=client.get_or_create_collection(_name("mock"))
    )
    index = VectorStoreIndex(
        [TextNode(id_=n.node_id, text=n.text) for n in li_nodes],
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=MockEmbedding(embed_dim=384),
    )
    with pytest.raises(TypeError, match="MockEmbedding, not StellaEmbedding"):
        StellaDialogueRetriever.from_index(index)
    # Naming the document model works, and stella-rag warns it cannot check who wrote them.
    retriever = StellaDialogueRetriever.from_index(index, DialogueEncoder(general=minilm))
    with pytest.warns(StellaRagWarning, match="record_encoder"):
        assert len(retriever.retrieve(LAST_TURN)) == 4


def test_from_index_needs_chroma(minilm: SentenceEncoder) -> None:
    index = VectorStoreIndex(
        [TextNode(text="a bridge")], embed_model=StellaEmbedding(encoder=minilm)
    )
    with pytest.raises(TypeError, match="ChromaVectorStore, got SimpleVectorStore"):
        StellaDialogueRetriever.from_index(index)


@pytest.mark.server
@pytest.mark.slow
def test_index_on_a_chroma_server(chroma_server: Any, minilm: SentenceEncoder) -> None:
    import chromadb

    host, port = chroma_server.address.split(":")
    http = chromadb.HttpClient(host=host, port=int(port))
    vector_store = ChromaVectorStore(chroma_collection=http.get_or_create_collection(_name("srv")))
    nodes = [TextNode(id_=k, text=t, metadata={"topic": p}) for k, (p, t) in PASSAGES.items()]
    index = VectorStoreIndex(
        nodes,
        storage_context=StorageContext.from_defaults(vector_store=vector_store),
        embed_model=StellaEmbedding(encoder=minilm),
    )
    retriever = StellaDialogueRetriever.from_index(index, chat_history=HISTORY, similarity_top_k=2)
    found = retriever.retrieve(LAST_TURN)
    assert RELEVANT in _ids(found)
    assert found[0].node.metadata == {"topic": "phones"}


# ------------------------------------------------------------------ chat engines
def _context(prompt: str) -> str:
    parts = prompt.split("--------------------")
    assert len(parts) >= 3, prompt
    return parts[1]


def test_chat_engine_gives_the_llm_what_the_history_makes_relevant(
    store: ChromaStore, prompts: list[str]
) -> None:
    engine = StellaDialogueRetriever(store, similarity_top_k=2).as_chat_engine(
        llm=MockLLM(max_tokens=8)
    )
    assert isinstance(engine, ContextChatEngine)
    for message in [m.content for m in HISTORY if m.role.value == "user"]:
        engine.chat(message)
    response = engine.chat(LAST_TURN)
    assert RELEVANT in _ids(response.source_nodes)
    assert PASSAGES[RELEVANT][1] in _context(prompts[-1])
    assert len(engine.chat_history) == 6  # the engine still keeps its own memory


async def test_async_chat_engine(store: ChromaStore, prompts: list[str]) -> None:
    engine = StellaDialogueRetriever(store, similarity_top_k=2).as_chat_engine(
        llm=MockLLM(max_tokens=8), chat_history=list(HISTORY)
    )
    response = await engine.achat(LAST_TURN)
    assert RELEVANT in _ids(response.source_nodes)
    assert PASSAGES[RELEVANT][1] in _context(prompts[-1])


def test_the_documented_composition(store: ChromaStore, prompts: list[str]) -> None:
    retriever = StellaDialogueRetriever(store, similarity_top_k=2)
    memory = ChatMemoryBuffer.from_defaults(token_limit=3000)
    engine = ContextChatEngine.from_defaults(
        retriever=retriever.with_memory(memory), memory=memory, llm=MockLLM(max_tokens=8)
    )
    response = engine.chat(LAST_TURN, chat_history=list(HISTORY))  # sets the memory first
    assert RELEVANT in _ids(response.source_nodes)
    assert PASSAGES[RELEVANT][1] in _context(prompts[-1])
    engine.reset()
    assert RELEVANT not in _ids(engine.chat(LAST_TURN).source_nodes)


def test_a_dialogue_model_trained_by_stella_rag(
    tiny: SentenceEncoder, tiny_trained_dialogue_model: str, client: Any
) -> None:
    store = ChromaStore(_name("trained"), encoder=tiny, client=client)
    store.add([text for _, text in PASSAGES.values()], ids=list(PASSAGES))
    retriever = StellaDialogueRetriever(store, tiny_trained_dialogue_model, similarity_top_k=2)
    assert len(retriever.retrieve(LAST_TURN)) == 2
