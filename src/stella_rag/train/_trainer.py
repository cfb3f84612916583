"""Training a dialogue encoder for a general encoder: the Stella card's recipe (4.3).

The student starts as a copy of the general model. For each chat it learns to output the vector
the frozen general model gives the rewrite of the chat's last turn (cosine distillation), so
its vector of a chat can be compared with the general model's document vectors. The chat text
is made by :class:`~stella_rag.DialogueEncoder` itself (role labels, ``"[SEP]"``, earliest
turns dropped to fit the budget), so training and retrieval see the same input.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._dialogue import SEP, DialogueEncoder
from .._encoder import SentenceEncoder, resolve_encoder
from .._errors import TrainingDataError
from .._pairing import DialogueModelInfo, only_installed_code, weights_fingerprint
from ._data import ReadReport, RewritePair, augment, read_pairs

__all__ = ["TrainConfig", "TrainReport", "train_dialogue_encoder"]

_TEACHER_CACHE = "teacher-vectors.npz"
_CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class TrainConfig:
    """The recipe. The defaults are the shipped recipe for MiniLM on a CPU (docs/quality.md).

    Attributes:
        epochs: passes over the (augmented) pairs.
        learning_rate: peak learning rate (linear warm-up over the first 10% of steps, then
            linear decay).
        batch_size: pairs per step; also the number of in-batch passages of the contrastive term.
        max_tokens: token budget of the formatted chat (default: the general model's own limit).
        token_dropout: the card's dropout-1d: share of token vectors left out of the mean
            pooling in training (0 turns it off).
        freeze_layers: how many of the lowest transformer layers (and the embeddings) stay
            frozen; fewer weights to update is faster on a CPU and keeps the student near the
            general model. 0 trains everything. Default: the lower half on a CPU (MiniLM: 3 of
            6, 1.7x faster per step here), none on a GPU.
        contrastive_weight: weight of the in-batch contrastive term (0: pure distillation).
        augment: add spliced, topic-shift and standalone variants (see :func:`augment`).
        fraction: train on this share of the pairs (drawn before augmenting; for learning curves).
        seed: seed of sampling, augmentation and training.
        pooling: ``"last_turn"`` (default): the student mean-pools only the last turn's tokens,
            read in the context of the whole chat (:class:`stella_rag.modules.LastTurnPooling`);
            ``"mean"``: the card's mean over every token of the chat (a plain
            sentence-transformers model).
        save_steps: steps between checkpoints (Ctrl-C also saves one).
        max_steps: stop after this many steps (for smoke tests); ``None``: the whole schedule.
    """

    epochs: float = 1.0
    learning_rate: float = 1e-4
    batch_size: int = 32
    max_tokens: int | None = None
    token_dropout: float = 0.3
    freeze_layers: int | None = None
    contrastive_weight: float = 0.5
    augment: bool = True
    fraction: float = 1.0
    seed: int = 0
    pooling: Literal["last_turn", "mean"] = "last_turn"
    save_steps: int = 100
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction!r}")
        for name in ("batch_size", "save_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0 or not self.epochs > 0:
            raise ValueError("learning_rate and epochs must be positive")
        if self.pooling not in ("last_turn", "mean"):
            raise ValueError(f"pooling must be 'last_turn' or 'mean', got {self.pooling!r}")
        if (self.freeze_layers or 0) < 0 or self.contrastive_weight < 0:
            raise ValueError("freeze_layers and contrastive_weight must be >= 0")


@dataclass
class TrainReport:
    """What a training run did and measured."""

    out: Path
    pairs: int
    training_pairs: int
    steps: int
    seconds: float
    resumed_from: str | None
    interrupted: bool
    losses: list[tuple[int, float]] = field(default_factory=list)
    eval_before: dict[str, Any] | None = None
    eval_after: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "pairs": self.pairs,
            "training_pairs": self.training_pairs,
            "steps": self.steps,
            "seconds": round(self.seconds, 1),
            "resumed_from": self.resumed_from,
            "interrupted": self.interrupted,
            "losses": self.losses,
            "eval_before": self.eval_before,
            "eval_after": self.eval_after,
        }


# -------------------------------------------------------------------------------- teacher side
def _key(model_id: str, side: str, text: str) -> str:
    return hashlib.sha1(f"{model_id}\0{side}\0{text}".encode()).hexdigest()


def teacher_vectors(
    general: Any, queries: Sequence[str], passages: Sequence[str], cache: Path | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The frozen general model's vectors of the rewrites (query side) and passages (document
    side), each text encoded once; cached in ``cache`` across runs."""
    stored: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            stored = {k: data[k] for k in data.files}
    out: list[dict[str, np.ndarray]] = []
    for side, texts, encode in (
        ("query", queries, general.encode_queries),
        ("document", passages, general.encode_documents),
    ):
        unique = list(dict.fromkeys(texts))
        keys = {t: _key(general.model_id, side, t) for t in unique}
        missing = [t for t in unique if keys[t] not in stored]
        if missing:
            for key_text, vector in zip(missing, encode(missing), strict=True):
                stored[keys[key_text]] = vector
        out.append({t: stored[keys[t]] for t in unique})
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **stored)  # type: ignore[arg-type]
        os.replace(tmp, cache)
    return out[0], out[1]


