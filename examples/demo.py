"""Offline demo: index a small corpus into embedded Chroma, then retrieve turn by turn in a chat.

For each user turn it prints the top passages the conversational retriever finds for the whole
chat so far, next to what the last turn alone would retrieve.

    python examples/demo.py [--model minilm] [--path .stella-demo] [-k 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from stella_rag import ChromaStore, ConversationalRetriever, DialogueEncoder, SentenceEncoder

HERE = Path(__file__).resolve().parent

# Each chat is a list of steps; after each step the retrievers run on the whole chat so far.
CHATS: list[list[list[tuple[str, str]]]] = [
    [
        [
            (
                "user",
                "I'm choosing between the Kestrel Trail 3 and the Orrin Glide. "
                "How far does the Kestrel go on one charge?",
            )
        ],
        [
            (
                "assistant",
                "The Kestrel Trail 3 has a 540 Wh battery, good for about 90 km in eco mode.",
            ),
            ("user", "And how much is it?"),
        ],
        [
            ("assistant", "It sells for 2,390 euros with a two-year warranty."),
            ("user", "What about the other one?"),
        ],
        [
            ("assistant", "The Orrin Glide costs 1,650 euros."),
            ("user", "OK. Unrelated: how long should sourdough proof in the fridge?"),
        ],
        [
            ("assistant", "Overnight, about 12 to 14 hours."),
            ("user", "And then how hot should the oven be?"),
        ],
    ],
    # The Stella model card's example: the last utterance is B's bare "No".
    [[("user", "Have you been playing basketball lately?"), ("assistant", "No")]],
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", default="minilm", help="general encoder (default: minilm, offline)"
    )
    parser.add_argument("--path", default=".stella-demo", help="embedded Chroma folder")
    parser.add_argument("-k", type=int, default=2)
    args = parser.parse_args()

    started = time.perf_counter()
    encoder = SentenceEncoder(args.model)
    rows = [
        json.loads(line) for line in (HERE / "data" / "sample_corpus.jsonl").open(encoding="utf-8")
    ]
    store = ChromaStore("stella-demo", encoder=encoder, path=args.path)
    report = store.index(
        [r["text"] for r in rows],
        metadatas=[{"source": r["id"], "topic": r["topic"]} for r in rows],
    )
    print(
        f"Indexed {len(rows)} passages into {args.path}/ with {encoder.model_id} "
        f"on {encoder.device} "
        f"({report.embedded} embedded, {report.skipped} already there) in {report.seconds:.1f} s"
    )
    dialogue = DialogueEncoder(general=encoder)
    with_history = ConversationalRetriever(store, dialogue, k=args.k)
    last_only = ConversationalRetriever(
        store, DialogueEncoder(general=encoder, strategy="last_turn"), k=args.k
    )
    print(f"Query strategy: {dialogue.strategy.name}\n")

    for chat in CHATS:
        history: list[tuple[str, str]] = []
        for step in chat:
            for role, text in step:
                history.append((role, text))
                print(f"{'USER' if role == 'user' else 'ASSISTANT'}: {text}")
            t0 = time.perf_counter()
            hits = with_history.retrieve(history)
            ms = (time.perf_counter() - t0) * 1000
            baseline = last_only.retrieve(history)
            print(f"  whole chat ({ms:.0f} ms):")
            for hit in hits:
                print(f"    {hit.score:.3f}  {hit.text}")
            print("  last turn alone:")
            for hit in baseline:
                print(f"    {hit.score:.3f}  {hit.text}")
            print()
    print(f"Done in {time.perf_counter() - started:.1f} s.")


if __name__ == "__main__":
    main()
