"""Training data for a dialogue encoder: readers for the common shapes, and augmentation.

One training example is a :class:`RewritePair`: a chat (oldest turn first, the last turn the
user's) and the standalone rewrite of its last turn. Optional passages (the one that answers the
rewrite, and hard negatives) feed the in-batch contrastive term.

Readers accept, in JSON Lines (UTF-8):

- **stella-rag** (``data/dialogue-rewrites``): ``{"turns": [{"role", "text"}, ...], "rewrite",
  "positive"?, "negatives"?, "lang"?, "category"?, "id"?}``;
- **the Stella card** (the shape of its released 1.6M-pair set): ``{"dialogue": ["A: ...",
  "B: ...", ...], "last_utterance_rewrite": "..."}``;
- **CANARD / QReCC**: a history list of strings (``History``, ``Context`` or ``history``), the
  question (``Question`` / ``question``) and its rewrite (``Rewrite`` / ``rewrite``); the history
  alternates user and assistant, ending with the assistant;
- **an eval folder** (``corpus.jsonl``, ``dialogues.jsonl``, ``rewrites.jsonl`` beside them).

A Hugging Face Hub data set named by id loads through ``datasets`` when online.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .._errors import TrainingDataError
from .._turns import Turn

__all__ = [
    "DATA_DIR",
    "ReadReport",
    "RewritePair",
    "augment",
    "read_pairs",
]


def _data_dir() -> Path:
    # In a wheel the data sits inside the package; in a clone (editable install) at the root.
    here = Path(__file__).resolve()
    packaged = here.parent.parent / "data" / "dialogue-rewrites" / "train"
    return (
        packaged if packaged.is_dir() else here.parents[3] / "data" / "dialogue-rewrites" / "train"
    )


DATA_DIR = _data_dir()
"""The training pairs shipped with stella-rag (``data/dialogue-rewrites/train``)."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_CARD_ROLE = re.compile(r"^\s*([A-Za-z]{1,12})\s*[:：]\s?(.*)$", re.S)


@dataclass(frozen=True)
class RewritePair:
    """A chat and the standalone rewrite of its last turn.

    Attributes:
        turns: the chat, oldest first; the last turn is the user's.
        rewrite: the last turn rewritten to stand alone.
        positive: a passage that answers the rewrite, if known.
        negatives: passages that look related but do not answer it.
        lang, category, id: descriptive fields, kept for reports.
        source: where the pair came from (``file:line`` or an augmentation tag).
    """

    turns: tuple[Turn, ...]
    rewrite: str
    positive: str | None = None
    negatives: tuple[str, ...] = ()
    lang: str | None = None
    category: str | None = None
    id: str | None = None
    source: str = ""


@dataclass
class ReadReport:
    """What a read found: pairs kept, and bad records skipped (with ``skip_bad``)."""

    pairs: list[RewritePair] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        langs = Counter(p.lang or "unknown" for p in self.pairs)
        cats = Counter(p.category or "unknown" for p in self.pairs)
        return {
            "pairs": len(self.pairs),
            "skipped": len(self.skipped),
            "languages": dict(sorted(langs.items())),
            "categories": dict(sorted(cats.items())),
            "with_passages": sum(p.positive is not None for p in self.pairs),
        }


