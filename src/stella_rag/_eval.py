"""Retrieval quality on a conversational eval set: loading it, and scoring rankings against it.

An eval set is two JSON Lines files (the format of ``shared/eval/README.md``):

- ``corpus.jsonl``: ``{"id", "text", "lang"}`` per passage;
- ``dialogues.jsonl``: ``{"id", "lang", "category", "turns": [{"role", "text"}, ...],
  "relevant": [passage ids]}`` per case.

Metrics use binary relevance and the standard definitions, at a cut-off of 10 unless named:
MRR@10 (reciprocal rank of the first relevant passage, 0 past rank 10), Recall@1 and Recall@10
(share of the relevant passages in the top k), nDCG@10 (DCG with gain 1 and discount
``1 / log2(rank + 1)``, over the DCG of the ideal ranking). Each is the mean over cases, reported
overall, per category and per language.

Framework-free: the caller ranks, this module only scores::

    data = load_eval("dev/corpus.jsonl", "dev/dialogues.jsonl")
    report = evaluate({case.id: rank(case.turns) for case in data.cases}, data.cases)
    print(report.overall.mrr_at_10, report.to_dict())
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._turns import Turn
from ._validate import json_objects

if TYPE_CHECKING:
    from ._dialogue import DialogueEncoder

__all__ = [
    "Case",
    "EvalData",
    "K",
    "Metrics",
    "Passage",
    "Report",
    "compare",
    "evaluate",
    "load_cases",
    "load_corpus",
    "load_eval",
]

K = 10
"""The cut-off of MRR, Recall and nDCG (and Recall@1)."""


@dataclass(frozen=True)
class Passage:
    """One corpus passage."""

    id: str
    text: str
    lang: str | None = None


@dataclass(frozen=True)
class Case:
    """One conversation whose last turn asks for the ``relevant`` passages."""

    id: str
    turns: tuple[Turn, ...]
    relevant: frozenset[str]
    category: str | None = None
    lang: str | None = None


@dataclass(frozen=True)
class EvalData:
    """A loaded eval set: the corpus and the cases, in file order."""

    corpus: tuple[Passage, ...]
    cases: tuple[Case, ...]


@dataclass(frozen=True)
class Metrics:
    """Mean metrics over ``n`` cases."""

    n: int
    mrr_at_10: float
    recall_at_1: float
    recall_at_10: float
    ndcg_at_10: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Report:
    """Metrics overall, per category and per language, and each case's first relevant rank.

    Attributes:
        ranks: case id -> 1-based rank of the first relevant passage in its ranking, ``None``
            when no relevant passage was returned at all (any depth, not only the top 10).
    """

    overall: Metrics
    by_category: dict[str, Metrics] = field(default_factory=dict)
    by_language: dict[str, Metrics] = field(default_factory=dict)
    ranks: dict[str, int | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dicts and numbers."""
        return {
            "overall": self.overall.to_dict(),
            "by_category": {k: v.to_dict() for k, v in self.by_category.items()},
            "by_language": {k: v.to_dict() for k, v in self.by_language.items()},
            "ranks": dict(self.ranks),
        }


