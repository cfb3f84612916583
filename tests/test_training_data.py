"""The shipped training data keeps the dev set's entities and passages out, and is well formed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stella_rag.train import DATA_DIR, read_pairs

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "eval" / "dev"
HELDOUT = DATA_DIR.parent / "heldout"

# Invented names of the dev set that a regex for multi-word names misses (single words, Chinese).
DEV_NAMES = [
    "Norvik",
    "Talvo",
    "Calloway",
    "Amberfeld",
    "Ashgrove",
    "Brightwell",
    "Brookline",
    "Copperleaf",
    "Whitcombe",
    "Dolmeran",
    "Dunmore",
    "Saarinen",
    "Fenwick",
    "Halden",
    "Halvard",
    "Harborline",
    "Cressida",
    "Kessling",
    "Koivusaari",
    "Larkspur",
    "Lumora",
    "Marlowe",
    "Ferrow",
    "Norda",
    "Ostmark",
    "Ostrava",
    "PebbleStore",
    "Pentavo",
    "Quellotin",
    "Ridgeford",
    "Rivulet",
    "Skyvale",
    "Sonique",
    "Thermolyte",
    "Reyval",
    "Valmora",
    "Veyra",
    "Oakhaven",
    "小林",
    "白鹭湖",
    "青岚",
    "星岩",
    "云舟",
    "澜州",
    "青屿",
    "雾港",
    "沈牧之",
    "海豚少儿",
    "松涛森林",
    "小雀T3",
    "凌风S5",
    "小周",
    "清源R5",
]
_MULTIWORD = re.compile(r"\b[A-Z][a-z]+(?:[ -](?:[A-Z][\w'-]*|\d[\w-]*))+")
_LEADING = {"The", "A", "An", "And", "But", "Is", "Does", "Did", "Can", "My", "Our", "What", "How"}
# Multi-word matches in the dev set that are ordinary words or real, generic names.
_GENERIC = {"About", "Should", "I", "Apache", "License", "Python", "Wi-Fi", "Nobel", "Prize"}


def _dev_texts() -> list[str]:
    texts = []
    for name in ("corpus", "dialogues", "rewrites"):
        for line in (DEV / f"{name}.jsonl").read_text("utf-8").splitlines():
            record = json.loads(line)
            texts += [record.get("text", ""), record.get("rewrite", "")]
            texts += [t["text"] for t in record.get("turns", [])]
    return [t for t in texts if t]


def _dev_multiword_names() -> set[str]:
    names = set()
    for text in _dev_texts():
        for match in _MULTIWORD.findall(text):
            words = match.split()
            while words and words[0] in _LEADING:
                words = words[1:]
            if len(words) >= 2 and not all(w in _GENERIC or w[0].isdigit() for w in words):
                names.add(" ".join(words))
    return names


def _training_blob() -> str:
    parts = [p.read_text("utf-8") for p in sorted(DATA_DIR.glob("*.jsonl"))]
    parts += [p.read_text("utf-8") for p in sorted(HELDOUT.glob("*.jsonl"))]
    return json.dumps("\n".join(parts), ensure_ascii=False)[1:-1].replace('\\"', '"')


@pytest.mark.skipif(not DEV.is_dir(), reason="needs ../shared/eval/dev beside the repository")
def test_no_dev_entity_or_passage_in_the_training_data() -> None:
    blob = _training_blob()
    found = [
        name
        for name in [*DEV_NAMES, *_dev_multiword_names()]
        if (re.search(rf"\b{re.escape(name)}\b", blob) if name.isascii() else name in blob)
    ]
    assert not found, f"dev-set names in the training data: {sorted(set(found))[:20]}"
    for text in _dev_texts():
        if len(text) >= 30:
            assert text not in blob, f"dev text in the training data: {text[:80]!r}"


def test_shipped_data_shape() -> None:
    report = read_pairs(DATA_DIR)
    assert not report.skipped
    ids = [p.id for p in report.pairs]
    assert len(ids) == len(set(ids))
    for pair in report.pairs:
        assert pair.turns[-1].role == "user" and pair.positive and pair.negatives
        assert pair.lang in ("en", "zh")
    heldout = {
        json.loads(line)["id"]
        for line in (HELDOUT / "dialogues.jsonl").read_text("utf-8").splitlines()
    }
    assert heldout and not heldout & set(ids), "held-out dialogues must not be trained on"
