"""StellaDialogueRetriever on real tiny models and an in-memory Chroma, with sockets disabled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.retrievers import BaseRetriever
from langchain_stella import StellaDialogueRetriever, StellaEmbeddings

from stella_rag import ChromaStore, EmptyDialogueError, EncoderMismatchError, SentenceEncoder

CHAT = [
    ("user", "have you played basketball lately"),
    ("assistant", "no"),
    ("user", "why not"),
]


@pytest.fixture
def store(tiny: SentenceEncoder, collection_name: str, corpus: tuple[Any, ...]) -> ChromaStore:
    store = ChromaStore(collection_name, encoder=tiny)
    texts, metadatas = zip(*corpus, strict=True)
    store.add(list(texts), metadatas=list(metadatas))
    return store


@pytest.fixture
def retriever(store: ChromaStore, tiny_dialogue_model: str) -> StellaDialogueRetriever:
    return StellaDialogueRetriever(vectorstore=store, dialogue_model=tiny_dialogue_model, k=3)


Scored = list[tuple[str | None, float | None]]


def _core(retriever: StellaDialogueRetriever, turns: Any, **kwargs: Any) -> Scored:
    hits = retriever.conversational_retriever.retrieve(turns, **kwargs)
    return [(h.id, h.score) for h in hits]


def _got(docs: list[Document]) -> Scored:
    return [(d.id, d.metadata["score"]) for d in docs]


def _same(got: Scored, expected: Scored) -> bool:
    """Same ids in the same order, same scores up to float noise of batching."""
    return [i for i, _ in got] == [i for i, _ in expected] and [s for _, s in got] == pytest.approx(
        [s for _, s in expected], abs=1e-5
    )


def test_every_input_shape_is_the_same_chat(retriever: StellaDialogueRetriever) -> None:
    expected = _core(retriever, CHAT)
    messages = [HumanMessage(CHAT[0][1]), AIMessage(CHAT[1][1]), HumanMessage(CHAT[2][1])]
    prompt = ChatPromptTemplate.from_messages(
        [("system", "answer briefly"), MessagesPlaceholder("chat_history"), ("human", "{input}")]
    )
    shapes: list[Any] = [
        messages,
        [("human", CHAT[0][1]), ("ai", CHAT[1][1]), ("human", CHAT[2][1])],
        [{"role": role, "content": text} for role, text in CHAT],
        {"input": CHAT[2][1], "chat_history": messages[:2]},
        {"input": CHAT[2][1], "chat_history": [("human", CHAT[0][1]), ("ai", CHAT[1][1])]},
        [SystemMessage("you are helpful"), *messages],
        prompt.invoke({"input": CHAT[2][1], "chat_history": messages[:2]}),
    ]
    for shape in shapes:
        assert _same(_got(retriever.invoke(shape)), expected), shape


def test_a_string_is_one_user_turn(retriever: StellaDialogueRetriever) -> None:
    expected = _core(retriever, [("user", "basketball")])
    assert _same(_got(retriever.invoke("basketball")), expected)
    assert _same(_got(retriever.invoke({"input": "basketball"})), expected)


def test_documents_carry_id_metadata_and_score(
    retriever: StellaDialogueRetriever, store: ChromaStore
) -> None:
    docs = retriever.invoke(CHAT)
    assert len(docs) == 3
    stored = {h.id: h for h in store.get([d.id for d in docs if d.id])}
    for doc in docs:
        assert doc.id in stored
        assert doc.page_content == stored[doc.id].text
        assert doc.metadata["topic"] == stored[doc.id].metadata["topic"]
        assert isinstance(doc.metadata["score"], float)
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)


def test_k_as_field_and_as_keyword(retriever: StellaDialogueRetriever) -> None:
    assert len(retriever.invoke(CHAT)) == 3
    assert len(retriever.invoke(CHAT, k=1)) == 1
    assert len(retriever.invoke(CHAT, k=100)) == 8
    retriever.k = 2
    assert len(retriever.invoke(CHAT)) == 2
    with pytest.raises(ValueError, match="k"):
        retriever.invoke(CHAT, k=0)


def test_filter_as_field_and_as_keyword(store: ChromaStore, tiny_dialogue_model: str) -> None:
    retriever = StellaDialogueRetriever(
        vectorstore=store, dialogue_model=tiny_dialogue_model, k=8, filter={"topic": "city"}
    )
    assert {d.metadata["topic"] for d in retriever.invoke(CHAT)} == {"city"}
    assert len(retriever.invoke(CHAT)) == 3
    sport = retriever.invoke(CHAT, filter={"topic": "sport"})
    assert {d.metadata["topic"] for d in sport} == {"sport"}
    assert retriever.invoke(CHAT, filter={"topic": "nothing"}) == []


async def test_async_matches_sync(retriever: StellaDialogueRetriever) -> None:
    chats: list[Any] = [CHAT, "basketball", {"input": "why not", "chat_history": CHAT[:2]}]
    expected = [_got(retriever.invoke(c, k=2)) for c in chats]
    assert _same(_got(await retriever.ainvoke(CHAT, k=2)), expected[0])
    got = await retriever.abatch(chats, k=2)
    assert all(_same(_got(d), e) for d, e in zip(got, expected, strict=True))


def test_bad_inputs_say_what_is_accepted(retriever: StellaDialogueRetriever) -> None:
    with pytest.raises(TypeError, match=r"needs an 'input' key.*\['question'\]"):
        retriever.invoke({"question": "why"})
    with pytest.raises(TypeError, match="got int"):
        retriever.invoke(42)  # type: ignore[arg-type]
    with pytest.raises(EmptyDialogueError):
        retriever.invoke([])
    with pytest.raises(EmptyDialogueError):
        retriever.invoke([SystemMessage("only instructions")])


def test_collection_by_name_and_path(
    tiny: SentenceEncoder, tiny_model: str, tiny_dialogue_model: str, tmp_path: Path
) -> None:
    written = ChromaStore("by-path", encoder=tiny, path=tmp_path)
    ids = written.add(["the river boat tour", "the phone battery"])
    retriever = StellaDialogueRetriever(
        collection_name="by-path",
        persist_directory=str(tmp_path),
        general_model=tiny_model,
        dialogue_model=tiny_dialogue_model,
        k=2,
    )
    assert sorted(str(d.id) for d in retriever.invoke("battery")) == sorted(ids)


def test_collection_by_client(
    store: ChromaStore, tiny_model: str, tiny_dialogue_model: str
) -> None:
    retriever = StellaDialogueRetriever(
        collection_name=store.name,
        client=store.client,
        general_model=StellaEmbeddings(model_name=tiny_model, device="cpu"),
        dialogue_model=tiny_dialogue_model,
    )
    assert len(retriever.invoke("basketball")) == 4


def test_general_model_alone(store: ChromaStore) -> None:
    retriever = StellaDialogueRetriever(vectorstore=store, dialogue_model=None, k=2)
    dialogue = retriever.conversational_retriever.dialogue_encoder
    assert dialogue.dialogue_model is None
    assert dialogue.general is store.encoder
    assert len(retriever.invoke(CHAT)) == 2


def test_where_the_collection_comes_from_is_checked(
    store: ChromaStore, tiny_model_40d: str, tiny_dialogue_model: str
) -> None:
    with pytest.raises(ValueError, match="no collection"):
        StellaDialogueRetriever(dialogue_model=tiny_dialogue_model)
    with pytest.raises(ValueError, match="not both"):
        StellaDialogueRetriever(
            vectorstore=store, collection_name="x-y-z", dialogue_model=tiny_dialogue_model
        )
    with pytest.raises(TypeError, match="got dict"):
        StellaDialogueRetriever(vectorstore={}, dialogue_model=tiny_dialogue_model)
    with pytest.raises(EncoderMismatchError):
        StellaDialogueRetriever(
            vectorstore=store, general_model=tiny_model_40d, dialogue_model=None
        )


def test_as_history_aware_retriever_takes_the_whole_dict(
    retriever: StellaDialogueRetriever,
) -> None:
    runnable = retriever.as_history_aware_retriever()
    assert not isinstance(runnable, BaseRetriever)  # create_retrieval_chain passes it the dict
    chat = {"input": "why not", "chat_history": [("human", CHAT[0][1]), ("ai", CHAT[1][1])]}
    assert _same(_got(runnable.invoke(chat)), _core(retriever, CHAT))


def test_a_dialogue_model_trained_by_stella_rag(
    store: ChromaStore, tiny_trained_dialogue_model: str, tiny_dialogue_model: str, tmp_path: Path
) -> None:
    retriever = StellaDialogueRetriever(
        vectorstore=store, dialogue_model=tiny_trained_dialogue_model, k=2
    )
    assert retriever.conversational_retriever.dialogue_encoder.strategy.name == "dialogue"
    assert len(retriever.invoke([("user", "basketball"), ("user", "why not")])) == 2
    other = ChromaStore("other", encoder=SentenceEncoder(tiny_dialogue_model), path=tmp_path)
    other.add(["a passage"])
    with pytest.raises(EncoderMismatchError, match="trained against"):
        StellaDialogueRetriever(vectorstore=other, dialogue_model=tiny_trained_dialogue_model)
