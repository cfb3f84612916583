"""Query strategies, with hand-made vectors and a bag-of-words fake encoder (no model)."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np
import pytest

from stella_rag._strategies import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    AdaptiveStrategy,
    ContextualStrategy,
    DialogueView,
    MixStrategy,
    PairwiseStrategy,
    QueryStrategy,
    RecencyStrategy,
    RelevanceStrategy,
    get_strategy,
)
from stella_rag._turns import Turn

HISTORY_AWARE = ["mix", "recency", "relevance", "adaptive", "pairwise", "contextual"]
LABELS = {"user": "A", "assistant": "B"}


def make_view(turns: Sequence[tuple[str, str]], labels: dict[str, str] = LABELS) -> DialogueView:
    """A view whose ``format`` joins labelled turns with [SEP] (no token budget)."""

    def label(turn: Turn) -> str:
        return f"{labels[turn.role]}: {turn.text}"

    return DialogueView(
        turns=[Turn(role, text) for role, text in turns],
        format=lambda ts: "[SEP]".join(label(t) for t in ts),
        label=label,
    )


# ------------------------------------------------------------------ bag-of-words fake encoder
DIM = 256


def _word(word: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(word.encode())).standard_normal(DIM)


def embed(text: str) -> np.ndarray:
    """Mean pooling of fixed random word vectors, like a (very dumb) sentence encoder."""
    total = sum((_word(w) for w in re.findall(r"[a-z0-9]+", text.lower())), np.zeros(DIM))
    return (total / np.linalg.norm(total)).astype(np.float32)


def query(strategy: str | QueryStrategy, view: DialogueView) -> np.ndarray:
    s = get_strategy(strategy)
    return s.combine(view, np.stack([embed(t) for t in s.plan(view)]))


TOPIC_SHIFT = make_view(
    [
        ("user", "how much stock does risotto rice need"),
        ("assistant", "about one litre of hot stock for the risotto rice"),
        ("user", "should the risotto stock simmer"),
        ("assistant", "yes keep the stock at a gentle simmer for the rice"),
        ("user", "thanks now how tall is the merrow tower in brackwater"),
    ]
)
NEW_TOPIC = embed("the merrow tower in brackwater is 212 metres tall")
OLD_TOPIC = embed("risotto rice needs one litre of stock kept at a simmer")

ELLIPSIS = make_view(
    [
        (
            "user",
            "my brother likes the talvo phone but i prefer the norvik pulse how long does "
            "the norvik pulse battery last",
        ),
        ("assistant", "the norvik pulse battery lasts about 26 hours"),
        ("user", "and the price"),
    ]
)
RIGHT_ENTITY = embed("the norvik pulse costs 649 dollars price")
OTHER_ENTITY = embed("the talvo phone costs 499 dollars price")


# ------------------------------------------------------------------------------- registry
def test_registry_names_and_default() -> None:
    assert set(STRATEGIES) == {"dialogue", "last_turn", "in_context", *HISTORY_AWARE}
    assert DEFAULT_STRATEGY == "contextual"
    assert isinstance(get_strategy(None), ContextualStrategy)
    for name, cls in STRATEGIES.items():
        assert cls.name == name
        assert isinstance(get_strategy(name), cls)
        assert cls.__doc__


def test_get_strategy_passes_instances_through_and_names_valid_choices() -> None:
    mine = PairwiseStrategy(half_life=3)
    assert get_strategy(mine) is mine
    with pytest.raises(ValueError, match=r"'nope'.*'contextual'"):
        get_strategy("nope")


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: RecencyStrategy(half_life=0), "half_life"),
        (lambda: RecencyStrategy(history_weight=-1), "history_weight"),
        (lambda: PairwiseStrategy(max_history=0), "max_history"),
        (lambda: ContextualStrategy(context_weight=float("nan")), "context_weight"),
        (lambda: MixStrategy(weight=1.5), "weight"),
        (lambda: RecencyStrategy(history_weight=float("inf")), "history_weight"),
        (lambda: AdaptiveStrategy(max_history=True), "max_history"),
    ],
)
def test_bad_constants_are_refused(factory: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        factory()  # type: ignore[operator]


def test_repr_shows_the_constants() -> None:
    assert repr(ContextualStrategy()) == (
        "ContextualStrategy(context_weight=1.0, history_weight=0.5, half_life=2.0, max_history=4)"
    )


# -------------------------------------------------------------------------- output contract
DIALOGUES = {
    "one turn": [("user", "how tall is the merrow tower")],
    "three turns": [(t.role, t.text) for t in ELLIPSIS.turns],
    "ends with the assistant": [("user", "hi there"), ("assistant", "hello, how can I help")],
    "thirteen turns": [
        ("user" if i % 2 == 0 else "assistant", f"turn {i} about topic {i // 4}") for i in range(13)
    ],
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("dialogue", sorted(DIALOGUES))
def test_one_unit_float32_vector(name: str, dialogue: str) -> None:
    view = make_view(DIALOGUES[dialogue])
    strategy = get_strategy(name)
    texts = strategy.plan(view)
    assert texts and all(isinstance(t, str) and t for t in texts)
    vectors = np.stack([embed(t) for t in texts])
    out = strategy.combine(view, vectors)
    assert out.shape == (DIM,)
    assert out.dtype == np.float32
    assert np.linalg.norm(out) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(out, strategy.combine(view, vectors))


@pytest.mark.parametrize("name", ["last_turn", *HISTORY_AWARE])
def test_single_turn_is_the_turn_itself(name: str) -> None:
    view = make_view(DIALOGUES["one turn"])
    np.testing.assert_allclose(query(name, view), embed(view.last.text), atol=1e-6)


def test_plans_use_raw_texts_and_the_callers_format_for_pairs() -> None:
    view = make_view(DIALOGUES["three turns"], labels={"user": "Q", "assistant": "R"})
    u0, a1, last = view.turns
    assert RecencyStrategy().plan(view) == [last.text, u0.text, a1.text]
    assert PairwiseStrategy().plan(view) == [
        last.text,
        view.format([u0, last]),
        view.format([a1, last]),
    ]
    assert ContextualStrategy().plan(view) == [
        last.text,
        view.format([u0, last]),
        view.format([a1, last]),
        u0.text,
        a1.text,
    ]
    assert AdaptiveStrategy().plan(view)[-1] == view.format([a1, last])


def test_max_history_bounds_the_texts_and_drops_the_oldest_turns() -> None:
    view = make_view(DIALOGUES["thirteen turns"])
    plan = ContextualStrategy(max_history=4).plan(view)
    assert len(plan) == 1 + 2 * 4
    assert not any("turn 7 " in t for t in plan)
    assert any("turn 8 " in t for t in plan)
    assert len(ContextualStrategy(max_history=8).plan(view)) == 1 + 2 * 8
    assert ContextualStrategy().plan(view) == plan  # the default reads 4


# --------------------------------------------------------- exact formulas, orthogonal basis
def basis(n: int, dim: int = 12) -> np.ndarray:
    return np.eye(dim, dtype=np.float32)[:n]


def test_contextual_formula() -> None:
    view = make_view(DIALOGUES["three turns"])
    last, pair0, pair1, turn0, turn1 = basis(5)
    out = ContextualStrategy().combine(view, np.stack([last, pair0, pair1, turn0, turn1]))
    # The turn just before the last weighs 1; the one before that, 2**-0.5 (half-life 2 turns).
    w = np.array([2**-0.5, 1.0])
    context = (w[0] * pair0 + w[1] * pair1) / np.linalg.norm(w)
    history = (w[0] * turn0 + w[1] * turn1) / np.linalg.norm(w)
    expected = last + context + 0.5 * history
    np.testing.assert_allclose(out, expected / np.linalg.norm(expected), atol=1e-6)


def test_recency_halves_every_half_life() -> None:
    view = make_view(DIALOGUES["thirteen turns"])
    vectors = basis(13, dim=16)
    out = RecencyStrategy(max_history=12).combine(view, vectors)
    # vectors[1:] are turns 0..11, oldest first, so out[12] is the turn just before the last.
    assert out[11] / out[12] == pytest.approx(2**-0.5)
    assert out[10] / out[12] == pytest.approx(0.5)  # one exchange (two turns) older
    assert out[6] / out[12] == pytest.approx(0.125)
    faster = RecencyStrategy(max_history=12, half_life=1).combine(view, vectors)
    assert faster[10] / faster[12] == pytest.approx(0.25)


def test_pairwise_formula_and_weight() -> None:
    view = make_view(DIALOGUES["ends with the assistant"])
    last, pair = basis(2)
    out = PairwiseStrategy(context_weight=3).combine(view, np.stack([last, pair]))
    np.testing.assert_allclose(out, (last + 3 * pair) / np.sqrt(10), atol=1e-6)


def test_relevance_ignores_unrelated_turns() -> None:
    view = make_view(DIALOGUES["three turns"])
    last, related, unrelated = basis(3)
    related = (last + related) / np.sqrt(2)  # cosine 0.71 with the last turn
    opposed = (unrelated - last) / np.sqrt(2)  # cosine -0.71: must not count, even negatively
    out = RelevanceStrategy().combine(view, np.stack([last, related, opposed]))
    assert out[2] == 0.0
    expected = last + 0.5 * related
    np.testing.assert_allclose(out, expected / np.linalg.norm(expected), atol=1e-6)


def test_mix_weight() -> None:
    view = make_view(DIALOGUES["three turns"])
    last, whole = basis(2)
    out = MixStrategy(weight=0.75).combine(view, np.stack([last, whole]))
    np.testing.assert_allclose(out, np.array([3, 1, *[0] * 10]) / np.sqrt(10), atol=1e-6)


def test_adaptive_share_tracks_how_much_of_the_pair_the_last_turn_explains() -> None:
    last, previous = basis(2)
    joint = 0.8 * last + 0.2 * previous
    assert AdaptiveStrategy.share(last, previous, joint / np.linalg.norm(joint)) == (
        pytest.approx(0.8)
    )
    assert AdaptiveStrategy.share(last, previous, previous) == pytest.approx(0.0)
    assert AdaptiveStrategy.share(last, last, last) == pytest.approx(0.5)  # undecidable


def test_adaptive_self_contained_last_turn_ignores_history() -> None:
    view = make_view(DIALOGUES["three turns"])
    last, turn0, turn1 = basis(3)
    out = AdaptiveStrategy().combine(view, np.stack([last, turn0, turn1, last]))
    np.testing.assert_allclose(out, last, atol=1e-6)  # the pair is all last turn: share 1


@pytest.mark.parametrize(
    "strategy",
    [
        RecencyStrategy(history_weight=1.0),
        PairwiseStrategy(context_weight=1.0),
        ContextualStrategy(context_weight=0.5, history_weight=0.5),
    ],
    ids=repr,
)
def test_cancelling_vectors_fall_back_to_the_last_turn(strategy: QueryStrategy) -> None:
    view = make_view(DIALOGUES["ends with the assistant"])
    last = basis(1)[0]
    vectors = np.stack([last] + [-last] * (len(strategy.plan(view)) - 1))
    np.testing.assert_allclose(strategy.combine(view, vectors), last, atol=1e-6)


# ------------------------------------------------------- behaviour with the fake encoder
def test_fixtures_are_what_they_claim() -> None:
    # Without these, the behaviour tests below would pass for the wrong reason.
    assert query("dialogue", TOPIC_SHIFT) @ OLD_TOPIC > query("dialogue", TOPIC_SHIFT) @ NEW_TOPIC
    last_only = query("last_turn", ELLIPSIS)
    assert last_only @ OTHER_ENTITY > last_only @ RIGHT_ENTITY


@pytest.mark.parametrize("name", HISTORY_AWARE)
def test_topic_shift_stays_with_the_self_contained_last_turn(name: str) -> None:
    q = query(name, TOPIC_SHIFT)
    assert q @ NEW_TOPIC > q @ OLD_TOPIC + 0.15
    assert q @ embed(TOPIC_SHIFT.last.text) > 0.8


@pytest.mark.parametrize("name", HISTORY_AWARE)
def test_elliptical_last_turn_borrows_the_entity_from_history(name: str) -> None:
    q = query(name, ELLIPSIS)
    assert q @ RIGHT_ENTITY > q @ OTHER_ENTITY + 0.03


def test_contextual_leans_on_history_more_for_an_elliptical_turn() -> None:
    elliptical = query("contextual", ELLIPSIS) @ embed(ELLIPSIS.last.text)
    self_contained = query("contextual", TOPIC_SHIFT) @ embed(TOPIC_SHIFT.last.text)
    assert elliptical < self_contained
