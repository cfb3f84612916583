"""Query strategies: how a dialogue becomes one query vector.

A strategy works in two steps so that :meth:`DialogueEncoder.encode_many` can encode the texts
of many dialogues in one batched call:

1. :meth:`QueryStrategy.plan` lists the texts to encode for one dialogue;
2. :meth:`QueryStrategy.combine` turns their (L2-normalised) vectors into one unit vector.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ._turns import Turn

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "DialogueView",
    "QueryStrategy",
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


class LastTurnStrategy(QueryStrategy):
    """The last turn's text alone: the baseline that ignores the history."""

    name = "last_turn"

    def plan(self, dialogue: DialogueView) -> list[str]:
        return [dialogue.last.text]

    def combine(self, dialogue: DialogueView, vectors: np.ndarray) -> np.ndarray:
        return _unit(vectors[0])


STRATEGIES: dict[str, type[QueryStrategy]] = {
    cls.name: cls for cls in (DialogueStrategy, LastTurnStrategy)
}

DEFAULT_STRATEGY = "dialogue"
"""The strategy used for a general encoder when none is named."""


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
