"""Serial ChromaStore.add against Ray Data (stella_rag.scale) with 1 and 2 actors.

Each system writes the same corpus into its own new collection of one real Chroma server
(``chroma run``, started here), with the same model; passages/s counts the whole run: for Ray,
starting the actors and loading the model in each of them included. On a 2-core machine the
point is Ray's overhead, not a speed-up.

    python benchmarks/scale.py                      # 2,000 mixed passages, minilm, ~5 min
    python benchmarks/scale.py --passages 500 --model /path/to/tiny-model

Needs ``pip install -e '.[offline,ray]'``. Results: benchmarks/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import make_corpus

from stella_rag import ChromaStore, SentenceEncoder, connect
from stella_rag.testing import ChromaServer

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"


def _serial(texts: list[str], model: str, server: ChromaServer, run: int) -> dict[str, Any]:
    # The model loads inside the timed part, as it does in each Ray actor.
    started = time.perf_counter()
    store = ChromaStore(
        f"bench-serial-{run}",
        encoder=SentenceEncoder(model, device="cpu"),
        client=connect(server=server.address),
    )
    first: list[float] = []
    report = store.index(
        texts, on_chunk=lambda _: first or first.append(time.perf_counter() - started)
    )
    seconds = time.perf_counter() - started
    assert store.count() == len(texts), store.count()
    return {"seconds": seconds, "first_write_s": first[0], "embedded": report.embedded}


def _ray(
    texts: list[str], model: str, server: ChromaServer, actors: int, run: int
) -> dict[str, Any]:
    import ray.data

    from stella_rag.scale import embed_dataset

    dataset = ray.data.from_items([{"text": t} for t in texts])
    started = time.perf_counter()
    first: list[float] = []
    report = embed_dataset(
        dataset,
        encoder=SentenceEncoder(model, device="cpu"),
        collection=f"bench-ray-{actors}-{run}",
        chroma={"server": server.address},
        actors=actors,
        batch_size=128,
        on_progress=lambda _: first or first.append(time.perf_counter() - started),
    )
    seconds = time.perf_counter() - started
    assert report.count == len(texts) == report.embedded, report
    return {"seconds": seconds, "first_write_s": first[0], "embedded": report.embedded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to Ray")
    parser.add_argument("--rounds", type=int, default=2, help="best of this many, interleaved")
    args = parser.parse_args()

    import ray
    import torch

    texts = make_corpus(args.passages, seed=3)
    runs: dict[str, list[dict[str, Any]]] = {}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder, ChromaServer(folder) as server:
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        try:
            # Interleaved rounds: a burst of load on the machine hits every system alike.
            for run in range(args.rounds):
                runs.setdefault("serial ChromaStore.add", []).append(
                    _serial(texts, args.model, server, run)
                )
                for actors in (1, 2):
                    runs.setdefault(f"Ray Data, {actors} actor{'s' * (actors > 1)}", []).append(
                        _ray(texts, args.model, server, actors, run)
                    )
        finally:
            ray.shutdown()
    rows = {name: dict(min(found, key=lambda r: r["seconds"])) for name, found in runs.items()}
    for name, row in rows.items():
        row["all_seconds"] = [round(r["seconds"], 1) for r in runs[name]]
    base = rows["serial ChromaStore.add"]["seconds"]
    print(
        f"\n{args.passages} passages, {args.model}, Chroma server, {args.cpus} CPUs for Ray, "
        f"best of {args.rounds}"
    )
    print(f"{'system':<24}{'s':>8}{'passages/s':>12}{'first write s':>15}{'x serial':>10}")
    for name, row in rows.items():
        row["passages_per_s"] = round(args.passages / row["seconds"], 1)
        row["x_serial"] = round(base / row["seconds"], 2)
        print(
            f"{name:<24}{row['seconds']:>8.1f}{row['passages_per_s']:>12.1f}"
            f"{row['first_write_s']:>15.1f}{row['x_serial']:>10.2f}"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "passages": args.passages,
                "model": args.model,
                "ray_cpus": args.cpus,
                "rounds": args.rounds,
                "serial_torch_threads": torch.get_num_threads(),
                "cpu_count": os.cpu_count(),
                "load_average_at_start": round(load, 2),
                "load_average_at_end": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
                "ray": ray.__version__,
                "results": rows,
            },
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end; -> {RESULTS}")


if __name__ == "__main__":
    main()
