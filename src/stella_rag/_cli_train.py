"""``stella-rag train-dialogue``: options in, :func:`stella_rag.train.train_dialogue_encoder` out.

Kept apart from ``cli.py`` so that the other commands start without the trainer's imports.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["train_dialogue"]


def _eval_sets(values: list[Path] | None) -> dict[str, str]:
    sets: dict[str, str] = {}
    for folder in values or []:
        if not (folder / "dialogues.jsonl").is_file() or not (folder / "corpus.jsonl").is_file():
            raise ValueError(f"--eval {folder}: needs corpus.jsonl and dialogues.jsonl in it")
        name = folder.resolve().name
        while name in sets:
            name += "_"
        sets[name] = str(folder)
    return sets


def train_dialogue(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the trained model.")],
    general: Annotated[
        str, typer.Option("--general", "-g", help="The general encoder (alias, hub id, folder).")
    ] = "minilm",
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            help="Training pairs: .jsonl files, folders, an eval folder with rewrites.jsonl, or a "
            "Hub data set id (repeatable). Default: the pairs shipped with stella-rag.",
        ),
    ] = None,
    eval_folders: Annotated[
        list[Path] | None,
        typer.Option("--eval", help="An eval folder scored (MRR@10) during training (repeatable)."),
    ] = None,
    epochs: Annotated[float, typer.Option("--epochs", min=0.01)] = 1.0,
    learning_rate: Annotated[float, typer.Option("--lr", min=1e-8)] = 1e-4,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    max_tokens: Annotated[
        int | None,
        typer.Option("--max-tokens", help="Token budget of the chat (default: model's)."),
    ] = None,
    token_dropout: Annotated[
        float, typer.Option("--token-dropout", help="Share of token vectors dropped in pooling.")
    ] = 0.3,
    freeze_layers: Annotated[
        int | None,
        typer.Option(
            "--freeze-layers", min=0, help="Lowest layers kept frozen (default: half on a CPU)."
        ),
    ] = None,
    contrastive_weight: Annotated[
        float, typer.Option("--contrastive-weight", min=0.0, help="Weight of the in-batch term.")
    ] = 0.5,
    fraction: Annotated[
        float, typer.Option("--fraction", help="Train on this share of the pairs (0-1].")
    ] = 1.0,
    augment: Annotated[
        bool, typer.Option("--augment/--no-augment", help="Add spliced/topic-shift variants.")
    ] = True,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip and count bad records instead of stopping.")
    ] = False,
    router: Annotated[
        bool,
        typer.Option("--router", help="Also save OUT/router, one sentence-transformers Router."),
    ] = False,
    pooling: Annotated[
        str,
        typer.Option(
            "--pooling", help="last_turn: mean of the last turn's tokens in context; mean: all."
        ),
    ] = "last_turn",
    seed: Annotated[int, typer.Option("--seed")] = 0,
    save_steps: Annotated[int, typer.Option("--save-steps", min=1)] = 100,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Train a dialogue encoder for a general encoder (the Stella card's recipe)."""
    from ._errors import StellaRagError

    try:
        from .train._data import read_pairs
        from .train._trainer import TrainConfig, train_dialogue_encoder

        config = TrainConfig(
            epochs=epochs,
            learning_rate=learning_rate,
            batch_size=batch_size,
            max_tokens=max_tokens,
            token_dropout=token_dropout,
            freeze_layers=freeze_layers,
            contrastive_weight=contrastive_weight,
            augment=augment,
            fraction=fraction,
            seed=seed,
            pooling=pooling,  # type: ignore[arg-type]  # TrainConfig checks it
            save_steps=save_steps,
            max_steps=max_steps,
        )
        pairs = read_pairs(data or None, skip_bad=skip_bad)
        for line in pairs.skipped:
            sys.stderr.write(f"skipped: {line}\n")

        def log(message: str) -> None:
            if not as_json:
                sys.stderr.write(message + "\n")

        log(f"training data: {json.dumps(pairs.summary(), ensure_ascii=False)}")
        # The trainer prints its logs on stdout; stdout is for the report.
        with contextlib.redirect_stdout(sys.stderr):
            report = train_dialogue_encoder(
                general,
                out,
                pairs,
                config=config,
                eval_sets=_eval_sets(eval_folders),
                progress=progress and not as_json,
                log=log,
                router=router,
            )
    except ImportError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise typer.Exit(1) from None
    except (StellaRagError, ValueError) as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
    else:
        _print(report.to_dict())
    if report.interrupted:
        raise typer.Exit(130)


def _print(data: dict[str, Any]) -> None:
    out = sys.stdout
    if data["interrupted"]:
        out.write(f"interrupted after step {data['steps']}; run the same command to resume\n")
        return
    out.write(
        f"trained {data['out']} on {data['training_pairs']} examples ({data['pairs']} pairs) in "
        f"{data['steps']} steps, {data['seconds']:.0f} s\n"
    )
    for name, before in (data["eval_before"] or {}).items():
        after = (data["eval_after"] or {}).get(name, {})
        b, a = before["overall"]["mrr_at_10"], after.get("overall", {}).get("mrr_at_10")
        out.write(f"{name}: MRR@10 {b:.3f} before, {a:.3f} after\n" if a is not None else "")
    out.write(f"use it: DialogueEncoder({data['out']!r}) or --dialogue-model {data['out']}\n")
