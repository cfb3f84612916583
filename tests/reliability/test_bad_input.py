"""Bad input at every core entry point: a clear error or a documented result, never a changed
collection (docs/reliability.md lists each case)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from stella_rag import (
    ChromaStore,
    ConversationalRetriever,
    DialogueEncoder,
    EmptyDialogueError,
    SentenceEncoder,
    Turn,
    similarity,
    text_id,
)
from stella_rag._store import _CHUNK
from stella_rag.testing import FakeEncoder

ONE_MB_ASCII = "battery " * 131_072  # 1 MiB
ONE_MB_CJK = "你好" * 174_763  # 1 MiB of UTF-8 (3 bytes a character)


class Unprintable:
    def __repr__(self) -> str:
        return "<Unprintable>"


# --------------------------------------------------------------------------- SentenceEncoder
# (texts, exception, words the message must contain)
ENCODER_CASES: list[tuple[str, Any, type[Exception], list[str]]] = [
    ("empty-string", [""], ValueError, ["position 0", "empty"]),
    ("whitespace-only", ["fine", " \t\n "], ValueError, ["position 1", "whitespace"]),
    ("none-item", ["fine", "also fine", None], TypeError, ["position 2", "None"]),
    ("int-item", [3], TypeError, ["position 0", "int"]),
    ("float-nan-item", ["a", math.nan], TypeError, ["position 1", "float"]),
    ("bytes-item", [b"caf\xc3\xa9"], TypeError, ["position 0", "bytes", "decode"]),
    ("object-item", ["a", Unprintable()], TypeError, ["position 1", "Unprintable"]),
    ("bare-string", "a single string", TypeError, ["single str", "list"]),
    ("none", None, TypeError, ["None"]),
    ("bytes", b"abc", TypeError, ["bytes"]),
    ("dict", {"text": "a"}, TypeError, ["dict"]),
    ("int", 7, TypeError, ["int"]),
]


@pytest.mark.parametrize("side", ["encode_documents", "encode_queries"])
@pytest.mark.parametrize(
    ("texts", "error", "words"),
    [pytest.param(t, e, w, id=i) for i, t, e, w in ENCODER_CASES],
)
def test_encoder_rejects(
    tiny: SentenceEncoder, side: str, texts: Any, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        getattr(tiny, side)(texts)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    ("texts", "error", "words"),
    [pytest.param(t, e, w, id=i) for i, t, e, w in ENCODER_CASES[:5]],
)
async def test_encoder_async_rejects(
    tiny: SentenceEncoder, texts: Any, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        await tiny.aencode_documents(texts)
    for word in words:
        assert word in str(info.value)


def test_encoder_empty_list_gives_empty_matrix(tiny: SentenceEncoder) -> None:
    tiny.load()
    for out in (
        tiny.encode_documents([]),
        tiny.encode_queries(()),
        asyncio.run(tiny.aencode_queries([])),
    ):
        assert out.shape == (0, tiny.dim)
        assert out.dtype == np.float32


def test_encoder_accepts_any_iterable(tiny: SentenceEncoder) -> None:
    texts = ["the battery", "the museum"]
    np.testing.assert_allclose(
        tiny.encode_documents(t for t in texts), tiny.encode_documents(texts), atol=1e-6
    )


@pytest.mark.slow
def test_encoder_one_megabyte_text_is_truncated(tiny: SentenceEncoder) -> None:
    """A 1 MB text keeps its first ``max_seq_length`` tokens: same vector as its start alone."""
    started = time.perf_counter()
    vector = tiny.encode_documents([ONE_MB_ASCII])
    print(f"1 MB text encoded in {time.perf_counter() - started:.2f} s")
    start_only = tiny.encode_documents(["battery " * (tiny.max_seq_length * 2)])
    assert vector.shape == (1, tiny.dim)
    assert np.all(np.isfinite(vector))
    np.testing.assert_allclose(vector, start_only, atol=1e-5)


# --------------------------------------------------------------------------- similarity
@pytest.mark.parametrize(
    ("source", "candidates", "error", "words"),
    [
        pytest.param([], None, ValueError, ["at least one"], id="no-source"),
        pytest.param("", ["a"], ValueError, ["position 0", "empty"], id="empty-source"),
        pytest.param("q", ["a", None], TypeError, ["position 1", "None"], id="none-candidate"),
        pytest.param("q", ["a", "  "], ValueError, ["position 1"], id="blank-candidate"),
        pytest.param(b"q", ["a"], TypeError, ["bytes"], id="bytes-source"),
        pytest.param(None, ["a"], TypeError, ["None"], id="none-source"),
        pytest.param("q", "abc", TypeError, ["single str"], id="string-candidates"),
    ],
)
def test_similarity_rejects(
    tiny: SentenceEncoder, source: Any, candidates: Any, error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        similarity(source, candidates, encoder=tiny)
    for word in words:
        assert word in str(info.value)


def test_similarity_without_candidates_has_no_scores(tiny: SentenceEncoder) -> None:
    for candidates in (None, []):
        out = similarity(["a b", "c d"], candidates, encoder=tiny)
        assert out["scores"] == []
        assert out["text_embedding"].shape == (2, tiny.dim)


# --------------------------------------------------------------------------- DialogueEncoder
@pytest.fixture(scope="module")
def fake_dialogue() -> DialogueEncoder:
    return DialogueEncoder(general=FakeEncoder(16), max_tokens=64)


# (dialogue, exception, words the message must contain)
DIALOGUE_CASES: list[tuple[str, Any, type[Exception], list[str]]] = [
    ("empty-list", [], EmptyDialogueError, ["no turns"]),
    ("empty-string", "", EmptyDialogueError, ["empty"]),
    ("whitespace-string", "  \n ", EmptyDialogueError, ["empty"]),
    ("blank-last-turn", [("user", "hi"), ("assistant", "   ")], EmptyDialogueError, ["turn 1"]),
    ("none", None, TypeError, ["None"]),
    ("bytes", b"hello", TypeError, ["bytes"]),
    ("single-dict", {"role": "user", "content": "x"}, TypeError, ["single dict"]),
    ("int", 42, TypeError, ["int"]),
    ("none-turn", [("user", "hi"), None], TypeError, ["turn 1", "NoneType"]),
    ("bare-string-turn", [("user", "hi"), "hello"], TypeError, ["turn 1", "no role"]),
    ("none-text", [("user", None)], TypeError, ["turn 0", "None"]),
    ("bytes-text", [("user", "a"), ("user", b"x")], TypeError, ["turn 1", "bytes"]),
    ("int-text", [("user", 5)], TypeError, ["turn 0", "int"]),
    ("none-role", [(None, "hi")], TypeError, ["turn 0", "role"]),
    ("int-role", [("user", "a"), (3, "hi")], TypeError, ["turn 1", "role"]),
    ("three-tuple", [("user", "hi", "extra")], TypeError, ["turn 0", "3 items"]),
    ("dict-without-role", [{"content": "hi"}], TypeError, ["turn 0", "'role'"]),
    ("unknown-role", [("user", "a"), ("wizard", "b")], ValueError, ["turn 1", "'wizard'"]),
    ("only-system", [("system", "be brief")], EmptyDialogueError, ["system"]),
    ("system-and-tool", [("system", "s"), ("tool", "t")], EmptyDialogueError, ["2 turn"]),
]


@pytest.mark.parametrize(
    ("dialogue", "error", "words"),
    [pytest.param(d, e, w, id=i) for i, d, e, w in DIALOGUE_CASES],
)
@pytest.mark.parametrize("method", ["format", "window", "encode"])
def test_dialogue_rejects(
    fake_dialogue: DialogueEncoder,
    method: str,
    dialogue: Any,
    error: type[Exception],
    words: list[str],
) -> None:
    with pytest.raises(error) as info:
        getattr(fake_dialogue, method)(dialogue)
    for word in words:
        assert word in str(info.value)


def test_dialogue_encode_many_names_the_dialogue(fake_dialogue: DialogueEncoder) -> None:
    with pytest.raises(TypeError, match=r"dialogue 1: turn 0"):
        fake_dialogue.encode_many(["fine", [("user", None)]])
    with pytest.raises(EmptyDialogueError, match=r"dialogue 2"):
        fake_dialogue.encode_many(["a", "b", []])
    with pytest.raises(TypeError, match=r"encode\(\)"):
        fake_dialogue.encode_many("one dialogue")
    assert fake_dialogue.encode_many([]).shape == (0, 16)


def test_dialogue_unknown_role_can_be_labelled() -> None:
    encoder = DialogueEncoder(general=FakeEncoder(16), roles={"user": "A", "wizard": "W"})
    assert encoder.format([("user", "a"), ("wizard", "b")]) == "A: a[SEP]W: b"


def test_dialogue_without_user_turn_is_encoded_as_given(fake_dialogue: DialogueEncoder) -> None:
    """Documented: no user turn is not an error; the vector stands for the last turn."""
    dialogue = [("assistant", "hello, how can I help"), ("assistant", "ask me anything")]
    assert fake_dialogue.format(dialogue) == "B: hello, how can I help[SEP]B: ask me anything"
    assert fake_dialogue.encode(dialogue).shape == (16,)


def test_dialogue_skips_system_tool_and_empty_turns(fake_dialogue: DialogueEncoder) -> None:
    dialogue = [
        {"role": "system", "content": "be brief"},
        ("user", "price"),
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},  # chat-API shape
        ("tool", "{'price': 3}"),
        ("assistant", "  "),
        ("user", "and the battery"),
    ]
    assert fake_dialogue.format(dialogue) == "A: price[SEP]A: and the battery"


def test_dialogue_mixed_message_kinds(fake_dialogue: DialogueEncoder) -> None:
    """Dicts, tuples, Turn, LangChain and LlamaIndex messages in one history."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from llama_index.core.llms import ChatMessage, MessageRole

    mixed = [
        SystemMessage("you are helpful"),
        {"role": "user", "content": "how much is the phone"},
        ("assistant", "three hundred"),
        Turn("user", "and the battery"),
        AIMessage("two days"),
        ChatMessage(role=MessageRole.USER, content="is the museum open"),
        ChatMessage(role=MessageRole.ASSISTANT, content="on monday"),
        HumanMessage(
            content=[
                {"type": "text", "text": "how"},
                {"type": "image_url", "image_url": {"url": "x"}},
                "much",
            ]
        ),
        ChatMessage(role=MessageRole.ASSISTANT, content=None),  # a tool-calling turn: no text
        {"role": "human", "text": "the ticket"},
    ]
    plain = [
        ("user", "how much is the phone"),
        ("assistant", "three hundred"),
        ("user", "and the battery"),
        ("assistant", "two days"),
        ("user", "is the museum open"),
        ("assistant", "on monday"),
        ("user", "how\nmuch"),
        ("user", "the ticket"),
    ]
    assert fake_dialogue.turns(mixed) == fake_dialogue.turns(plain)
    np.testing.assert_allclose(fake_dialogue.encode(mixed), fake_dialogue.encode(plain))