# ----------------------------------------------------------------------------------- loading
def _records(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    yield from json_objects(lines, str(path))


def _text_field(
    record: Mapping[str, Any], key: str, where: str, *, required: bool = True
) -> str | None:
    if key not in record or record[key] is None:
        if required:
            raise ValueError(f"{where}: missing field {key!r}")
        return None
    value = record[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: field {key!r} must be a non-empty string, got {value!r:.60}")
    return value


def load_corpus(path: str | os.PathLike[str]) -> tuple[Passage, ...]:
    """Read ``corpus.jsonl``: ``id`` and ``text`` required, ``lang`` optional; ids unique."""
    path = Path(path)
    passages: list[Passage] = []
    seen: dict[str, int] = {}
    for number, record in _records(path):
        where = f"{path}:{number}"
        pid = _text_field(record, "id", where)
        text = _text_field(record, "text", where)
        assert pid is not None and text is not None
        if pid in seen:
            raise ValueError(f"{where}: duplicate passage id {pid!r} (first on line {seen[pid]})")
        seen[pid] = number
        passages.append(Passage(pid, text, _text_field(record, "lang", where, required=False)))
    if not passages:
        raise ValueError(f"{path}: no passages")
    return tuple(passages)


def _turns(value: Any, where: str) -> tuple[Turn, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: field 'turns' must be a non-empty list of turns")
    turns: list[Turn] = []
    for i, item in enumerate(value):
        at = f"{where}: turn {i}"
        if not isinstance(item, dict):
            raise ValueError(f"{at}: expected an object with 'role' and 'text'")
        role = _text_field(item, "role", at)
        text = item.get("text", item.get("content"))
        if not isinstance(text, str):
            raise ValueError(f"{at}: field 'text' must be a string, got {text!r:.60}")
        assert role is not None
        turns.append(Turn(role, text))
    return tuple(turns)


def load_cases(
    path: str | os.PathLike[str], corpus: Iterable[Passage] | None = None
) -> tuple[Case, ...]:
    """Read ``dialogues.jsonl``; with ``corpus``, check that every relevant id is in it.

    ``id``, ``turns`` and ``relevant`` are required; ``category`` and ``lang`` are optional.
    """
    path = Path(path)
    known = None if corpus is None else {p.id for p in corpus}
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for number, record in _records(path):
        where = f"{path}:{number}"
        cid = _text_field(record, "id", where)
        assert cid is not None
        if cid in seen:
            raise ValueError(f"{where}: duplicate case id {cid!r} (first on line {seen[cid]})")
        seen[cid] = number
        if "turns" not in record:
            raise ValueError(f"{where}: missing field 'turns'")
        turns = _turns(record["turns"], where)
        relevant = record.get("relevant")
        if (
            not isinstance(relevant, list)
            or not relevant
            or not all(isinstance(r, str) and r for r in relevant)
        ):
            raise ValueError(
                f"{where}: field 'relevant' must be a non-empty list of passage ids, "
                f"got {relevant!r:.60}"
            )
        if known is not None:
            missing = [r for r in relevant if r not in known]
            if missing:
                raise ValueError(f"{where}: relevant id(s) {missing} are not in the corpus")
        cases.append(
            Case(
                id=cid,
                turns=turns,
                relevant=frozenset(relevant),
                category=_text_field(record, "category", where, required=False),
                lang=_text_field(record, "lang", where, required=False),
            )
        )
    if not cases:
        raise ValueError(f"{path}: no cases")
    return tuple(cases)


def load_eval(corpus: str | os.PathLike[str], dialogues: str | os.PathLike[str]) -> EvalData:
    """Read and cross-check an eval set's ``corpus.jsonl`` and ``dialogues.jsonl``."""
    passages = load_corpus(corpus)
    return EvalData(passages, load_cases(dialogues, passages))


# ----------------------------------------------------------------------------------- scoring
def _case_scores(ranking: Sequence[str], relevant: frozenset[str]) -> tuple[float, ...]:
    """(reciprocal rank@10, recall@1, recall@10, nDCG@10) of one ranking."""
    top = list(dict.fromkeys(ranking[:K]))  # a repeated id counts once
    hits = [pid in relevant for pid in top]
    first = next((i for i, hit in enumerate(hits) if hit), None)
    rr = 0.0 if first is None else 1.0 / (first + 1)
    recall_1 = (1.0 if hits and hits[0] else 0.0) / len(relevant)
    recall_k = sum(hits) / len(relevant)
    dcg = sum(1.0 / math.log2(i + 2) for i, hit in enumerate(hits) if hit)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), K)))
    return rr, recall_1, recall_k, dcg / ideal


def _mean(rows: list[tuple[float, ...]]) -> Metrics:
    n = len(rows)
    sums = [sum(column) for column in zip(*rows, strict=True)] if rows else [0.0] * 4
    return Metrics(n, *(s / n if n else 0.0 for s in sums))


