"""Does the CPU fast path (``backend="onnx-int8"``) keep retrieval quality?

On the dev set (``../shared/eval/dev``: passages and dialogues with relevant ids), every dialogue
is encoded with ``DialogueEncoder(general=...)`` by the float32 torch model and by the int8
ONNX model; passages are ranked by exact cosine similarity. Reported: the share of dialogues
whose top-10 ids are the same set under both (strict), the share whose top-10 outcome is the
same (a relevant passage is in the top 10 under both, or under neither), the mean top-10
overlap, and MRR@10 of each.

Targets: top-10 agreement >= 95% of dialogues, MRR@10 drop <= 0.01. The exit status is 0 only
when the strict reading holds.

    python benchmarks/quality_fast.py [--model minilm] [--data ../shared/eval/dev] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from stella_rag import DialogueEncoder, SentenceEncoder
from stella_rag._eval import K

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "eval" / "dev"


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _rank(encoder: SentenceEncoder, passages: list[str], dialogues: list[list[dict]]) -> np.ndarray:
    docs = encoder.encode_documents(passages)
    queries = DialogueEncoder(general=encoder).encode_many(dialogues)
    return np.argsort(-(queries @ docs.T), axis=1, kind="stable")[:, :K]


def _mrr(top: np.ndarray, ids: list[str], relevant: list[set[str]]) -> float:
    total = 0.0
    for row, rel in zip(top, relevant, strict=True):
        for rank, j in enumerate(row, start=1):
            if ids[j] in rel:
                total += 1.0 / rank
                break
    return total / len(relevant)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=HERE / "results" / "quality_fast.json")
    args = parser.parse_args(argv)

    corpus = _read(args.data / "corpus.jsonl")
    cases = _read(args.data / "dialogues.jsonl")
    ids = [c["id"] for c in corpus]
    passages = [c["text"] for c in corpus]
    dialogues = [c["turns"] for c in cases]
    relevant = [set(c["relevant"]) for c in cases]

    ref = _rank(SentenceEncoder(args.model, device="cpu"), passages, dialogues)
    fast = _rank(
        SentenceEncoder(args.model, device="cpu", backend="onnx-int8"), passages, dialogues
    )
    same = [set(a) == set(b) for a, b in zip(ref, fast, strict=True)]
    overlap = [len(set(a) & set(b)) / K for a, b in zip(ref, fast, strict=True)]
    hit_ref = [any(ids[j] in rel for j in row) for row, rel in zip(ref, relevant, strict=True)]
    hit_fast = [any(ids[j] in rel for j in row) for row, rel in zip(fast, relevant, strict=True)]
    result = {
        "model": args.model,
        "data": str(args.data),
        "passages": len(passages),
        "dialogues": len(cases),
        "top10_same_set": float(np.mean(same)),
        "top10_same_outcome": float(
            np.mean([a == b for a, b in zip(hit_ref, hit_fast, strict=True)])
        ),
        "top10_mean_overlap": float(np.mean(overlap)),
        "top1_same": float(np.mean(ref[:, 0] == fast[:, 0])),
        "mrr10_float32": _mrr(ref, ids, relevant),
        "mrr10_int8": _mrr(fast, ids, relevant),
    }
    result["mrr10_drop"] = result["mrr10_float32"] - result["mrr10_int8"]
    result["agreement_target_met_strict"] = result["top10_same_set"] >= 0.95
    result["agreement_target_met_outcome"] = result["top10_same_outcome"] >= 0.95
    result["mrr_target_met"] = result["mrr10_drop"] <= 0.01
    for key, value in result.items():
        print(f"{key:22} {value:.4f}" if isinstance(value, float) else f"{key:22} {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    return 0 if result["agreement_target_met_strict"] and result["mrr_target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
