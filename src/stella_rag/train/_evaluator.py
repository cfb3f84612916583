"""MRR@10 of a dialogue model on a conversational eval set, during and after training."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._eval import K, Report, evaluate, load_eval

__all__ = ["DialogueRetrievalEvaluator"]


def _base() -> type:
    from sentence_transformers.evaluation import SentenceEvaluator

    return SentenceEvaluator


class DialogueRetrievalEvaluator(_base()):  # type: ignore[misc]
    """Ranks an eval set's passages for each chat, as retrieval will at run time.

    The passages are embedded once by the frozen general encoder (they are what a Chroma
    collection holds); each chat is formatted by ``formatter`` (a :class:`DialogueEncoder`'s
    windowing) and embedded by the model under training.

    Args:
        folder: an eval set folder (``corpus.jsonl`` and ``dialogues.jsonl``).
        general: the general :class:`~stella_rag.SentenceEncoder`.
        formatter: the :class:`~stella_rag.DialogueEncoder` whose ``format`` makes the text.
        name: prefix of the reported metrics (``"dev"`` gives ``dev_mrr@10``).
    """

    def __init__(
        self, folder: str | os.PathLike[str], general: Any, formatter: Any, *, name: str = "eval"
    ) -> None:
        super().__init__()
        data = load_eval(
            os.path.join(folder, "corpus.jsonl"), os.path.join(folder, "dialogues.jsonl")
        )
        self.cases = data.cases
        self.ids = [p.id for p in data.corpus]
        self.docs = general.encode_documents([p.text for p in data.corpus])
        self.texts = [formatter.format(list(case.turns)) for case in data.cases]
        self.name = name
        self.primary_metric = "mrr@10"
        self.last_report: Report | None = None

    def report(self, model: Any) -> Report:
        """The full report (overall, per category, per language) for ``model``."""
        queries = model.encode(
            self.texts,
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        top = np.argsort(-(np.asarray(queries) @ self.docs.T), axis=1, kind="stable")[:, :K]
        rankings = {
            case.id: [self.ids[j] for j in row] for case, row in zip(self.cases, top, strict=True)
        }
        self.last_report = evaluate(rankings, self.cases)
        return self.last_report

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
    ) -> dict[str, float]:
        overall = self.report(model).overall
        metrics = {"mrr@10": overall.mrr_at_10, "recall@1": overall.recall_at_1}
        metrics = self.prefix_name_to_metrics(metrics, self.name)
        self.store_metrics_in_model_card_data(model, metrics, epoch, steps)
        return metrics