def test_dialogue_ten_thousand_turns(tiny: SentenceEncoder) -> None:
    """10,000 turns are windowed quickly: only the end that fits is tokenized in full."""
    encoder = DialogueEncoder(general=tiny)
    dialogue = [
        ("user" if i % 2 == 0 else "assistant", f"turn {i} about the battery price of my phone")
        for i in range(10_000)
    ]
    started = time.perf_counter()
    window = encoder.window(dialogue)
    seconds = time.perf_counter() - started
    print(f"10,000-turn dialogue windowed in {seconds * 1000:.0f} ms")
    assert seconds < 5.0  # a sanity bound only: it takes about 0.1 s
    assert window.tokens <= encoder.max_tokens
    assert window.turns[-1] == Turn("assistant", dialogue[-1][1])
    assert window.dropped == 10_000 - len(window.turns) > 9_900
    assert list(window.turns) == encoder.turns(dialogue)[window.dropped :]
    assert encoder.encode(dialogue).shape == (tiny.dim,)


@pytest.mark.parametrize("big", [ONE_MB_ASCII, ONE_MB_CJK], ids=["ascii", "cjk"])
def test_dialogue_one_megabyte_last_turn(tiny: SentenceEncoder, big: str) -> None:
    """The end of a 1 MB last turn is kept, to the token budget, without tokenizing all of it."""
    encoder = DialogueEncoder(general=tiny)
    started = time.perf_counter()
    window = encoder.window([("user", "hi"), ("assistant", "hello"), ("user", big)])
    print(f"1 MB last turn windowed in {time.perf_counter() - started:.3f} s")
    assert window.truncated_last
    assert window.dropped == 2
    assert window.tokens <= encoder.max_tokens
    assert big.strip().endswith(window.turns[-1].text)
    assert window.tokens >= encoder.max_tokens - 4  # it uses the budget, not far less
    assert encoder.encode([("user", big)]).shape == (tiny.dim,)


