"""Train a dialogue encoder for any general encoder: the Stella card's recipe (section 4.3).

    from stella_rag.train import read_pairs, train_dialogue_encoder

    report = train_dialogue_encoder("minilm", "models/minilm-dialogue")  # the shipped data
    dialogue = DialogueEncoder("models/minilm-dialogue")  # pairs itself with minilm

Needs ``pip install 'stella-rag[train]'`` (``datasets`` and ``accelerate`` for the
sentence-transformers trainer). The command line: ``stella-rag train-dialogue``.
"""

from __future__ import annotations

from .._errors import TrainingDataError
from ._data import DATA_DIR, ReadReport, RewritePair, augment, parse_record, read_pairs

__all__ = [
    "DATA_DIR",
    "DialogueDistillLoss",
    "DialogueRetrievalEvaluator",
    "ReadReport",
    "RewritePair",
    "TokenDropout",
    "TrainConfig",
    "TrainReport",
    "TrainingDataError",
    "augment",
    "parse_record",
    "read_pairs",
    "save_router",
    "train_dialogue_encoder",
]

_LAZY = {
    "DialogueDistillLoss": "._loss",
    "TokenDropout": "._loss",
    "DialogueRetrievalEvaluator": "._evaluator",
    "TrainConfig": "._trainer",
    "TrainReport": "._trainer",
    "save_router": "._trainer",
    "train_dialogue_encoder": "._trainer",
}


def __getattr__(name: str) -> object:
    # torch, datasets and the trainer load when first named, not when the data readers are used.
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
