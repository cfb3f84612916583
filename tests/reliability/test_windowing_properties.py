"""Property tests: dialogue windowing keeps the end of the chat and fits any token budget."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stella_rag import DialogueEncoder, Turn
from stella_rag._dialogue import SEP
from stella_rag.testing import FakeEncoder

WORDS = [
    "battery",
    "phone",
    "price",
    "a",
    "b",
    "the",
    "how",
    "much",
    "你",
    "好",
    "打",
    "球",
    "?",
    "!",
]

word_text = st.lists(st.sampled_from(WORDS), min_size=1, max_size=40).map(" ".join)
any_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=300
).filter(lambda t: t.strip() != "")
turns_of = st.lists(
    st.tuples(st.sampled_from(["user", "assistant"]), st.one_of(word_text, any_text)),
    min_size=1,
    max_size=30,
)


def check_window(encoder: DialogueEncoder, dialogue: list[tuple[str, str]], budget: int) -> None:
    turns = encoder.turns(dialogue)
    window = encoder.window(dialogue)
    # the formatted text fits the budget, special tokens included
    assert window.tokens <= budget
    assert encoder.encoder.count_tokens([window.text])[0] == window.tokens
    # only whole turns dropped, and only from the start
    assert window.dropped == len(turns) - len(window.turns)
    assert list(window.turns[:-1]) == turns[window.dropped : -1]
    # it ends with the last turn (its end, when the last turn alone is over the budget)
    last = window.turns[-1]
    assert last.role == turns[-1].role
    if window.truncated_last:
        assert window.dropped == len(turns) - 1
        assert turns[-1].text.endswith(last.text)
        assert len(last.text) < len(turns[-1].text)
    else:
        assert last == turns[-1]
    assert window.text.endswith(last.text)
    assert window.text == SEP.join(encoder.label(t) for t in window.turns)


@settings(max_examples=300, deadline=None)
@given(dialogue=turns_of, budget=st.integers(min_value=8, max_value=200))
def test_window_property_fake_encoder(dialogue: list[tuple[str, str]], budget: int) -> None:
    encoder = DialogueEncoder(general=FakeEncoder(16), max_tokens=budget)
    check_window(encoder, dialogue, budget)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dialogue=turns_of, budget=st.integers(min_value=8, max_value=128))
def test_window_property_real_tokenizer(
    tiny: Any, dialogue: list[tuple[str, str]], budget: int
) -> None:
    """The same properties with the tiny BERT's WordPiece tokenizer (seams, ``##`` pieces)."""
    check_window(DialogueEncoder(general=tiny, max_tokens=budget), dialogue, budget)


def test_window_turns_are_turn_objects(tiny: Any) -> None:
    encoder = DialogueEncoder(general=tiny, max_tokens=16)
    window = encoder.window([("user", "how much is the battery"), ("assistant", "a b the price")])
    assert all(isinstance(t, Turn) for t in window.turns)
    check_window(encoder, [("user", "how much is the battery"), ("assistant", "a b the price")], 16)
