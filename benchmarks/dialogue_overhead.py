"""Per-turn cost of a one-text strategy against a plain encode of the same text.

``DialogueEncoder(strategy="dialogue")`` formats the chat, drops the earliest turns to fit the
budget and encodes the one text; the reference is ``SentenceTransformer.encode`` of that very
text. Also timed: the same encode through ``SentenceEncoder.encode_queries`` (the runner alone),
and a whole ``ConversationalRetriever.retrieve`` on a 10,000-passage collection.

    python benchmarks/dialogue_overhead.py              # minilm, 60 dialogues of ~200 tokens
    python benchmarks/dialogue_overhead.py --dialogues 200 --tokens 400

Each dialogue is timed once per system, the systems in rotating order, after a warm-up; the
table gives p50 and p95 of the wall time in milliseconds, the p50 of the process's CPU time
(steadier on a shared machine), and the ratio of each p50 to the plain encode's.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import make_dialogues, short_passages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dialogues", type=int, default=60)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--model", default="minilm")
    args = parser.parse_args()

    import numpy as np

    from stella_rag import ChromaStore, ConversationalRetriever, DialogueEncoder, SentenceEncoder

    encoder = SentenceEncoder(args.model, device="cpu").load()
    st = encoder._load().model
    dialogue = DialogueEncoder(general=encoder, strategy="dialogue", cache_size=0)
    store = ChromaStore(f"overhead-{uuid.uuid4().hex[:8]}", encoder=encoder)
    rng = np.random.default_rng(0)
    passages = list(short_passages(args.passages, seed=5))
    for start in range(0, len(passages), 2000):
        chunk = passages[start : start + 2000]
        vectors = rng.standard_normal((len(chunk), encoder.dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.collection.add(
            ids=[f"p{start + i}" for i in range(len(chunk))], embeddings=vectors, documents=chunk
        )
    retriever = ConversationalRetriever(store, dialogue, k=4)
    dialogues = make_dialogues(args.dialogues, seed=2, tokens=args.tokens)
    texts = [dialogue.format(d) for d in dialogues]
    tokens = [encoder.count_tokens([t])[0] for t in texts]
    vectors = encoder.encode_queries(texts)

    systems: dict[str, Callable[[int], Any]] = {
        "plain SentenceTransformer.encode(text)": lambda i: st.encode([texts[i]]),
        "SentenceEncoder.encode_queries([text])": lambda i: encoder.encode_queries([texts[i]]),
        "DialogueEncoder(strategy='dialogue').encode(chat)": lambda i: dialogue.encode(
            dialogues[i]
        ),
        "DialogueEncoder.window(chat) alone": lambda i: dialogue.window(dialogues[i]),
        "ChromaStore.search(vector), 10k passages": lambda i: store.search(vectors[i], k=4),
        "ConversationalRetriever.retrieve(chat), 10k passages": lambda i: retriever.retrieve(
            dialogues[i]
        ),
    }
    names = list(systems)
    for i in range(min(5, len(dialogues))):  # warm-up
        for name in names:
            systems[name](i)
    ms: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for i in range(len(dialogues)):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            start, start_cpu = time.perf_counter(), _cpu_ms()
            systems[name](i)
            ms[name].append((time.perf_counter() - start) * 1000)
            cpu[name].append(_cpu_ms() - start_cpu)
    base = statistics.median(ms[names[0]])
    base_cpu = statistics.median(cpu[names[0]])
    print(
        f"{args.model}, {len(dialogues)} dialogues of {min(tokens)}-{max(tokens)} tokens, "
        f"{store.count()} passages"
    )
    print(f"{'system':53} {'p50 ms':>7} {'p95 ms':>7} {'x plain':>7} {'cpu p50':>7} {'x plain':>7}")
    for name in names:
        values = sorted(ms[name])
        p50, cpu50 = statistics.median(values), statistics.median(cpu[name])
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        ratios = f"{p50 / base:7.2f} {cpu50:7.2f} {cpu50 / base_cpu:7.2f}"
        print(f"{name:53} {p50:7.2f} {p95:7.2f} {ratios}")


def _cpu_ms() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


if __name__ == "__main__":
    main()
