"""One-shot search from a shell: wall time of a whole command, start-up included.

Three commands answer the same query over the same Chroma collection, each run as a fresh
process, alternating, ``--runs`` times:

- ``stella-rag search --no-daemon``: the command loads torch and the model itself;
- ``stella-rag search`` with ``stella-rag daemon start`` running: the query is embedded in the
  warm daemon, the client never imports torch;
- the peer: a Python script that embeds the query with LangChain's
  ``HuggingFaceEmbeddings`` (same model) and queries the collection with ``chromadb``, the way a
  one-off script built on the peer would.

Prints the median wall seconds of each and their ratios to the peer; timings are not checked
anywhere. The collection is built first from the repository's docs (``--model``, default
``minilm``).

    python benchmarks/startup.py [--runs 5] [--json benchmarks/results/startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QUERY = "how do I train a dialogue encoder for my own model"

PEER_NAME = "peer: HuggingFaceEmbeddings + chromadb script"
PEER = """
import sys, chromadb
from langchain_huggingface import HuggingFaceEmbeddings
path, collection, model, query = sys.argv[1:5]
embeddings = HuggingFaceEmbeddings(model_name=model, encode_kwargs={"normalize_embeddings": True})
found = chromadb.PersistentClient(path).get_collection(collection)
hits = found.query(query_embeddings=[embeddings.embed_query(query)], n_results=5)
print(hits["ids"][0])
"""


def _stella(*args: str) -> list[str]:
    return [sys.executable, "-m", "stella_rag.cli", *args]


def _wall(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def measure(runs: int = 5, model: str = "minilm") -> dict[str, Any]:
    """Median wall seconds of the three commands (and their ratios to the peer's)."""
    from stella_rag._models import resolve_model

    model_path = resolve_model(model).location  # the peer loads the same files
    work = Path(tempfile.mkdtemp(prefix="stella-startup-"))
    env = {
        **os.environ,
        "ANONYMIZED_TELEMETRY": "False",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "STELLA_RAG_DAEMON_DIR": str(work / "daemon"),
    }
    db = str(work / "db")
    docs = [str(p) for p in sorted((HERE.parent / "docs").glob("*.md"))]
    _wall(_stella("index", *docs, "--path", db, "--model", model, "--json"), env)
    _wall(_stella("daemon", "start", "--preload", model), env)
    commands = {
        "stella-rag search (no daemon)": _stella("search", QUERY, "--path", db, "--no-daemon"),
        "stella-rag search (daemon)": _stella("search", QUERY, "--path", db),
        PEER_NAME: [sys.executable, "-c", PEER, db, "docs", str(model_path), QUERY],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for _ in range(runs):
            for name, command in commands.items():
                times[name].append(_wall(command, env)[0])
    finally:
        _wall(_stella("daemon", "stop"), env)
    peer = statistics.median(times[PEER_NAME])
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "model": model,
        "query": QUERY,
        "runs": runs,
        "results": {
            name: {
                "median_s": statistics.median(values),
                "runs_s": values,
                "ratio_to_peer": statistics.median(values) / peer,
            }
            for name, values in times.items()
        },
    }


def table(record: dict[str, Any]) -> str:
    lines = [
        f"{record['runs']} runs each, alternating; model {record['model']}; wall seconds per "
        "command",
        "",
        "| command | median s | min s | max s | ratio to peer |",
        "|---|---|---|---|---|",
    ]
    for name, row in record["results"].items():
        lines.append(
            f"| {name} | {row['median_s']:.2f} | {min(row['runs_s']):.2f} | "
            f"{max(row['runs_s']):.2f} | {row['ratio_to_peer']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    record = measure(args.runs, args.model)
    print("\n" + table(record))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
