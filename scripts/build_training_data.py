"""Build data/dialogue-rewrites/{train,heldout} from the hand-written batches.

    python scripts/build_training_data.py [--src data/dialogue-rewrites/src]

Every record is checked with the training reader (stella_rag.train.parse_record). About one in
ten dialogues (chosen by a hash of its id, so the split is stable as batches grow) goes to
``heldout/`` as an eval set in the format of shared/eval/README.md: the corpus is every held-out
dialogue's positive and negative passages together, so each case has its own hard negatives
and every other case's passages as distractors. The rest goes to ``train/``, one file per batch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from stella_rag.train import parse_record

ROOT = Path(__file__).resolve().parent.parent / "data" / "dialogue-rewrites"


def held_out(record_id: str) -> bool:
    return int(hashlib.sha1(record_id.encode()).hexdigest(), 16) % 10 == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    args = parser.parse_args()
    (ROOT / "train").mkdir(parents=True, exist_ok=True)
    (ROOT / "heldout").mkdir(parents=True, exist_ok=True)
    corpus: list[dict[str, str]] = []
    dialogues: list[dict[str, object]] = []
    rewrites: list[dict[str, str]] = []
    passage_ids: dict[str, str] = {}
    seen: set[str] = set()
    kept = 0

    def passage(text: str, lang: str) -> str:
        if text not in passage_ids:
            passage_ids[text] = f"hp{len(passage_ids) + 1:04d}"
            corpus.append({"id": passage_ids[text], "text": text, "lang": lang})
        return passage_ids[text]

    for file in sorted(args.src.glob("*.jsonl")):
        train_lines = []
        for number, line in enumerate(file.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            parse_record(record)  # raises on a bad record
            if record["id"] in seen:
                raise SystemExit(f"{file}:{number}: duplicate id {record['id']!r}")
            seen.add(record["id"])
            if held_out(record["id"]):
                relevant = passage(record["positive"], record["lang"])
                for negative in record["negatives"]:
                    passage(negative, record["lang"])
                dialogues.append(
                    {
                        "id": record["id"],
                        "lang": record["lang"],
                        "category": record["category"],
                        "turns": record["turns"],
                        "relevant": [relevant],
                    }
                )
                rewrites.append({"id": record["id"], "rewrite": record["rewrite"]})
            else:
                train_lines.append(json.dumps(record, ensure_ascii=False))
                kept += 1
        (ROOT / "train" / file.name).write_text("\n".join(train_lines) + "\n", "utf-8")
    for name, rows in (("corpus", corpus), ("dialogues", dialogues), ("rewrites", rewrites)):
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (ROOT / "heldout" / f"{name}.jsonl").write_text(text, "utf-8")
    print(f"train: {kept} pairs; heldout: {len(dialogues)} cases, {len(corpus)} passages")


if __name__ == "__main__":
    main()
