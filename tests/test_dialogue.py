"""DialogueEncoder: the card's format, windowing from the start, turn shapes, dimensions."""

from __future__ import annotations

import numpy as np
import pytest

from stella_rag import (
    DialogueEncoder,
    EmptyDialogueError,
    EncoderMismatchError,
    SentenceEncoder,
)
from stella_rag.testing import FakeEncoder

BASKETBALL = [("user", "最近去打篮球了吗"), ("assistant", "没有")]


def test_format_is_the_cards(tiny: SentenceEncoder) -> None:
    de = DialogueEncoder(general=tiny)
    assert de.format(BASKETBALL) == "A: 最近去打篮球了吗[SEP]B: 没有"
    custom = DialogueEncoder(general=tiny, roles={"user": "张三", "assistant": "李四"})
    assert custom.format(BASKETBALL) == "张三: 最近去打篮球了吗[SEP]李四: 没有"


def test_sep_is_one_special_token(tiny: SentenceEncoder) -> None:
    text = DialogueEncoder(general=tiny).format(BASKETBALL)
    tokens = tiny.tokenizer.tokenize(text)
    assert tokens.count("[SEP]") == 1
    assert "[UNK]" not in tokens


def test_window_drops_whole_turns_from_the_start(tiny: SentenceEncoder) -> None:
    turns = [("user", f"old question {i} about the phone battery") for i in range(30)]
    turns += [("assistant", "the price is high"), ("user", "and the tennis table?")]
    de = DialogueEncoder(general=tiny, max_tokens=40)
    window = de.window(turns)
    assert window.tokens <= 40
    assert tiny.count_tokens([window.text])[0] == window.tokens
    assert window.text.endswith("A: and the tennis table?")
    assert window.dropped > 0
    assert list(window.turns) == de.turns(turns)[window.dropped :]
    # Whole turns: the text is exactly the kept turns joined.
    assert window.text == "[SEP]".join(de.label(t) for t in window.turns)
    # Adding one more early turn back would overflow.
    longer = "[SEP]".join(de.label(t) for t in de.turns(turns)[window.dropped - 1 :])
    assert tiny.count_tokens([longer])[0] > 40


def test_default_budget_is_the_model_max(tiny: SentenceEncoder) -> None:
    turns = [("user", "phone " * 60), ("assistant", "battery " * 60), ("user", "price?")]
    window = DialogueEncoder(general=tiny).window(turns)
    assert tiny.max_seq_length == 128
    assert window.tokens <= 128
    assert window.dropped == 1


def test_long_last_turn_keeps_its_end(tiny: SentenceEncoder) -> None:
    last = "phone " * 200 + "what is the price"
    window = DialogueEncoder(general=tiny, max_tokens=32).window(
        [("assistant", "hello"), ("user", last)]
    )
    assert window.truncated_last
    assert window.dropped == 1
    assert window.tokens <= 32
    assert window.text.startswith("A: ")
    assert window.text.endswith("what is the price")


def test_turn_shapes_are_equivalent(tiny: SentenceEncoder) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
    from llama_index.core.llms import ChatMessage, MessageRole

    de = DialogueEncoder(general=tiny)
    expected = de.format(BASKETBALL)
    shapes = [
        BASKETBALL,
        [{"role": "user", "content": "最近去打篮球了吗"}, {"role": "assistant", "content": "没有"}],
        [HumanMessage("最近去打篮球了吗"), AIMessage("没有")],
        [
            ChatMessage(role=MessageRole.USER, content="最近去打篮球了吗"),
            ChatMessage(role=MessageRole.ASSISTANT, content="没有"),
        ],
        [
            SystemMessage("be brief"),
            ("human", "最近去打篮球了吗"),
            {"role": "ai", "content": "没有"},
        ],
        [
            {"role": "user", "content": [{"type": "text", "text": "最近去打篮球了吗"}]},
            AIMessage("没有"),
        ],
    ]
    for shape in shapes:
        assert de.format(shape) == expected


def test_bare_string_is_one_user_turn(tiny: SentenceEncoder) -> None:
    de = DialogueEncoder(general=tiny)
    assert de.format("what is the price") == "A: what is the price"


@pytest.mark.parametrize(
    ("dialogue", "error", "message"),
    [
        ([], EmptyDialogueError, "no turns"),
        ([("system", "be nice")], EmptyDialogueError, "system or tool"),
        ([("user", "hi"), ("user", "  ")], EmptyDialogueError, "turn 1, the last turn, is empty"),
        ([("user", "hi"), ("narrator", "x")], ValueError, "turn 1: unknown role 'narrator'"),
        ([("user", "hi"), ("user", None)], TypeError, "turn 1: the text is None"),
        ([("user", "hi"), "bare"], TypeError, "turn 1: a bare string"),
        ([("user", "hi"), 42], TypeError, "turn 1: cannot read a turn from int"),
        (None, TypeError, "got None"),
        (b"bytes", TypeError, "bytes"),
    ],
)
def test_bad_dialogues(tiny: SentenceEncoder, dialogue: object, error: type, message: str) -> None:
    de = DialogueEncoder(general=tiny)
    with pytest.raises(error, match=message):
        de.encode(dialogue)  # type: ignore[arg-type]


def test_encode_many_names_the_dialogue(tiny: SentenceEncoder) -> None:
    de = DialogueEncoder(general=tiny)
    with pytest.raises(EmptyDialogueError, match="dialogue 1: the dialogue has no turns"):
        de.encode_many([BASKETBALL, []])