# ------------------------------------------------------------------------------------ helpers
def _blocks(model: Any) -> Any:
    """The transformer's list of layers (BERT-like ``encoder.layer`` or ``layers``), or ``None``."""
    auto = getattr(model[0], "auto_model", None)
    for path in ("encoder.layer", "layers", "encoder.layers"):
        target = auto
        for part in path.split("."):
            target = getattr(target, part, None)
        if target is not None:
            return target
    return None


def _freeze(model: Any, layers: int) -> int:
    """Freeze the embeddings and the lowest ``layers`` transformer layers; returns how many."""
    blocks = _blocks(model)
    if layers <= 0 or blocks is None:
        return 0
    embeddings = getattr(model[0].auto_model, "embeddings", None)
    for param in embeddings.parameters() if embeddings is not None else ():
        param.requires_grad = False
    n = min(layers, len(blocks))
    for block in blocks[:n]:
        for param in block.parameters():
            param.requires_grad = False
    return n


def _pooling(model: Any, last_turn: bool) -> Any:
    """The student's pooling module, first swapped for last-turn pooling if asked."""
    try:
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # sentence-transformers 5
        from sentence_transformers.models import Pooling  # type: ignore[no-redef]

    for name, module in model.named_children():
        if isinstance(module, Pooling):
            if last_turn:
                from ..modules import LastTurnPooling

                module = LastTurnPooling.from_pooling(module, model.tokenizer, SEP)
                model._modules[name] = module
            return module
    raise ValueError(
        "the general model has no Pooling module; last-turn pooling and token dropout need one"
    )


