"""The GTE pipeline's contract: source sentence(s), optional candidates, embeddings and scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validate import check_texts

__all__ = ["similarity"]


def similarity(
    source_sentence: str | Sequence[str],
    sentences_to_compare: Sequence[str] | None = None,
    *,
    encoder: Any,
) -> dict[str, Any]:
    """Embed sentences and score the first source against candidates, as GTE's pipeline does.

    With candidates: ``text_embedding`` holds the first source sentence's vector followed by
    every candidate's, and ``scores`` the first source's cosine similarity to each candidate.
    With sources only: ``text_embedding`` holds every source's vector and ``scores`` is ``[]``.

    Returns:
        ``{"text_embedding": ndarray (n, dim), "scores": list[float]}``
    """
    sources = [source_sentence] if isinstance(source_sentence, str) else source_sentence
    sources = check_texts(sources)
    if not sources:
        raise ValueError("source_sentence must hold at least one sentence")
    if sentences_to_compare is None or len(sentences_to_compare) == 0:
        return {"text_embedding": encoder.encode_documents(sources), "scores": []}
    candidates = check_texts(sentences_to_compare)
    query = encoder.encode_queries(sources[:1])
    docs = encoder.encode_documents(candidates)
    scores = (docs @ query[0]) / np.maximum(
        np.linalg.norm(docs, axis=1) * np.linalg.norm(query[0]), 1e-12
    )
    return {
        "text_embedding": np.concatenate([query, docs]).astype(np.float32),
        "scores": [float(s) for s in scores],
    }
