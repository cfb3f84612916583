"""ConversationalRetriever end to end: real MiniLM, real Chroma (embedded and server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stella_rag import (
    ChromaStore,
    ConversationalRetriever,
    DialogueEncoder,
    EncoderMismatchError,
    SentenceEncoder,
    connect,
    similarity,
)
from stella_rag.testing import ChromaServer, FakeEncoder

# The Stella card's example (section 2.2), in English.
BASKETBALL = [
    {"role": "user", "content": "Have you been playing basketball lately?"},
    {"role": "assistant", "content": "No"},
]
INJURY = "B did not play basketball because of an injury."
TENNIS = "B has not been playing table tennis."

PHONES = [
    "The Norvik Pulse 7 battery lasts about 26 hours of mixed use.",
    "The Norvik Pulse 7 costs 649 US dollars at launch.",
    "The Talvo X2 costs 499 US dollars.",
    "To bake sourdough bread, let the dough rise overnight and bake it at 230 C for 40 minutes.",
]


@pytest.fixture(scope="module")
def store(minilm: SentenceEncoder) -> ChromaStore:
    s = ChromaStore("semantic", encoder=minilm)
    s.add([INJURY, TENNIS, *PHONES])
    return s


def test_history_finds_the_cards_passage(store: ChromaStore, minilm: SentenceEncoder) -> None:
    retriever = ConversationalRetriever(store, DialogueEncoder(general=minilm), k=2)
    hits = retriever.retrieve(BASKETBALL, where=None)
    ranked = [h.text for h in hits]
    assert ranked.index(INJURY) < ranked.index(TENNIS) if TENNIS in ranked else ranked[0] == INJURY
    assert ranked[0] == INJURY


def test_last_turn_alone_gets_it_wrong(store: ChromaStore, minilm: SentenceEncoder) -> None:
    """What history buys: the bare "No" is closer to the wrong passage."""
    last_only = ConversationalRetriever(
        store, DialogueEncoder(general=minilm, strategy="last_turn")
    )
    ranked = [h.text for h in last_only.retrieve(BASKETBALL, k=6)]
    assert ranked.index(TENNIS) < ranked.index(INJURY)


def test_coreference_uses_the_history(store: ChromaStore, minilm: SentenceEncoder) -> None:
    chat = [
        (
            "user",
            "I'm torn between the Norvik Pulse 7 and my brother's old Talvo X2. "
            "I think I prefer the Norvik.",
        ),
        ("assistant", "The Norvik Pulse 7 is a good choice: bright screen, solid camera."),
        ("user", "How much does it cost?"),
    ]
    retriever = ConversationalRetriever(store, DialogueEncoder(general=minilm))
    assert retriever.retrieve(chat, k=1)[0].text == PHONES[1]
    # Alone, "it" is the cheaper phone.
    last_only = ConversationalRetriever(
        store, DialogueEncoder(general=minilm, strategy="last_turn")
    )
    assert last_only.retrieve(chat, k=1)[0].text == PHONES[2]


def test_topic_shift_follows_the_last_turn(store: ChromaStore, minilm: SentenceEncoder) -> None:
    retriever = ConversationalRetriever(store, DialogueEncoder(general=minilm))
    chat = [
        ("user", "How much does the Norvik Pulse 7 cost?"),
        ("assistant", "It launched at 649 US dollars."),
        ("user", "And the Talvo X2?"),
        ("assistant", "The Talvo X2 costs 499 US dollars."),
        ("user", "Different question: how long do I bake sourdough bread?"),
    ]
    assert retriever.retrieve(chat, k=1)[0].text == PHONES[3]


def test_retrieve_many_and_bare_string(store: ChromaStore, minilm: SentenceEncoder) -> None:
    retriever = ConversationalRetriever(store, DialogueEncoder(general=minilm), k=1)
    many = retriever.retrieve_many([BASKETBALL, "how do I bake sourdough bread"])
    assert [hits[0].text for hits in many] == [INJURY, PHONES[3]]
    assert retriever.retrieve("sourdough bread baking time")[0].text == PHONES[3]


async def test_aretrieve(store: ChromaStore, minilm: SentenceEncoder) -> None:
    retriever = ConversationalRetriever(store, DialogueEncoder(general=minilm), k=1)
    hits = await retriever.aretrieve(BASKETBALL)
    assert hits[0].text == INJURY


@pytest.mark.server
def test_through_a_chroma_server(chroma_server: ChromaServer, minilm: SentenceEncoder) -> None:
    client = connect(server=chroma_server.address)
    store = ChromaStore("over-http", encoder=minilm, client=client)
    store.add([INJURY, TENNIS])
    retriever = ConversationalRetriever(store, DialogueEncoder(general=minilm), k=2)
    assert retriever.retrieve(BASKETBALL)[0].text == INJURY


def test_mismatched_general_model(tmp_path: Path, tiny: SentenceEncoder) -> None:
    store = ChromaStore("other", encoder=tiny, path=tmp_path)
    with pytest.raises(EncoderMismatchError, match="belongs with the general model"):
        ConversationalRetriever(store, DialogueEncoder(general=FakeEncoder(dim=48)))


def test_similarity_contract(minilm: SentenceEncoder) -> None:
    out = similarity(
        "what is a bridge",
        ["A bridge is a structure that spans a river or valley.", "Bananas are yellow."],
        encoder=minilm,
    )
    assert out["text_embedding"].shape == (3, 384)
    assert len(out["scores"]) == 2
    assert all(isinstance(s, float) for s in out["scores"])
    assert out["scores"][0] > out["scores"][1]
    only: Any = similarity(["one sentence", "another one"], encoder=minilm)
    assert only["text_embedding"].shape == (2, 384)
    assert only["scores"] == []
    assert similarity("x", [], encoder=minilm)["scores"] == []
    with pytest.raises(TypeError, match="text at position 1 is None"):
        similarity("x", ["ok", None], encoder=minilm)  # type: ignore[list-item]