def _warmup(share: float) -> dict[str, Any]:
    """Warm-up over ``share`` of the steps: ``warmup_steps`` takes a share from transformers 5
    on and ``warmup_ratio`` is deprecated there; before 5 only ``warmup_ratio`` does."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"warmup_steps": share} if major >= 5 else {"warmup_ratio": share}


def _latest_checkpoint(folder: Path) -> str | None:
    checkpoints = sorted(
        (p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    return str(checkpoints[-1]) if checkpoints else None


def _sample(pairs: list[RewritePair], fraction: float, seed: int) -> list[RewritePair]:
    if fraction >= 1:
        return pairs
    rng = random.Random(seed)
    keep = sorted(rng.sample(range(len(pairs)), max(1, round(len(pairs) * fraction))))
    return [pairs[i] for i in keep]


def _interrupt_callback() -> Any:
    """A trainer callback that turns Ctrl-C into "save a checkpoint, then stop"."""
    from transformers import TrainerCallback

    class SaveOnInterrupt(TrainerCallback):
        def __init__(self) -> None:
            self.interrupted = False
            self._previous: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            def handler(signum: int, frame: Any) -> None:
                if self.interrupted:  # a second Ctrl-C: stop now
                    raise KeyboardInterrupt
                self.interrupted = True

            try:
                self._previous = signal.signal(signal.SIGINT, handler)
            except ValueError:  # not the main thread: Ctrl-C cannot reach us anyway
                self._previous = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if self.interrupted:
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self._previous is not None:
                signal.signal(signal.SIGINT, self._previous)
                self._previous = None

    return SaveOnInterrupt()


# ------------------------------------------------------------------------------------ training
def train_dialogue_encoder(
    general: str | os.PathLike[str] | SentenceEncoder,
    out: str | os.PathLike[str],
    data: ReadReport | Iterable[RewritePair] | str | os.PathLike[str] | None = None,
    *,
    config: TrainConfig | None = None,
    eval_sets: Mapping[str, str | os.PathLike[str]] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    router: bool = False,
) -> TrainReport:
    """Train a dialogue encoder for ``general`` and save it in ``out``.

    Args:
        general: the general encoder (alias, hub id, folder or :class:`SentenceEncoder`). Its
            documents are what the trained model's chat vectors are compared with.
        out: the output folder. A run that finds checkpoints there resumes from the latest.
        data: pairs (a :class:`ReadReport` or :class:`RewritePair` list) or sources for
            :func:`read_pairs`; default: the data shipped with stella-rag.
        config: the recipe (:class:`TrainConfig`).
        eval_sets: name -> eval folder, scored (MRR@10) before training, at each checkpoint and
            at the end.
        progress: show the trainer's progress bar (with ETA).
        log: where to write one-line progress notes (default: nowhere).
        router: also save ``out/router``: one sentence-transformers ``Router`` model whose query
            route is the dialogue model and whose document route the general model.

    Returns:
        A :class:`TrainReport`; the model folder also holds ``stella_rag_dialogue.json``.
    """
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    config = config or TrainConfig()
    say = log or (lambda message: None)
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    encoder = resolve_encoder(general)
    if not isinstance(encoder, SentenceEncoder):
        raise TypeError("general must name a sentence-transformers model or be a SentenceEncoder")
    loaded = encoder._load()
    formatter = DialogueEncoder(
        general=encoder, max_tokens=config.max_tokens, strategy="dialogue", cache_size=0
    )
    budget = formatter.max_tokens

    if isinstance(data, ReadReport):
        report = data
    elif data is None or isinstance(data, (str, os.PathLike)):
        report = read_pairs(data)
    else:
        report = ReadReport(pairs=list(data))
    if not report.pairs:
        raise TrainingDataError("no training pairs: pass at least one dialogue with its rewrite")
    pairs = _sample(report.pairs, config.fraction, config.seed)
    examples = augment(pairs, seed=config.seed) if config.augment else list(pairs)
    rng = random.Random(config.seed)
    rng.shuffle(examples)
    say(f"{len(pairs)} pairs, {len(examples)} training examples after augmentation")

    texts = [formatter.format(list(ex.turns)) for ex in examples]
    passages = [p for ex in examples for p in (ex.positive, *ex.negatives[:1]) if p]
    rewrites, docs = teacher_vectors(
        encoder, [ex.rewrite for ex in examples], passages, out / _TEACHER_CACHE
    )
    dim = len(next(iter(rewrites.values())))
    zeros = np.zeros(dim, dtype=np.float32)
    labels = np.stack(
        [
            np.stack(
                [
                    rewrites[ex.rewrite],
                    docs[ex.positive] if ex.positive else rewrites[ex.rewrite],
                    docs[ex.negatives[0]] if ex.negatives else zeros,
                ]
            )
            for ex in examples
        ]
    ).astype(np.float32)
    dataset = Dataset.from_dict({"dialogue": texts, "label": list(labels)})
    dataset = dataset.with_format("torch", columns=["label"], output_all_columns=True)
    say(f"teacher vectors ready ({time.perf_counter() - started:.0f} s)")

    student = SentenceTransformer(
        loaded.source.location, device="cpu" if encoder.device == "cpu" else encoder.device
    )
    student.max_seq_length = budget
    freeze = config.freeze_layers
    if freeze is None:
        blocks = _blocks(student)
        freeze = len(blocks) // 2 if blocks is not None and encoder.device == "cpu" else 0
    frozen = _freeze(student, freeze)
    from ._loss import DialogueDistillLoss, TokenDropout

    pooling = _pooling(student, config.pooling == "last_turn")
    dropout = TokenDropout(config.token_dropout).attach(pooling)

    loss = DialogueDistillLoss(student, contrastive_weight=config.contrastive_weight)

    evaluators = []
    if eval_sets:
        from ._evaluator import DialogueRetrievalEvaluator

        for name, folder in eval_sets.items():
            evaluators.append(DialogueRetrievalEvaluator(folder, encoder, formatter, name=name))
    eval_before = {e.name: e.report(student).to_dict() for e in evaluators} or None

    checkpoints = out / _CHECKPOINTS
    resume = _latest_checkpoint(checkpoints)
    if resume:
        say(f"resuming from {resume}")
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps else -1,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        **_warmup(0.1),
        lr_scheduler_type="linear",
        weight_decay=0.01,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        eval_strategy="steps" if evaluators else "no",
        eval_steps=config.save_steps if evaluators else None,
        logging_steps=max(1, min(50, config.save_steps)),
        seed=config.seed,
        data_seed=config.seed,
        report_to="none",
        disable_tqdm=not progress,
        use_cpu=encoder.device == "cpu",
        dataloader_drop_last=len(dataset) > config.batch_size,
    )
    evaluator: Any = None
    if len(evaluators) == 1:
        evaluator = evaluators[0]
    elif evaluators:
        from sentence_transformers.evaluation import SequentialEvaluator

        evaluator = SequentialEvaluator(evaluators)
    interrupt = _interrupt_callback()
    trainer = SentenceTransformerTrainer(
        model=student,
        args=args,
        train_dataset=dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=[interrupt],
    )
    try:
        trainer.train(resume_from_checkpoint=resume)
    finally:
        dropout.detach()
    losses = [
        (int(row["step"]), float(row["loss"])) for row in trainer.state.log_history if "loss" in row
    ]
    result = TrainReport(
        out=out,
        pairs=len(pairs),
        training_pairs=len(examples),
        steps=int(trainer.state.global_step),
        seconds=time.perf_counter() - started,
        resumed_from=resume,
        interrupted=interrupt.interrupted,
        losses=losses,
        eval_before=eval_before,
    )
    if interrupt.interrupted:
        say(f"interrupted: checkpoint saved in {checkpoints}; run the same command to resume")
        return result

    for param in student.parameters():
        param.requires_grad = True
    student.save(str(out))
    info = DialogueModelInfo(
        general_model=encoder.model_id,
        general_fingerprint=weights_fingerprint(loaded.model),
        roles=formatter.roles,
        separator=SEP,
        max_tokens=budget,
        training={
            "data": report.summary(),
            "pairs_used": len(pairs),
            "training_examples": len(examples),
            "config": {k: v for k, v in config.__dict__.items()},
            "frozen_layers": frozen,
            "steps": result.steps,
            "seconds": round(result.seconds, 1),
        },
    )
    info.write(out)
    if evaluators:
        result.eval_after = {e.name: e.report(student).to_dict() for e in evaluators}
    if router:
        save_router(out, loaded.source.location, out / "router")
    # The model is saved: a later run in this folder starts afresh (teacher vectors stay cached).
    shutil.rmtree(checkpoints, ignore_errors=True)
    (out / "training_report.json").write_text(
        json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n", "utf-8"
    )
    return result


def save_router(dialogue_folder: str | os.PathLike[str], general: str, target: Path) -> Path:
    """One sentence-transformers ``Router`` model: queries through the dialogue model, documents
    through the general model, so ``encode_query`` / ``encode_document`` work without stella-rag.

    Queries are then whole chats formatted as stella-rag formats them (``"A: ...[SEP]B: ..."``).
    """
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Router
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Router  # type: ignore[no-redef]

    # The dialogue model's pooling is stella_rag's own (installed) LastTurnPooling.
    trusted = only_installed_code(dialogue_folder)
    query: Any = SentenceTransformer(str(dialogue_folder), device="cpu", trust_remote_code=trusted)
    document: Any = SentenceTransformer(general, device="cpu")
    router = Router.for_query_document(
        query_modules=list(query.children()), document_modules=list(document.children())
    )
    model = SentenceTransformer(modules=[router], device="cpu")
    model.save(str(target))
    return target
