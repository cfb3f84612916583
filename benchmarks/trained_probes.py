"""Cheap probes around a trained dialogue model: weight interpolation and vector mixes.

For a model made by ``stella-rag train-dialogue`` (last-turn pooling, student initialised from
its general model), on each eval set:

- **weight interpolation** (WiSE-FT, Wortsman et al. 2022): the transformer's weights set to
  ``(1 - a) * general + a * trained`` for each ``--alpha``; ``a = 0`` is the untrained start
  (the ``in_context`` strategy), ``a = 1`` the trained model;
- **vector mixes** at query time: the trained vector plus the ``contextual`` strategy's vector,
  and plus the last turn's own vector (unit sums).

Prints MRR@10 per set. ``docs/training.md`` ("Recipe probes") quotes a run of this script.

    python benchmarks/trained_probes.py --dialogue-model models/minilm-dialogue \\
        [--alpha 0.3,0.5,0.7] [--data ../shared/eval/dev] [--data data/dialogue-rewrites/heldout]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from quality_ablation import _top  # noqa: E402

from stella_rag import DialogueEncoder, SentenceEncoder  # noqa: E402
from stella_rag._eval import evaluate, load_eval  # noqa: E402
from stella_rag._models import resolve_model  # noqa: E402

DEFAULT_DATA = [
    HERE.parent.parent / "shared" / "eval" / "dev",
    HERE.parent / "data" / "dialogue-rewrites" / "heldout",
    HERE / "data" / "heldout",
]


def interpolated(trained: Path, general_folder: Path, alpha: float, out: Path) -> Path:
    """A copy of ``trained`` whose transformer weights are mixed with the general model's."""
    from safetensors.torch import load_file, save_file

    start = load_file(str(general_folder / "model.safetensors"))
    end = load_file(str(trained / "model.safetensors"))
    missing = [name for name in end if name not in start]
    if missing:
        raise SystemExit(f"{trained} is not a fine-tuned copy of {general_folder}: {missing[:3]}")
    shutil.copytree(trained, out, ignore=shutil.ignore_patterns("teacher-vectors.npz"))
    mixed = {
        n: ((1 - alpha) * start[n].float() + alpha * t.float()).contiguous() for n, t in end.items()
    }
    save_file(mixed, str(out / "model.safetensors"))
    return out


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogue-model", type=Path, required=True)
    parser.add_argument("--alpha", default="0.3,0.5,0.7")
    parser.add_argument("--data", type=Path, action="append")
    args = parser.parse_args(argv)
    info = DialogueEncoder(str(args.dialogue_model)).info
    assert info is not None, "not a model made by stella-rag train-dialogue"
    general = SentenceEncoder(info.general_model, device="cpu")
    general_folder = Path(resolve_model(info.general_model).location)
    work = Path(tempfile.mkdtemp(prefix="stella-probes-"))
    models = {"trained (a=1)": DialogueEncoder(str(args.dialogue_model), general=general)}
    for alpha in (float(a) for a in args.alpha.split(",")):
        folder = interpolated(args.dialogue_model, general_folder, alpha, work / f"a{alpha}")
        models[f"interpolated a={alpha}"] = DialogueEncoder(str(folder), general=general)
    rows: dict[str, dict[str, float]] = {}
    sets = [d for d in (args.data or DEFAULT_DATA) if (d / "dialogues.jsonl").is_file()]
    for folder in sets:
        data = load_eval(folder / "corpus.jsonl", folder / "dialogues.jsonl")
        ids = [p.id for p in data.corpus]
        docs = general.encode_documents([p.text for p in data.corpus])
        chats = [[(t.role, t.text) for t in case.turns] for case in data.cases]
        vectors = {name: model.encode_many(chats) for name, model in models.items()}
        trained = vectors["trained (a=1)"]
        contextual = DialogueEncoder(general=general, strategy="contextual").encode_many(chats)
        last = general.encode_queries([case.turns[-1].text for case in data.cases])
        vectors["trained + contextual vector"] = _unit(trained + contextual)
        vectors["trained + last-turn vector"] = _unit(trained + last)
        for name, queries in vectors.items():
            report = evaluate(_top(queries, docs, ids), data.cases)
            rows.setdefault(name, {})[str(folder)] = report.overall.mrr_at_10
    print("| probe | " + " | ".join(f"{s.parent.name}/{s.name}" for s in sets) + " |")
    print("|---|" + "---|" * len(sets))
    for name, scores in rows.items():
        print(f"| {name} | " + " | ".join(f"{scores[str(s)]:.3f}" for s in sets) + " |")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