# ------------------------------------------------------------------------------ record parsing
def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TrainingDataError(f"{what} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise TrainingDataError(f"{what} is empty")
    return value.strip()


def _turn_objects(value: Any) -> tuple[Turn, ...]:
    if not isinstance(value, list) or not value:
        raise TrainingDataError("'turns' must be a non-empty list of {'role', 'text'} objects")
    turns = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise TrainingDataError(f"turn {i} must be an object, got {type(item).__name__}")
        role = item.get("role")
        if role not in ("user", "assistant"):
            raise TrainingDataError(f"turn {i}: role must be 'user' or 'assistant', got {role!r}")
        turns.append(Turn(role, _text(item.get("text", item.get("content")), f"turn {i} text")))
    return tuple(turns)


def _alternating(texts: Sequence[Any], last_role: str, what: str) -> tuple[Turn, ...]:
    """Plain strings as turns whose roles alternate and end with ``last_role``."""
    n = len(texts)
    other = "assistant" if last_role == "user" else "user"
    return tuple(
        Turn(last_role if (n - 1 - i) % 2 == 0 else other, _text(t, f"{what} {i}"))
        for i, t in enumerate(texts)
    )


def _card_turns(value: Any) -> tuple[Turn, ...]:
    """The card's ``["A: ...", "B: ..."]``: A is the user and B the assistant (either may speak
    last; the card's rewrites keep the speaker, ``"B: 我最近没有去打篮球"``). With other labels, the
    speaker of the last utterance is taken as the user."""
    if not isinstance(value, list) or not value:
        raise TrainingDataError("'dialogue' must be a non-empty list of 'SPEAKER: text' strings")
    speakers: list[str] = []
    texts: list[str] = []
    for i, item in enumerate(value):
        item = _text(item, f"dialogue utterance {i}")
        match = _CARD_ROLE.match(item)
        speaker, text = (match.group(1), match.group(2)) if match else ("", item)
        speakers.append(speaker)
        texts.append(_text(text, f"dialogue utterance {i} text"))
    if set(speakers) <= {"A", "B"}:  # the card's own labels: A the user, B the assistant
        return tuple(
            Turn("user" if s == "A" else "assistant", t)
            for s, t in zip(speakers, texts, strict=True)
        )
    last = speakers[-1]
    if last and all(speakers):
        return tuple(
            Turn("user" if s == last else "assistant", t)
            for s, t in zip(speakers, texts, strict=True)
        )
    return _alternating(texts, "user", "dialogue utterance")


def _history(record: dict[str, Any]) -> Any:
    for key in ("History", "history", "Context", "context"):
        if key in record:
            return record[key]
    raise TrainingDataError("missing the history ('History', 'Context' or 'history')")


def parse_record(record: dict[str, Any]) -> RewritePair:
    """One record of any supported shape as a :class:`RewritePair`.

    Raises:
        TrainingDataError: the record has no turns, no rewrite, or a field of the wrong type.
    """
    if "turns" in record:
        turns = _turn_objects(record["turns"])
        rewrite = record.get("rewrite")
    elif "dialogue" in record:
        turns = _card_turns(record["dialogue"])
        rewrite = record.get("last_utterance_rewrite", record.get("rewrite"))
    elif any(k in record for k in ("Question", "question")):
        history = _history(record)
        if not isinstance(history, list):
            raise TrainingDataError("the history must be a list of strings")
        question = _text(record.get("Question", record.get("question")), "'Question'")
        turns = (*_alternating(history, "assistant", "history item"), Turn("user", question))
        rewrite = record.get("Rewrite", record.get("rewrite"))
    else:
        raise TrainingDataError(
            "unknown record shape: expected 'turns' (stella-rag), 'dialogue' (Stella card) or "
            "'Question' + 'Rewrite' (CANARD/QReCC)"
        )
    if turns[-1].role != "user" and "dialogue" not in record:
        raise TrainingDataError("the last turn must be the user's")
    if rewrite is None:
        raise TrainingDataError("missing the rewrite ('rewrite' or 'last_utterance_rewrite')")
    positive = record.get("positive")
    negatives = record.get("negatives") or []
    if not isinstance(negatives, list):
        raise TrainingDataError("'negatives' must be a list of strings")
    return RewritePair(
        turns=turns,
        rewrite=_text(rewrite, "the rewrite"),
        positive=None if positive is None else _text(positive, "'positive'"),
        negatives=tuple(_text(n, f"negative {i}") for i, n in enumerate(negatives)),
        lang=record.get("lang") if isinstance(record.get("lang"), str) else None,
        category=record.get("category") if isinstance(record.get("category"), str) else None,
        id=str(record["id"]) if "id" in record else None,
    )


# ------------------------------------------------------------------------------------- readers
def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TrainingDataError(f"{path}: no such file") from None
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield number, line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TrainingDataError(
                f"{path}:{number}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None


def _read_file(path: Path, report: ReadReport, skip_bad: bool) -> None:
    for number, line in _lines(path):
        where = f"{path}:{number}"
        try:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrainingDataError(f"not valid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise TrainingDataError(f"expected a JSON object, got {type(record).__name__}")
            pair = parse_record(record)
        except TrainingDataError as exc:
            if not skip_bad:
                raise TrainingDataError(
                    f"{where}: {exc} (pass skip_bad=True / --skip-bad to skip bad records)"
                ) from None
            report.skipped.append(f"{where}: {exc}")
            continue
        report.pairs.append(replace(pair, source=where))


def _read_eval_folder(folder: Path, report: ReadReport, skip_bad: bool) -> None:
    from .._eval import load_cases

    rewrites_path = folder / "rewrites.jsonl"
    if not rewrites_path.is_file():
        raise TrainingDataError(
            f"{folder}: an eval folder needs rewrites.jsonl beside dialogues.jsonl"
        )
    rewrites: dict[str, str] = {}
    for number, line in _lines(rewrites_path):
        try:
            record = json.loads(line)
            rewrites[str(record["id"])] = _text(record["rewrite"], "the rewrite")
        except (json.JSONDecodeError, KeyError, TypeError, TrainingDataError) as exc:
            if not skip_bad:
                raise TrainingDataError(
                    f"{rewrites_path}:{number}: bad rewrite record ({exc})"
                ) from None
            report.skipped.append(f"{rewrites_path}:{number}: {exc}")
    passages: dict[str, str] = {}
    corpus = folder / "corpus.jsonl"
    if corpus.is_file():
        from .._eval import load_corpus

        passages = {p.id: p.text for p in load_corpus(corpus)}
    try:
        cases = load_cases(folder / "dialogues.jsonl")
    except ValueError as exc:
        raise TrainingDataError(str(exc)) from None
    for case in cases:
        if case.id not in rewrites:
            message = f"{folder}: case {case.id!r} has no line in rewrites.jsonl"
            if not skip_bad:
                raise TrainingDataError(message)
            report.skipped.append(message)
            continue
        relevant = sorted(case.relevant)
        report.pairs.append(
            RewritePair(
                turns=tuple(case.turns),
                rewrite=rewrites[case.id],
                positive=passages.get(relevant[0]) if relevant else None,
                lang=case.lang,
                category=case.category,
                id=case.id,
                source=f"{folder}:{case.id}",
            )
        )


def _read_hub(name: str, report: ReadReport, skip_bad: bool, split: str) -> None:
    from .._models import _hub_reachable

    try:
        import datasets
    except ImportError as exc:
        raise ImportError(
            "Reading a Hugging Face data set needs the 'datasets' package: "
            "pip install 'stella-rag[train]' (from a clone: pip install -e '.[train]')"
        ) from exc
    if not _hub_reachable():
        raise TrainingDataError(
            f"{name!r} is not a file or folder here, and the Hugging Face Hub cannot be reached "
            "to load it as a data set; download it where there is a network (for example "
            "datasets.load_dataset(...).to_json('pairs.jsonl')) and pass the file"
        )
    rows = datasets.load_dataset(name, split=split)
    for number, record in enumerate(rows, start=1):
        try:
            pair = parse_record(dict(record))
        except TrainingDataError as exc:
            if not skip_bad:
                raise TrainingDataError(f"{name}[{number - 1}]: {exc}") from None
            report.skipped.append(f"{name}[{number - 1}]: {exc}")
            continue
        report.pairs.append(replace(pair, source=f"{name}[{number - 1}]"))


def read_pairs(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None = None,
    *,
    skip_bad: bool = False,
    split: str = "train",
) -> ReadReport:
    """Read rewrite pairs from files, folders or Hub data set ids.

    Args:
        sources: JSON Lines files, folders (every ``*.jsonl`` in them, or an eval folder with
            ``rewrites.jsonl``), or Hub data set ids; default: the data shipped with stella-rag.
        skip_bad: skip bad records and list them in :attr:`ReadReport.skipped` instead of
            raising.
        split: the split of a Hub data set.

    Raises:
        TrainingDataError: a bad record (naming the file and line), a missing file, or a Hub
            data set while the Hub cannot be reached.
    """
    if sources is None:
        sources = [DATA_DIR]
    elif isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    report = ReadReport()
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            if (path / "dialogues.jsonl").is_file() and (path / "rewrites.jsonl").is_file():
                _read_eval_folder(path, report, skip_bad)
                continue
            files = sorted(path.rglob("*.jsonl"))
            if not files:
                raise TrainingDataError(f"{path}: no .jsonl files in this folder")
            for file in files:
                _read_file(file, report, skip_bad)
        elif path.is_file():
            _read_file(path, report, skip_bad)
        elif _HUB_ID.match(str(source)) and not str(source).endswith(".jsonl"):
            _read_hub(str(source), report, skip_bad, split)
        else:
            raise TrainingDataError(f"{source}: no such file or folder")
    if not report.pairs:
        raise TrainingDataError(f"no usable training pairs in {[str(s) for s in sources]}")
    return report


# ---------------------------------------------------------------------------------- augmenting
def augment(
    pairs: Sequence[RewritePair],
    *,
    splices: int = 3,
    shifts: int = 4,
    standalone: bool = True,
    max_prefix_turns: int = 6,
    seed: int = 0,
) -> list[RewritePair]:
    """The pairs plus variants that teach the behaviours a chat needs, deterministically.

    For each pair:

    - ``splices`` **splices**: another, unrelated chat (its last ``max_prefix_turns`` turns and
      an answer) put before it, same rewrite. Teaches that the newest turns count and an old
      topic is a distractor (long histories).
    - ``shifts`` **topic shifts**: another chat's history followed by this pair's *rewrite* as
      the last turn; the target is the rewrite itself. Teaches to ignore a history that the
      last turn does not refer to.
    - one **standalone** pair: the rewrite alone as a one-turn chat, whose target is itself.
      Keeps the student where the general model was on questions that need no history.

    Other chats are drawn from the same language, so a variant never mixes languages. The
    variants keep the original's passages, so the contrastive term can use them.
    """
    if splices < 0 or shifts < 0:
        raise ValueError(f"splices and shifts must be >= 0, got {splices} and {shifts}")
    rng = random.Random(seed)
    by_lang: dict[str | None, list[int]] = {}
    for i, pair in enumerate(pairs):
        by_lang.setdefault(pair.lang, []).append(i)
    out: list[RewritePair] = list(pairs)

    def other(i: int) -> RewritePair | None:
        pool = by_lang[pairs[i].lang]
        if len(pool) < 2:
            return None
        j = i
        while j == i:
            j = rng.choice(pool)
        return pairs[j]

    def prefix(pair: RewritePair) -> tuple[Turn, ...]:
        """A chat as history: its last turns and the answer to its question (ends with B)."""
        turns = pair.turns[-max_prefix_turns:]
        if turns and turns[0].role == "assistant":
            turns = turns[1:]
        answer = pair.positive or "I'm not sure, sorry."
        return (*turns, Turn("assistant", answer))

    for i, pair in enumerate(pairs):
        tag = pair.id or str(i)
        for s in range(splices):
            donor = other(i)
            if donor is not None:
                before = prefix(donor)
                start = 1 if pair.turns[0].role == "assistant" else 0
                out.append(
                    replace(
                        pair,
                        turns=(*before, *pair.turns[start:]),
                        category="long_history"
                        if pair.category != "topic_shift"
                        else pair.category,
                        source=f"splice:{tag}:{s}",
                    )
                )
        for s in range(shifts):
            donor = other(i)
            if donor is None:
                break
            out.append(
                replace(
                    pair,
                    turns=(*prefix(donor), Turn("user", pair.rewrite)),
                    category="topic_shift",
                    source=f"shift:{tag}:{s}",
                )
            )
        if standalone:
            out.append(
                replace(
                    pair,
                    turns=(Turn("user", pair.rewrite),),
                    category="standalone",
                    source=f"standalone:{tag}",
                )
            )
    return out