def test_dialogue_one_megabyte_middle_turn_is_dropped(tiny: SentenceEncoder) -> None:
    encoder = DialogueEncoder(general=tiny)
    window = encoder.window([("user", ONE_MB_CJK), ("assistant", "a"), ("user", "the battery")])
    assert window.dropped == 1
    assert window.text == "B: a[SEP]A: the battery"


def test_dialogue_max_tokens_must_be_sane() -> None:
    for bad in (0, 7, -1, 3.5, True, "64"):
        with pytest.raises(ValueError, match="max_tokens"):
            DialogueEncoder(general=FakeEncoder(16), max_tokens=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- ChromaStore: writes
# (texts, metadatas, ids, exception, words the message must contain)
ADD_CASES: list[tuple[str, Any, Any, Any, type[Exception], list[str]]] = [
    ("empty-string", ["new passage", ""], None, None, ValueError, ["position 1", "empty"]),
    ("whitespace", ["new passage", "\t \n"], None, None, ValueError, ["position 1"]),
    ("none-item", ["new passage", None], None, None, TypeError, ["position 1", "None"]),
    ("int-item", ["new passage", 12], None, None, TypeError, ["position 1", "int"]),
    ("bytes-item", [b"new passage"], None, None, TypeError, ["position 0", "bytes"]),
    ("bare-string", "new passage", None, None, TypeError, ["single string"]),
    ("none", None, None, None, TypeError, ["NoneType"]),
    ("dict", {"a": "b"}, None, None, TypeError, ["dict"]),
    ("int", 5, None, None, TypeError, ["int"]),
    (
        "object-meta",
        ["new passage"],
        [{"when": object()}],
        None,
        TypeError,
        ["'when'", "object", "json.dumps"],
    ),
    (
        "list-meta",
        ["new", "passage"],
        [None, {"tags": ["a", "b"]}],
        None,
        TypeError,
        ["position 1", "'tags'", "list"],
    ),
    ("nested-meta", ["new passage"], [{"a": {"b": 1}}], None, TypeError, ["'a'", "dict"]),
    ("bytes-meta", ["new passage"], [{"raw": b"x"}], None, TypeError, ["'raw'", "bytes"]),
    ("nan-meta", ["new passage"], [{"score": math.nan}], None, ValueError, ["'score'", "finite"]),
    ("inf-meta", ["new passage"], [{"score": math.inf}], None, ValueError, ["'score'", "finite"]),
    ("int-key-meta", ["new passage"], [{1: "a"}], None, TypeError, ["keys must be strings"]),
    ("string-meta", ["new passage"], ["topic=phone"], None, TypeError, ["must be a dict", "str"]),
    ("metadatas-string", ["new passage"], "topic", None, TypeError, ["metadatas must be a list"]),
    (
        "too-few-metadatas",
        ["new", "passage"],
        [{"a": 1}],
        None,
        ValueError,
        ["2 texts", "1 metadatas"],
    ),
    ("too-many-ids", ["new passage"], None, ["a", "b"], ValueError, ["1 texts", "2 ids"]),
    ("none-id", ["new", "passage"], None, ["a", None], TypeError, ["id at position 1"]),
    ("empty-id", ["new passage"], None, [""], TypeError, ["id at position 0"]),
    ("int-id", ["new passage"], None, [7], TypeError, ["id at position 0"]),
    ("ids-string", ["new passage"], None, "abc", TypeError, ["ids must be a list"]),
]


@pytest.mark.parametrize(
    ("texts", "metadatas", "ids", "error", "words"),
    [pytest.param(t, m, i, e, w, id=n) for n, t, m, i, e, w in ADD_CASES],
)
def test_store_add_rejects_and_changes_nothing(
    snapshot: Any,
    seeded_store: ChromaStore,
    texts: Any,
    metadatas: Any,
    ids: Any,
    error: type[Exception],
    words: list[str],
) -> None:
    before = snapshot(seeded_store)
    with pytest.raises(error) as info:
        seeded_store.add(texts, metadatas, ids)
    for word in words:
        assert word in str(info.value)
    assert snapshot(seeded_store) == before


def test_store_bad_item_after_first_chunk_of_a_large_list(
    snapshot: Any, seeded_store: ChromaStore
) -> None:
    """A list is checked whole before the first write, however many chunks it makes."""
    texts = [f"passage {i}" for i in range(_CHUNK + 10)] + [None]
    before = snapshot(seeded_store)
    with pytest.raises(TypeError, match=f"position {_CHUNK + 10}"):
        seeded_store.add(texts)
    assert snapshot(seeded_store) == before


def test_store_bad_item_in_a_generator_says_what_was_stored(
    unique_name: Any, tiny: SentenceEncoder
) -> None:
    """Documented: a generator is checked chunk by chunk; chunks before the bad item stay."""
    store = ChromaStore(unique_name("gen"), encoder=FakeEncoder(16))

    def passages() -> Iterator[Any]:
        yield from (f"passage {i}" for i in range(_CHUNK + 5))
        yield None

    with pytest.raises(TypeError) as info:
        store.add(passages())
    message = str(info.value)
    assert f"position {_CHUNK + 5}" in message
    assert f"the {_CHUNK} passages before position {_CHUNK} were stored" in message
    assert store.count() == _CHUNK
    # re-running with the bad item fixed completes it, with no duplicates
    report = store.index(f"passage {i}" for i in range(_CHUNK + 6))
    assert (report.embedded, report.skipped, store.count()) == (6, _CHUNK, _CHUNK + 6)


def test_store_add_empty_list_changes_nothing(snapshot: Any, seeded_store: ChromaStore) -> None:
    before = snapshot(seeded_store)
    assert seeded_store.add([]) == []
    report = seeded_store.index(iter([]))
    assert (report.ids, report.embedded) == ([], 0)
    assert snapshot(seeded_store) == before


def test_store_add_twice_stores_once(seeded_store: ChromaStore) -> None:
    ids = seeded_store.add(["a new passage", "a new passage", "the battery lasts two days"])
    assert ids[0] == ids[1] == text_id("a new passage")
    assert seeded_store.count() == 4


def test_store_none_metadata_values_are_left_out(seeded_store: ChromaStore) -> None:
    """Documented: a ``None`` metadata value means "no value" (Chroma cannot store null)."""
    [pid] = seeded_store.add(["with a none"], [{"a": None, "b": 1}])
    assert seeded_store.get([pid])[0].metadata == {"b": 1}


@pytest.mark.slow
def test_store_one_megabyte_passage(seeded_store: ChromaStore, tiny: SentenceEncoder) -> None:
    """Stored whole; embedded from its first ``max_seq_length`` tokens (documented)."""
    [pid] = seeded_store.add([ONE_MB_ASCII])
    assert seeded_store.count() == 4
    assert seeded_store.get([pid])[0].text == ONE_MB_ASCII
    start_only = tiny.encode_queries(["battery " * (tiny.max_seq_length * 2)])[0]
    assert seeded_store.search(start_only, k=1)[0].id == pid


# --------------------------------------------------------------------------- ChromaStore: reads
NAN_VECTOR = [math.nan] * 48
# (query, k, where, exception, words the message must contain)
SEARCH_CASES: list[tuple[str, Any, Any, Any, type[Exception], list[str]]] = [
    ("k-zero", "battery", 0, None, ValueError, ["k must be a positive integer", "0"]),
    ("k-negative", "battery", -3, None, ValueError, ["-3"]),
    ("k-float", "battery", 2.0, None, TypeError, ["2.0"]),
    ("k-bool", "battery", True, None, TypeError, ["True"]),
    ("k-none", "battery", None, None, TypeError, ["None"]),
    ("k-string", "battery", "3", None, TypeError, ["'3'"]),
    ("empty-query", "", 2, None, ValueError, ["query", "empty"]),
    ("blank-query", "   ", 2, None, ValueError, ["query", "empty"]),
    ("none-query", None, 2, None, TypeError, ["NoneType"]),
    ("bytes-query", b"battery", 2, None, TypeError, ["bytes"]),
    ("strings-as-vector", ["battery", "phone"], 2, None, TypeError, ["numbers"]),
    ("nan-vector", NAN_VECTOR, 2, None, ValueError, ["NaN or infinite", "index 0"]),
    ("inf-vector", [0.1] * 47 + [math.inf], 2, None, ValueError, ["NaN or infinite", "index 47"]),
    ("neg-inf-vector", [-math.inf] + [0.1] * 47, 2, None, ValueError, ["NaN or infinite"]),
    ("zero-vector", [0.0] * 48, 2, None, ValueError, ["all zeros"]),
    ("short-vector", [0.1] * 40, 2, None, ValueError, ["40 dimensions", "48"]),
    ("matrix-as-vector", [[0.1] * 48], 2, None, ValueError, ["one-dimensional"]),
    ("where-string", "battery", 2, "topic=phone", TypeError, ["where must be a dict"]),
    ("where-bad-operator", "battery", 2, {"topic": {"$like": "p"}}, ValueError, ["$like"]),
    ("where-list-value", "battery", 2, {"topic": ["a", "b"]}, ValueError, ["where value"]),
]


@pytest.mark.parametrize(
    ("query", "k", "where", "error", "words"),
    [pytest.param(q, k, w, e, m, id=n) for n, q, k, w, e, m in SEARCH_CASES],
)
def test_store_search_rejects(
    snapshot: Any,
    seeded_store: ChromaStore,
    query: Any,
    k: Any,
    where: Any,
    error: type[Exception],
    words: list[str],
) -> None:
    before = snapshot(seeded_store)
    with pytest.raises(error) as info:
        seeded_store.search(query, k=k, where=where)
    for word in words:
        assert word in str(info.value)
    assert snapshot(seeded_store) == before


@pytest.mark.parametrize(
    ("vectors", "error", "words"),
    [
        pytest.param(np.full((2, 48), np.nan), ValueError, ["query vector 0"], id="nan-rows"),
        pytest.param(
            np.vstack([np.ones(48), np.r_[np.ones(47), np.inf]]),
            ValueError,
            ["query vector 1"],
            id="inf-row",
        ),
        pytest.param(np.ones(48), ValueError, ["2-d"], id="one-vector"),
        pytest.param(np.ones((2, 3)), ValueError, ["3 dimensions"], id="wrong-dim"),
        pytest.param(None, TypeError, ["NoneType"], id="none"),
    ],
)
def test_store_search_many_rejects(
    snapshot: Any, seeded_store: ChromaStore, vectors: Any, error: type[Exception], words: list[str]
) -> None:
    before = snapshot(seeded_store)
    with pytest.raises(error) as info:
        seeded_store.search_many(vectors, k=2)
    for word in words:
        assert word in str(info.value)
    assert snapshot(seeded_store) == before


def test_store_k_larger_than_the_collection_returns_everything(seeded_store: ChromaStore) -> None:
    hits = seeded_store.search("battery", k=1000)
    assert len(hits) == 3
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_store_search_of_an_empty_collection(unique_name: Any, tiny: SentenceEncoder) -> None:
    store = ChromaStore(unique_name("empty"), encoder=tiny)
    assert store.search("battery", k=5) == []
    assert store.search_many(np.ones((2, tiny.dim)), k=5) == [[], []]


def test_store_where_on_a_missing_key_returns_nothing(
    snapshot: Any, seeded_store: ChromaStore
) -> None:
    before = snapshot(seeded_store)
    assert seeded_store.search("battery", k=3, where={"no_such_key": "x"}) == []
    assert seeded_store.search("battery", k=3, where={"n": {"$gt": 100}}) == []
    assert [h.metadata["topic"] for h in seeded_store.search("battery", k=3, where={"n": 3})] == [
        "sport"
    ]
    assert snapshot(seeded_store) == before


def test_store_search_many_of_no_vectors(seeded_store: ChromaStore) -> None:
    assert seeded_store.search_many([], k=2) == []
    assert seeded_store.search_many(np.empty((0, 48)), k=2) == []


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        pytest.param(lambda s: s.get("abc"), TypeError, ["single string"], id="get-string"),
        pytest.param(lambda s: s.get([None]), TypeError, ["position 0"], id="get-none"),
        pytest.param(lambda s: s.get(None), TypeError, [], id="get-none-list"),
        pytest.param(lambda s: s.delete("abc"), TypeError, ["single string"], id="delete-string"),
        pytest.param(lambda s: s.delete(["ok", 3]), TypeError, ["position 1"], id="delete-int"),
        pytest.param(lambda s: s.delete([""]), TypeError, ["position 0"], id="delete-empty"),
    ],
)
def test_store_get_and_delete_reject(
    snapshot: Any,
    seeded_store: ChromaStore,
    call: Callable[[ChromaStore], Any],
    error: type[Exception],
    words: list[str],
) -> None:
    before = snapshot(seeded_store)
    with pytest.raises(error) as info:
        call(seeded_store)
    for word in words:
        assert word in str(info.value)
    assert snapshot(seeded_store) == before