def _first_rank(ranking: Sequence[str], relevant: frozenset[str]) -> int | None:
    return next((i + 1 for i, pid in enumerate(ranking) if pid in relevant), None)


def evaluate(
    rankings: Mapping[str, Sequence[str]] | Sequence[Sequence[str]], cases: Sequence[Case]
) -> Report:
    """Score rankings of passage ids (best first) against the cases.

    Args:
        rankings: case id -> ranked passage ids, or a list of rankings in the order of
            ``cases``. Only the top 10 are scored (``ranks`` looks deeper).
        cases: the cases, e.g. ``load_eval(...).cases``.

    Raises:
        ValueError: a case has no ranking, or the list has the wrong length.
    """
    if isinstance(rankings, Mapping):
        missing = [c.id for c in cases if c.id not in rankings]
        if missing:
            raise ValueError(f"no ranking for {len(missing)} case(s), e.g. {missing[:3]}")
        ordered = [rankings[c.id] for c in cases]
    else:
        ordered = list(rankings)
        if len(ordered) != len(cases):
            raise ValueError(f"got {len(ordered)} rankings for {len(cases)} cases")
    for case, ranking in zip(cases, ordered, strict=True):
        if isinstance(ranking, str) or not isinstance(ranking, Sequence):
            raise TypeError(
                f"case {case.id!r}: a ranking must be a list of passage ids, got {ranking!r:.60}"
            )
    scores = [_case_scores(r, c.relevant) for c, r in zip(cases, ordered, strict=True)]

    def grouped(key: str) -> dict[str, Metrics]:
        groups: dict[str, list[tuple[float, ...]]] = {}
        for case, row in zip(cases, scores, strict=True):
            value = getattr(case, key)
            if value is not None:
                groups.setdefault(value, []).append(row)
        return {name: _mean(rows) for name, rows in groups.items()}

    return Report(
        overall=_mean(scores),
        by_category=grouped("category"),
        by_language=grouped("lang"),
        ranks={c.id: _first_rank(r, c.relevant) for c, r in zip(cases, ordered, strict=True)},
    )


def compare(
    data: EvalData,
    conversational: DialogueEncoder,
    *,
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """Score conversational retrieval against the last turn alone on an eval set.

    The corpus is embedded by ``conversational.general`` into a throwaway in-memory collection;
    each case is retrieved with ``conversational`` and with the ``last_turn`` strategy.

    Returns:
        ``{"model", "dialogue_model", "strategy", "passages", "cases", "seconds", "systems":
        {"conversational": Report.to_dict(), "last_turn": ...}}``.
    """
    import contextlib
    import time
    import uuid

    from ._dialogue import DialogueEncoder
    from ._retriever import ConversationalRetriever
    from ._store import ChromaStore

    encoder = conversational.general
    baseline = DialogueEncoder(general=encoder, strategy="last_turn", max_tokens=max_tokens)
    store = ChromaStore(f"stella-rag-eval-{uuid.uuid4().hex[:12]}", encoder=encoder)
    try:
        started = time.perf_counter()
        store.add(
            [p.text for p in data.corpus],
            ids=[p.id for p in data.corpus],
            metadatas=[{"lang": p.lang} for p in data.corpus],
        )
        systems: dict[str, Any] = {}
        for name, dialogue_encoder in (("conversational", conversational), ("last_turn", baseline)):
            retriever = ConversationalRetriever(store, dialogue_encoder, k=K)
            ranked = retriever.retrieve_many([case.turns for case in data.cases])
            systems[name] = evaluate(
                [[h.id for h in hits] for hits in ranked], data.cases
            ).to_dict()
        seconds = time.perf_counter() - started
    finally:
        with contextlib.suppress(Exception):  # in memory: it goes with the process anyway
            store.client.delete_collection(store.name)
    dialogue_model = conversational.dialogue_model
    return {
        "model": encoder.model_id,
        "dialogue_model": dialogue_model.model_id if dialogue_model is not None else None,
        "strategy": conversational.strategy.name,
        "passages": len(data.corpus),
        "cases": len(data.cases),
        "seconds": round(seconds, 2),
        "systems": systems,
    }