def test_encode_many_equals_encode(tiny: SentenceEncoder) -> None:
    de = DialogueEncoder(general=tiny)
    dialogues = [
        BASKETBALL,
        "price?",
        [("user", "phone"), ("assistant", "ok"), ("user", "battery?")],
    ]
    many = de.encode_many(dialogues)
    assert many.shape == (3, tiny.dim)
    for row, dialogue in zip(many, dialogues, strict=True):
        np.testing.assert_allclose(row, de.encode(dialogue), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(many, axis=1), 1.0, rtol=1e-5)


def test_dedicated_model_encodes_the_formatted_dialogue(
    tiny: SentenceEncoder, tiny_dialogue_model: str
) -> None:
    de = DialogueEncoder(tiny_dialogue_model, general=tiny)
    assert de.strategy.name == "dialogue"
    assert de.dim == tiny.dim
    expected = de.encoder.encode_queries([de.format(BASKETBALL)])[0]
    np.testing.assert_allclose(de.encode(BASKETBALL), expected, atol=1e-6)
    # and it is not what the general model makes of the same text
    assert not np.allclose(de.encode(BASKETBALL), tiny.encode_queries([de.format(BASKETBALL)])[0])


def test_dimension_mismatch_at_construction(tiny: SentenceEncoder, tiny_model_40d: str) -> None:
    with pytest.raises(EncoderMismatchError) as info:
        DialogueEncoder(tiny_model_40d, general=tiny)
    message = str(info.value)
    assert tiny_model_40d in message and tiny.model_id in message
    assert "40-d" in message and "48-d" in message


def test_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="unknown query strategy 'magic'"):
        DialogueEncoder(general=FakeEncoder(), strategy="magic")


def test_fake_encoder_works_as_general() -> None:
    de = DialogueEncoder(general=FakeEncoder(dim=8))
    assert de.encode(BASKETBALL).shape == (8,)


class _CountingFake(FakeEncoder):
    def __init__(self) -> None:
        super().__init__(dim=8)
        self.seen: list[str] = []

    def encode_queries(self, texts):  # type: ignore[no-untyped-def,override]
        self.seen.extend(texts)
        return super().encode_queries(texts)


def test_earlier_turns_are_not_encoded_again() -> None:
    fake = _CountingFake()
    de = DialogueEncoder(general=fake)
    chat = [("user", "which phone"), ("assistant", "the pulse"), ("user", "its price?")]
    first = de.encode(chat)
    fake.seen.clear()
    again = de.encode(chat)
    assert fake.seen == []
    np.testing.assert_array_equal(first, again)
    de.encode([*chat, ("assistant", "649 dollars"), ("user", "and the battery?")])
    assert "which phone" not in fake.seen and "the pulse" not in fake.seen
    assert "and the battery?" in fake.seen
    uncached = DialogueEncoder(general=fake, cache_size=0)
    np.testing.assert_allclose(uncached.encode(chat), first, atol=1e-6)
    with pytest.raises(ValueError, match="cache_size must be an integer >= 0"):
        DialogueEncoder(general=fake, cache_size=-1)


def test_explain_says_what_is_encoded(tiny: SentenceEncoder) -> None:
    from stella_rag import DialogueExplanation

    turns = [
        ("system", "be brief"),
        ("user", "the old bridge over the river was built long ago"),
        ("assistant", "yes it is very old"),
        ("user", "is the museum open on monday"),
    ]
    de = DialogueEncoder(general=tiny, max_tokens=16, strategy="pairwise")
    explained = de.explain(turns)
    assert isinstance(explained, DialogueExplanation)
    assert explained.window == de.window(turns)
    assert explained.dropped_labels == (
        "A: the old bridge over the river was built long ago",
        "B: yes it is very old",
    )
    assert [t.role for t in explained.dropped_turns] == ["user", "assistant"]
    assert explained.strategy == "pairwise" and explained.max_tokens == 16
    assert explained.texts[0] == "is the museum open on monday"
    assert len(explained.texts) == 3  # the last turn, and its pair with each earlier turn
    data = explained.to_dict()
    assert data["encoded"] == list(explained.texts) and data["dropped"] == 2
    assert data["dropped_turns"][1] == {"role": "assistant", "text": "yes it is very old"}
    card = DialogueEncoder(general=tiny, strategy="dialogue").explain(BASKETBALL)
    assert card.texts == (card.window.text,) and card.dropped_labels == ()


def test_one_text_strategy_tokenizes_the_dialogue_once(
    tiny: SentenceEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window counts the text's tokens; the forward pass reuses them (no second pass)."""
    runner = tiny._runner
    real = runner.tokenizer
    calls: list[list[str]] = []

    class Counting:
        def __init__(self, inner: object) -> None:
            self.inner = inner

        def __call__(self, texts: list[str], **kwargs: object) -> object:
            calls.append(list(texts))
            return self.inner(texts, **kwargs)  # type: ignore[operator]

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

    monkeypatch.setattr(runner, "tokenizer", lambda task=None: Counting(real(task)))
    de = DialogueEncoder(general=tiny, strategy="dialogue", cache_size=0)
    chat = [("user", "is the museum open on monday"), ("assistant", "yes"), ("user", "price")]
    vector = de.encode(chat)
    text = de.format(chat)
    assert calls[0] == [text] and len(calls) == 2  # encode's count, then format's own
    calls.clear()
    assert np.allclose(vector, tiny.encode_queries([text])[0], atol=1e-5)
    assert calls == []  # just counted by format(): the pass reused its tokens
    np.testing.assert_allclose(vector, tiny.encode_queries([text + " "])[0], atol=1e-5)
    assert calls == [[text + " "]]  # an uncounted text is tokenized by the pass