def test_store_get_and_delete_of_unknown_ids(snapshot: Any, seeded_store: ChromaStore) -> None:
    before = snapshot(seeded_store)
    assert seeded_store.get(["nope"]) == []
    assert seeded_store.get([]) == []
    seeded_store.delete(["nope"])
    seeded_store.delete([])
    assert snapshot(seeded_store) == before


@pytest.mark.parametrize(
    ("name", "error"),
    [
        pytest.param("", TypeError, id="empty"),
        pytest.param(None, TypeError, id="none"),
        pytest.param(3, TypeError, id="int"),
        pytest.param("a", Exception, id="too-short-for-chroma"),
        pytest.param("bad name!", Exception, id="bad-characters"),
    ],
)
def test_store_bad_collection_names(
    tiny: SentenceEncoder, name: Any, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        ChromaStore(name, encoder=tiny)
    assert repr(name) in str(info.value) or str(name) in str(info.value)


def test_store_path_and_client_together(tiny: SentenceEncoder, tmp_path: Any) -> None:
    import chromadb

    with pytest.raises(ValueError, match="either path= or client="):
        ChromaStore("docs", encoder=tiny, path=tmp_path, client=chromadb.EphemeralClient())


def test_store_encoder_must_be_an_encoder() -> None:
    with pytest.raises(TypeError, match="encoder must be"):
        ChromaStore("docs", encoder=42)


# --------------------------------------------------------------------------- retriever
@pytest.fixture
def retriever(seeded_store: ChromaStore, tiny: SentenceEncoder) -> ConversationalRetriever:
    return ConversationalRetriever(seeded_store, DialogueEncoder(general=tiny), k=2)


@pytest.mark.parametrize(
    ("turns", "kwargs", "error", "words"),
    [
        pytest.param([], {}, EmptyDialogueError, ["no turns"], id="empty"),
        pytest.param(None, {}, TypeError, ["None"], id="none"),
        pytest.param(b"hi", {}, TypeError, ["bytes"], id="bytes"),
        pytest.param([("user", "a"), ("user", None)], {}, TypeError, ["turn 1"], id="none-text"),
        pytest.param([("robot", "a")], {}, ValueError, ["'robot'"], id="unknown-role"),
        pytest.param("battery", {"k": 0}, ValueError, ["k must be"], id="k-zero"),
        pytest.param("battery", {"k": -1}, ValueError, ["k must be"], id="k-negative"),
        pytest.param(
            "battery", {"where": "x"}, TypeError, ["where must be a dict"], id="where-string"
        ),
    ],
)
def test_retriever_rejects(
    snapshot: Any,
    retriever: ConversationalRetriever,
    turns: Any,
    kwargs: dict[str, Any],
    error: type[Exception],
    words: list[str],
) -> None:
    before = snapshot(retriever.store)
    with pytest.raises(error) as info:
        retriever.retrieve(turns, **kwargs)
    for word in words:
        assert word in str(info.value)
    with pytest.raises(error):
        asyncio.run(retriever.aretrieve(turns, **kwargs))
    with pytest.raises(error):
        retriever.retrieve_many(["fine", turns], **kwargs)
    assert snapshot(retriever.store) == before


def test_retriever_documented_results(snapshot: Any, retriever: ConversationalRetriever) -> None:
    before = snapshot(retriever.store)
    assert retriever.retrieve_many([]) == []
    assert len(retriever.retrieve("battery", k=50)) == 3
    assert retriever.retrieve("battery", where={"missing": 1}) == []
    assert len(retriever.retrieve([("assistant", "welcome")])) == 2  # no user turn
    assert snapshot(retriever.store) == before


@pytest.mark.parametrize(
    ("args", "error"),
    [
        pytest.param(("store", "dialogue"), TypeError, id="store-string"),
        pytest.param((None, None), TypeError, id="none"),
    ],
)
def test_retriever_constructor_rejects(args: tuple[Any, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        ConversationalRetriever(*args)


def test_retriever_rejects_bad_default_k(seeded_store: ChromaStore, tiny: SentenceEncoder) -> None:
    for k in (0, -2, 1.5, None):
        with pytest.raises((TypeError, ValueError), match="k must be"):
            ConversationalRetriever(seeded_store, DialogueEncoder(general=tiny), k=k)  # type: ignore[arg-type]
