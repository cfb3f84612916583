"""Query strategies: how a :class:`~stella_rag.DialogueEncoder` turns a chat into one query vector.

Pass one by name (``DialogueEncoder(strategy="pairwise")``) or as an instance with its own
parameters::

    from stella_rag import DialogueEncoder
    from stella_rag.strategies import ContextualStrategy

    encoder = DialogueEncoder(general="minilm", strategy=ContextualStrategy(half_life=3))

A strategy of your own subclasses :class:`QueryStrategy`: :meth:`~QueryStrategy.plan` lists the
texts to encode for one :class:`DialogueView`, :meth:`~QueryStrategy.combine` turns their vectors
into one; its ``pooling`` (``"model"``, or ``"last_turn"`` as in :class:`InContextStrategy`) says
how the planned texts are pooled. ``docs/quality.md`` compares the built-in ones.
"""

from __future__ import annotations

from ._strategies import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    AdaptiveStrategy,
    ContextualStrategy,
    DialogueStrategy,
    DialogueView,
    InContextStrategy,
    LastTurnStrategy,
    MixStrategy,
    PairwiseStrategy,
    QueryStrategy,
    RecencyStrategy,
    RelevanceStrategy,
    get_strategy,
)

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
