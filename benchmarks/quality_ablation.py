"""Which query strategy should a general encoder use for a chat? The ablation behind the default.

Every registered strategy (``stella_rag.STRATEGIES``) encodes each eval set's dialogues with
``DialogueEncoder(general=SentenceEncoder(model), strategy=name)``; passages are embedded with
``SentenceEncoder.encode_documents`` and ranked by exact cosine similarity. Printed per set: a
markdown table of MRR@10, Recall@1, Recall@10 and nDCG@10 overall, MRR@10 per category and per
language, and the texts each strategy encodes per dialogue.

``--split`` adds the overfitting check: the cases are split into two halves (alternating within
each category and language), the default strategy's constants are chosen on one half from a
small grid and scored on the other, both ways round.

    python benchmarks/quality_ablation.py [--data ../shared/eval/dev] [--data DIR ...]
        [--model minilm] [--split] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from stella_rag import STRATEGIES, DialogueEncoder, SentenceEncoder
from stella_rag._eval import Case, EvalData, K, Report, evaluate, load_eval
from stella_rag.strategies import DEFAULT_STRATEGY, ContextualStrategy

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "eval" / "dev"
CATEGORIES = ("ellipsis", "coreference", "topic_shift", "long_history", "distractor")

# The grid for --split: each constant of the default strategy around its default.
GRID = {
    "context_weight": (0.5, 1.0, 1.5),
    "history_weight": (0.25, 0.5, 0.75),
    "half_life": (1.0, 2.0, 3.0),
}


def _top(queries: np.ndarray, docs: np.ndarray, ids: list[str]) -> list[list[str]]:
    order = np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :K]
    return [[ids[j] for j in row] for row in order]


def _dialogues(data: EvalData) -> list[list[tuple[str, str]]]:
    return [[(t.role, t.text) for t in case.turns] for case in data.cases]


def ablation(encoder: SentenceEncoder, data: EvalData) -> dict[str, dict[str, Any]]:
    """Every registered strategy on one eval set: its report, texts per dialogue and seconds."""
    ids = [p.id for p in data.corpus]
    docs = encoder.encode_documents([p.text for p in data.corpus])
    dialogues = _dialogues(data)
    results: dict[str, dict[str, Any]] = {}
    for name in STRATEGIES:
        dialogue_encoder = DialogueEncoder(general=encoder, strategy=name)
        strategy = dialogue_encoder.strategy
        planned = [t for d in dialogues for t in strategy.plan(dialogue_encoder.view(d))]
        tokens = sum(min(n, encoder.max_seq_length) for n in encoder.count_tokens(planned))
        started = time.perf_counter()
        queries = dialogue_encoder.encode_many(dialogues)
        seconds = time.perf_counter() - started
        results[name] = {
            "report": evaluate(_top(queries, docs, ids), data.cases),
            "texts_per_dialogue": len(planned) / len(dialogues),
            "tokens_per_dialogue": tokens / len(dialogues),
            "seconds": seconds,
        }
    return results


def table(results: dict[str, dict[str, Any]], data: EvalData) -> str:
    """The markdown table of one eval set."""
    langs = sorted({c.lang for c in data.cases if c.lang})
    cats = [c for c in CATEGORIES if any(case.category == c for case in data.cases)]
    cats += sorted({c.category for c in data.cases if c.category} - set(cats))
    head = ["strategy", "MRR@10", "R@1", "R@10", "nDCG@10", *cats, *langs, "texts", "tokens"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, result in results.items():
        report: Report = result["report"]
        o = report.overall
        label = f"**{name}** (default)" if name == DEFAULT_STRATEGY else name
        cells = [label, f"{o.mrr_at_10:.3f}", f"{o.recall_at_1:.3f}", f"{o.recall_at_10:.3f}"]
        cells.append(f"{o.ndcg_at_10:.3f}")
        cells += [f"{report.by_category[c].mrr_at_10:.3f}" for c in cats]
        cells += [f"{report.by_language[lang].mrr_at_10:.3f}" for lang in langs]
        cells.append(f"{result['texts_per_dialogue']:.1f}")
        cells.append(f"{result['tokens_per_dialogue']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    n = {c: sum(case.category == c for case in data.cases) for c in cats}
    n.update({lang: sum(case.lang == lang for case in data.cases) for lang in langs})
    lines.append("")
    lines.append(
        f"{len(data.cases)} cases, {len(data.corpus)} passages; per column: "
        + ", ".join(f"{k} {v}" for k, v in n.items())
        + ". Category and language columns are MRR@10; texts and tokens: what the strategy"
        " encodes per dialogue (mean)."
    )
    return "\n".join(lines)


def below_baseline(results: dict[str, dict[str, Any]], name: str) -> list[str]:
    """The categories where strategy ``name`` scores below ``last_turn`` (MRR@10)."""
    mine: Report = results[name]["report"]
    base: Report = results["last_turn"]["report"]
    return [
        f"{c} {mine.by_category[c].mrr_at_10:.3f} < {base.by_category[c].mrr_at_10:.3f}"
        for c in mine.by_category
        if mine.by_category[c].mrr_at_10 < base.by_category[c].mrr_at_10 - 1e-9
    ]


def halves(cases: tuple[Case, ...]) -> tuple[list[Case], list[Case]]:
    """Two halves of the cases: sorted by (category, language, id), dealt out alternately."""
    ordered = sorted(cases, key=lambda c: (c.category or "", c.lang or "", c.id))
    return ordered[0::2], ordered[1::2]


def split_check(encoder: SentenceEncoder, data: EvalData) -> dict[str, Any]:
    """Choose the default strategy's constants on one half, score them on the other."""
    ids = [p.id for p in data.corpus]
    docs = encoder.encode_documents([p.text for p in data.corpus])
    dialogue_encoder = DialogueEncoder(general=encoder, strategy=DEFAULT_STRATEGY)
    # The planned texts do not depend on the grid's constants: encode them once.
    views = [dialogue_encoder.view(d) for d in _dialogues(data)]
    planner = ContextualStrategy()
    plans = [planner.plan(v) for v in views]
    vectors = dialogue_encoder.encoder.encode_queries([t for plan in plans for t in plan])
    bounds = np.cumsum([0] + [len(p) for p in plans])

    def mrr(params: dict[str, float], cases: list[Case]) -> float:
        strategy = ContextualStrategy(**params)  # type: ignore[arg-type]
        queries = np.stack(
            [
                strategy.combine(v, vectors[a:b])
                for v, a, b in zip(views, bounds[:-1], bounds[1:], strict=True)
            ]
        )
        rankings = dict(zip([c.id for c in data.cases], _top(queries, docs, ids), strict=True))
        return evaluate(rankings, cases).overall.mrr_at_10

    default = {"context_weight": 1.0, "history_weight": 0.5, "half_life": 2.0}
    grid = [dict(zip(GRID, v, strict=True)) for v in itertools.product(*GRID.values())]
    a, b = halves(data.cases)
    out: dict[str, Any] = {"halves": [[c.id for c in a], [c.id for c in b]], "directions": []}
    for name, tune, test in (("A->B", a, b), ("B->A", b, a)):
        scored = [(mrr(p, tune), p) for p in grid]
        best_score, best = max(scored, key=lambda x: x[0])
        out["directions"].append(
            {
                "direction": name,
                "chosen": best,
                "chosen_on_tuning_half": best_score,
                "chosen_on_other_half": mrr(best, test),
                "default_on_tuning_half": mrr(default, tune),
                "default_on_other_half": mrr(default, test),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, action="append", help=f"eval set folder (default {DEFAULT_DATA})"
    )
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--split", action="store_true", help="also run the split-half check")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    encoder = SentenceEncoder(args.model, device="cpu")
    dump: dict[str, Any] = {"model": args.model, "default": DEFAULT_STRATEGY, "sets": {}}
    worst = 0
    for folder in args.data or [DEFAULT_DATA]:
        data = load_eval(folder / "corpus.jsonl", folder / "dialogues.jsonl")
        results = ablation(encoder, data)
        print(f"\n## {folder} ({args.model})\n")
        print(table(results, data))
        below = below_baseline(results, DEFAULT_STRATEGY)
        print(
            f"\n{DEFAULT_STRATEGY} below last_turn in: {', '.join(below)}"
            if below
            else f"\n{DEFAULT_STRATEGY} is at or above last_turn in every category."
        )
        worst = max(worst, len(below))
        entry: dict[str, Any] = {
            name: {
                **r["report"].to_dict(),
                "texts_per_dialogue": r["texts_per_dialogue"],
                "tokens_per_dialogue": r["tokens_per_dialogue"],
            }
            for name, r in results.items()
        }
        if args.split:
            check = split_check(encoder, data)
            print("\nSplit-half check (constants of the default chosen on one half):\n")
            print(
                "| direction | chosen | MRR@10 tuning half | MRR@10 other half |"
                " default on tuning half | default on other half |"
            )
            print("|---|---|---|---|---|---|")
            for d in check["directions"]:
                chosen = ", ".join(f"{k}={v:g}" for k, v in d["chosen"].items())
                print(
                    f"| {d['direction']} | {chosen} | {d['chosen_on_tuning_half']:.3f} | "
                    f"{d['chosen_on_other_half']:.3f} | {d['default_on_tuning_half']:.3f} | "
                    f"{d['default_on_other_half']:.3f} |"
                )
            entry["split_check"] = check
        dump["sets"][str(folder)] = entry
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dump, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
