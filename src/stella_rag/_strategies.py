"""Query strategies: how a dialogue becomes one query vector.

A strategy works in two steps so that :meth:`DialogueEncoder.encode_many` can encode the texts
of many dialogues in one batched call:

1. :meth:`QueryStrategy.plan` lists the texts to encode for one dialogue;
2. :meth:`QueryStrategy.combine` turns their (L2-normalised) vectors into one unit vector.

The strategies for a general encoder build the query from up to three views of the chat:

- the *literal* last turn, its text alone (what is asked);
- the *contextual* reading: the last turn encoded next to each earlier turn, one pair at a time,
  so that the transformer itself resolves "it" or "and the price?" against that turn;
- the *history*: the earlier turns' own vectors.

Earlier turns count less the older they are (the weight halves every ``half_life`` turns), and
only the last ``max_history`` of them are read at all. ``docs/quality.md`` has the measurements
behind the default (:class:`ContextualStrategy`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ._turns import Turn

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "AdaptiveStrategy",
    "ContextualStrategy",
    "DialogueStrategy",
    "DialogueView",
    "InContextStrategy",
    "LastTurnStrategy",
    "MixStrategy",
    "PairwiseStrategy",
    "QueryStrategy",
    "RecencyStrategy",
    "RelevanceStrategy",
    "get_strategy",
]


@dataclass(frozen=True)
class DialogueView:
    """What a strategy sees of one dialogue.

    Attributes:
        turns: the conversational turns, oldest first (system and tool turns already removed);
            never empty.
        format: formats a run of turns as the Stella card prescribes (``"{ROLE}: {TEXT}"`` joined
            with ``"[SEP]"``), dropping the earliest turns until it fits the encoder's budget.
        label: formats one turn as ``"{ROLE}: {TEXT}"`` (no windowing).
    """

    turns: Sequence[Turn]
    format: Callable[[Sequence[Turn]], str]
    label: Callable[[Turn], str]

    @property
    def last(self) -> Turn:
        return self.turns[-1]


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    out = vector / norm if norm > 0 else vector
    return np.asarray(out, dtype=np.float32)


class QueryStrategy(ABC):
    """Turns a dialogue into the texts to encode, and their vectors into one query vector."""

    name: ClassVar[str]
    pooling: ClassVar[str] = "model"
    """How the planned texts are pooled: ``"model"`` (the encoder's own pooling) or
    ``"last_turn"`` (only the tokens after the last turn separator, read in context; see
    :meth:`stella_rag.SentenceEncoder.encode_last_turns`)."""

    @abstractmethod
    def plan(self, dialogue: DialogueView) -> list[str]:
        """The texts to encode for this dialogue (at least one)."""

    @abstractmethod
    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        """One unit-length float32 vector from the rows of ``vectors`` (one per planned text)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class DialogueStrategy(QueryStrategy):
    """The whole dialogue as one text, earliest turns dropped to fit: the Stella card's way.

    This is what the dedicated Stella dialogue model was trained for. With a general encoder it
    drifts toward whatever the history talks about most.
    """

    name = "dialogue"

    def plan(self, dialogue: DialogueView) -> list[str]:
        return [dialogue.format(dialogue.turns)]

    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        return _unit(vectors[0])


class InContextStrategy(QueryStrategy):
    """One pass over the whole chat, pooling only the last turn's tokens (untrained CQE).

    The formatted chat (earliest turns dropped to fit) goes through the general encoder once;
    the vector is the mean of the last turn's token vectors, which the transformer has read
    next to the turns before it, so "it" and "and the price?" pick up what they refer to while
    the vector stays about the question. It is the pooling of the dialogue models that
    ``stella-rag train-dialogue`` trains, here without training. Needs a
    :class:`~stella_rag.SentenceEncoder` with a Pooling module on one device (not
    ``backend="onnx-int8"``).
    """

    name = "in_context"
    pooling = "last_turn"

    def plan(self, dialogue: DialogueView) -> list[str]:
        return [dialogue.format(dialogue.turns)]

    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        return _unit(vectors[0])


class LastTurnStrategy(QueryStrategy):
    """The last turn's text alone: the baseline that ignores the history."""

    name = "last_turn"

    def plan(self, dialogue: DialogueView) -> list[str]:
        return [dialogue.last.text]

    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        return _unit(vectors[0])


# ---------------------------------------------------------------------------------------------
# History-aware strategies for a general encoder

HALF_LIFE = 2.0
"""Default recency half-life, in turns: one user/assistant exchange back counts half."""

MAX_HISTORY = 4
"""Default number of earlier turns read: two exchanges. At the default half-life the fourth
weighs 1/4 of the newest and a fifth would weigh under 1/5; reading 8 turns instead changed no
ranking for the better on the dev or held-out set (docs/quality.md) and doubled the texts
encoded per turn."""


def _check_positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_weight(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")
    return value


def _recency(n: int, half_life: float) -> np.ndarray:
    """Weights of ``n`` turns, oldest first: the newest weighs 1, halving every ``half_life``."""
    ages = np.arange(n - 1, -1, -1, dtype=np.float64)
    return np.asarray(0.5 ** (ages / half_life))


def _pool(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The unit-length weighted sum of ``vectors`` (zeros when the weights are all zero)."""
    total = (np.asarray(weights, dtype=np.float64)[:, None] * vectors).sum(axis=0)
    norm = float(np.linalg.norm(total))
    return total / norm if norm > 0 else total


def _finish(last: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``query`` as a unit float32 vector; the last turn's own vector if it cancelled out."""
    if not float(np.linalg.norm(query)) > 1e-6:
        query = last
    return _unit(np.asarray(query, dtype=np.float64))


class _HistoryStrategy(QueryStrategy):
    """Shared parameters of the strategies that weigh earlier turns by recency."""

    def __init__(self, *, half_life: float = HALF_LIFE, max_history: int = MAX_HISTORY) -> None:
        self.half_life = _check_positive("half_life", half_life)
        self.max_history = _check_count("max_history", max_history)

    def _history(self, dialogue: DialogueView) -> list[Turn]:
        """The earlier turns that are read, oldest first (at most ``max_history``)."""
        earlier = list(dialogue.turns[:-1])
        return earlier[-self.max_history :]

    def _params(self) -> dict[str, float | int]:
        return {"half_life": self.half_life, "max_history": self.max_history}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


class MixStrategy(QueryStrategy):
    """The last turn's vector mixed with the whole dialogue's vector.

    ``weight * last + (1 - weight) * dialogue``: the simplest repair of ``dialogue``. The
    dialogue vector still leans toward whatever the history talks about most.

    Args:
        weight: the share of the last turn (default 0.5, an even mix).
    """

    name = "mix"

    def __init__(self, *, weight: float = 0.5) -> None:
        weight = _check_weight("weight", weight)
        if weight > 1:
            raise ValueError(f"weight must be between 0 and 1, got {weight!r}")
        self.weight = weight

    def plan(self, dialogue: DialogueView) -> list[str]:
        if len(dialogue.turns) == 1:
            return [dialogue.last.text]
        return [dialogue.last.text, dialogue.format(dialogue.turns)]

    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        last = vectors[0].astype(np.float64)
        if len(vectors) < 2:
            return _finish(last, last)
        return _finish(last, self.weight * last + (1 - self.weight) * vectors[1])

    def __repr__(self) -> str:
        return f"MixStrategy(weight={self.weight!r})"


class RecencyStrategy(_HistoryStrategy):
    """The last turn plus the earlier turns' own vectors, newer turns weighing more.

    ``last + history_weight * H``, where ``H`` is the unit recency-weighted sum of the earlier
    turns, each encoded on its own.

    Args:
        history_weight: weight of the history next to the last turn (default 0.5: the history
            may inform the query but not outvote it, which is what goes wrong on a topic shift).
        half_life: turns after which an earlier turn's weight halves (default 2: one exchange).
        max_history: how many earlier turns are read (default 4).
    """

    name = "recency"

    def __init__(
        self,
        *,
        history_weight: float = 0.5,
        half_life: float = HALF_LIFE,
        max_history: int = MAX_HISTORY,
    ) -> None:
        super().__init__(half_life=half_life, max_history=max_history)
        self.history_weight = _check_weight("history_weight", history_weight)

    def plan(self, dialogue: DialogueView) -> list[str]:
        return [dialogue.last.text] + [t.text for t in self._history(dialogue)]

    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        last = vectors[0].astype(np.float64)
        history = vectors[1:]
        if len(history) == 0:
            return _finish(last, last)
        pooled = _pool(history, _recency(len(history), self.half_life))
        return _finish(last, last + self.history_weight * pooled)

    def _params(self) -> dict[str, float | int]:
        return {"history_weight": self.history_weight, **super()._params()}


class RelevanceStrategy(RecencyStrategy):
    """Like ``recency``, with each earlier turn also weighted by its cosine to the last turn.

    Turns unrelated to the last turn (cosine <= 0) are left out; when none is related the last
    turn stands alone. The idea fails on elliptical turns ("and the price?"), which resemble
    every turn that mentions a price, the wrong entity's included.
    """

    name = "relevance"

    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        last = vectors[0].astype(np.float64)
        history = vectors[1:]
        if len(history) == 0:
            return _finish(last, last)
        related = np.clip(history @ last, 0.0, None)
        pooled = _pool(history, _recency(len(history), self.half_life) * related)
        return _finish(last, last + self.history_weight * pooled)


class AdaptiveStrategy(RecencyStrategy):
    """Like ``recency``, with the history's weight set by how self-contained the last turn is.

    The last turn is encoded once more together with the turn before it. ``share``, the part of
    that joint vector explained by the last turn (least squares on the two turns' own vectors,
    clipped to [0, 1]), is high for a self-contained question and low for "and the price?". The
    history then weighs ``1 - share``. No constant to tune beyond the recency ones.
    """

    name = "adaptive"

    def __init__(self, *, half_life: float = HALF_LIFE, max_history: int = MAX_HISTORY) -> None:
        super().__init__(history_weight=1.0, half_life=half_life, max_history=max_history)

    def plan(self, dialogue: DialogueView) -> list[str]:
        texts = super().plan(dialogue)
        if len(dialogue.turns) > 1:
            texts.append(dialogue.format(dialogue.turns[-2:]))
        return texts

    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        last = vectors[0].astype(np.float64)
        if len(vectors) < 3:
            return _finish(last, last)
        history, joint = vectors[1:-1], vectors[-1].astype(np.float64)
        share = self.share(last, history[-1].astype(np.float64), joint)
        pooled = _pool(history, _recency(len(history), self.half_life))
        return _finish(last, last + (1.0 - share) * pooled)

    @staticmethod
    def share(last: np.ndarray, previous: np.ndarray, joint: np.ndarray) -> float:
        """How much of ``joint`` (both turns encoded together) the last turn accounts for."""
        basis = np.stack([last, previous], axis=1)
        coef, *_ = np.linalg.lstsq(basis, joint, rcond=None)
        total = float(coef.sum())
        if not abs(total) > 1e-9:
            return 0.5
        return float(np.clip(coef[0] / total, 0.0, 1.0))

    def _params(self) -> dict[str, float | int]:
        return {"half_life": self.half_life, "max_history": self.max_history}


class PairwiseStrategy(_HistoryStrategy):
    """The last turn plus its contextual readings: itself encoded next to each earlier turn.

    ``last + context_weight * C``, where ``C`` is the unit recency-weighted sum of the vectors of
    ``format([earlier_turn, last_turn])``. Inside each pair the transformer resolves "it" or "and
    the price?" against that turn. A long, self-contained last turn dominates every pair it is
    in, so a topic shift stays on the new topic without any threshold.

    Args:
        context_weight: weight of the contextual reading next to the literal one (default 1).
        half_life: turns after which an earlier turn's weight halves (default 2: one exchange).
        max_history: how many earlier turns are paired with the last one (default 4).
    """

    name = "pairwise"

    def __init__(
        self,
        *,
        context_weight: float = 1.0,
        half_life: float = HALF_LIFE,
        max_history: int = MAX_HISTORY,
    ) -> None:
        super().__init__(half_life=half_life, max_history=max_history)
        self.context_weight = _check_weight("context_weight", context_weight)

    def plan(self, dialogue: DialogueView) -> list[str]:
        last = dialogue.last
        pairs = [dialogue.format([turn, last]) for turn in self._history(dialogue)]
        return [last.text, *pairs]

    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        last = vectors[0].astype(np.float64)
        pairs = vectors[1:]
        if len(pairs) == 0:
            return _finish(last, last)
        context = _pool(pairs, _recency(len(pairs), self.half_life))
        return _finish(last, last + self.context_weight * context)

    def _params(self) -> dict[str, float | int]:
        return {"context_weight": self.context_weight, **super()._params()}


class ContextualStrategy(_HistoryStrategy):
    """Literal last turn + its contextual readings + the history itself (the default).

    ``last + context_weight * C + history_weight * H``: ``C`` as in ``pairwise`` (the last turn
    encoded next to each earlier turn), ``H`` as in ``recency`` (the earlier turns on their own),
    both unit recency-weighted sums. ``C`` resolves what the last turn refers to; ``H`` adds the
    topic where a short follow-up is swamped even inside its pair. ``H`` gets half weight
    because, unlike the other two, it does not contain the question: at full weight it outvotes
    a self-contained new question (a topic shift).

    Args:
        context_weight: weight of the contextual reading (default 1, like the literal turn).
        history_weight: weight of the history (default 0.5).
        half_life: turns after which an earlier turn's weight halves (default 2: one exchange).
        max_history: how many earlier turns are read (default 4).
    """

    name = "contextual"

    def __init__(
        self,
        *,
        context_weight: float = 1.0,
        history_weight: float = 0.5,
        half_life: float = HALF_LIFE,
        max_history: int = MAX_HISTORY,
    ) -> None:
        super().__init__(half_life=half_life, max_history=max_history)
        self.context_weight = _check_weight("context_weight", context_weight)
        self.history_weight = _check_weight("history_weight", history_weight)

    def plan(self, dialogue: DialogueView) -> list[str]:
        last = dialogue.last
        history = self._history(dialogue)
        pairs = [dialogue.format([turn, last]) for turn in history]
        return [last.text, *pairs, *(turn.text for turn in history)]

    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        last = vectors[0].astype(np.float64)
        n = (len(vectors) - 1) // 2
        if n == 0:
            return _finish(last, last)
        weights = _recency(n, self.half_life)
        context = _pool(vectors[1 : 1 + n], weights)
        history = _pool(vectors[1 + n : 1 + 2 * n], weights)
        return _finish(last, last + self.context_weight * context + self.history_weight * history)

    def _params(self) -> dict[str, float | int]:
        return {
            "context_weight": self.context_weight,
            "history_weight": self.history_weight,
            **super()._params(),
        }


STRATEGIES: dict[str, type[QueryStrategy]] = {
    cls.name: cls
    for cls in (
        DialogueStrategy,
        LastTurnStrategy,
        InContextStrategy,
        MixStrategy,
        RecencyStrategy,
        RelevanceStrategy,
        AdaptiveStrategy,
        PairwiseStrategy,
        ContextualStrategy,
    )
}

DEFAULT_STRATEGY = "contextual"
"""The strategy used for a general encoder when none is named (see ``docs/quality.md``)."""


def get_strategy(strategy: str | QueryStrategy | None) -> QueryStrategy:
    """Resolve a strategy name (or instance) to an instance."""
    if strategy is None:
        strategy = DEFAULT_STRATEGY
    if isinstance(strategy, QueryStrategy):
        return strategy
    if isinstance(strategy, str) and strategy in STRATEGIES:
        return STRATEGIES[strategy]()
    raise ValueError(
        f"unknown query strategy {strategy!r}; valid names are {sorted(STRATEGIES)} "
        "or a QueryStrategy instance"
    )
